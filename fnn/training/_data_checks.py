"""Checks of the data, labels and metrics handed to training and evaluation."""

from __future__ import annotations

import weakref
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from fnn import _checks
from fnn.losses import binary_cross_entropy, softmax_cross_entropy
from fnn.metrics import accuracy

__all__ = ["check_data", "check_labels", "check_metrics", "default_metrics"]

CLASSIFICATION_LOSSES = (softmax_cross_entropy, binary_cross_entropy)


def default_metrics(loss: Callable) -> dict:
    """Accuracy for the classification losses, nothing otherwise."""
    return {"accuracy": accuracy} if loss in CLASSIFICATION_LOSSES else {}


def check_data(fn: str, x: Any, y: Any, prefix: str = "") -> tuple[jax.Array, jax.Array]:
    """``x`` ``(n, ...)`` and ``y`` ``(n, ...)`` with ``n >= 1``, as arrays (a jax array
    as it is: ``jnp.asarray`` of one costs tens of microseconds per call)."""
    if not isinstance(x, jax.Array):
        _checks.array_like(fn, prefix + "x", x)
        x = jnp.asarray(x)
    if not isinstance(y, jax.Array):
        _checks.array_like(fn, prefix + "y", y)
        y = jnp.asarray(y)
    _checks.ndim_at_least(fn, prefix + "x", x, 1)
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        _checks.fail(fn, prefix + "y", f"have one target per example ({x.shape[0]} for "
                     f"{prefix}x of shape {x.shape})", f"shape {y.shape}")
    if x.shape[0] == 0:
        _checks.fail(fn, prefix + "x", "hold at least one example", f"shape {x.shape}")
    return x, y


# Label arrays that passed check_labels, by id: {id(y): (weakref to y, {(loss, classes)})}.
# A jax array is immutable, so the same object passes again: a loop over fit with the
# same data reads the labels once. Entries of collected arrays are dropped with them.
_PASSED: dict[int, tuple[weakref.ref, set[tuple]]] = {}


def _passed(y: jax.Array, case: tuple) -> bool:
    entry = _PASSED.get(id(y))
    return entry is not None and entry[0]() is y and case in entry[1]


def _remember(y: jax.Array, case: tuple) -> None:
    entry = _PASSED.get(id(y))
    if entry is None or entry[0]() is not y:
        entry = _PASSED[id(y)] = (weakref.ref(y, _forget), set())
    entry[1].add(case)


def _forget(ref: weakref.ref) -> None:
    for key, entry in list(_PASSED.items()):
        if entry[0] is ref:
            del _PASSED[key]


def check_labels(fn: str, loss: Callable, predictions: jax.ShapeDtypeStruct, y: jax.Array,
                 arg: str) -> None:
    """Label mistakes caught on the host, once, before anything compiles: non-finite
    targets for any loss, and the class range for the classification losses. A jax
    array that passed for the same loss and number of classes is not read again."""
    k = predictions.shape[-1] if predictions.shape else 1
    case = (loss if loss in CLASSIFICATION_LOSSES else None, k if loss is softmax_cross_entropy else None)
    if isinstance(y, jax.Array) and _passed(y, case):
        return
    values = np.asarray(y)   # a view on CPU, no program to compile
    if np.issubdtype(values.dtype, np.inexact) and not np.all(np.isfinite(values)):
        _checks.fail(fn, arg, "hold finite values", f"{int(np.sum(~np.isfinite(values)))} NaN or inf "
                     "values")
    if loss is softmax_cross_entropy:
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi >= k:
            _checks.fail(fn, arg, f"be class indices in [0, {k}) for a model with {k} outputs",
                         f"values in [{lo}, {hi}]")
    elif loss is binary_cross_entropy:
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 1:
            _checks.fail(fn, arg, "be in {0, 1}", f"values in [{low}, {high}]")
    if isinstance(y, jax.Array):
        _remember(y, case)


def check_metrics(fn: str, metrics: Any, loss: Callable) -> dict:
    """``{name: fn(predictions, targets)}``; default accuracy for classification losses."""
    if metrics is None:
        return default_metrics(loss)
    if not isinstance(metrics, Mapping) or not all(
            isinstance(k, str) and callable(v) for k, v in metrics.items()):
        _checks.fail(fn, "metrics", "be a dict {name: fn(predictions, targets)}",
                     _checks.describe(metrics), TypeError)
    return dict(metrics)
