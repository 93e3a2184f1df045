r"""Gradient accumulation: one optimizer update from the mean gradient of several batches.

.. math:: g = \frac{1}{\sum_j n_j} \sum_j n_j \nabla_w L_j(w)

over the micro-batches :math:`j` of an update (sizes :math:`n_j`), all at the same params
:math:`w`: for a model without batch statistics the gradient of one step on their
concatenation. The sum is carried from one micro-batch to the next: one gradient
buffer, not k; small micro-batches of a model without state run as one vectorised batch.
An optimizer's ``value_fn`` (``optax.lbfgs``'s line search) is the same mean of the
micro-batch losses as a function of params, each micro-batch run as its step ran it.
"""

from __future__ import annotations

from typing import Any, Callable, cast

import jax
import jax.numpy as jnp

from fnn.training._step import Model, gradients, objective, update

__all__ = ["group_step", "tail_step", "accumulated_epoch"]

Params = Any


# Stacked micro-batches of a model without state of up to VECTORIZE_MAX_BYTES of data
# are run as one vectorised batch (vmap over the micro-batches: one pass over k b rows,
# the gradient of the mean of their losses): at such sizes XLA's per-op cost, paid once
# per micro-batch otherwise, dominates, and the k b rows' activations take little
# memory. Larger ones (and general models, whose state runs through the micro-batches)
# take one micro-batch after the other, unrolled up to UNROLL_MAX_STEPS (no inner loop
# to run), scanned beyond; so do micro-batches under VECTORIZE_MIN_ROWS rows, which
# XLA's CPU backend ran faster one after the other than as one batch (timings:
# benchmarks/README.md).
VECTORIZE_MAX_BYTES = 64 * 1024
VECTORIZE_MIN_ROWS = 8
UNROLL_MAX_STEPS = 8


def _vectorized(model: Model, xs: jax.Array, ys: jax.Array) -> bool:
    return (not model.general and xs.shape[1] >= VECTORIZE_MIN_ROWS
            and xs.nbytes + ys.nbytes <= VECTORIZE_MAX_BYTES)


def _vectorized_losses(model: Model, loss: Callable, state: Any, xs: jax.Array,
                       ys: jax.Array) -> Callable[[Params], jax.Array]:
    """``params -> losses (k,)`` of stacked micro-batches, as one batch of k b rows."""
    return lambda p: jax.vmap(lambda xb, yb: objective(model, loss, state, xb, yb, None)(p)[0])(xs, ys)


def _mean_of_stacked(model: Model, loss: Callable, params: Params, state: Any, xs: jax.Array,
                     ys: jax.Array, keys: Any):
    """Micro-batches stacked ``(k, batch, ...)`` of equal size: the plain mean of their gradients."""
    k = xs.shape[0]
    if _vectorized(model, xs, ys):
        def mean_loss(p):
            losses = _vectorized_losses(model, loss, state, xs, ys)(p)
            return jnp.mean(losses), losses
        (value, losses), grads = jax.value_and_grad(mean_loss, has_aux=True)(params)
        return grads, value, state, losses
    if k <= UNROLL_MAX_STEPS:
        total, parts = None, []
        for j in range(k):
            value, g, state = gradients(model, loss, params, state, xs[j], ys[j],
                                        None if keys is None else keys[j])
            total = g if total is None else jax.tree.map(jnp.add, total, g)
            parts.append(value)
        losses = jnp.stack(parts)
        return jax.tree.map(lambda g: g / k, total), jnp.mean(losses), state, losses

    def micro(c, b):
        total, st = c
        xb, yb, kb = b
        value, g, st = gradients(model, loss, params, st, xb, yb, kb)
        return (jax.tree.map(jnp.add, total, g), st), value

    zero = jax.tree.map(jnp.zeros_like, params)
    (total, state), losses = jax.lax.scan(micro, (zero, state), (xs, ys, keys))
    return jax.tree.map(lambda g: g / k, total), jnp.mean(losses), state, losses


def _stacked_value_fn(model: Model, loss: Callable, state: Any, xs: jax.Array, ys: jax.Array,
                      keys: Any) -> Callable[[Params], jax.Array]:
    """``params -> mean loss`` of the stacked micro-batches, run as the step runs them."""
    if _vectorized(model, xs, ys):
        losses_of = _vectorized_losses(model, loss, state, xs, ys)
        return lambda p: jnp.mean(losses_of(p))

    def value_fn(p):
        def micro(st, b):
            value, st = objective(model, loss, st, *b)(p)
            return st, value
        return jnp.mean(jax.lax.scan(micro, state, (xs, ys, keys))[1])
    return value_fn


