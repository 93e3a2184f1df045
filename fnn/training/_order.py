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
# Rounds of the Feistel network of method="feistel" (Luby and Rackoff: 4 rounds of
# independent random round functions give a pseudorandom permutation).
FEISTEL_ROUNDS = 4
METHODS = ("sort", "feistel")


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


def _mix(v: jax.Array, k: jax.Array) -> jax.Array:
    """A keyed 32-bit hash (MurmurHash3's finaliser after xor with the round key)."""
    v = v ^ k
    v = (v ^ (v >> 16)) * jnp.uint32(0x85EBCA6B)
    v = (v ^ (v >> 13)) * jnp.uint32(0xC2B2AE35)
    return v ^ (v >> 16)


def feistel_order(key: jax.Array, n: int) -> jax.Array:
    r"""A permutation of ``range(n)`` computed elementwise: no sort.

    Each index ``i`` in ``[0, 4^h)`` (``h`` the least with ``4^h >= n``, so ``4^h < 4n``) is
    split into halves ``(l, r)`` of ``h`` bits and sent through :data:`FEISTEL_ROUNDS`
    rounds

    .. math::
        (l, r) \mapsto (r,\; l \oplus (f_t(r) \bmod 2^h)),

    with ``f_t`` a 32-bit hash keyed by round ``t``'s random word from ``key``; every round
    is invertible, so the network is a bijection of ``[0, 4^h)``. An image outside
    ``[0, n)`` is sent through the network again until it lands inside (cycle walking),
    which keeps a bijection of ``[0, n)``. Each pass costs a few integer operations per
    index, against a sort's ``O(n log n)`` comparisons.
    """
    h = max(1, -(-(n - 1).bit_length() // 2))
    mask = jnp.uint32((1 << h) - 1)
    round_keys = jax.random.bits(key, (FEISTEL_ROUNDS,), jnp.uint32)

    def network(i):
        left, right = i >> h, i & mask
        for t in range(FEISTEL_ROUNDS):
            left, right = right, left ^ (_mix(right, round_keys[t]) & mask)
        return (left << h) | right

    outside = lambda v: v >= n  # noqa: E731
    v = network(jax.lax.iota(jnp.uint32, n))
    v = jax.lax.while_loop(lambda v: jnp.any(outside(v)),
                           lambda v: jnp.where(outside(v), network(v), v), v)
    return v.astype(jnp.int32)


def epoch_order(key: jax.Array, epoch: int | jax.Array, n: int, *, method: str = "sort") -> jax.Array:
    r"""The permutation of ``range(n)`` that :func:`fnn.fit` uses for epoch ``epoch``.

    ``method="sort"`` (the default, and ``fit(shuffle=True)``'s order): random bits
    from ``fold_in(key, epoch)`` are attached to every example and the
    examples sorted by them: a uniformly random permutation (the distribution of
    ``jax.random.permutation``), except that a pair of examples whose random bits tie keeps
    its index order (expected: fewer than one such pair in 256 epochs, see
    :func:`sort_passes`). The sorts are of one 32-bit word each (:func:`order_from_bits`),
    1 to 4 of them up to a million examples, each on XLA's fast path for a single operand
    (faster than one sort of a two-word key carrying an index array, and than
    ``jax.random.permutation``: timings in benchmarks/README.md). Above 2^23 examples it
    sorts by two random words carrying the index.

    ``method="feistel"`` (``fit(shuffle="feistel")``): the keyed bijection
    ``feistel_order`` of ``fold_in(key, epoch)`` (a Feistel network on the index bits with
    cycle walking), computed per index without a sort:
    several times cheaper on XLA's CPU backend from a few thousand examples on (timings
    in benchmarks/README.md), a different order from ``"sort"``'s. A pseudorandom
    permutation: every example equally likely at every position (tested), though not
    all ``n!`` orders are reachable (a key picks one of at most ``2^128`` networks).

    Args:
      key: a ``jax.random`` key.
      epoch: the epoch (an int or a traced int32 scalar).
      n: the number of examples.
      method: ``"sort"`` or ``"feistel"``.

    Returns:
      ``(n,)`` int32 indices.

    Example:
      >>> import jax, fnn
      >>> order = fnn.training.epoch_order(jax.random.key(0), 3, 5)
      >>> sorted(order.tolist())
      [0, 1, 2, 3, 4]
      >>> sorted(fnn.training.epoch_order(jax.random.key(0), 3, 5, method="feistel").tolist())
      [0, 1, 2, 3, 4]
    """
    _checks.prng_key("epoch_order", "key", key)
    n = _checks.positive_int("epoch_order", "n", n)
    if method not in METHODS:
        _checks.fail("epoch_order", "method", f"be one of {METHODS}", repr(method))
    key = jax.random.fold_in(key, epoch)
    if method == "feistel":
        return feistel_order(key, n)
    passes = sort_passes(n)
    if passes:
        return order_from_bits(jax.random.bits(key, (passes, n), jnp.uint32))
    bits = jax.random.bits(key, (2, n), jnp.uint32)
    return jax.lax.sort((bits[0], bits[1], jax.lax.iota(jnp.int32, n)), num_keys=2)[2]
