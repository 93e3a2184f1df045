r"""Metrics: numbers to read, not to differentiate."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from fnn import _checks
from fnn.losses import _concrete

__all__ = ["accuracy"]


def accuracy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    r"""Fraction of correct predictions.

    Multi-class (``logits`` of shape ``(..., K)`` with ``K > 1``, integer ``labels`` of
    shape ``(...,)``): the prediction is :math:`\arg\max_k z_k`. Binary (one output:
    ``logits`` of shape ``(...,)`` or ``(..., 1)``): the prediction is
    :math:`[z \ge 0]`, i.e. :math:`\sigma(z) \ge 0.5` — the sigmoid rule of the notes.

    .. math:: \text{accuracy} = \frac1n \sum_i [\hat y_i = y_i]

    Args:
      logits: scores, shape ``(..., K)`` or, binary, ``(...,)`` / ``(..., 1)``.
      labels: class indices, not one-hot vectors (for one-hot labels pass
        ``jnp.argmax(one_hot, axis=-1)``): integers in ``[0, K)`` of shape ``(...,)``
        for multi-class; 0/1 of ``logits``' shape (or without its trailing 1) for binary.

    Returns:
      float32 scalar in [0, 1] (float32 even for bfloat16 logits, so the count is exact).

    Raises:
      ValueError: if the shapes do not fit either case, or concrete labels lie outside
        ``[0, K)`` (multi-class) or [0, 1] (binary). Under ``jit`` labels cannot be
        checked; an out-of-range one counts as wrong.
      TypeError: for non-integer multi-class labels.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.metrics.accuracy(jnp.array([[2.0, 1.0], [0.0, 3.0]]), jnp.array([0, 0]))
      Array(0.5, dtype=float32)
      >>> fnn.metrics.accuracy(jnp.array([1.5, -0.5, 0.0]), jnp.array([1, 0, 0]))
      Array(0.6666667, dtype=float32)
    """
    _checks.array_like("accuracy", "logits", logits)
    _checks.array_like("accuracy", "labels", labels)
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    concrete = _concrete(labels)
    if logits.shape == labels.shape or (logits.ndim >= 1 and logits.shape[-1] == 1
                                        and logits.shape[:-1] == labels.shape):
        predicted = (logits if logits.shape == labels.shape else logits[..., 0]) >= 0
        high, expectation = 1, "be 0 or 1 (binary labels)"
    elif logits.ndim >= 1 and logits.shape[:-1] == labels.shape:
        _checks.integer("accuracy", "labels", labels)
        predicted = jnp.argmax(logits, axis=-1)
        high, expectation = logits.shape[-1] - 1, f"be class indices in [0, {logits.shape[-1]})"
    else:
        _checks.fail("accuracy", "labels", f"have shape {logits.shape[:-1]} (class indices) or "
                     f"{logits.shape} (binary)", f"shape {labels.shape} for logits {logits.shape}")
    if concrete is not None and concrete.size and not np.all((concrete >= 0) & (concrete <= high)):
        _checks.fail("accuracy", "labels", expectation, f"values in [{concrete.min()}, {concrete.max()}]")
    # Compare in the promoted dtype: casting argmax to uint8 labels would wrap class 256 to 0.
    return jnp.mean(predicted == labels, dtype=jnp.float32)
