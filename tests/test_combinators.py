"""Tests for residual, parallel, fan_out, fan_in_sum, fan_in_concat and mixed_precision."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import fnn
from fnn import layers

KEY = jax.random.key(0)


def _x(shape, dtype=np.float32, seed=1):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def _dense_params(n_in, n_out, dtype=np.float32, seed=2):
    return {"w": _x((n_in, n_out), dtype, seed), "b": _x((n_out,), dtype, seed + 1)}


def test_residual_adds_input_to_layer_output():
    p = _dense_params(3, 3)
    x = _x((2, 3))
    y = layers.residual(fnn.dense(3)).apply(p, x)
    np.testing.assert_allclose(y, x + x @ p["w"] + p["b"], rtol=1e-6)


def test_residual_params_are_the_layers_own():
    params = layers.residual(fnn.dense(3)).init(KEY, (3,))
    assert jax.tree.structure(params) == jax.tree.structure(fnn.dense(3).init(KEY, (3,)))


def test_residual_rejects_shape_changing_layer():
    with pytest.raises(ValueError, match=r"residual: layer must keep the shape of its input.*\(2, 3\) -> .*\(2, 4\)"):
        layers.residual(fnn.dense(4)).apply(_dense_params(3, 4), jnp.ones((2, 3)))


def test_branches_params_structure_and_values():
    net = fnn.serial(layers.fan_out(2), layers.parallel(fnn.dense(3), fnn.dense(2)), layers.fan_in_concat())
    params = net.init(KEY, (4,))
    assert isinstance(net, layers.Layer)
    assert params[0] == () and params[2] == () and len(params[1]) == 2
    chex.assert_shape([params[1][0]["w"], params[1][1]["w"]], [(4, 3), (4, 2)])
    p = [(), [_dense_params(4, 3), _dense_params(4, 2, seed=5)], ()]
    x = _x((5, 4))
    ref = np.concatenate([x @ p[1][0]["w"] + p[1][0]["b"], x @ p[1][1]["w"] + p[1][1]["b"]], -1)
    np.testing.assert_allclose(net.apply(p, x), ref, rtol=1e-6)


def test_fan_in_sum_adds_branches():
    net = fnn.serial(layers.fan_out(3), layers.parallel(fnn.relu, jnp.tanh, lambda v: 2 * v), layers.fan_in_sum())
    x = _x((4, 2))
    np.testing.assert_allclose(net.apply(net.init(KEY, (2,)), x), np.maximum(x, 0) + np.tanh(x) + 2 * x,
                               rtol=1e-6)


def test_combinators_grads_match_finite_differences(x64):
    net = fnn.serial(layers.fan_out(2), layers.parallel(layers.residual(fnn.dense(3)), fnn.dense(3)),
                     layers.fan_in_sum())
    p = [(), [_dense_params(3, 3, np.float64), _dense_params(3, 3, np.float64, 7)], ()]
    p = jax.tree.map(jnp.asarray, p)
    check_grads(net.apply, (p, jnp.asarray(_x((2, 3), np.float64))), order=1, modes=["rev"], eps=1e-4)


def test_parallel_promotes_to_stateful_and_splits_keys():
    net = layers.parallel(layers.dropout(0.5), fnn.dense(2), layers.dropout(0.5))
    assert isinstance(net, layers.StatefulLayer)
    params, state = net.init(KEY, [(8,), (3,), (8,)])
    assert state == [(), (), ()] and params[0] == ()
    x = [jnp.ones((4, 8)), jnp.ones((4, 3)), jnp.ones((4, 8))]
    y, _ = net.apply(params, state, x, key=jax.random.key(1), train=True)
    k0, _, k2 = jax.random.split(jax.random.key(1), 3)
    np.testing.assert_array_equal(y[0], layers.dropout(0.5).apply((), (), x[0], key=k0, train=True)[0])
    np.testing.assert_array_equal(y[2], layers.dropout(0.5).apply((), (), x[2], key=k2, train=True)[0])
    assert not np.array_equal(y[0], y[2])


def test_residual_of_batch_norm_threads_state():
    net = layers.residual(layers.batch_norm(momentum=0.5))
    params, state = net.init(KEY, (2,))
    x = jnp.array([[1.0, 2.0], [3.0, 6.0]])
    y, new_state = net.apply(params, state, x, train=True)
    ref_y, ref_state = layers.batch_norm(momentum=0.5).apply(params, state, x, train=True)
    np.testing.assert_allclose(y, x + ref_y)
    chex.assert_trees_all_close(new_state, ref_state)


def test_combinators_reject_bad_inputs():
    with pytest.raises(ValueError, match="parallel: layers must contain at least one layer"):
        layers.parallel()
    with pytest.raises(ValueError, match="parallel: x must be a list of 2 arrays"):
        layers.parallel(fnn.relu, fnn.relu).apply([(), ()], [jnp.ones(2)])
    with pytest.raises(TypeError, match="fan_in_sum: x must be a list"):
        layers.fan_in_sum().apply((), jnp.ones(2))
    with pytest.raises(ValueError, match=r"fan_in_sum: x\[1\] must have the shape of x\[0\]"):
        layers.fan_in_sum().apply((), [jnp.ones(2), jnp.ones(3)])
    with pytest.raises(ValueError, match=r"fan_in_concat\(-1\): x\[1\] must match x\[0\]"):
        layers.fan_in_concat().apply((), [jnp.ones((2, 2)), jnp.ones((3, 2))])
    with pytest.raises(ValueError, match="fan_in_concat: axis must be a negative int"):
        layers.fan_in_concat(1)
    with pytest.raises(ValueError, match="fan_out: n must be a positive integer"):
        layers.fan_out(0)
    with pytest.raises(ValueError, match="parallel: input_shape must be a list of 2 shapes"):
        layers.parallel(fnn.relu, fnn.relu).init(KEY, (3,))


# ---- mixed_precision -----------------------------------------------------------------------

def test_mixed_precision_computes_in_bfloat16_returns_params_dtype():
    net = layers.mixed_precision(fnn.dense(3))
    p = _dense_params(4, 3)
    x = _x((2, 4))
    y = net.apply(p, x)
    assert y.dtype == jnp.float32
    bf = lambda a: jnp.asarray(a, jnp.bfloat16)  # noqa: E731
    ref = (bf(x) @ bf(p["w"]) + bf(p["b"])).astype(jnp.float32)
    np.testing.assert_array_equal(y, ref)
    grads = jax.grad(lambda q: jnp.sum(net.apply(q, x)))(p)
    chex.assert_type(jax.tree.leaves(grads), jnp.float32)


def test_mixed_precision_of_batch_norm_keeps_state_float32():
    net = layers.mixed_precision(fnn.serial(fnn.dense(3), layers.batch_norm()))
    params, state = net.init(KEY, (4,))
    y, new_state = net.apply(params, state, _x((8, 4)), train=True)
    assert y.dtype == jnp.float32
    chex.assert_type(jax.tree.leaves(new_state), jnp.float32)


def test_mixed_precision_rejects_integer_dtype():
    with pytest.raises(TypeError, match="mixed_precision: compute_dtype must be a floating dtype"):
        layers.mixed_precision(fnn.dense(2), jnp.int8)


def test_mixed_precision_training_reaches_float32_accuracy_on_digits():
    data = fnn.datasets.load("digits", key=jax.random.key(0))
    results = {}
    for name, model in (("f32", fnn.mlp([64, 10])), ("bf16", layers.mixed_precision(fnn.mlp([64, 10])))):
        params = model.init(jax.random.key(1), (64,))
        out = fnn.fit(model, params, fnn.optimizers.adam(1e-2), data.x_train, data.y_train, epochs=8,
                      batch_size=64, key=jax.random.key(2), progress=False, nan_guard=False)
        chex.assert_type(jax.tree.leaves(out.params), jnp.float32)
        results[name] = float(fnn.evaluate(model, out.params, data.x_test, data.y_test,
                                           metrics={"acc": fnn.metrics.accuracy})["acc"])
    assert results["f32"] > 0.9
    assert results["bf16"] >= results["f32"] - 0.02, results