def group_step(model: Model, optimizer: Any, loss: Callable, params: Params, opt_state: Any, state: Any,
               xs: jax.Array, ys: jax.Array, keys: Any):
    """One update from ``k`` stacked batches: ``(params, opt_state, state, losses (k,))``."""
    grads, value, new_state, losses = _mean_of_stacked(model, loss, params, state, xs, ys, keys)
    params, opt_state = update(optimizer, grads, opt_state, params, value,
                               _stacked_value_fn(model, loss, state, xs, ys, keys))
    return params, opt_state, new_state, losses


def _weighted_value_fn(model: Model, loss: Callable, state: Any, xs: list, ys: list, keys: list,
                       count: int) -> Callable[[Params], jax.Array]:
    """``params -> example-weighted mean loss`` of the tail's batches, as the step runs them."""
    def value_fn(p):
        total, st = 0.0, state
        for xb, yb, kb in zip(xs, ys, keys):
            value, st = objective(model, loss, st, xb, yb, kb)(p)
            total = total + value * (xb.shape[0] / count)
        return total
    return value_fn


def tail_step(model: Model, optimizer: Any, loss: Callable, params: Params, opt_state: Any, state: Any,
              xs: list, ys: list, keys: list):
    """One update from the batches left at the end of an epoch (sizes may differ): their
    example-weighted mean gradient. ``(params, opt_state, state, losses (len(xs),))``."""
    count = sum(xb.shape[0] for xb in xs)
    keys = [None] * len(xs) if keys is None else keys
    total, value, losses, new_state = None, 0.0, [], state
    for xb, yb, kb in zip(xs, ys, keys):
        batch_value, g, new_state = gradients(model, loss, params, new_state, xb, yb, kb)
        w = xb.shape[0] / count
        g = jax.tree.map(lambda a: a * w, g)
        total = g if total is None else jax.tree.map(jnp.add, total, g)
        value = value + batch_value * w
        losses.append(batch_value)
    # value is a jax.Array by now: xs holds at least one batch.
    params, opt_state = update(optimizer, total, opt_state, params, cast(jax.Array, value),
                               _weighted_value_fn(model, loss, state, xs, ys, keys, count))
    return params, opt_state, new_state, jnp.stack(losses)


def accumulated_epoch(group: Callable, tail: Callable, carry: tuple, take: Callable, keys_of: Callable,
                      full: int, rest: int, batch_size: int, k: int, members: int | None):
    """One epoch of updates of ``k`` batches each; ``(carry, losses (batches, members?))``.

    ``group(p, s, m, xs, ys, keys)`` / ``tail(p, s, m, xs, ys, keys)``: the (member-mapped)
    steps; ``take(start, size)``: a batch; ``keys_of(steps)``: the keys of those global
    batch indices within the epoch (members first), or None.
    """
    groups, left = divmod(full, k)
    parts = []

    def to_batches(losses):     # (..., members?, k) -> (k, members?)
        return losses if members is None else jnp.moveaxis(losses, -1, 0)

    if groups:
        def one(c, g):
            xb, yb = take(g * (k * batch_size), k * batch_size)
            xs, ys = (a.reshape((k, batch_size) + a.shape[1:]) for a in (xb, yb))
            p, s, m, losses = group(*c, xs, ys, keys_of(g * k + jnp.arange(k, dtype=jnp.int32)))
            return (p, s, m), to_batches(losses)
        carry, losses = jax.lax.scan(one, carry, jnp.arange(groups, dtype=jnp.int32))
        parts.append(losses.reshape((groups * k,) + losses.shape[2:]))
    sizes = [batch_size] * left + ([rest] if rest else [])
    if sizes:
        first = groups * k
        batches = [take((first + j) * batch_size, size) for j, size in enumerate(sizes)]
        keys: list | None
        keys = [keys_of(jnp.int32(first + j)) for j in range(len(sizes))]
        if keys[0] is None:
            keys = None
        p, s, m, losses = tail(*carry, [b[0] for b in batches], [b[1] for b in batches], keys)
        carry = (p, s, m)
        parts.append(to_batches(losses))
    return carry, jnp.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
