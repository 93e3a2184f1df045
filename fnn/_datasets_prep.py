r"""Data preparation for :mod:`fnn.datasets`: keyed splits, standardisation, batches.

Public through ``fnn.datasets``; kept apart so each file stays one concept.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import (array_like, boolean, describe, fail, floating, integer, ndim_at_least, number,
                         positive_int, prng_key)


class Split(NamedTuple):
    """A train/test split: ``(x_train, y_train, x_test, y_test)``."""

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array


class Standardizer(NamedTuple):
    """Per-feature statistics of a training set: ``x_std = (x - mean) / scale``."""

    mean: jax.Array
    scale: jax.Array


def _examples(fn: str, x: Any, y: Any) -> int:
    """The number of examples: ``x`` and ``y`` share their leading axis."""
    array_like(fn, "x", x)
    array_like(fn, "y", y)
    ndim_at_least(fn, "x", x, 1)
    n = jnp.shape(x)[0]
    if jnp.ndim(y) < 1 or jnp.shape(y)[0] != n:
        fail(fn, "y", f"have as many examples as x ({n}) on its leading axis", f"shape {jnp.shape(y)}")
    return n


def train_test_split(key: jax.Array, x: Any, y: Any, *, test_fraction: float = 0.2,
                     stratify: bool = False) -> Split:
    r"""Split examples into a training and a test set, at random from ``key``.

    A test set the model never trained on is how generalisation is measured; a fixed key
    makes the split reproducible. With ``stratify``, each class keeps its proportion in
    both splits (``round(count_c * test_fraction)`` of class ``c`` go to test), which
    matters for small or unbalanced datasets.

    Args:
      key: a PRNG key. x: features, shape ``(n, ...)``. y: targets, shape ``(n, ...)``;
        integer class indices of shape ``(n,)`` when ``stratify``.
      test_fraction: share held out, in (0, 1); ``ceil(n * test_fraction)`` examples
        without ``stratify``.
      stratify: keep class proportions.

    Returns:
      :class:`Split` ``(x_train, y_train, x_test, y_test)`` of device arrays; the two
      splits are disjoint, cover every example once, and are shuffled.

    Raises:
      ValueError: ``y`` of another length than ``x``; ``test_fraction`` outside (0, 1) or
        leaving a split empty. TypeError: ``x`` or ``y`` not an array, non-integer ``y``
        with ``stratify``, a ``stratify`` that is not a bool.

    Note:
      scikit-learn returns ``X_train, X_test, y_train, y_test``; fnn keeps the order of
      :class:`fnn.datasets.Dataset`, with names to unpack by.

    Example:
      >>> split = train_test_split(jax.random.key(0), jnp.arange(10.0)[:, None], jnp.arange(10) % 2)
      >>> split.x_train.shape, split.x_test.shape
      ((8, 1), (2, 1))
    """
    fn = "train_test_split"
    prng_key(fn, "key", key)
    n = _examples(fn, x, y)
    number(fn, "test_fraction", test_fraction, low=0, high=1, low_open=True, high_open=True)
    stratify = boolean(fn, "stratify", stratify)
    perm = np.asarray(jax.random.permutation(key, n))
    if stratify:
        integer(fn, "y", y)
        if jnp.ndim(y) != 1:
            fail(fn, "y", "be class indices of shape (n,) when stratify=True", f"shape {jnp.shape(y)}")
        _, inverse, counts = np.unique(np.asarray(y)[perm], return_inverse=True, return_counts=True)
        order = np.argsort(inverse, kind="stable")  # grouped by class, in shuffled order
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
        is_test = rank < np.floor(counts * test_fraction + 0.5).astype(np.int64)[inverse]
    else:
        is_test = np.arange(n) < math.ceil(n * test_fraction)
    train, test = perm[~is_test], perm[is_test]
    if len(train) == 0 or len(test) == 0:
        fail(fn, "test_fraction", f"leave examples in both splits of the {n}", repr(test_fraction))
    x, y = jnp.asarray(x), jnp.asarray(y)
    return Split(x[train], y[train], x[test], y[test])


def fit_standardizer(x: Any) -> Standardizer:
    r"""Per-feature mean and scale of a training set, for :func:`standardize`.

    Standardised inputs (zero mean, unit variance per feature) keep pre-activations in the
    range where sigmoid and tanh are not saturated and let one learning rate suit every
    weight. Fit on the training split only and apply the same statistics to the test
    split, or test information leaks into training.

    .. math::
        \mu_j = \frac1n \sum_i x_{ij}, \quad
        s_j = \begin{cases} \sigma_j & \sigma_j > 10\,\epsilon \max(1, |\mu_j|) \\
        1 & \text{otherwise (a constant feature, e.g. a digits corner pixel)} \end{cases}

    with :math:`\sigma_j` the population standard deviation and :math:`\epsilon` the
    machine epsilon of ``x.dtype``; a constant feature becomes 0 instead of NaN.

    Args:
      x: floating training features, shape ``(n, ...)`` with ``n >= 1``.

    Returns:
      :class:`Standardizer` ``(mean, scale)``, each of shape ``x.shape[1:]`` and
      ``x.dtype`` (computed in at least float32).

    Example:
      >>> stats = fit_standardizer(jnp.array([[1.0, 5.0], [3.0, 5.0]]))
      >>> stats.mean.tolist(), stats.scale.tolist()
      ([2.0, 5.0], [1.0, 1.0])
    """
    fn = "fit_standardizer"
    floating(fn, "x", x)
    ndim_at_least(fn, "x", x, 1)
    if jnp.shape(x)[0] == 0:
        fail(fn, "x", "hold at least one example", describe(x))
    x = jnp.asarray(x)
    xs = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean, std = xs.mean(axis=0), xs.std(axis=0)
    constant = std <= 10 * jnp.finfo(x.dtype).eps * jnp.maximum(1, jnp.abs(mean))
    return Standardizer(mean.astype(x.dtype), jnp.where(constant, 1, std).astype(x.dtype))


def standardize(x: Any, stats: Standardizer) -> jax.Array:
    r"""Apply a :class:`Standardizer`: :math:`(x - \mu) / s`, in ``x.dtype``.

    Args:
      x: floating features, shape ``(m,) + stats.mean.shape``.
      stats: from :func:`fit_standardizer` on the training split.

    Returns:
      Standardised features, same shape and dtype as ``x``.

    Raises:
      TypeError: non-floating ``x``; ``stats`` not a ``(mean, scale)`` pair of floating
        arrays (a plain tuple, as :func:`fnn.checkpoint.load` returns it, is accepted).
      ValueError: ``x``'s feature shape differs from ``stats.mean``'s.

    Example:
      >>> stats = fit_standardizer(jnp.array([[1.0], [3.0]]))
      >>> standardize(jnp.array([[1.0], [5.0]]), stats).tolist()
      [[-1.0], [3.0]]
    """
    fn = "standardize"
    floating(fn, "x", x)
    if not (isinstance(stats, tuple) and len(stats) == 2):  # a plain tuple: checkpoint.load
        fail(fn, "stats", "be the Standardizer (mean, scale) from fit_standardizer", describe(stats),
             TypeError)
    floating(fn, "stats.mean", stats[0])
    floating(fn, "stats.scale", stats[1])
    mean, scale = jnp.asarray(stats[0]), jnp.asarray(stats[1])
    if jnp.shape(x)[1:] != mean.shape:
        fail(fn, "x", f"have features of shape {mean.shape} like stats", f"shape {jnp.shape(x)}")
    x = jnp.asarray(x)
    return (x - mean.astype(x.dtype)) / scale.astype(x.dtype)


def batches(key: jax.Array | None, x: Any, y: Any, batch_size: int) -> Iterator[tuple[jax.Array, jax.Array]]:
    r"""Iterate over ``(x_batch, y_batch)`` minibatches, shuffled from ``key``.

    For a hand-written training loop (``fnn.fit`` shuffles and batches on device by
    itself). Every example appears exactly once per pass; the last batch is smaller when
    ``batch_size`` does not divide ``n`` — it is kept, not dropped.

    Args:
      key: a PRNG key for the order, or ``None`` for the stored order (evaluation).
      x: features ``(n, ...)``. y: targets ``(n, ...)``. batch_size: positive int.

    Returns:
      A Python iterator of device-array pairs, ``ceil(n / batch_size)`` of them.

    Example:
      >>> x, y = jnp.arange(10.0)[:, None], jnp.arange(10)
      >>> [len(yb) for _, yb in batches(jax.random.key(0), x, y, 4)]
      [4, 4, 2]
    """
    fn = "batches"
    if key is not None:
        prng_key(fn, "key", key)
    n = _examples(fn, x, y)
    batch_size = positive_int(fn, "batch_size", batch_size)
    x, y = jnp.asarray(x), jnp.asarray(y)
    if key is not None:
        perm = jax.random.permutation(key, n)
        x, y = x[perm], y[perm]
    return ((x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size))
