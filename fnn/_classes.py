r"""Predicted and true classes from ``(logits, labels)`` (private), shared by the metrics.

One reading of the two conventions of :func:`fnn.metrics.accuracy`, checked once:
multi-class logits ``(..., K)`` with integer labels ``(...,)`` (prediction
:math:`\arg\max_k z_k`), or one binary output ``(...,)``/``(..., 1)`` with 0/1 labels of
the same shape (prediction :math:`[z \ge 0]`). Concrete labels are range-checked; under
``jit`` they cannot be, and an out-of-range label becomes class ``-1``, which matches no
prediction and no row of a confusion matrix.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import _checks

__all__ = ["Classes", "classes"]


class Classes(NamedTuple):
    """``predicted`` and ``labels`` as int32 class indices (``-1``: invalid label)."""
    predicted: jax.Array
    labels: jax.Array
    num_classes: int
    binary: bool


def classes(fn: str, logits: Any, labels: Any) -> Classes:
    """Validate ``(logits, labels)`` for ``fn`` and return both as class indices."""
    _checks.array_like(fn, "logits", logits)
    _checks.array_like(fn, "labels", labels)
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    concrete = _checks.concrete(labels)
    if logits.shape == labels.shape or (logits.ndim >= 1 and logits.shape[-1] == 1
                                        and logits.shape[:-1] == labels.shape):
        predicted = (logits if logits.shape == labels.shape else logits[..., 0]) >= 0
        num_classes, binary, expectation = 2, True, "be 0 or 1 (binary labels)"
        valid = (labels == 0) | (labels == 1)
    elif logits.ndim >= 1 and logits.shape[:-1] == labels.shape:
        _checks.integer(fn, "labels", labels)
        predicted = jnp.argmax(logits, axis=-1)
        num_classes, binary = logits.shape[-1], False
        expectation = f"be class indices in [0, {num_classes})"
        # Compare in the labels' own dtype widened: uint8 label 255 must not wrap in int32.
        valid = (labels >= 0) & (labels.astype(jnp.promote_types(labels.dtype, jnp.int32)) < num_classes)
    else:
        _checks.fail(fn, "labels", f"have shape {logits.shape[:-1]} (class indices) or "
                     f"{logits.shape} (binary)", f"shape {labels.shape} for logits {logits.shape}")
    if concrete is not None and concrete.size and not np.all((concrete >= 0) & (concrete <= num_classes - 1)):
        _checks.fail(fn, "labels", expectation, f"values in [{concrete.min()}, {concrete.max()}]")
    index = jnp.where(valid, labels.astype(jnp.int32), -1)
    return Classes(predicted.astype(jnp.int32), index, num_classes, binary)
