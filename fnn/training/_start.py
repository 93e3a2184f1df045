"""The compiled loop's start: its first state, built in one dispatch, and the history layout."""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from fnn.diagnostics import layer_grad_norms
from fnn.training._early import init_early
from fnn.training._loop import LoopConfig, LoopState
from fnn.training._shapes import abstract

__all__ = ["history_shapes", "init_opt_state", "build_start", "with_arrays", "host_start"]

Params = Any


def history_shapes(cfg: LoopConfig, params: Params, has_eval: bool) -> dict[str, tuple]:
    """Per-epoch value shape of each history entry (one model's; members come first).

    ``params``: the run's params (stacked for ensembles), for the number of
    parameterised layers of ``grad_norms``.
    """
    shapes = {"train_loss": ()}
    if has_eval:
        shapes.update({"eval_loss": ()}, **{f"eval_{name}": () for name, _ in cfg.metrics})
    if cfg.grad_norms:
        template = abstract(params, 0 if cfg.members is None else 1)
        shapes["grad_norms"] = tuple(jax.eval_shape(layer_grad_norms, template).shape)
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
    """``start(params, opt_state|None, model_state, hyper, key, epoch, history, early=None)
    -> LoopState``, jitted (``early``: a saved early-stopping state to resume).

    One dispatch instead of dozens of eager ops. The caller's params and optimizer state
    are never copied for nothing: with ``donate`` they are handed over as they are;
    otherwise they are copied only when the runner will donate them (no ``nan_guard``),
    and else left out (``None``) for the driver to put in with :func:`with_arrays`.
    """
    members = () if cfg.members is None else (cfg.members,)
    copy = not donate and not cfg.nan_guard

    def start(params, opt_state, model_state, hyper, key, epoch, history, early=None):
        given = opt_state is not None
        if not given:
            opt_state = init_opt_state(cfg, params, hyper)
        if cfg.early_stopping is not None:
            early = init_early(cfg.early_stopping, members, params, opt_state, model_state, early)
        else:
            early = ()
        buffers = {}
        for name, shape in shapes:
            buffer = jnp.full(members + (epochs,) + shape, jnp.nan, jnp.float32)
            if name in history:
                done = jnp.asarray(history[name], jnp.float32)
                buffer = jax.lax.dynamic_update_slice_in_dim(buffer, done, 0, axis=len(members))
            buffers[name] = buffer
        if copy:
            params, opt_state, model_state, key = jax.tree.map(jnp.copy, (params, opt_state,
                                                                          model_state, key))
        elif not donate:
            # A jit output is a fresh buffer (a copy) unless donated: leave the caller's
            # arrays out; the non-donating runner reads them where they are.
            params, opt_state, model_state, key = None, (None if given else opt_state), None, None
        return LoopState(
            params=params, opt_state=opt_state, model_state=model_state, key=key,
            epoch=jnp.asarray(epoch, jnp.int32), history=buffers,
            alive=jnp.ones(members, bool), bad_epoch=jnp.full(members, -1, jnp.int32),
            bad_step=jnp.full(members, -1, jnp.int32), early=early)

    return jax.jit(start, donate_argnums=(0, 1, 2) if donate else ())


def with_arrays(state: LoopState, params: Params, opt_state: Any, model_state: Any,
                key: jax.Array) -> LoopState:
    """Put the caller's arrays into the fields that ``start`` left out (``None``)."""
    return state._replace(params=params if state.params is None else state.params,
                          opt_state=opt_state if state.opt_state is None else state.opt_state,
                          model_state=model_state if state.model_state is None else state.model_state,
                          key=key if state.key is None else state.key)


@functools.lru_cache(maxsize=64)
def _fresh(members: tuple, epochs: int, shapes: tuple, epoch: int) -> tuple:
    """The start's arrays that depend on static facts only: NaN history, all alive, no
    failure, ``epoch``. Built once; safe to share because the guarded runner never donates."""
    return ({name: jnp.full(members + (epochs,) + shape, jnp.nan, jnp.float32) for name, shape in shapes},
            jnp.ones(members, bool), jnp.full(members, -1, jnp.int32), jnp.asarray(epoch, jnp.int32))


def host_start(cfg: LoopConfig, epochs: int, shapes: tuple, params: Params, opt_state: Any,
               model_state: Any, key: jax.Array, epoch: int, history: dict) -> LoopState | None:
    """The first state without a dispatch, where nothing needs computing on the device:
    an optimizer state given, no early stopping, one device, and a runner that does not
    donate (``nan_guard``), so the caller's arrays and the cached constants can go in as
    they are. None otherwise (then :func:`build_start` runs). A resumed history is copied
    into its buffers on the host (float32, as the start program does)."""
    if opt_state is None or cfg.early_stopping is not None or not cfg.nan_guard or (
            cfg.batch_sharding is not None):
        return None
    members = () if cfg.members is None else (cfg.members,)
    buffers, alive, bad, epoch_value = _fresh(members, epochs, shapes, epoch)
    if history:
        buffers = dict(buffers)
        for name in history:
            if name in buffers:
                done = np.asarray(history[name], np.float32)
                buffer = np.full(buffers[name].shape, np.nan, np.float32)
                buffer[(slice(None),) * len(members) + (slice(0, done.shape[len(members)]),)] = done
                buffers[name] = buffer
    return LoopState(params=params, opt_state=opt_state, model_state=model_state, key=key,
                     epoch=epoch_value, history=buffers, alive=alive, bad_epoch=bad, bad_step=bad, early=())
