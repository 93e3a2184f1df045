r"""Datasets: 2-D problems generated from a key, real data bundled with scikit-learn, splits.

The generated problems are the classic pictures of what a network can learn: XOR (what a
single perceptron cannot separate), blobs (what it can), moons, circles and spirals
(curved boundaries that need hidden layers). Each takes a key and a size and returns
``(x, y)`` with ``x`` float32 ``(n, 2)`` and ``y`` int32 class indices ``(n,)``; classes
are balanced (counts differ by at most one). The real datasets — digits (1,797 8x8
images, 10 classes), breast cancer (569 x 30, binary) and iris (150 x 4, 3 classes) —
ship inside scikit-learn, so nothing is downloaded; they need the ``data`` extra
(``pip install "fnn[data]"``).

:func:`load` does the whole preparation in one call — generate or read, keyed stratified
train/test split, standardisation fitted on the training split only — and returns a
:class:`Dataset` of device arrays ready for ``fnn.fit``. The pieces are public too:
:func:`train_test_split`, :func:`fit_standardizer` / :func:`standardize` and
:func:`batches` for a hand-written training loop. Same key, same data, bit for bit.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import boolean, describe, fail, floating, number, positive_int, prng_key, scalar
from fnn._datasets_bundled import breast_cancer, digits, iris
from fnn._datasets_prep import Split, Standardizer, batches, fit_standardizer, standardize, train_test_split

__all__ = ["NAMES", "Dataset", "Split", "Standardizer", "batches", "blobs", "breast_cancer", "circles",
           "digits", "fit_standardizer", "iris", "load", "moons", "spirals", "standardize", "train_test_split", "xor"]


def _finite_scalar(fn: str, arg: str, value: Any, low: float | None = None) -> None:
    """A finite Python/0-d number (>= ``low``): an array would broadcast into the data."""
    scalar(fn, arg, value)
    if low is None:
        number(fn, arg, value, low=-math.inf, expectation="be a finite number")  # NaN fails
    else:
        number(fn, arg, value, low=low)
    if isinstance(value, (int, float, np.number)) and not math.isfinite(value):
        fail(fn, arg, "be finite", repr(value))


def _check_generator(fn: str, key: Any, n: Any, noise: Any, dtype: Any) -> int:
    prng_key(fn, "key", key)
    _finite_scalar(fn, "noise", noise, low=0)
    try:
        ok = jnp.issubdtype(dtype, jnp.floating)
    except TypeError:  # not a dtype at all
        ok = False
    if not ok:
        fail(fn, "dtype", "be a floating dtype", repr(dtype), TypeError)
    return positive_int(fn, "n", n)


def _balanced_labels(key: jax.Array, n: int, classes: int) -> jax.Array:
    """``n`` labels, ``n // classes`` or one more of each class, in random order."""
    return jax.random.permutation(key, jnp.arange(n, dtype=jnp.int32) % classes)


def _noisy(key: jax.Array, x: jax.Array, noise: Any, dtype: Any) -> jax.Array:
    """``x + noise * N(0, I)``, drawn in ``x``'s (at least float32) precision, cast to ``dtype``."""
    return (x + jnp.asarray(noise, x.dtype) * jax.random.normal(key, x.shape, x.dtype)).astype(dtype)


def _work(dtype: Any) -> Any:
    """Geometry is computed in at least float32, then rounded once to ``dtype``."""
    return jnp.promote_types(dtype, jnp.float32)


