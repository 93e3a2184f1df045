"""epoch_order(method="feistel") and fit(shuffle="feistel"): a permutation, uniform per
position, the order fit visits; the default order is the sort's, unchanged."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.training import epoch_order, train_step

MODEL = fnn.mlp([8, 3])


def _orders(n: int, epochs: int, seed: int = 5) -> np.ndarray:
    return np.asarray(jax.jit(jax.vmap(lambda e: epoch_order(jax.random.key(seed), e, n, method="feistel")))(
        jnp.arange(epochs)))


@pytest.mark.parametrize("n", [1, 3, 1025])   # 4^h = 4, 4, 4096: cycle walking
def test_epoch_order_feistel_is_a_permutation(n):
    orders = _orders(n, 50)
    chex.assert_shape(orders, (50, n))
    assert orders.dtype == np.int32
    np.testing.assert_array_equal(np.sort(orders, axis=1), np.broadcast_to(np.arange(n), (50, n)))


@pytest.mark.parametrize("n", [10, 600])      # 600: cycle walking from 4^5 = 1024
def test_epoch_order_feistel_puts_every_example_anywhere_with_equal_chance(n):
    """Over 2,000 epochs the first example visited and the position of example 0, in 10
    bins, are uniform (chi-square, 9 degrees of freedom, p = 1e-4), and epochs differ."""
    orders = _orders(n, 2000)
    for values in (orders[:, 0], np.argsort(orders, axis=1)[:, 0]):
        counts = np.bincount(values * 10 // n, minlength=10)
        assert np.sum((counts - 200.0) ** 2 / 200.0) < 33.7
    assert len({tuple(o[:10]) for o in orders}) > 1900


def test_epoch_order_feistel_depends_on_key_and_epoch_and_matches_under_jit():
    jitted = jax.jit(lambda k, e: epoch_order(k, e, 1000, method="feistel"))
    key = jax.random.key(3)
    a = jitted(key, 0)
    assert not np.array_equal(a, jitted(key, 1))
    assert not np.array_equal(a, jitted(jax.random.key(4), 0))
    chex.assert_trees_all_equal(epoch_order(key, 0, 1000, method="feistel"), a)


def test_fit_shuffle_feistel_visits_the_feistel_epoch_order():
    """fit(shuffle="feistel") equals a Python loop of train_step over the batches in
    epoch_order(key, epoch, n, method="feistel") (ragged last batch included)."""
    x = jax.random.normal(jax.random.key(0), (50, 4))
    y = jnp.argmax(x[:, :3], axis=1)
    params = MODEL.init(jax.random.key(1), (4,))
    optimizer, key = fnn.optimizers.sgd(0.1), jax.random.key(2)
    result = fnn.fit(MODEL, params, optimizer, x, y, epochs=1, batch_size=16, key=key,
                     shuffle="feistel", progress=False)
    p, s = params, optimizer.init(params)
    order = epoch_order(key, 0, 50, method="feistel")
    assert not np.array_equal(order, epoch_order(key, 0, 50))     # not the sort's order
    for start in range(0, 50, 16):
        idx = order[start:start + 16]
        p, s, _ = train_step(p, s, x[idx], y[idx], model=MODEL, optimizer=optimizer)
    chex.assert_trees_all_close(result.params, p, rtol=1e-5, atol=1e-6)
