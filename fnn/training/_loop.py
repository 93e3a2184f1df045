"""The compiled training program shared by fit, ensembles, sweeps and data parallel.

One jitted function runs epochs ``[state.epoch, stop)`` with a ``lax.while_loop``;
``stop`` is a traced integer, so the driver can run the whole training in one call or
in chunks (to show progress) without recompiling. Each epoch draws its order
``epoch_order(key, epoch, n)`` on device, runs a ``lax.scan`` over the full batches and one
more step over the ragged remainder, evaluates, records history and applies the
non-finite guard. For ensembles the epoch is ``vmap``-ed over members (params, optimizer
state, hyperparameters) with the batch shared, so the first layer of every member runs
as one wide matmul.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnn.diagnostics import layer_grad_norms
from fnn.training._evaluate import score
from fnn.training._order import epoch_order
from fnn.training._step import train_step

Params = Any


class LoopState(NamedTuple):
    """Everything the compiled loop carries from one epoch to the next."""

    params: Params
    opt_state: Any
    key: jax.Array
    epoch: jax.Array          # int32 scalar: epochs completed
    history: dict             # name -> (epochs,) or (members, epochs)
    alive: jax.Array          # bool, () or (members,): still finite
    bad_epoch: jax.Array      # int32, -1 while finite
    bad_step: jax.Array       # int32, index of the first non-finite batch loss (-1: none)


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Static configuration; a new value means a new compiled program."""

    apply: Callable
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


# Leaves with at least this many values (per member) are reduced where they are;
# smaller ones are joined into one vector first.
OWN_REDUCTION_MIN_SIZE = 1 << 16


def _all_finite(tree: Params, member_axes: int) -> jax.Array:
    """True where every value of every leaf is finite; per member when ``member_axes``.

    ``x * 0`` is 0 for finite ``x`` and NaN for inf/NaN, so the sum is NaN exactly when
    some value is not finite, and it cannot overflow. Small leaves are joined into one
    vector first: one reduction kernel to compile instead of one per leaf (~15 ms of XLA
    compile each on CPU); a large leaf gets a reduction of its own, which reads it once
    instead of copying it into the joined vector and reading that (at 784-2048-2048-10
    the joined vector took 4.5-6 ms an epoch). Which leaf failed is worked out on the
    host, only after a failure (:mod:`._rollback`).
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
    gives every matmul (which XLA's CPU backend runs ~10% slower than a plain one)."""
    if cfg.members != 1:
        return jax.vmap(fn, in_axes=in_axes)

    def one(*args):
        args = [a if axis is None else jax.tree.map(lambda v: v[0], a)
                for a, axis in zip(args, in_axes)]
        return jax.tree.map(lambda v: v[None], fn(*args))
    return one


def _member_step(cfg: LoopConfig):
    def step(params, opt_state, hyper, xb, yb):
        optimizer = cfg.optimizer(hyper) if cfg.sweep else cfg.optimizer
        return train_step(params, opt_state, xb, yb, model=cfg.apply, optimizer=optimizer,
                          loss=cfg.loss)
    if cfg.members is None:
        return step
    return _over_members(cfg, step, (0, 0, 0 if cfg.sweep else None, None, None))


# Small batches of data up to WHOLE_GATHER_MAX_BYTES are put in epoch order with one
# gather per epoch (one extra copy of the data on the device) and cut into contiguous
# batches; otherwise each batch is gathered on its own. XLA's CPU backend splits every
# gather across threads (its cost model counts the whole dataset as read), a fixed cost
# of ~9 us per gather that the one large gather avoids; but the large gather also
# writes and rereads the data (~0.23 us per KB of a batch, measured on 2 CPU cores).
# At 64-128-10, batch 64 (16 KB), the one gather saves 12% of the step; at 256-256-10,
# batch 128 (128 KB), it costs 6%; the break-even is near 40 KB.
WHOLE_GATHER_MAX_BYTES = 1 << 28
WHOLE_GATHER_MAX_BATCH_BYTES = 32 * 1024