# Each generator validates its arguments, then runs one compiled program per (n, dtype):
# far cheaper than op-by-op dispatch, which compiles every primitive for every new n.
@functools.partial(jax.jit, static_argnames=("n", "dtype"))
def _xor(key, n, noise, dtype):
    k_corner, k_noise = jax.random.split(key)
    corner = _balanced_labels(k_corner, n, 4)
    bits = jnp.stack([corner // 2, corner % 2], axis=-1)
    return _noisy(k_noise, bits.astype(_work(dtype)), noise, dtype), bits[:, 0] ^ bits[:, 1]


@functools.partial(jax.jit, static_argnames=("n", "dtype"))
def _blobs(key, n, centers, noise, dtype):
    k_label, k_noise = jax.random.split(key)
    y = _balanced_labels(k_label, n, centers.shape[0])
    return _noisy(k_noise, centers.astype(_work(dtype))[y], noise, dtype), y


@functools.partial(jax.jit, static_argnames=("n", "dtype"))
def _moons(key, n, noise, dtype):
    k_label, k_angle, k_noise = jax.random.split(key, 3)
    y = _balanced_labels(k_label, n, 2)
    t = jax.random.uniform(k_angle, (n,), _work(dtype), 0.0, jnp.pi)
    outer = jnp.stack([jnp.cos(t), jnp.sin(t)], axis=-1)
    inner = jnp.stack([1 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=-1)
    return _noisy(k_noise, jnp.where(y[:, None] == 0, outer, inner), noise, dtype), y


@functools.partial(jax.jit, static_argnames=("n", "dtype"))
def _circles(key, n, noise, factor, dtype):
    k_label, k_angle, k_noise = jax.random.split(key, 3)
    y = _balanced_labels(k_label, n, 2)
    t = jax.random.uniform(k_angle, (n,), _work(dtype), 0.0, 2 * jnp.pi)
    r = jnp.where(y == 0, 1.0, jnp.asarray(factor, t.dtype))
    return _noisy(k_noise, r[:, None] * jnp.stack([jnp.cos(t), jnp.sin(t)], axis=-1), noise, dtype), y


@functools.partial(jax.jit, static_argnames=("n", "classes", "dtype"))
def _spirals(key, n, classes, noise, turns, dtype):
    k_label, k_radius, k_noise = jax.random.split(key, 3)
    y = _balanced_labels(k_label, n, classes)
    r = jax.random.uniform(k_radius, (n,), _work(dtype))
    theta = 2 * jnp.pi * (turns * r + y.astype(r.dtype) / classes)
    return _noisy(k_noise, r[:, None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=-1), noise, dtype), y


def xor(key: jax.Array, n: int, *, noise: float = 0.1, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    r"""Noisy XOR: the four corners of the unit square, labelled by exclusive or.

    No straight line separates the classes, so a single perceptron fails and one hidden
    layer succeeds — the lecture's argument for multi-layer networks.

    .. math::
        x = (a, b) + \sigma \varepsilon, \quad y = a \oplus b, \quad
        a, b \in \{0, 1\}, \ \varepsilon \sim \mathcal{N}(0, I_2)

    with :math:`\sigma` = ``noise``; the corners are equally frequent.

    Args:
      key: a PRNG key. n: number of points. noise: standard deviation of the Gaussian
        added to each coordinate. dtype: floating dtype of ``x``.

    Returns:
      ``x`` of shape ``(n, 2)`` and ``dtype``; ``y`` int32 in {0, 1} of shape ``(n,)``.

    Example:
      >>> x, y = xor(jax.random.key(0), 8, noise=0.0)
      >>> x.shape, y.dtype, bool((y == (x[:, 0] != x[:, 1])).all())
      ((8, 2), dtype('int32'), True)
    """
    n = _check_generator("xor", key, n, noise, dtype)
    return _xor(key, n, noise, jnp.dtype(dtype))


def blobs(key: jax.Array, n: int, centers: int | Any = 3, *, noise: float = 1.0, radius: float = 5.0,
          dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    r"""Gaussian blobs around given centres: the linearly separable case.

    .. math::
        x = c_y + \sigma \varepsilon, \quad \varepsilon \sim \mathcal{N}(0, I_2)

    Args:
      key: a PRNG key. n: number of points.
      centers: the number of classes ``k`` — centres evenly spaced on a circle of
        ``radius`` around the origin, :math:`c_j = r(\cos 2\pi j/k, \sin 2\pi j/k)` —
        or an array of centres of shape ``(k, 2)``.
      noise: :math:`\sigma`, the standard deviation of each blob. radius: see ``centers``.
      dtype: floating dtype of ``x``.

    Returns:
      ``x`` ``(n, 2)`` of ``dtype``; ``y`` int32 in ``[0, k)`` of shape ``(n,)``.

    Note:
      Unlike scikit-learn's ``make_blobs`` (random centres in a box), integer ``centers``
      are fixed and well separated, so results depend on the key only through the noise.

    Example:
      >>> x, y = blobs(jax.random.key(0), 9, centers=3, noise=0.0)
      >>> jnp.round(x[y == 0][0], 3).tolist(), jnp.bincount(y).tolist()
      ([5.0, 0.0], [3, 3, 3])
    """
    n = _check_generator("blobs", key, n, noise, dtype)
    if isinstance(centers, (int, np.integer)) and not isinstance(centers, bool):
        k = positive_int("blobs", "centers", centers)
        _finite_scalar("blobs", "radius", radius)
        angle = 2 * np.pi * np.arange(k) / k
        c: Any = radius * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    else:
        floating("blobs", "centers", centers)
        if jnp.ndim(centers) != 2 or jnp.shape(centers)[1] != 2 or jnp.shape(centers)[0] == 0:
            fail("blobs", "centers", "be a positive int or an array of shape (k, 2)", describe(centers))
        c = jnp.asarray(centers)
    return _blobs(key, n, jnp.asarray(c, _work(dtype)), noise, jnp.dtype(dtype))


def moons(key: jax.Array, n: int, *, noise: float = 0.1, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    r"""Two interleaving half circles (scikit-learn's ``make_moons`` geometry).

    .. math::
        x = \begin{cases} (\cos t, \sin t) & y = 0 \\ (1 - \cos t, \tfrac12 - \sin t) & y = 1
        \end{cases} + \sigma \varepsilon, \quad t \sim U(0, \pi)

    Args:
      key: a PRNG key. n: number of points. noise: :math:`\sigma`. dtype: floating dtype.

    Returns:
      ``x`` ``(n, 2)`` of ``dtype``; ``y`` int32 in {0, 1} of shape ``(n,)``.

    Note:
      ``make_moons`` spaces ``t`` evenly; here ``t`` is drawn uniformly from the key.

    Example:
      >>> x, y = moons(jax.random.key(0), 6, noise=0.0)
      >>> bool(jnp.allclose(jnp.linalg.norm(x[y == 0], axis=1), 1.0))
      True
    """
    n = _check_generator("moons", key, n, noise, dtype)
    return _moons(key, n, noise, jnp.dtype(dtype))

def circles(key: jax.Array, n: int, *, noise: float = 0.05, factor: float = 0.5,
            dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    r"""Two concentric circles (scikit-learn's ``make_circles`` geometry).

    Class 0 lies on the unit circle, class 1 on a circle of radius ``factor`` inside
    it: no line separates them, but one hidden layer (or a feature :math:`\lVert x
    \rVert^2`) does.

    .. math::
        x = r_y (\cos t, \sin t) + \sigma \varepsilon, \quad r_0 = 1, \ r_1 = \text{factor},
        \quad t \sim U(0, 2\pi)

    Args:
      key: a PRNG key. n: number of points. noise: :math:`\sigma`.
      factor: radius of the inner circle, in [0, 1). dtype: floating dtype.

    Returns:
      ``x`` ``(n, 2)`` of ``dtype``; ``y`` int32 in {0, 1} of shape ``(n,)``.

    Note:
      ``make_circles`` spaces ``t`` evenly; here ``t`` is drawn uniformly from the key.

    Example:
      >>> x, y = circles(jax.random.key(0), 6, noise=0.0, factor=0.5)
      >>> jnp.round(jnp.linalg.norm(x, axis=1), 3).tolist() == jnp.where(y == 0, 1.0, 0.5).tolist()
      True
    """
    n = _check_generator("circles", key, n, noise, dtype)
    _finite_scalar("circles", "factor", factor, low=0)
    number("circles", "factor", factor, low=0, high=1, high_open=True)
    return _circles(key, n, noise, factor, jnp.dtype(dtype))



def spirals(key: jax.Array, n: int, *, classes: int = 2, noise: float = 0.05, turns: float = 1.0,
            dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    r"""Interleaved spiral arms, one per class: hard for shallow networks.

    .. math::
        x = r(\cos\theta, \sin\theta) + \sigma\varepsilon, \quad
        \theta = 2\pi\left(\text{turns} \cdot r + \frac{y}{\text{classes}}\right), \quad r \sim U(0, 1)

    Args:
      key: a PRNG key. n: number of points. classes: number of arms (>= 2).
      noise: :math:`\sigma`. turns: revolutions of each arm. dtype: floating dtype.

    Returns:
      ``x`` ``(n, 2)`` of ``dtype``, within about ``1 + 3 * noise`` of the origin;
      ``y`` int32 in ``[0, classes)`` of shape ``(n,)``.

    Example:
      >>> x, y = spirals(jax.random.key(0), 300, classes=3)
      >>> x.shape, jnp.bincount(y).tolist()
      ((300, 2), [100, 100, 100])
    """
    n = _check_generator("spirals", key, n, noise, dtype)
    if positive_int("spirals", "classes", classes) < 2:
        fail("spirals", "classes", "be an integer >= 2", repr(classes))
    _finite_scalar("spirals", "turns", turns, low=0)
    return _spirals(key, n, int(classes), noise, turns, jnp.dtype(dtype))



_GENERATED = {"xor": xor, "moons": moons, "blobs": blobs, "spirals": spirals, "circles": circles}
_REAL = {"digits": digits, "breast_cancer": breast_cancer, "iris": iris}
NAMES = tuple(_REAL) + tuple(_GENERATED)
_apply_standardizer = standardize  # load's keyword ``standardize`` shadows the function


class Dataset(NamedTuple):
    """A prepared dataset: device arrays split into train and test, and its class count."""

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    num_classes: int
    name: str


def load(name: str, *, key: jax.Array, test_fraction: float = 0.2, standardize: bool = True,
         **options: Any) -> Dataset:
    r"""A dataset by name, split and standardised, as device arrays ready for ``fit``.

    Steps: generate (``options`` go to the generator, ``n`` defaulting to 1000) or read
    the bundled data; split with :func:`train_test_split` (stratified, keyed); when
    ``standardize``, fit :func:`fit_standardizer` on the training split and apply it to
    both splits, so no test statistics leak into training.

    Args:
      name: one of :data:`NAMES`: ``"digits"``, ``"breast_cancer"``, ``"iris"``,
        ``"xor"``, ``"moons"``, ``"blobs"``, ``"spirals"``, ``"circles"``.
      key: a PRNG key; it is split once for the data and once for the split.
      test_fraction: share of examples held out, in (0, 1).
      standardize: whether to standardise the features.
      **options: generator options (``n``, ``noise``, ``centers``, ``classes``, ...);
        none are accepted for the real datasets.

    Returns:
      :class:`Dataset` ``(x_train, y_train, x_test, y_test, num_classes, name)``; ``x``
      float32 ``(m, features)``, ``y`` int32 ``(m,)``.

    Raises:
      ValueError: unknown ``name`` (the message lists the valid ones).
      TypeError: ``options`` given for a real dataset, or not accepted by the generator;
        a ``standardize`` that is not a bool.
      ImportError: a real dataset without scikit-learn (``pip install "fnn[data]"``).

    Example:
      >>> data = load("iris", key=jax.random.key(0))
      >>> data.x_train.shape, data.x_test.shape, data.num_classes
      ((120, 4), (30, 4), 3)
    """
    if name not in NAMES:
        fail("load", "name", f"be one of {', '.join(NAMES)}", repr(name))
    standardize = boolean("load", "standardize", standardize)
    prng_key("load", "key", key)
    k_data, k_split = jax.random.split(key)
    if name in _REAL:
        if options:
            fail("load", "options", f"be empty for the real dataset {name!r}", sorted(options), TypeError)
        x, y = _REAL[name]()
        num_classes = int(y.max()) + 1
    else:
        x, y = _GENERATED[name](k_data, options.pop("n", 1000), **options)
        centers = options.get("centers", 3)
        num_classes = {"xor": 2, "moons": 2, "circles": 2, "spirals": options.get("classes", 2),
                       "blobs": centers if isinstance(centers, (int, np.integer)) else len(centers)}[name]
    split = train_test_split(k_split, x, y, test_fraction=test_fraction, stratify=True)
    if standardize:
        stats = fit_standardizer(split.x_train)
        split = split._replace(x_train=_apply_standardizer(split.x_train, stats),
                               x_test=_apply_standardizer(split.x_test, stats))
    return Dataset(*split, num_classes=int(num_classes), name=name)

