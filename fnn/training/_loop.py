"""The compiled training program shared by fit, ensembles, sweeps and data parallel.

One jitted function runs epochs ``[state.epoch, stop)`` with a ``lax.while_loop``;
``stop`` is a traced integer, so the driver can run the whole training in one call or
in chunks (to show progress) without recompiling. Each epoch draws its order
``epoch_order(key, epoch, n)`` on device, runs a ``lax.scan`` over the full batches and one
more step over the ragged remainder, evaluates, records history and applies the
non-finite guard. For ensembles the epoch is ``vmap``-ed over members (params, optimizer
state, model state, hyperparameters) with the batch shared, so the first layer of every
member runs as one wide matmul. A general model (:class:`fnn.layers.StatefulLayer`)
also carries its state, and draws with the key :func:`step_key` of the global step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnn import _checks
from fnn.diagnostics import layer_grad_norms
from fnn.training._accumulate import accumulated_epoch, group_step, tail_step
from fnn.training._early import update_early
from fnn.training._hooks import call_hook
from fnn.training._keys import model_keys
from fnn.training._order import epoch_order
from fnn.training._score import predict, score
from fnn.training._step import Model, step as model_step

Params = Any


class LoopState(NamedTuple):
    """Everything the compiled loop carries from one epoch to the next."""

    params: Params
    opt_state: Any
    model_state: Any          # a general model's state; () for a pure model
    key: jax.Array
    epoch: jax.Array          # int32 scalar: epochs completed
    history: dict             # name -> (epochs,) or (members, epochs)
    alive: jax.Array          # bool, () or (members,): still finite
    bad_epoch: jax.Array      # int32, -1 while finite
    bad_step: jax.Array       # int32, index of the first non-finite batch loss (-1: none)
    early: Any = ()           # an EarlyState when early stopping, else ()


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Static configuration; a new value means a new compiled program."""

    model: Model
    loss: Callable
    optimizer: Any                  # an optimizer, or make_optimizer(hyper) when sweep
    batch_size: int
    shuffle: bool
    metrics: tuple                  # ((name, fn(predictions, targets)), ...)
    nan_guard: bool
    members: int | None             # None: one model; K: stacked ensemble
    sweep: bool
    batch_sharding: Any = None      # NamedSharding of a batch, for data parallel
    grad_norms: bool = False        # record per-layer gradient norms every epoch
    early_stopping: Any = None      # an EarlyStopping rule, or None
    accumulation_steps: int = 1     # batches per optimizer update
    order: str = "sort"             # epoch_order's method when shuffle


# Leaves with at least this many values (per member) are reduced where they are;
# smaller ones are joined into one vector first.
OWN_REDUCTION_MIN_SIZE = 1 << 16


def all_finite(tree: Params, member_axes: int) -> jax.Array:
    """True where every value of every leaf is finite; per member when ``member_axes``.

    ``x * 0`` is 0 for finite ``x`` and NaN for inf/NaN, so the sum is NaN exactly when
    some value is not finite, and it cannot overflow. Small leaves are joined into one
    vector first: one reduction kernel to compile instead of one per leaf; a large leaf
    gets a reduction of its own, which reads it once instead of copying it into the
    joined vector and reading that (timings: benchmarks/README.md). Which leaf failed is
    worked out on the host, only after a failure (:mod:`._rollback`).
    """
    flat = [jnp.reshape(a, a.shape[:member_axes] + (-1,)) for a in jax.tree.leaves(tree)]
    large = [a for a in flat if a.shape[-1] >= OWN_REDUCTION_MIN_SIZE]
    small = [a for a in flat if a.shape[-1] < OWN_REDUCTION_MIN_SIZE]
    if small:
        large.append(jnp.concatenate(small, axis=member_axes))
    if not large:
        return jnp.asarray(True)
    return jnp.isfinite(sum(jnp.sum(a * 0, axis=member_axes) for a in large))


