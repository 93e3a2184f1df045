"""The compiled training program shared by fit, ensembles, sweeps and data parallel.

One jitted function runs epochs ``[state.epoch, stop)`` with a ``lax.while_loop``;
``stop`` is a traced integer, so the driver can run the whole training in one call or
in chunks (to show progress) without recompiling. Each epoch draws a permutation from
``fold_in(key, epoch)`` on device, runs a ``lax.scan`` over the full batches and one
more step over the ragged remainder, evaluates, records history and applies the
non-finite guard. For ensembles the epoch is ``vmap``-ed over members (params, optimizer
state, hyperparameters) with the batch shared, so the first layer of every member runs
as one wide matmul.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnn.diagnostics import layer_grad_norms
from fnn.training._evaluate import score
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
    bad_leaves: Params        # bool per params leaf: finite at the failing epoch


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


def _where_tree(ok: jax.Array, new: Params, old: Params) -> Params:
    def pick(a, b):
        cond = ok.reshape(ok.shape + (1,) * (a.ndim - ok.ndim))
        return jnp.where(cond, a, b)
    return jax.tree.map(pick, new, old)


def _all_finite(tree: Params, member_axes: int) -> tuple[jax.Array, Params]:
    """(all leaves finite, per-leaf finite flags), reduced over all but member axes."""
    def leaf_ok(a):
        return jnp.all(jnp.isfinite(a), axis=tuple(range(member_axes, a.ndim)))
    flags = jax.tree.map(leaf_ok, tree)
    leaves = jax.tree.leaves(flags)
    return functools.reduce(jnp.logical_and, leaves, jnp.asarray(True)), flags


def _member_step(cfg: LoopConfig):
    def step(params, opt_state, hyper, xb, yb):
        optimizer = cfg.optimizer(hyper) if cfg.sweep else cfg.optimizer
        return train_step(params, opt_state, xb, yb, model=cfg.apply, optimizer=optimizer,
                          loss=cfg.loss)
    if cfg.members is None:
        return step
    return jax.vmap(step, in_axes=(0, 0, 0 if cfg.sweep else None, None, None))


def _epoch(cfg: LoopConfig, step, params, opt_state, hyper, x, y, perm):
    """One pass over the data in the order ``perm``; returns the mean example loss."""
    n = perm.shape[0]
    batch_size = min(cfg.batch_size, n)
    full, rest = divmod(n, batch_size)

    def take(idx):
        xb = x.at[idx].get(mode="promise_in_bounds")
        yb = y.at[idx].get(mode="promise_in_bounds")
        if cfg.batch_sharding is not None and idx.shape[0] % cfg.batch_sharding.mesh.size == 0:
            xb = jax.lax.with_sharding_constraint(xb, cfg.batch_sharding)
            yb = jax.lax.with_sharding_constraint(yb, cfg.batch_sharding)
        return xb, yb

    def body(carry, idx):
        p, s = carry
        p, s, loss = step(p, s, hyper, *take(idx))
        return (p, s), loss

    (params, opt_state), losses = jax.lax.scan(
        body, (params, opt_state), perm[: full * batch_size].reshape(full, batch_size))
    total = jnp.sum(losses, axis=0) * batch_size
    if rest:
        # The ragged last batch is a step of its own (smaller batch, its own mean), as
        # with drop_last=False in PyTorch; no example is dropped.
        params, opt_state, last = step(params, opt_state, hyper, *take(perm[full * batch_size:]))
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
    """``run(state, hyper, x, y, x_eval, y_eval, stop) -> state``, jitted, state donated."""
    step = _member_step(cfg)
    member_axes = 0 if cfg.members is None else 1
    evaluate = functools.partial(score, cfg.apply, cfg.loss, cfg.metrics)
    norms = functools.partial(_layer_grad_norms, cfg)
    if cfg.members is not None:
        evaluate = jax.vmap(evaluate, in_axes=(0, None, None))
        norms = jax.vmap(norms, in_axes=(0, None, None))

    def run(state: LoopState, hyper, x, y, x_eval, y_eval, stop):
        n = x.shape[0]

        def body(c: LoopState) -> LoopState:
            if cfg.shuffle:
                perm = jax.random.permutation(jax.random.fold_in(c.key, c.epoch), n)
            else:
                perm = jnp.arange(n)
            params, opt_state, train_loss, losses = _epoch(
                cfg, step, c.params, c.opt_state, hyper, x, y, perm)
            alive, bad_epoch, bad_step, bad_leaves = c.alive, c.bad_epoch, c.bad_step, c.bad_leaves
            if cfg.nan_guard:
                params_ok, leaf_flags = _all_finite(params, member_axes)
                finite = jnp.isfinite(train_loss) & params_ok
                newly_bad = c.alive & ~finite
                alive = c.alive & finite
                # Roll the failing epoch back: the last good params, not the NaNs. One
                # model: a cond that forwards buffers (no elementwise select per epoch).
                if cfg.members is None:
                    params, opt_state = jax.lax.cond(
                        alive, lambda: (params, opt_state), lambda: (c.params, c.opt_state))
                else:
                    params = _where_tree(alive, params, c.params)
                    opt_state = _where_tree(alive, opt_state, c.opt_state)
                bad_epoch = jnp.where(newly_bad, c.epoch, c.bad_epoch)
                bad_step = jnp.where(newly_bad, _first_nonfinite(losses), c.bad_step)
                bad_leaves = _where_tree(newly_bad, leaf_flags, c.bad_leaves)
            record = {"train_loss": train_loss}
            if cfg.grad_norms:
                first = perm[: min(cfg.batch_size, n)]
                record["grad_norms"] = norms(params, x[first], y[first])
            if x_eval is not None:
                record.update({f"eval_{k}": v for k, v in evaluate(params, x_eval, y_eval).items()})
            history = {k: _record(v, c.epoch, record[k], c.alive, member_axes)
                       for k, v in c.history.items()}
            return LoopState(params, opt_state, c.key, c.epoch + 1, history, alive,
                             bad_epoch, bad_step, bad_leaves)

        def cond(c: LoopState) -> jax.Array:
            return (c.epoch < stop) & jnp.any(c.alive)

        return jax.lax.while_loop(cond, body, state)

    return jax.jit(run, donate_argnums=(0,))


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

    One dispatch instead of dozens of eager ops. Its outputs are fresh buffers, so the
    loop (which donates its state) never consumes the caller's params unless ``donate``.
    """
    members = () if cfg.members is None else (cfg.members,)

    def start(params, opt_state, hyper, key, epoch, history):
        if opt_state is None:
            opt_state = init_opt_state(cfg, params, hyper)
        buffers = {}
        for name, shape in shapes:
            buffer = jnp.full(members + (epochs,) + shape, jnp.nan, jnp.float32)
            if name in history:
                done = jnp.asarray(history[name], jnp.float32)
                buffer = jax.lax.dynamic_update_slice_in_dim(buffer, done, 0, axis=len(members))
            buffers[name] = buffer
        # Without donation the loop (which donates its state) must get buffers of its own;
        # with it, the caller's buffers are handed over as they are (no copy).
        copy = (lambda tree: tree) if donate else (lambda tree: jax.tree.map(jnp.copy, tree))  # noqa: E731
        return LoopState(
            params=copy(params), opt_state=copy(opt_state), key=copy(key),
            epoch=jnp.asarray(epoch, jnp.int32), history=buffers,
            alive=jnp.ones(members, bool), bad_epoch=jnp.full(members, -1, jnp.int32),
            bad_step=jnp.full(members, -1, jnp.int32),
            bad_leaves=jax.tree.map(lambda a: jnp.ones(a.shape[: len(members)], bool), params))

    return jax.jit(start, donate_argnums=(0, 1) if donate else ())

