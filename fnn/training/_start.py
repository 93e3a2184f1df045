"""The compiled loop's start: its first state, built in one dispatch, and the history layout."""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from fnn.diagnostics import layer_grad_norms
from fnn.training._early import init_early
from fnn.training._loop import LoopConfig, LoopState

__all__ = ["history_shapes", "init_opt_state", "build_start", "with_arrays"]

Params = Any


def history_shapes(cfg: LoopConfig, grads_template: Params, has_eval: bool) -> dict[str, tuple]:
    """Per-epoch value shape of each history entry (one model's; members come first).

    ``grads_template``: one model's params (abstract values do), for the number of
    parameterised layers of ``grad_norms``.
    """
    shapes = {"train_loss": ()}
    if has_eval:
        shapes.update({"eval_loss": ()}, **{f"eval_{name}": () for name, _ in cfg.metrics})
    if cfg.grad_norms:
        shapes["grad_norms"] = tuple(jax.eval_shape(layer_grad_norms, grads_template).shape)
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
