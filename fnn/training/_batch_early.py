r"""Early stopping for :func:`fnn.training.fit_batches`: ``fit``'s rule, decided per epoch on the host.

``fit_batches`` ends every epoch on the host anyway (its chunks come from there), so the
rule of :mod:`fnn.training._early` (Keras': stop after ``patience`` epochs without an
improvement of more than ``min_delta``) runs there as one small compiled update per
epoch, on the same :class:`EarlyState` as ``fit``: the result, its ``best_epoch``,
``stopped_epoch`` and ``early_stopping`` fields, checkpoints and ``initial=`` resume are
those of ``fit``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnn.training._early import EarlyState, EarlyStopping, init_early, update_early

__all__ = ["BatchEarly"]


@functools.partial(jax.jit, static_argnums=0)
def _start(rule: EarlyStopping, carry: tuple, saved: Any) -> EarlyState:
    params, opt_state, model_state = carry
    return init_early(rule, (), params, opt_state, model_state, saved)


@functools.partial(jax.jit, static_argnums=0)
def _update(rule: EarlyStopping, state: EarlyState, epoch: jax.Array, value: jax.Array,
            carry: tuple) -> EarlyState:
    return update_early(rule, state, epoch, value, jnp.bool_(True), *carry)


class BatchEarly:
    """The early-stopping state of one ``fit_batches`` run (``rule`` None: no early stopping)."""

    def __init__(self, rule: EarlyStopping | None, carry: tuple, saved: Any):
        self.rule = rule
        self.state: Any = None if rule is None else _start(rule, carry, saved)

    def stops(self, epoch: int, logs: dict, carry: tuple, local: Any) -> bool:
        """Update with epoch ``epoch``'s ``logs``; True when training stops after it."""
        if self.rule is None:
            return False
        self.state = _update(self.rule, self.state, np.int32(epoch), np.float32(logs[self.rule.monitor]), carry)
        return int(np.asarray(local(self.state.stopped_epoch))) >= 0

    def fields(self, carry: tuple, local: Any, final: bool) -> tuple[tuple, dict]:
        """``(carry, FitResult fields)``: with ``final`` and ``restore_best``, the best
        epoch's carry (the last one kept in the saved state, as ``fit`` keeps it)."""
        if self.rule is None:
            return carry, {}
        e = self.state
        saved: dict = e._asdict()   # as fit's driver keeps it
        stopped, best = (int(np.asarray(local(a))) for a in (e.stopped_epoch, e.best_epoch))
        if final and self.rule.restore_best and best >= 0:
            saved["last"] = {"params": carry[0], "opt_state": carry[1], "state": carry[2]}
            carry = (e.params, e.opt_state, e.model_state)
        return carry, {"stopped_epoch": None if stopped < 0 else stopped, "best_epoch": None if best < 0 else best,
                       "early_stopping": saved}
