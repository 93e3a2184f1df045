"""The order in which an epoch visits the examples."""

from __future__ import annotations

from typing import cast

import jax
import jax.numpy as jnp

from fnn import _checks

# Expected number of pairs of examples whose random sort keys tie, per epoch, is at most
# 2**-TIE_MARGIN_BITS = 1/256 (a tied pair keeps its index order: the only departure from a
# uniformly random permutation).
TIE_MARGIN_BITS = 8
# Up to this many passes they are faster than one sort of a two-word key carrying the
# index (measured on CPU: benchmarks/README.md).
MAX_PASSES = 6


def sort_passes(n: int) -> int:
    """How many one-word sorts :func:`epoch_order` runs for ``n`` examples.

    An index in ``[0, n)`` needs ``b = bit_length(n - 1)`` bits, which leaves ``32 - b``
    random bits per pass. ``p`` passes give ``p (32 - b)`` random bits per example, and the
    expected number of tied pairs is at most ``C(n, 2) 2^{-p (32 - b)} < 2^{2b - 1 - p (32 - b)}``;
    ``p`` is the least with ``p (32 - b) >= 2b + TIE_MARGIN_BITS``: 1 pass up to 256
    examples, 2 up to 16,384, 3 up to 131,072, 4 up to 2^20, 6 up to 2^23. 0 means more
    than ``MAX_PASSES`` would be needed (over 2^23 examples), where :func:`epoch_order`
    sorts by a two-word key instead.
    """
    index_bits = (n - 1).bit_length()
    passes = -(-(2 * index_bits + TIE_MARGIN_BITS) // (32 - index_bits))
    return passes if passes <= MAX_PASSES else 0


def order_from_bits(bits: jax.Array) -> jax.Array:
    r"""The permutation that sorts examples by the random words ``bits`` ``(passes, n)``.

    Pass ``t`` sorts the positions ``j`` of the current order by one uint32 word
    ``(bits[t, j] << b) | j`` (``b`` bits for the index, the rest random), and the order
    becomes ``order[q]``. A sort of a single 32-bit operand takes XLA's fast path
    (~7x faster on CPU than a sort that carries an index array along); as in a radix sort
    from the least significant digit, later passes decide first and earlier passes break
    their ties, so the examples end up sorted by all the random bits together (a
    uniformly random permutation unless some pair ties in every pass; see
    :func:`sort_passes`).
    """
    passes, n = bits.shape
    index_bits = (n - 1).bit_length()
    iota = jax.lax.iota(jnp.uint32, n)
    mask = jnp.uint32((1 << index_bits) - 1)
    order = None
    for t in range(passes):
        q = (jax.lax.sort((bits[t] << index_bits) | iota) & mask).astype(jnp.int32)
        order = q if order is None else order.at[q].get(mode="promise_in_bounds")
    return cast(jax.Array, order)  # bits has at least one pass (sort_passes >= 1)


def epoch_order(key: jax.Array, epoch: int | jax.Array, n: int) -> jax.Array:
    r"""The permutation of ``range(n)`` that :func:`fnn.fit` uses for epoch ``epoch``.

    Random bits from ``fold_in(key, epoch)`` are attached to every example and the
    examples sorted by them: a uniformly random permutation (the distribution of
    ``jax.random.permutation``), except that a pair of examples whose random bits tie keeps
    its index order (expected: fewer than one such pair in 256 epochs, see
    :func:`sort_passes`). The sorts are of one 32-bit word each (:func:`order_from_bits`),
    1 to 4 of them up to a million examples, each on XLA's fast path for a single operand
    (faster than one sort of a two-word key carrying an index array, and than
    ``jax.random.permutation``: timings in benchmarks/README.md). Above 2^23 examples it
    sorts by two random words carrying the index.

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
    key = jax.random.fold_in(key, epoch)
    passes = sort_passes(n)
    if passes:
        return order_from_bits(jax.random.bits(key, (passes, n), jnp.uint32))
    bits = jax.random.bits(key, (2, n), jnp.uint32)
    return jax.lax.sort((bits[0], bits[1], jax.lax.iota(jnp.int32, n)), num_keys=2)[2]
