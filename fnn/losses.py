r"""Loss functions: how wrong the forward stage was, as one mean-reduced scalar.

Classification losses take logits (the model's raw scores) rather than probabilities:
applying sigmoid/softmax inside the loss lets us use ``log_sigmoid``/``log_softmax``
forms that stay finite for logits of any size, and gives the textbook gradients
:math:`\partial L / \partial z = \hat y - y` exactly, at :math:`z = 0` too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from fnn import _checks

__all__ = ["mse", "binary_cross_entropy", "softmax_cross_entropy"]


def mse(predictions: ArrayLike, targets: ArrayLike) -> jax.Array:
    r"""Mean squared error.

    .. math:: L = \frac{1}{n} \sum_i (\hat y_i - y_i)^2, \qquad
              \frac{\partial L}{\partial \hat y_i} = \frac{2}{n} (\hat y_i - y_i)

    Args:
      predictions: :math:`\hat y`, any shape, floating dtype.
      targets: :math:`y`, the same shape.

    Returns:
      scalar, ``predictions``' dtype.

    Raises:
      ValueError: if the shapes differ (no silent broadcasting of ``(n, 1)`` against
        ``(n,)``, a classic bug).

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.losses.mse(jnp.array([1.0, 2.0]), jnp.array([1.0, 4.0]))
      Array(2., dtype=float32)
    """
    _checks.floating("mse", "predictions", predictions)
    _checks.array_like("mse", "targets", targets)
    _checks.same_shape("mse", "predictions", predictions, "targets", targets)
    predictions = jnp.asarray(predictions)
    error = predictions - jnp.asarray(targets).astype(predictions.dtype)
    return _mean(jnp.square(error))


def _mean(values: jax.Array) -> jax.Array:
    """Mean that cannot overflow when the mean itself is representable.

    Dividing before summing: two float32 per-example losses of 3e38 have the mean 3e38,
    but their sum is inf. 16-bit floats are accumulated in float32 as ``jnp.mean`` does.
    """
    if values.size == 0:
        return jnp.mean(values)
    acc = jnp.promote_types(values.dtype, jnp.float32)
    return jnp.sum(values.astype(acc) / values.size).astype(values.dtype)


_concrete = _checks.concrete  # shared with fnn.metrics


def binary_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    r"""Binary cross-entropy of a sigmoid output, from logits.

    With :math:`p = \sigma(z)` the predicted probability of class 1,

    .. math:: L = -\frac1n \sum_i \left[y_i \log p_i + (1 - y_i) \log(1 - p_i)\right]
              = \frac1n \sum_i \left[\operatorname{softplus}(z_i) - y_i z_i\right],
              \qquad \frac{\partial L}{\partial z_i} = \frac{\sigma(z_i) - y_i}{n}

    ``softplus(z) = log(1 + e^z)`` is computed as ``logaddexp(z, 0)``, finite for
    :math:`|z| = 10^4` and with derivative exactly :math:`\sigma(z)`; at :math:`z = 0`
    the gradient is :math:`0.5 - y` (the ``max(z, 0) - z y + log1p(e^{-|z|})`` rewrite
    built from ``relu``/``abs`` gets :math:`-y` there).

    Args:
      logits: :math:`z`, shape ``(...,)`` or ``(..., 1)`` (one output unit), floating.
      labels: :math:`y` in {0, 1} (soft labels in [0, 1] are fine), shape ``(...,)``
        matching ``logits`` without or with its trailing 1.

    Returns:
      scalar, ``logits``' dtype. Under ``jit`` a label outside [0, 1] (or NaN) cannot
      raise; it makes the loss NaN rather than a finite, meaningless number.

    Raises:
      ValueError: for mismatched shapes, or concrete labels outside [0, 1] or NaN.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.losses.binary_cross_entropy(jnp.array([0.0, 1e4]), jnp.array([1, 1])).round(4)
      Array(0.3466, dtype=float32)
    """
    fn = "binary_cross_entropy"
    _checks.floating(fn, "logits", logits)
    _checks.array_like(fn, "labels", labels)
    logits = jnp.asarray(logits)
    if jnp.shape(labels) != logits.shape:
        if logits.shape[-1:] == (1,) and jnp.shape(labels) == logits.shape[:-1]:
            logits = logits[..., 0]
        else:
            _checks.fail(fn, "labels", f"have shape {logits.shape} or {logits.shape[:-1]} to match "
                         f"logits of shape {logits.shape}", f"shape {jnp.shape(labels)}")
    concrete = _concrete(labels)
    if concrete is not None and concrete.size and not np.all((concrete >= 0) & (concrete <= 1)):
        # Written so that NaN fails too (every comparison with NaN is False).
        got = ("NaN values" if np.isnan(concrete.astype(float)).any()
               else f"values in [{concrete.min()}, {concrete.max()}]")
        _checks.fail(fn, "labels", "be in {0, 1} (or [0, 1])", got)
    labels = jnp.asarray(labels)
    y = labels.astype(logits.dtype)
    softplus = jnp.logaddexp(logits, jnp.zeros_like(logits))
    # Under jit the labels cannot be checked: one outside [0, 1] (or NaN) makes the loss
    # NaN rather than a finite, meaningless number, as in softmax_cross_entropy.
    valid = (labels >= 0) & (labels <= 1)
    return _mean(jnp.where(valid, softplus - y * logits, jnp.nan))


def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    r"""Cross-entropy of a softmax output against integer class labels, from logits.

    .. math:: L = -\frac1n \sum_i \log \operatorname{softmax}(z_i)_{y_i}
              = \frac1n \sum_i \left[\log \sum_k e^{z_{ik}} - z_{i y_i}\right], \qquad
              \frac{\partial L}{\partial z_{ik}} = \frac{\operatorname{softmax}(z_i)_k
              - [k = y_i]}{n}

    Args:
      logits: :math:`z`, shape ``(..., K)``, floating.
      labels: class indices in ``[0, K)``, integer dtype, shape ``(...,)``.

    Returns:
      scalar, ``logits``' dtype. Under ``jit`` a label outside ``[0, K)`` cannot raise;
      it makes the loss NaN rather than silently contributing 0.

    Raises:
      ValueError: for mismatched shapes, or concrete labels outside ``[0, K)``.
      TypeError: for non-integer labels.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.losses.softmax_cross_entropy(jnp.array([[1000.0, 0.0], [0.0, 0.0]]),
      ...                                  jnp.array([0, 1])).round(4)
      Array(0.3466, dtype=float32)
    """
    fn = "softmax_cross_entropy"
    _checks.floating(fn, "logits", logits)
    _checks.integer(fn, "labels", labels)
    logits = jnp.asarray(logits)
    _checks.ndim_at_least(fn, "logits", logits, 1)
    if jnp.shape(labels) != logits.shape[:-1]:
        _checks.fail(fn, "labels", f"have shape {logits.shape[:-1]} (logits' shape without the "
                     f"class axis, logits {logits.shape})", f"shape {jnp.shape(labels)}")
    num_classes = logits.shape[-1]
    concrete = _concrete(labels)
    if concrete is not None and concrete.size and (concrete.min() < 0 or concrete.max() >= num_classes):
        _checks.fail(fn, "labels", f"be class indices in [0, {num_classes})",
                     f"values in [{concrete.min()}, {concrete.max()}]")
    labels = jnp.asarray(labels)
    if labels.dtype == jnp.bool_ or jnp.iinfo(labels.dtype).bits < 32:
        # uint8/int8/bool labels: arange(K) and the bound K would wrap in their dtype.
        labels = labels.astype(jnp.int32)
    # A one-hot product, not take_along_axis: its gradient is a dense multiply rather
    # than a scatter, measurably faster inside training loops on CPU.
    one_hot = labels[..., None] == jnp.arange(num_classes, dtype=labels.dtype)
    # -log softmax(z)_y = logsumexp(z) - z_y, both on max-shifted logits: one reduction
    # over the classes fewer than forming the whole log_softmax and then picking.
    shifted = logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    per_example = (jnp.log(jnp.sum(jnp.exp(shifted), axis=-1))
                   - jnp.sum(jnp.where(one_hot, shifted, 0), axis=-1))
    valid = (labels >= 0) & (labels < num_classes)
    return _mean(jnp.where(valid, per_example, jnp.nan))
