r"""Training from a stream of batches: host chunks and the compiled program of a chunk.

A chunk is up to ``k`` consecutive batches of one shape, stacked on the host into
``xs (k, batch, ...)`` and ``ys (k, batch, ...)``, sent to the device in one transfer and
trained by one ``lax.scan`` of :func:`fnn.training._step.step` (the step of ``fit``):

.. math:: (w, s, m)_{i+1} = \text{step}(w_i, s_i, m_i; x_i, y_i, k_{t_0 + i}), \qquad
          T \mathrel{+}= b \sum_{i < c} L_i

with :math:`k_t` the key :func:`fnn.training.step_key` of global step :math:`t` (general
models only), :math:`c` the chunk's number of real batches, :math:`b` their size and
:math:`T` the epoch's sum of example losses. A chunk of the run's first batch shape
always holds ``k`` steps: a short one is padded with skipped steps (``lax.cond``) and
needs no new program. A batch of another shape (the short last batch of an epoch) starts
a chunk of its own, of exactly its length: one more program per shape and length, made
once and reused by later epochs.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import _checks
from fnn.training._keys import model_keys
from fnn.training._step import Model, step

__all__ = ["HostChunk", "host_chunks", "chunk_runner", "checked_batch"]


class HostChunk(NamedTuple):
    """Batches stacked for one transfer: ``xs (k, b, ...)``, ``ys (k, b, ...)``."""

    xs: Any               # np.ndarray, or a jax.Array when the batches were jax arrays
    ys: Any
    # real batches (the rest, up to k, are padding); the field shadows tuple.count, which
    # mypy reports as an incompatible override, but attribute access gives the field.
    count: int  # type: ignore[assignment]
    padded: bool          # run with the skipping program (count may be < len(xs))


def checked_batch(fn: str, index: int, batch: Any, first: tuple | None) -> tuple:
    """``(x, y)`` of batch ``index``, as NumPy or jax arrays, with one target per example
    and the per-example shapes and dtypes of the ``first`` batch."""
    where = f"batches[{index}]"
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        _checks.fail(fn, where, "be a pair (x, y)", _checks.describe(batch), TypeError)
    x, y = (a if isinstance(a, (jax.Array, np.ndarray)) else np.asarray(a) for a in batch)
    for name, a in (("x", x), ("y", y)):
        if a.ndim < 1 or a.dtype == object:
            _checks.fail(fn, f"{where} {name}", "be an array (batch, ...) of numbers", _checks.describe(a),
                         TypeError)
    if y.shape[0] != x.shape[0] or x.shape[0] == 0:
        _checks.fail(fn, f"{where} y", f"have one target per example of x ({x.shape[0]}, at least 1)",
                     f"shape {y.shape}")
    if first is not None:
        for name, a, b in (("x", x, first[0]), ("y", y, first[1])):
            if a.shape[1:] != b.shape[1:] or a.dtype != b.dtype:
                _checks.fail(fn, f"{where} {name}", f"have the first batch's example shape {b.shape[1:]} "
                             f"and dtype {b.dtype}", f"{a.shape[1:]} {a.dtype}")
    return x, y


def _stack(arrays: list, k: int) -> Any:
    """``arrays`` stacked on a new first axis, padded with zeros to ``k`` entries."""
    if any(isinstance(a, jax.Array) for a in arrays):
        out = jnp.stack(arrays)
        return out if len(arrays) == k else jnp.concatenate(
            [out, jnp.zeros((k - len(arrays),) + out.shape[1:], out.dtype)])
    host = np.empty((k,) + arrays[0].shape, arrays[0].dtype)
    for i, a in enumerate(arrays):
        host[i] = a
    host[len(arrays):] = 0
    return host


def host_chunks(batches: Iterator, k: int, check: Callable[[int, Any], tuple],
                shape: tuple) -> Iterator[HostChunk]:
    """Chunks of up to ``k`` consecutive batches of one shape, from ``check(i, batch)``.

    ``shape``: ``(x.shape, y.shape)`` of the run's first batch: its chunks are padded to
    ``k``; a chunk of another shape holds exactly its batches.
    """
    pending: list = []

    def flush() -> HostChunk:
        main = (pending[0][0].shape, pending[0][1].shape) == shape
        size = k if main else len(pending)
        chunk = HostChunk(_stack([b[0] for b in pending], size), _stack([b[1] for b in pending], size),
                          len(pending), main and len(pending) < k)
        pending.clear()
        return chunk

    for i, batch in enumerate(batches):
        x, y = check(i, batch)
        if pending and (x.shape, y.shape) != (pending[0][0].shape, pending[0][1].shape):
            yield flush()
        pending.append((x, y))
        if len(pending) == k:
            yield flush()
    if pending:
        yield flush()


@functools.lru_cache(maxsize=64)
def chunk_runner(model: Model, optimizer: Any, loss: Callable, padded: bool) -> Callable:
    """``run(carry, total, key, t0, xs, ys, count) -> (carry, total, losses)``, jitted.

    ``carry = (params, opt_state, model_state)`` and ``total`` (the epoch's float32 sum
    of example losses) are donated: updated in place. ``losses (k,)`` are the batch
    losses (those at and after ``count`` are padding when ``padded``).
    """
    def run(carry, total, key, t0, xs, ys, count):
        def train(c, xb, yb, i):
            p, s, m, value = step(model, optimizer, loss, *c, xb, yb, model_keys(model.general, None, key, t0 + i))
            return (p, s, m), value.astype(jnp.float32)

        def one(c, batch):
            xb, yb, i = batch
            if not padded:
                return train(c, xb, yb, i)
            return jax.lax.cond(i < count, lambda c: train(c, xb, yb, i),
                                lambda c: (c, jnp.zeros((), jnp.float32)), c)

        index = jnp.arange(xs.shape[0], dtype=jnp.int32)
        carry, losses = jax.lax.scan(one, carry, (xs, ys, index))
        real = jnp.where(index < count, losses, 0.0) if padded else losses
        return carry, total + jnp.sum(real) * xs.shape[1], losses

    return jax.jit(run, donate_argnums=(0, 1))