def _over_members(cfg: LoopConfig, fn: Callable, in_axes: tuple) -> Callable:
    """``jax.vmap(fn, in_axes)`` over the members; for one member, ``fn`` on member 0 with
    the axis put back: the same values, without the batch dimension of size 1 that vmap
    gives every matmul (which XLA's CPU backend runs slower than a plain one)."""
    if cfg.members != 1:
        return jax.vmap(fn, in_axes=in_axes)

    def one(*args):
        args = [a if axis is None else jax.tree.map(lambda v: v[0], a)
                for a, axis in zip(args, in_axes)]
        return jax.tree.map(lambda v: v[None], fn(*args))
    return one


def _member_step(cfg: LoopConfig, form: Callable = model_step):
    """``form`` (a step, or an accumulating step of :mod:`._accumulate`) for one model or
    mapped over the members."""
    def step(params, opt_state, model_state, hyper, xb, yb, key):
        optimizer = cfg.optimizer(hyper) if cfg.sweep else cfg.optimizer
        return form(cfg.model, optimizer, cfg.loss, params, opt_state, model_state, xb, yb, key)
    if cfg.members is None:
        return step
    return _over_members(cfg, step, (0, 0, 0, 0 if cfg.sweep else None, None, None,
                                     0 if cfg.model.general else None))


def _keys(cfg: LoopConfig, key: jax.Array, steps: jax.Array) -> jax.Array | None:
    return model_keys(cfg.model.general, cfg.members, key, steps)


# Small batches of data up to WHOLE_GATHER_MAX_BYTES are put in epoch order with one
# gather per epoch (one extra copy of the data on the device) and cut into contiguous
# batches; otherwise each batch is gathered on its own. XLA's CPU backend splits every
# gather across threads (its cost model counts the whole dataset as read), a fixed cost
# per gather that the one large gather avoids; but the large gather also writes and
# rereads the data, a cost per byte of a batch: small batches gain, large ones lose
# (the measured break-even is in benchmarks/README.md).
WHOLE_GATHER_MAX_BYTES = 1 << 28
WHOLE_GATHER_MAX_BATCH_BYTES = 32 * 1024


def _gathers_whole(x: jax.Array, y: jax.Array, batch_size: int) -> bool:
    example = (math.prod(x.shape[1:]) * jnp.dtype(x.dtype).itemsize
               + math.prod(y.shape[1:]) * jnp.dtype(y.dtype).itemsize)
    return (example * x.shape[0] <= WHOLE_GATHER_MAX_BYTES
            and example * batch_size <= WHOLE_GATHER_MAX_BATCH_BYTES)


