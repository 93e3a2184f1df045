"""Loss and metrics of one full batch, for evaluation inside and outside the loop."""

from __future__ import annotations

from typing import Any, Callable

import jax

__all__ = ["predict", "score"]


def predict(apply: Callable, general: bool, params: Any, state: Any, x: jax.Array) -> jax.Array:
    """The model's predictions in inference mode (``train=False``; state unchanged)."""
    if general:
        return apply(params, state, x, train=False)[0]
    return apply(params, x)


def score(apply: Callable, general: bool, loss: Callable, metrics: tuple, params: Any, state: Any,
          x: jax.Array, y: jax.Array) -> dict:
    """``{"loss": ..., name: metric, ...}`` of one full batch (traceable)."""
    predictions = predict(apply, general, params, state, x)
    out = {"loss": loss(predictions, y)}
    for name, fn in metrics:
        out[name] = fn(predictions, y)
    return out
