"""What a training run returns: :class:`FitResult` and :class:`NonFiniteReport`."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

__all__ = ["FitResult", "NonFiniteReport"]


class NonFiniteReport(NamedTuple):
    """Where training first produced a NaN/inf.

    Attributes:
      epoch: the failing epoch (0-based); params were rolled back to its start.
      step: index within that epoch of the first batch whose loss was non-finite, or -1
        if every loss was finite and a parameter became non-finite in an update.
      leaf: pytree path of the first non-finite params leaf after that epoch, if any.
      member: the ensemble member, or None for a single model.
    """

    epoch: int
    step: int
    leaf: str | None
    member: int | None = None

    def __str__(self) -> str:
        who = "" if self.member is None else f"member {self.member}: "
        where = f"step {self.step} of epoch {self.epoch}" if self.step >= 0 else f"epoch {self.epoch}"
        leaf = f"; first non-finite parameter {self.leaf}" if self.leaf else ""
        return f"{who}non-finite loss or parameter at {where}{leaf}; kept the params from before that epoch"


class FitResult(NamedTuple):
    """What :func:`fnn.fit` returns; also the state to resume from (``fit(..., initial=r)``).

    Attributes:
      params: trained params (stacked on axis 0 for ensembles and sweeps).
      opt_state: the optimizer state after the last step.
      history: ``{"train_loss": (epochs,), "eval_loss": ..., "eval_<metric>": ...}``
        as arrays, one value per epoch run; ``(members, epochs)`` for ensembles.
      key: the run's key; epoch ``e`` visits the examples in the order
        :func:`fnn.training.epoch_order` ``(key, e, n)``, and a general model's step
        ``t`` draws with :func:`fnn.training.step_key` ``(key, t)``.
      epoch: number of epochs run so far.
      nonfinite: a :class:`NonFiniteReport` per model that hit a NaN/inf (empty if none).
      state: the model state after the last step (a :class:`fnn.layers.StatefulLayer`'s
        running averages; ``()`` for a pure model).
      stopped_epoch: with ``early_stopping``: the epoch after which it stopped (0-based;
        ``epoch == stopped_epoch + 1``), None if it ran to the end; for ensembles and
        sweeps an int array ``(members,)``, -1 for members that ran to the end.
      best_epoch: with ``early_stopping``: the epoch of the best monitored value (the
        params returned when ``restore_best``); an int array ``(members,)`` for
        ensembles; None without early stopping.
      early_stopping: the early-stopping state to resume from (best value, patience
        counter, best epoch and, when ``restore_best``, the best params); None without.
    """

    params: Any
    opt_state: Any
    history: dict
    key: jax.Array
    epoch: int
    nonfinite: tuple = ()
    state: Any = ()
    stopped_epoch: Any = None
    best_epoch: Any = None
    early_stopping: Any = None