def _epoch(cfg: LoopConfig, step, carry, hyper, x, y, perm, key, epoch):
    """One pass over the data in the order ``perm`` (``None``: as stored); returns the new
    ``(params, opt_state, model_state)``, the mean example loss and the per-batch losses."""
    n = x.shape[0]
    batch_size = min(cfg.batch_size, n)
    full, rest = divmod(n, batch_size)
    first_step = epoch * (full + (1 if rest else 0))
    whole = perm is None or _gathers_whole(x, y, batch_size)
    if perm is not None and whole:
        x, y = (a.at[perm].get(mode="promise_in_bounds") for a in (x, y))

    def take(start, size):
        if whole:
            xb, yb = (jax.lax.dynamic_slice_in_dim(a, start, size) for a in (x, y))
        else:
            idx = jax.lax.dynamic_slice_in_dim(perm, start, size)
            xb, yb = (a.at[idx].get(mode="promise_in_bounds") for a in (x, y))
        if cfg.batch_sharding is not None and size % cfg.batch_sharding.mesh.size == 0:
            xb = jax.lax.with_sharding_constraint(xb, cfg.batch_sharding)
            yb = jax.lax.with_sharding_constraint(yb, cfg.batch_sharding)
        return xb, yb

    if cfg.accumulation_steps > 1:
        group, tail = (_member_step(cfg, form) for form in (group_step, tail_step))
        carry, losses = accumulated_epoch(
            lambda p, s, m, *b: group(p, s, m, hyper, *b), lambda p, s, m, *b: tail(p, s, m, hyper, *b),
            carry, take, lambda i: _keys(cfg, key, first_step + i), full, rest, batch_size,
            cfg.accumulation_steps, cfg.members)
        sizes = jnp.asarray([batch_size] * full + ([rest] if rest else []), jnp.float32)
        sizes = sizes.reshape(sizes.shape + (1,) * (losses.ndim - 1))
        return carry, jnp.sum(losses * sizes, axis=0) / n, losses

    def run_step(c, start, size, index):
        p, s, m = c
        p, s, m, loss = step(p, s, m, hyper, *take(start, size), _keys(cfg, key, first_step + index))
        return (p, s, m), loss

    starts = jnp.arange(full, dtype=jnp.int32) * batch_size
    if cfg.model.general:     # the step index feeds the step's key
        carry, losses = jax.lax.scan(lambda c, si: run_step(c, si[0], batch_size, si[1]), carry,
                                     (starts, jnp.arange(full, dtype=jnp.int32)))
    else:
        carry, losses = jax.lax.scan(lambda c, start: run_step(c, start, batch_size, 0), carry, starts)
    total = jnp.sum(losses, axis=0) * batch_size
    if rest:
        # The ragged last batch is a step of its own (smaller batch, its own mean), as
        # with drop_last=False in PyTorch; no example is dropped.
        carry, last = run_step(carry, full * batch_size, rest, full)
        total = total + last * rest
        losses = jnp.concatenate([losses, last[None]], axis=0)
    return carry, total / n, losses


def _record(buffer: jax.Array, epoch: jax.Array, value: jax.Array, alive: jax.Array,
            member_axes: int) -> jax.Array:
    """Write one epoch's value (NaN for a frozen member) into ``(members?, epochs, ...)``."""
    alive = alive.reshape(alive.shape + (1,) * (jnp.ndim(value) - alive.ndim))
    value = jnp.where(alive, value, jnp.nan).astype(buffer.dtype)
    return buffer.at[(slice(None),) * member_axes + (epoch,)].set(value)


def _layer_grad_norms(cfg: LoopConfig, params: Params, model_state: Any, xb: jax.Array,
                      yb: jax.Array) -> jax.Array:
    """Gradient norms per layer; a general model's in inference mode (no dropout mask)."""
    grads = jax.grad(lambda p: cfg.loss(predict(cfg.model.apply, cfg.model.general, p, model_state, xb),
                                        yb))(params)
    return layer_grad_norms(grads)


def _first_nonfinite(losses: jax.Array) -> jax.Array:
    bad = ~jnp.isfinite(losses)
    return jnp.where(jnp.any(bad, axis=0), jnp.argmax(bad, axis=0), -1).astype(jnp.int32)


def _running(c: LoopState) -> jax.Array:
    """Models still training: finite and not stopped early."""
    if isinstance(c.early, tuple) and not c.early:
        return c.alive
    return c.alive & (c.early.stopped_epoch < 0)


def _freeze(running: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(running.reshape(running.shape + (1,) * (a.ndim - 1)), a, b),
                        new, old)


def summary(state: LoopState) -> jax.Array:
    """``[epoch, alive..., bad_epoch..., bad_step...]`` (int32, one entry per member each):
    what the driver reads after a call, in one transfer instead of four."""
    return jnp.concatenate([jnp.reshape(a, (-1,)).astype(jnp.int32)
                            for a in (state.epoch, state.alive, state.bad_epoch, state.bad_step)])


