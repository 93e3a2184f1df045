"""The order in which an epoch visits the examples."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn import _checks


def epoch_order(key: jax.Array, epoch: int | jax.Array, n: int) -> jax.Array:
    r"""The permutation of ``range(n)`` that :func:`fnn.fit` uses for epoch ``epoch``.

    Two words of random bits per example are drawn from ``fold_in(key, epoch)`` and the
    indices sorted by them, as one 64-bit key: a uniformly random permutation with
    (practically) no ties. It is the same distribution as ``jax.random.permutation``
    but compiles to one random-bits kernel and one sort, ~60 ms less XLA compile time
    on CPU inside :func:`fnn.fit` than ``permutation(fold_in(key, epoch), n)``.

    Args:
      key: a ``jax.random`` key.
      epoch: the epoch (an int or a traced int32 scalar).
      n: the number of examples.

    Returns:
      ``(n,)`` int32 indices.

    Example:
      >>> import jax, fnn
      >>> order = fnn.training.epoch_order(jax.random.key(0), 3, 5)
      >>> sorted(order.tolist())
      [0, 1, 2, 3, 4]
    """
    _checks.prng_key("epoch_order", "key", key)
    n = _checks.positive_int("epoch_order", "n", n)
    bits = jax.random.bits(jax.random.fold_in(key, epoch), (2, n))
    return jax.lax.sort((bits[0], bits[1], jax.lax.iota(jnp.int32, n)), num_keys=2)[2]