def _gathers_whole(x: jax.Array, y: jax.Array, batch_size: int) -> bool:
    example = (math.prod(x.shape[1:]) * jnp.dtype(x.dtype).itemsize
               + math.prod(y.shape[1:]) * jnp.dtype(y.dtype).itemsize)
    return (example * x.shape[0] <= WHOLE_GATHER_MAX_BYTES
            and example * batch_size <= WHOLE_GATHER_MAX_BATCH_BYTES)


def _epoch(cfg: LoopConfig, step, params, opt_state, hyper, x, y, perm):
    """One pass over the data in the order ``perm`` (``None``: as stored); returns the mean
    example loss and the per-batch losses."""
    n = x.shape[0]
    batch_size = min(cfg.batch_size, n)
    full, rest = divmod(n, batch_size)
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

    def body(carry, start):
        p, s = carry
        p, s, loss = step(p, s, hyper, *take(start, batch_size))
        return (p, s), loss

    (params, opt_state), losses = jax.lax.scan(
        body, (params, opt_state), jnp.arange(full, dtype=jnp.int32) * batch_size)
    total = jnp.sum(losses, axis=0) * batch_size
    if rest:
        # The ragged last batch is a step of its own (smaller batch, its own mean), as
        # with drop_last=False in PyTorch; no example is dropped.
        params, opt_state, last = step(params, opt_state, hyper, *take(full * batch_size, rest))
        total = total + last * rest
        losses = jnp.concatenate([losses, last[None]], axis=0)
    return params, opt_state, total / n, losses


def _record(buffer: jax.Array, epoch: jax.Array, value: jax.Array, alive: jax.Array,
            member_axes: int) -> jax.Array:
    """Write one epoch's value (NaN for a frozen member) into ``(members?, epochs, ...)``."""
    alive = alive.reshape(alive.shape + (1,) * (jnp.ndim(value) - alive.ndim))
    value = jnp.where(alive, value, jnp.nan).astype(buffer.dtype)
    return buffer.at[(slice(None),) * member_axes + (epoch,)].set(value)


def _layer_grad_norms(cfg: LoopConfig, params: Params, xb: jax.Array, yb: jax.Array) -> jax.Array:
    grads = jax.grad(lambda p: cfg.loss(cfg.apply(p, xb), yb))(params)
    return layer_grad_norms(grads)


def _first_nonfinite(losses: jax.Array) -> jax.Array:
    bad = ~jnp.isfinite(losses)
    return jnp.where(jnp.any(bad, axis=0), jnp.argmax(bad, axis=0), -1).astype(jnp.int32)


@functools.lru_cache(maxsize=64)
def build_runner(cfg: LoopConfig) -> Callable:
    """``run(state, hyper, x, y, x_eval, y_eval, stop) -> state``, jitted.

    The state is donated (updated in place) unless ``cfg.nan_guard``: then the caller
    keeps it, to rebuild the state from before a failing epoch by running again up to it.
    A single model stops at its first non-finite epoch; ensemble members that fail run on
    (their later values are discarded).
    """
    step = _member_step(cfg)
    member_axes = 0 if cfg.members is None else 1
    evaluate = functools.partial(score, cfg.apply, cfg.loss, cfg.metrics)
    norms = functools.partial(_layer_grad_norms, cfg)
    if cfg.members is not None:
        evaluate = _over_members(cfg, evaluate, (0, None, None))
        norms = _over_members(cfg, norms, (0, None, None))

    def run(state: LoopState, hyper, x, y, x_eval, y_eval, stop):
        n = x.shape[0]

        def body(c: LoopState) -> LoopState:
            perm = epoch_order(c.key, c.epoch, n) if cfg.shuffle else None
            params, opt_state, train_loss, losses = _epoch(
                cfg, step, c.params, c.opt_state, hyper, x, y, perm)
            alive, bad_epoch, bad_step = c.alive, c.bad_epoch, c.bad_step
            if cfg.nan_guard:
                finite = jnp.isfinite(train_loss) & _all_finite(params, member_axes)
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
                record["grad_norms"] = norms(params, x[first], y[first])
            if x_eval is not None:
                record.update({f"eval_{k}": v for k, v in evaluate(params, x_eval, y_eval).items()})
            history = {k: _record(v, c.epoch, record[k], c.alive, member_axes)
                       for k, v in c.history.items()}
            return LoopState(params, opt_state, c.key, c.epoch + 1, history, alive,
                             bad_epoch, bad_step)

        def cond(c: LoopState) -> jax.Array:
            return (c.epoch < stop) & jnp.any(c.alive)

        return jax.lax.while_loop(cond, body, state)

    return jax.jit(run, donate_argnums=() if cfg.nan_guard else (0,))