@functools.lru_cache(maxsize=64)
def build_runner(cfg: LoopConfig, hooked: bool = False) -> Callable:
    """``run(state, hyper, x, y, x_eval, y_eval, stop) -> (state, summary(state))``, jitted.

    The state is donated (updated in place) unless ``cfg.nan_guard``: then the caller
    keeps it, to rebuild the state from before a failing epoch by running again up to it.
    A single model stops at its first non-finite epoch; ensemble members that fail run on
    (their later values are discarded). ``hooked``: ``run(..., stop, token)`` calls the
    ``on_epoch`` hook of run ``token`` (:mod:`._hooks`) at the end of every epoch, and
    stops after an epoch where it answered True (or raised).
    """
    step = _member_step(cfg)
    rule = cfg.early_stopping
    member_axes = 0 if cfg.members is None else 1
    evaluate: Callable = functools.partial(score, cfg.model.apply, cfg.model.general, cfg.loss,
                                           cfg.metrics)
    norms: Callable = functools.partial(_layer_grad_norms, cfg)
    if cfg.members is not None:
        evaluate = _over_members(cfg, evaluate, (0, 0, None, None))
        norms = _over_members(cfg, norms, (0, 0, None, None))

    def run(state: LoopState, hyper, x, y, x_eval, y_eval, stop, token=None):
        n = x.shape[0]

        def body(c: LoopState) -> LoopState:
            perm = epoch_order(c.key, c.epoch, n, method=cfg.order) if cfg.shuffle else None
            (params, opt_state, model_state), train_loss, losses = _epoch(
                cfg, step, (c.params, c.opt_state, c.model_state), hyper, x, y, perm, c.key, c.epoch)
            running = _running(c)
            if rule is not None and cfg.members is not None:
                # A member that stopped early is frozen; the others train on.
                params, opt_state, model_state = _freeze(running, (params, opt_state, model_state),
                                                         (c.params, c.opt_state, c.model_state))
            alive, bad_epoch, bad_step = c.alive, c.bad_epoch, c.bad_step
            if cfg.nan_guard:
                finite = jnp.isfinite(train_loss) & all_finite((params, model_state), member_axes)
                newly_bad = c.alive & ~finite
                alive = c.alive & finite
                # No rollback in here: that would keep a snapshot of the whole state and
                # copy it every epoch. The runner does not donate its input when guarding,
                # so the driver still holds the state it started from and rebuilds the
                # last good one from it (fnn.training._rollback).
                bad_epoch = jnp.where(newly_bad, c.epoch, c.bad_epoch)
                bad_step = jnp.where(newly_bad, _first_nonfinite(losses), c.bad_step)
            record = {"train_loss": train_loss}
            if cfg.grad_norms:
                first = jnp.arange(min(cfg.batch_size, n)) if perm is None else perm[:cfg.batch_size]
                record["grad_norms"] = norms(params, model_state, x[first], y[first])
            if x_eval is not None:
                record.update({f"eval_{k}": v for k, v in
                               evaluate(params, model_state, x_eval, y_eval).items()})
            history = {k: _record(v, c.epoch, record[k], running, member_axes)
                       for k, v in c.history.items()}
            early = c.early
            if rule is not None:
                early = update_early(rule, early, c.epoch, record[rule.monitor], running & alive,
                                     params, opt_state, model_state)
            return LoopState(params, opt_state, model_state, c.key, c.epoch + 1, history, alive,
                             bad_epoch, bad_step, early)

        def cond(c: LoopState) -> jax.Array:
            return (c.epoch < stop) & jnp.any(_running(c))

        if not hooked:
            state = jax.lax.while_loop(cond, body, state)
            return state, summary(state)

        def hooked_body(carry: tuple) -> tuple:
            c = body(carry[0])
            at = (slice(None),) * member_axes + (c.epoch - 1,)
            return c, call_hook(token, c.epoch - 1, {k: v[at] for k, v in c.history.items()})

        state, _ = jax.lax.while_loop(lambda carry: cond(carry[0]) & ~carry[1], hooked_body,
                                      (state, jnp.asarray(False)))
        return state, summary(state)

    return jax.jit(run, donate_argnums=() if cfg.nan_guard else (0,))
