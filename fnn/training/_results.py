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
    """

    params: Any
    opt_state: Any
    history: dict
    key: jax.Array
    epoch: int
    nonfinite: tuple = ()
    state: Any = ()