def history_shapes(cfg: LoopConfig, params: Params, has_eval: bool) -> dict[str, tuple]:
    """Per-epoch value shape of each history entry (one model's; members come first)."""
    shapes = {"train_loss": ()}
    if has_eval:
        shapes.update({"eval_loss": ()}, **{f"eval_{name}": () for name, _ in cfg.metrics})
    if cfg.grad_norms:
        shapes["grad_norms"] = (len(params),)
    return shapes


def init_opt_state(cfg: LoopConfig, params: Params, hyper: Any) -> Any:
    """``optimizer.init(params)``, per member for ensembles and sweeps (traceable)."""
    if cfg.sweep:
        return jax.vmap(lambda p, h: cfg.optimizer(h).init(p))(params, hyper)
    if cfg.members is not None:
        return jax.vmap(cfg.optimizer.init)(params)
    return cfg.optimizer.init(params)


@functools.lru_cache(maxsize=64)
def build_start(cfg: LoopConfig, epochs: int, shapes: tuple, donate: bool) -> Callable:
    """``start(params, opt_state|None, hyper, key, epoch, history) -> LoopState``, jitted.

    One dispatch instead of dozens of eager ops. The caller's params and optimizer state
    are never copied for nothing: with ``donate`` they are handed over as they are;
    otherwise they are copied only when the runner will donate them (no ``nan_guard``),
    and else left out (``None``) for the driver to put in with :func:`with_arrays`.
    """
    members = () if cfg.members is None else (cfg.members,)
    copy = not donate and not cfg.nan_guard

    def start(params, opt_state, hyper, key, epoch, history):
        given = opt_state is not None
        if not given:
            opt_state = init_opt_state(cfg, params, hyper)
        buffers = {}
        for name, shape in shapes:
            buffer = jnp.full(members + (epochs,) + shape, jnp.nan, jnp.float32)
            if name in history:
                done = jnp.asarray(history[name], jnp.float32)
                buffer = jax.lax.dynamic_update_slice_in_dim(buffer, done, 0, axis=len(members))
            buffers[name] = buffer
        if copy:
            params, opt_state, key = jax.tree.map(jnp.copy, (params, opt_state, key))
        elif not donate:
            # A jit output is a fresh buffer (a copy) unless donated: leave the caller's
            # arrays out; the non-donating runner reads them where they are.
            params, opt_state, key = None, (None if given else opt_state), None
        return LoopState(
            params=params, opt_state=opt_state, key=key,
            epoch=jnp.asarray(epoch, jnp.int32), history=buffers,
            alive=jnp.ones(members, bool), bad_epoch=jnp.full(members, -1, jnp.int32),
            bad_step=jnp.full(members, -1, jnp.int32))

    return jax.jit(start, donate_argnums=(0, 1) if donate else ())


def with_arrays(state: LoopState, params: Params, opt_state: Any, key: jax.Array) -> LoopState:
    """Put the caller's arrays into the fields that ``start`` left out (``None``)."""
    return state._replace(params=params if state.params is None else state.params,
                          opt_state=opt_state if state.opt_state is None else state.opt_state,
                          key=key if state.key is None else state.key)
