r"""Early stopping, decided inside the compiled loop: the rule and the state it carries.

Keras' rule: after each epoch :math:`e` with monitored value :math:`v_e`,

.. math:: \text{improved} = \begin{cases} v_e < b - \delta & \text{mode "min"} \\
          v_e > b + \delta & \text{mode "max"} \end{cases}, \qquad
          w \leftarrow 0 \text{ if improved else } w + 1

with the best value :math:`b` (:math:`\pm\infty` at the start) replaced by :math:`v_e`
on improvement; training stops after epoch :math:`e > 0` once :math:`w \ge` patience.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn import _checks

__all__ = ["EarlyStopping", "EarlyState", "GROWING", "init_early", "update_early"]

# Monitored names containing one of these grow when the model gets better.
GROWING = ("accuracy", "f1", "precision", "recall", "auc")


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    r"""Stop :func:`fnn.fit` when a monitored history value stops improving.

    Keras' rule, decided in the compiled loop's condition (no host round trip): training
    stops after ``patience`` consecutive epochs in which ``monitor`` did not improve on
    the best value so far by more than ``min_delta`` (never after the first epoch).

    .. math:: \text{improved}_e = v_e < b - \delta \;(\text{"min"}), \qquad
              v_e > b + \delta \;(\text{"max"})

    Args:
      monitor: a history name: ``"train_loss"`` (works without ``eval_data``),
        ``"eval_loss"`` or ``"eval_<metric>"`` (need ``eval_data``).
      patience: epochs without improvement before stopping (0: stop at the first).
      min_delta: the least change that counts as an improvement (``>= 0``).
      restore_best: return the params, optimizer state and model state of the best
        epoch (kept on the device: one more copy of them, and one select over them per
        epoch); False returns those of the last epoch run.
      mode: ``"min"`` or ``"max"``; default ``"max"`` for names containing accuracy,
        f1, precision, recall or auc, else ``"min"``.

    Example:
      >>> import fnn
      >>> fnn.training.EarlyStopping("eval_accuracy", patience=3).mode
      'max'
    """

    monitor: str = "eval_loss"
    patience: int = 5
    min_delta: float = 0.0
    restore_best: bool = True
    mode: str | None = None

    def __post_init__(self):
        fn = "EarlyStopping"
        if not isinstance(self.monitor, str):
            _checks.fail(fn, "monitor", "be a history name such as 'eval_loss'",
                         _checks.describe(self.monitor), TypeError)
        object.__setattr__(self, "patience", _checks.nonneg_int(fn, "patience", self.patience))
        _checks.number(fn, "min_delta", self.min_delta, low=0.0)
        _checks.boolean(fn, "restore_best", self.restore_best)
        mode = self.mode
        if mode is None:
            mode = "max" if any(word in self.monitor for word in GROWING) else "min"
        if mode not in ("min", "max"):
            _checks.fail(fn, "mode", "be 'min', 'max' or None", _checks.describe(mode))
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "min_delta", float(self.min_delta))


class EarlyState(NamedTuple):
    """What early stopping carries between epochs (per member: arrays ``(members,)``)."""

    best: jax.Array           # float32: best monitored value so far
    wait: jax.Array           # int32: epochs since the last improvement
    best_epoch: jax.Array     # int32: epoch of the best value (-1: none yet)
    stopped_epoch: jax.Array  # int32: epoch after which it stopped (-1: running)
    params: Any               # the best epoch's params, opt state, model state (() unless
    opt_state: Any            # restore_best)
    model_state: Any


def init_early(rule: EarlyStopping, members: tuple, params: Any, opt_state: Any,
               model_state: Any, saved: Any = None) -> EarlyState:
    """The state at the start of a run, or the one ``saved`` by a checkpoint/result (traceable)."""
    if saved is not None and rule.restore_best and not jax.tree.leaves(saved["params"]):
        # Saved without restore_best: the best values so far are not known; the start's
        # stand in for them.
        saved = dict(saved, params=params, opt_state=opt_state, model_state=model_state)
    if saved is not None:
        keep = rule.restore_best
        return EarlyState(jnp.asarray(saved["best"], jnp.float32), jnp.asarray(saved["wait"], jnp.int32),
                          jnp.asarray(saved["best_epoch"], jnp.int32),
                          jnp.asarray(saved["stopped_epoch"], jnp.int32),
                          saved["params"] if keep else (), saved["opt_state"] if keep else (),
                          saved["model_state"] if keep else ())
    worst = jnp.inf if rule.mode == "min" else -jnp.inf
    copy = (lambda t: jax.tree.map(jnp.copy, t)) if rule.restore_best else (lambda t: ())
    return EarlyState(jnp.full(members, worst, jnp.float32), jnp.zeros(members, jnp.int32),
                      jnp.full(members, -1, jnp.int32), jnp.full(members, -1, jnp.int32),
                      copy(params), copy(opt_state), copy(model_state))


def _select(mask: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - mask.ndim)), a, b),
                        new, old)


def update_early(rule: EarlyStopping, s: EarlyState, epoch: jax.Array, value: jax.Array,
                 running: jax.Array, params: Any, opt_state: Any, model_state: Any) -> EarlyState:
    """Keras' rule after ``epoch`` with monitored ``value``; members not ``running`` keep their state."""
    value = value.astype(jnp.float32)
    improved = (value < s.best - rule.min_delta) if rule.mode == "min" else (value > s.best + rule.min_delta)
    improved = improved & running
    wait = jnp.where(improved, 0, s.wait + 1)
    stops = running & ~improved & (wait >= rule.patience) & (epoch > 0)
    new = EarlyState(jnp.where(improved, value, s.best), jnp.where(running, wait, s.wait),
                     jnp.where(improved, epoch, s.best_epoch), jnp.where(stops, epoch, s.stopped_epoch),
                     s.params, s.opt_state, s.model_state)
    if rule.restore_best:
        new = new._replace(params=_select(improved, params, s.params),
                           opt_state=_select(improved, opt_state, s.opt_state),
                           model_state=_select(improved, model_state, s.model_state))
    return new
