r"""Metrics: numbers to read, not to differentiate.

Every metric takes ``(logits, labels)`` in the two conventions of :func:`accuracy`
(multi-class scores ``(..., K)`` with integer class indices, or one binary output with
0/1 labels), is jittable, and returns a float32 scalar — so each one drops into
``fnn.fit(..., metrics={"f1": fnn.metrics.f1})`` as it is. ``fit`` calls a metric as
``metric(predictions, targets)``; a metric's options (``average``, ``k``) are bound with
:func:`functools.partial`::

    metrics = {"f1": fnn.metrics.f1,                                   # macro average
               "micro_f1": functools.partial(fnn.metrics.f1, average="micro"),
               "top5": functools.partial(fnn.metrics.top_k_accuracy, k=5)}

``fit`` scores ``eval_data`` in one call, so these values are exact. ``evaluate(...,
batch_size=b)`` averages per-batch values, which is exact for :func:`accuracy` and
:func:`top_k_accuracy` but only an approximation for :func:`precision`, :func:`recall`
and :func:`f1` (they are ratios of counts); score those with ``batch_size=None``, or
sum :func:`confusion_matrix` over batches.

Zero division follows scikit-learn's ``zero_division``: a class that is never predicted
has no precision, a class that never occurs has no recall, and one that does neither
has no F1; such a value is ``zero_division`` (0 by default, 1, or NaN — with NaN, the
macro average leaves the class out, as scikit-learn does). Macro averages run over all
``K`` classes the logits score, including classes absent from the labels, as
scikit-learn's ``labels=range(K)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from fnn import _checks
from fnn._classes import classes

__all__ = ["accuracy", "confusion_matrix", "f1", "precision", "recall", "top_k_accuracy"]


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
    c = classes("accuracy", logits, labels)
    # An invalid label is class -1 and matches no prediction: it counts as wrong.
    return jnp.mean(c.predicted == c.labels, dtype=jnp.float32)


def confusion_matrix(logits: ArrayLike, labels: ArrayLike, num_classes: int | None = None) -> jax.Array:
    r"""Counts of (true class, predicted class) pairs.

    Entry :math:`C_{ij}` counts the examples of true class :math:`i` predicted as class
    :math:`j` (rows true, columns predicted, as ``sklearn.metrics.confusion_matrix``);
    the diagonal holds the correct predictions. Predictions follow :func:`accuracy`:
    argmax for multi-class logits, :math:`[z \ge 0]` for one binary output (2 classes).

    .. math:: C_{ij} = \sum_n [y_n = i]\,[\hat y_n = j]

    Args:
      logits: scores, shape ``(..., K)`` or, binary, ``(...,)`` / ``(..., 1)``.
      labels: class indices as for :func:`accuracy`.
      num_classes: optional check: the number of classes the logits must score (``K``,
        or 2 for a binary output). The size is always read from ``logits``' shape, so the
        function stays jittable.

    Returns:
      int32 array of shape ``(K, K)``. Under ``jit`` an out-of-range label is counted in
      no row (the matrix then sums to fewer than the number of examples).

    Raises:
      ValueError: shapes as for :func:`accuracy`, concrete labels out of range, or a
        ``num_classes`` that differs from the logits' class count.
      TypeError: non-integer multi-class labels.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.metrics.confusion_matrix(jnp.array([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [0.0, 3.0, 1.0]]),
      ...                              jnp.array([0, 0, 1]))
      Array([[1, 1, 0],
             [0, 1, 0],
             [0, 0, 0]], dtype=int32)
    """
    c = classes("confusion_matrix", logits, labels)
    if num_classes is not None and _checks.positive_int("confusion_matrix", "num_classes",
                                                        num_classes) != c.num_classes:
        _checks.fail("confusion_matrix", "num_classes", f"equal the {c.num_classes} classes the logits "
                     f"score (logits {jnp.shape(logits)})", repr(num_classes))
    return _counts(c)


def _counts(c) -> jax.Array:
    # one_hot(-1) is a zero row, so invalid labels drop out; int32 matmul counts exactly.
    true = jax.nn.one_hot(c.labels.reshape(-1), c.num_classes, dtype=jnp.int32)
    predicted = jax.nn.one_hot(c.predicted.reshape(-1), c.num_classes, dtype=jnp.int32)
    return true.T @ predicted


_AVERAGES = (None, "macro", "micro", "binary")


def _score(fn: str, logits, labels, average, zero_division, numerator, denominator) -> jax.Array:
    """A ratio of confusion-matrix counts per class, averaged; the machinery of P/R/F1."""
    if average not in _AVERAGES:
        _checks.fail(fn, "average", 'be "macro", "micro", "binary" or None', repr(average))
    if not (isinstance(zero_division, (int, float)) and not isinstance(zero_division, bool)
            and (zero_division in (0, 1) or math.isnan(zero_division))):
        _checks.fail(fn, "zero_division", "be 0.0, 1.0 or nan (as scikit-learn's)", repr(zero_division))
    c = classes(fn, logits, labels)
    if average == "binary" and not c.binary:
        _checks.fail(fn, "average", f'be "macro", "micro" or None for {c.num_classes} classes ("binary" '
                     "needs one binary output)", repr(average))
    cm = _counts(c).astype(jnp.float32)
    tp, true, predicted = jnp.diag(cm), jnp.sum(cm, axis=1), jnp.sum(cm, axis=0)
    top, bottom = numerator(tp), denominator(tp, true, predicted)
    if average == "micro":
        top, bottom = jnp.sum(top), jnp.sum(bottom)
    # Double where: the untaken 0/0 branch must not reach the result (or its gradient).
    safe = jnp.where(bottom > 0, bottom, 1.0)
    per_class = jnp.where(bottom > 0, top / safe, jnp.float32(zero_division))
    if average == "macro":
        return jnp.nanmean(per_class) if math.isnan(zero_division) else jnp.mean(per_class)
    return per_class[1] if average == "binary" else per_class


def precision(logits: ArrayLike, labels: ArrayLike, *, average: str | None = "macro",
              zero_division: float = 0.0) -> jax.Array:
    r"""Precision: of the examples predicted as a class, the fraction that belong to it.

    .. math:: P_k = \frac{TP_k}{TP_k + FP_k}, \qquad
              P_\text{macro} = \frac1K \sum_k P_k, \qquad
              P_\text{micro} = \frac{\sum_k TP_k}{\sum_k (TP_k + FP_k)}

    with :math:`TP_k` the examples of class :math:`k` predicted as :math:`k` and
    :math:`FP_k` the others predicted as :math:`k` (column sums of
    :func:`confusion_matrix`). With one label per example the micro average equals
    :func:`accuracy`.

    Args:
      logits: scores, shape ``(..., K)`` or, binary, ``(...,)`` / ``(..., 1)``.
      labels: class indices as for :func:`accuracy`.
      average: ``"macro"`` (default: the unweighted mean over all ``K`` classes),
        ``"micro"`` (pooled counts), ``"binary"`` (class 1 only; binary outputs, as
        scikit-learn's default there) or ``None`` (the ``(K,)`` per-class values).
      zero_division: the value of :math:`P_k` for a class that is never predicted: 0.0
        (default), 1.0 or NaN (NaN classes are left out of the macro mean).

    Returns:
      float32 scalar (``(K,)`` for ``average=None``).

    Raises:
      ValueError: an unknown ``average`` or ``zero_division``, ``"binary"`` for
        multi-class logits, shapes or labels as for :func:`accuracy`.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> z = jnp.array([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [0.0, 3.0, 1.0]])
      >>> fnn.metrics.precision(z, jnp.array([0, 0, 1]), average=None)
      Array([1. , 0.5, 0. ], dtype=float32)
      >>> fnn.metrics.precision(z, jnp.array([0, 0, 1])).round(4)
      Array(0.5, dtype=float32)

    References:
      scikit-learn, ``sklearn.metrics.precision_score`` (``labels=range(K)``).
    """
    return _score("precision", logits, labels, average, zero_division,
                  lambda tp: tp, lambda tp, true, predicted: predicted)


def recall(logits: ArrayLike, labels: ArrayLike, *, average: str | None = "macro",
           zero_division: float = 0.0) -> jax.Array:
    r"""Recall: of the examples of a class, the fraction predicted as it.

    .. math:: R_k = \frac{TP_k}{TP_k + FN_k}, \qquad
              R_\text{macro} = \frac1K \sum_k R_k, \qquad
              R_\text{micro} = \frac{\sum_k TP_k}{\sum_k (TP_k + FN_k)}

    with :math:`FN_k` the examples of class :math:`k` predicted as another class (row
    sums of :func:`confusion_matrix` minus the diagonal).

    Args:
      logits: scores, shape ``(..., K)`` or, binary, ``(...,)`` / ``(..., 1)``.
      labels: class indices as for :func:`accuracy`.
      average: ``"macro"`` (default), ``"micro"``, ``"binary"`` or ``None``, as for
        :func:`precision`.
      zero_division: the value of :math:`R_k` for a class absent from ``labels``: 0.0
        (default), 1.0 or NaN (left out of the macro mean).

    Returns:
      float32 scalar (``(K,)`` for ``average=None``).

    Raises:
      ValueError: as for :func:`precision`.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> z = jnp.array([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [0.0, 3.0, 1.0]])
      >>> fnn.metrics.recall(z, jnp.array([0, 0, 1]), average=None)
      Array([0.5, 1. , 0. ], dtype=float32)
      >>> fnn.metrics.recall(z, jnp.array([0, 0, 1]), zero_division=float("nan")).round(4)
      Array(0.75, dtype=float32)

    References:
      scikit-learn, ``sklearn.metrics.recall_score`` (``labels=range(K)``).
    """
    return _score("recall", logits, labels, average, zero_division,
                  lambda tp: tp, lambda tp, true, predicted: true)


def f1(logits: ArrayLike, labels: ArrayLike, *, average: str | None = "macro",
       zero_division: float = 0.0) -> jax.Array:
    r"""F1 score: the harmonic mean of precision and recall, per class, then averaged.

    Computed from counts (as scikit-learn does), which equals
    :math:`2 P_k R_k / (P_k + R_k)` wherever both are defined:

    .. math:: F_k = \frac{2\,TP_k}{2\,TP_k + FP_k + FN_k}, \qquad
              F_\text{macro} = \frac1K \sum_k F_k, \qquad
              F_\text{micro} = \frac{2 \sum_k TP_k}{\sum_k (2\,TP_k + FP_k + FN_k)}

    Macro F1 weighs every class alike, so it exposes a model that ignores a rare class
    where accuracy does not. A class that never occurs and is never predicted has
    :math:`F_k` = ``zero_division``.

    Args:
      logits: scores, shape ``(..., K)`` or, binary, ``(...,)`` / ``(..., 1)``.
      labels: class indices as for :func:`accuracy`.
      average: ``"macro"`` (default), ``"micro"``, ``"binary"`` or ``None``, as for
        :func:`precision`.
      zero_division: :math:`F_k` when its denominator is 0: 0.0 (default), 1.0 or NaN
        (left out of the macro mean).

    Returns:
      float32 scalar (``(K,)`` for ``average=None``).

    Raises:
      ValueError: as for :func:`precision`.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> z = jnp.array([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [0.0, 3.0, 1.0]])
      >>> fnn.metrics.f1(z, jnp.array([0, 0, 1]), average=None).round(4)
      Array([0.6667, 0.6667, 0.    ], dtype=float32)
      >>> round(float(fnn.metrics.f1(z, jnp.array([0, 0, 1]))), 4)
      0.4444

    References:
      scikit-learn, ``sklearn.metrics.f1_score`` (``labels=range(K)``).
    """
    return _score("f1", logits, labels, average, zero_division,
                  lambda tp: 2 * tp, lambda tp, true, predicted: true + predicted)


def top_k_accuracy(logits: ArrayLike, labels: ArrayLike, k: int) -> jax.Array:
    r"""Fraction of examples whose true class is among the ``k`` highest scores.

    .. math:: \text{top-}k = \frac1n \sum_i \Big[\#\{j : z_{ij} > z_{i y_i}\} < k\Big]

    A class tied with the true class's score does not push it out (ties count in the
    example's favour). ``k = 1`` is :func:`accuracy` up to ties.

    Args:
      logits: scores, shape ``(..., K)`` with ``K >= 2``.
      labels: integer class indices in ``[0, K)``, shape ``(...,)``.
      k: how many top classes count, ``1 <= k <= K``. As a ``fit`` metric bind it:
        ``functools.partial(fnn.metrics.top_k_accuracy, k=5)``.

    Returns:
      float32 scalar in [0, 1]. Under ``jit`` an out-of-range label counts as wrong.

    Raises:
      ValueError: ``k`` out of range, a binary (single-output) ``logits``, shapes or
        labels as for :func:`accuracy`.
      TypeError: non-integer labels.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> z = jnp.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])
      >>> fnn.metrics.top_k_accuracy(z, jnp.array([2, 2]), k=2)
      Array(0.5, dtype=float32)

    References:
      scikit-learn, ``sklearn.metrics.top_k_accuracy_score``.
    """
    c = classes("top_k_accuracy", logits, labels)
    if c.binary:
        _checks.fail("top_k_accuracy", "logits", "have shape (..., K) with K >= 2 classes",
                     f"shape {jnp.shape(logits)} (one binary output)")
    k = _checks.positive_int("top_k_accuracy", "k", k)
    if k > c.num_classes:
        _checks.fail("top_k_accuracy", "k", f"be at most the {c.num_classes} classes", repr(k))
    z = jnp.asarray(logits)
    one_hot = c.labels[..., None] == jnp.arange(c.num_classes, dtype=jnp.int32)
    true_score = jnp.sum(jnp.where(one_hot, z, 0), axis=-1, keepdims=True)
    above = jnp.sum(z > true_score, axis=-1)
    return jnp.mean((above < k) & (c.labels >= 0), dtype=jnp.float32)
