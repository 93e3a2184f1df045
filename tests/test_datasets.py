"""Tests for fnn.datasets: generators, bundled data, splits, standardisation, batches, load."""

import doctest
import math
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from fnn import _datasets_bundled, _datasets_prep, datasets
from fnn.datasets import (Dataset, batches, blobs, circles, fit_standardizer, load, moons, spirals,
                          standardize, train_test_split, xor)

GENERATORS = {"xor": (xor, 2), "blobs": (blobs, 3), "moons": (moons, 2), "spirals": (spirals, 2),
              "circles": (circles, 2)}
KEY = jax.random.key(0)


def _bits(x):
    return np.asarray(x).tobytes()


# ------------------------------------------------------------------------ generators

class GeneratorTest(chex.TestCase):
    """Shapes and dtypes, eager and compiled (``n`` static)."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(name=list(GENERATORS), n=[1, 101])
    def test_generator_shapes_and_dtypes(self, name, n):
        fn, _ = GENERATORS[name]
        x, y = self.variant(fn, static_argnums=1)(KEY, n)
        chex.assert_shape([x, y], [(n, 2), (n,)])
        chex.assert_type([x, y], [jnp.float32, jnp.int32])
        chex.assert_tree_all_finite(x)
        chex.assert_trees_all_close((x, y), fn(KEY, n), atol=1e-6)


@pytest.mark.parametrize("name", list(GENERATORS))
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_generator_dtype_option(name, dtype):
    x, y = GENERATORS[name][0](KEY, 101, dtype=dtype)
    chex.assert_type([x, y], [dtype, jnp.int32])


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generator_float64_under_x64(name):
    with jax.enable_x64(True):
        x, _ = GENERATORS[name][0](KEY, 101, dtype=jnp.float64)
        chex.assert_type(x, jnp.float64)


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generator_same_key_same_bits_other_key_other_data(name):
    fn, _ = GENERATORS[name]
    (x1, y1), (x2, y2), (x3, _) = fn(KEY, 101), fn(KEY, 101), fn(jax.random.key(1), 101)
    assert _bits(x1) == _bits(x2) and _bits(y1) == _bits(y2)
    assert _bits(x1) != _bits(x3)


@pytest.mark.parametrize("name", list(GENERATORS))
@pytest.mark.parametrize("n", [101, 1000])
def test_generator_classes_balanced(name, n):
    fn, k = GENERATORS[name]
    counts = np.bincount(np.asarray(fn(jax.random.key(n), n)[1]), minlength=k)
    assert len(counts) == k and counts.max() - counts.min() <= 1


def test_xor_noiseless_is_the_truth_table():
    x, y = xor(KEY, 101, noise=0.0)
    assert set(map(tuple, np.asarray(x).tolist())) == {(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)}
    np.testing.assert_array_equal(y, np.logical_xor(x[:, 0], x[:, 1]))


@pytest.mark.parametrize("noise", [0.05, 0.2])
def test_xor_noise_is_the_standard_deviation(noise):
    x, _ = xor(KEY, 1000, noise=noise)
    residual = np.asarray(x) - np.round(np.asarray(x))
    np.testing.assert_allclose(residual.std(), noise, rtol=0.05)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_blobs_noiseless_points_sit_on_the_circle_centres(k):
    x, y = blobs(KEY, 101, centers=k, noise=0.0, radius=2.0)
    angle = 2 * np.pi * np.asarray(y) / k
    np.testing.assert_allclose(x, 2.0 * np.stack([np.cos(angle), np.sin(angle)], -1), atol=1e-6)


def test_blobs_explicit_centres_and_noise():
    centers = jnp.array([[0.0, 0.0], [10.0, -10.0]])
    x, y = blobs(KEY, 1000, centers, noise=0.5)
    residual = np.asarray(x) - np.asarray(centers)[np.asarray(y)]
    np.testing.assert_allclose(residual.std(axis=0), [0.5, 0.5], rtol=0.05)
    np.testing.assert_allclose(residual.mean(axis=0), [0.0, 0.0], atol=0.03)


def test_moons_noiseless_half_circles():
    x, y = moons(KEY, 101, noise=0.0)
    x, y = np.asarray(x, np.float64), np.asarray(y)
    upper, lower = x[y == 0], x[y == 1] - [1.0, 0.5]
    np.testing.assert_allclose(np.hypot(*upper.T), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.hypot(*lower.T), 1.0, atol=1e-6)
    assert (upper[:, 1] >= 0).all() and (lower[:, 1] <= 1e-6).all()


def test_circles_noiseless_lie_on_two_radii():
    x, y = circles(KEY, 101, noise=0.0, factor=0.3)
    radius = np.hypot(*np.asarray(x, np.float64).T)
    np.testing.assert_allclose(radius, np.where(np.asarray(y) == 0, 1.0, 0.3), atol=1e-6)


def test_circles_factor_outside_unit_interval_fails():
    with pytest.raises(ValueError, match=r"circles: factor must be in \[0, 1\); got 1.5"):
        circles(KEY, 10, factor=1.5)


@pytest.mark.parametrize("classes, turns", [(2, 1.0), (3, 0.5)])
def test_spirals_noiseless_follow_the_arm_formula(classes, turns):
    x, y = spirals(KEY, 300, classes=classes, noise=0.0, turns=turns)
    x, y = np.asarray(x, np.float64), np.asarray(y)
    r, angle = np.hypot(*x.T), np.arctan2(x[:, 1], x[:, 0])
    assert (r <= 1.0 + 1e-6).all() and np.bincount(y).tolist() == [300 // classes] * classes
    offset = (angle - 2 * np.pi * (turns * r + y / classes)) / (2 * np.pi)
    np.testing.assert_allclose(offset, np.round(offset), atol=1e-4)


def _linear_accuracy(x, y):
    """Least-squares linear classifier fitted and scored on the same points."""
    features = np.concatenate([np.asarray(x), np.ones((len(x), 1))], axis=1)
    onehot = np.eye(int(y.max()) + 1)[np.asarray(y)]
    w = np.linalg.lstsq(features, onehot, rcond=None)[0]
    return float(((features @ w).argmax(1) == np.asarray(y)).mean())


def test_blobs_linearly_separable_xor_not():
    assert _linear_accuracy(*blobs(KEY, 1000)) > 0.99
    assert _linear_accuracy(*xor(KEY, 1000)) < 0.8


@pytest.mark.parametrize("call, exc, match", [
    (lambda: xor(0, 10), TypeError, r"xor: key must be a single PRNG key .*got int 0"),
    (lambda: moons(jax.random.split(KEY), 10), TypeError, r"moons: key must be a single PRNG key"),
    (lambda: xor(KEY, 0), ValueError, r"xor: n must be a positive integer; got 0"),
    (lambda: blobs(KEY, 2.5), ValueError, r"blobs: n must be a positive integer"),
    (lambda: moons(KEY, 10, noise=-0.1), ValueError, r"moons: noise must be >= 0; got -0.1"),
    (lambda: spirals(KEY, 10, dtype=jnp.int32), TypeError, r"spirals: dtype must be a floating dtype"),
    (lambda: xor(KEY, 10, dtype="nope"), TypeError, r"xor: dtype must be a floating dtype"),
    (lambda: spirals(KEY, 10, classes=1), ValueError, r"spirals: classes must be an integer >= 2; got 1"),
    (lambda: spirals(KEY, 10, turns=-1.0), ValueError, r"spirals: turns must be >= 0"),
    (lambda: blobs(KEY, 10, centers=0), ValueError, r"blobs: centers must be a positive integer"),
    (lambda: blobs(KEY, 10, centers=jnp.ones((3, 3))), ValueError, r"blobs: centers must be .*\(k, 2\)"),
    (lambda: blobs(KEY, 10, centers=jnp.ones((3, 2), jnp.int32)), TypeError, r"blobs: centers must have a floating"),
])
def test_generator_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------------ bundled data

REAL = {"digits": ((1797, 64), 10), "breast_cancer": ((569, 30), 2), "iris": ((150, 4), 3)}


@pytest.mark.parametrize("name", list(REAL))
def test_bundled_data_equals_scikit_learn(name):
    sk_datasets = pytest.importorskip("sklearn.datasets")
    x, y = getattr(datasets, name)()
    shape, k = REAL[name]
    chex.assert_shape([x, y], [shape, shape[:1]])
    chex.assert_type([x, y], [jnp.float32, jnp.int32])
    bunch = getattr(sk_datasets, f"load_{name}")()
    np.testing.assert_array_equal(x, bunch.data.astype(np.float32))
    np.testing.assert_array_equal(y, bunch.target)
    assert int(y.max()) + 1 == k


def test_bundled_data_falls_back_to_scikit_learn_loader(monkeypatch):
    pytest.importorskip("sklearn")
    expected = datasets.iris()

    def unreadable(*args, **kwargs):
        raise OSError("moved")

    monkeypatch.setattr(_datasets_bundled.np, "loadtxt", unreadable)
    chex.assert_trees_all_equal(datasets.iris(), expected)


@pytest.mark.parametrize("call", [datasets.digits, datasets.breast_cancer, datasets.iris,
                                  lambda: load("digits", key=KEY)])
def test_bundled_data_without_scikit_learn_names_the_extra(monkeypatch, call):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now fails
    with pytest.raises(ImportError, match=r'scikit-learn, which is not installed.*pip install "fnn\[data\]"'):
        call()


# ------------------------------------------------------------------------ train_test_split

def _ids(n):
    return jnp.arange(n, dtype=jnp.float32)[:, None], jnp.arange(n) % 3


@pytest.mark.parametrize("n, fraction", [(10, 0.2), (101, 0.25), (5, 0.5)])
def test_split_disjoint_covering_and_sized(n, fraction):
    x, y = _ids(n)
    s = train_test_split(KEY, x, y, test_fraction=fraction)
    train, test = np.asarray(s.x_train[:, 0]).astype(int), np.asarray(s.x_test[:, 0]).astype(int)
    assert len(test) == math.ceil(n * fraction) and len(train) == n - len(test)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(n))
    np.testing.assert_array_equal(s.y_train, train % 3)  # labels travel with their examples
    np.testing.assert_array_equal(s.y_test, test % 3)


def test_split_is_shuffled_and_keyed():
    x, y = _ids(100)
    a, b, c = (train_test_split(k, x, y) for k in (KEY, KEY, jax.random.key(1)))
    chex.assert_trees_all_equal(a, b)
    assert _bits(a.x_test) != _bits(c.x_test)
    assert np.asarray(a.x_train[:, 0]).tolist() != sorted(np.asarray(a.x_train[:, 0]).tolist())


def test_split_stratified_keeps_class_proportions():
    y = jnp.array([0] * 50 + [1] * 30 + [2] * 7)
    x = jnp.arange(87.0)[:, None]
    s = train_test_split(KEY, x, y, test_fraction=0.2, stratify=True)
    assert np.bincount(s.y_test, minlength=3).tolist() == [10, 6, 1]
    assert np.bincount(s.y_train, minlength=3).tolist() == [40, 24, 6]
    assert sorted(np.concatenate([s.x_train[:, 0], s.x_test[:, 0]]).tolist()) == list(range(87))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: train_test_split(KEY, jnp.ones((5, 2)), jnp.ones(4)), ValueError,
     r"train_test_split: y must have as many examples as x \(5\) .*got shape \(4,\)"),
    (lambda: train_test_split(KEY, jnp.ones(()), jnp.ones(())), ValueError, r"train_test_split: x must have at least 1"),
    (lambda: train_test_split(KEY, *_ids(10), test_fraction=0.0), ValueError, r"test_fraction must be in \(0, 1\)"),
    (lambda: train_test_split(KEY, *_ids(10), test_fraction=1.0), ValueError, r"test_fraction must be in \(0, 1\)"),
    (lambda: train_test_split(KEY, *_ids(3), test_fraction=0.1, stratify=True), ValueError,
     r"test_fraction must leave examples in both splits of the 3"),
    (lambda: train_test_split(KEY, jnp.ones((4, 1)), jnp.ones(4), stratify=True), TypeError,
     r"train_test_split: y must have an integer dtype"),
    (lambda: train_test_split(KEY, jnp.ones((4, 1)), jnp.ones((4, 2), jnp.int32), stratify=True), ValueError,
     r"train_test_split: y must be class indices of shape \(n,\)"),
    (lambda: train_test_split(1, *_ids(10)), TypeError, r"train_test_split: key must be a single PRNG key"),
])
def test_split_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------------ standardisation

def test_fit_standardizer_matches_numpy_and_keeps_constant_columns_finite():
    x = np.random.default_rng(0).normal(3.0, 2.0, (500, 3)).astype(np.float32)
    x[:, 1] = 0.1  # constant, and 0.1 is not exact in binary: float32 std is not exactly 0
    stats = fit_standardizer(x)
    np.testing.assert_allclose(stats.mean, x.astype(np.float64).mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.scale, [x[:, 0].std(), 1.0, x[:, 2].std()], rtol=1e-5)
    z = np.asarray(standardize(x, stats))
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), [1.0, 0.0, 1.0], atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_standardize_keeps_dtype(dtype):
    x = jax.random.normal(KEY, (64, 4), dtype) * 3 + 1
    stats = fit_standardizer(x)
    chex.assert_type([stats.mean, stats.scale, standardize(x, stats)], [dtype] * 3)
    chex.assert_tree_all_finite(standardize(x, stats))


def test_standardize_float64_under_x64():
    with jax.enable_x64(True):
        x = jnp.arange(12.0, dtype=jnp.float64).reshape(6, 2)
        chex.assert_type(standardize(x, fit_standardizer(x)), jnp.float64)


def test_digits_constant_pixels_standardise_to_zero():
    pytest.importorskip("sklearn")
    x, _ = datasets.digits()
    stats = fit_standardizer(x)
    constant = np.asarray(x).std(0) == 0
    assert constant.sum() >= 1
    z = standardize(x, stats)
    chex.assert_tree_all_finite(z)
    np.testing.assert_array_equal(np.asarray(z)[:, constant], 0.0)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: fit_standardizer(jnp.ones((4, 2), jnp.int32)), TypeError, r"fit_standardizer: x must have a floating"),
    (lambda: fit_standardizer(jnp.ones((0, 2))), ValueError, r"fit_standardizer: x must hold at least one example"),
    (lambda: fit_standardizer(jnp.ones(())), ValueError, r"fit_standardizer: x must have at least 1"),
    (lambda: standardize(jnp.ones((4, 3)), fit_standardizer(jnp.ones((4, 2)))), ValueError,
     r"standardize: x must have features of shape \(2,\) like stats; got shape \(4, 3\)"),
    (lambda: standardize(jnp.ones((4, 2), jnp.int32), fit_standardizer(jnp.ones((4, 2)))), TypeError,
     r"standardize: x must have a floating"),
])
def test_standardizer_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------------ batches

@pytest.mark.parametrize("n, batch_size", [(10, 4), (12, 4), (3, 8)])
def test_batches_cover_each_example_once_last_batch_ragged(n, batch_size):
    x, y = jnp.arange(n, dtype=jnp.float32)[:, None], jnp.arange(n)
    out = list(batches(KEY, x, y, batch_size))
    sizes = [len(yb) for _, yb in out]
    assert sizes == [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    seen = np.concatenate([np.asarray(yb) for _, yb in out])
    assert sorted(seen.tolist()) == list(range(n))
    for xb, yb in out:
        chex.assert_shape([xb, yb], [(len(yb), 1), (len(yb),)])
        np.testing.assert_array_equal(xb[:, 0], yb)


def test_batches_shuffled_from_key_or_in_order_without():
    x, y = jnp.arange(50.0)[:, None], jnp.arange(50)
    order = lambda key: np.concatenate([np.asarray(yb) for _, yb in batches(key, x, y, 7)]).tolist()  # noqa: E731
    assert order(KEY) == order(KEY) != order(jax.random.key(1))
    assert order(KEY) != list(range(50)) and order(None) == list(range(50))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: batches(KEY, jnp.ones((5, 2)), jnp.ones(5), 0), ValueError, r"batches: batch_size must be a positive"),
    (lambda: batches(KEY, jnp.ones((5, 2)), jnp.ones(6), 2), ValueError, r"batches: y must have as many examples"),
    (lambda: batches("seed", jnp.ones((5, 2)), jnp.ones(5), 2), TypeError, r"batches: key must be a single PRNG"),
])
def test_batches_bad_arguments_fail_at_call_not_iteration(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------------ load

LOADABLE = [("digits", 64, 10), ("breast_cancer", 30, 2), ("iris", 4, 3), ("xor", 2, 2), ("moons", 2, 2),
            ("blobs", 2, 3), ("spirals", 2, 2), ("circles", 2, 2)]


@pytest.mark.parametrize("name, features, num_classes", LOADABLE)
def test_load_returns_a_ready_dataset(name, features, num_classes):
    if name in REAL:
        pytest.importorskip("sklearn")
    data = load(name, key=KEY)
    assert isinstance(data, Dataset) and data.name == name and data.num_classes == num_classes
    n = REAL[name][0][0] if name in REAL else 1000
    n_test = data.y_test.shape[0]
    assert abs(n_test - 0.2 * n) <= num_classes and data.y_train.shape[0] + n_test == n
    chex.assert_shape([data.x_train, data.x_test], [(n - n_test, features), (n_test, features)])
    chex.assert_type([data.x_train, data.y_train, data.x_test, data.y_test],
                     [jnp.float32, jnp.int32, jnp.float32, jnp.int32])
    assert all(isinstance(a, jax.Array) for a in data[:4])
    assert sorted(set(np.asarray(data.y_test).tolist())) == list(range(num_classes))


def test_load_standardises_with_training_statistics_only():
    raw = load("blobs", key=KEY, standardize=False)
    done = load("blobs", key=KEY)
    stats = fit_standardizer(raw.x_train)
    chex.assert_trees_all_close(done.x_train, standardize(raw.x_train, stats), atol=1e-6)
    chex.assert_trees_all_close(done.x_test, standardize(raw.x_test, stats), atol=1e-6)
    np.testing.assert_allclose(np.asarray(done.x_train).mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(done.x_train).std(0), 1.0, atol=1e-5)
    assert np.abs(np.asarray(done.x_test).mean(0)).max() > 1e-3  # the test split was not fitted
    chex.assert_trees_all_equal(done.y_train, raw.y_train)


def test_load_is_deterministic_and_keyed():
    a, b, c = load("moons", key=KEY), load("moons", key=KEY), load("moons", key=jax.random.key(1))
    assert all(_bits(u) == _bits(v) for u, v in zip(a[:4], b[:4]))
    assert _bits(a.x_train) != _bits(c.x_train)


def test_load_forwards_generator_options():
    data = load("spirals", key=KEY, n=300, classes=3, noise=0.0, test_fraction=0.5)
    assert data.num_classes == 3 and data.y_test.shape == (150,)
    assert load("blobs", key=KEY, centers=jnp.zeros((4, 2))).num_classes == 4


def test_load_real_data_unstandardised_keeps_raw_values():
    pytest.importorskip("sklearn")
    data = load("digits", key=KEY, standardize=False)
    assert float(jnp.maximum(data.x_train.max(), data.x_test.max())) == 16.0


@pytest.mark.parametrize("call, exc, match", [
    (lambda: load("mnist", key=KEY), ValueError,
     r"load: name must be one of digits, breast_cancer, iris, xor, moons, blobs, spirals, circles; got 'mnist'"),
    (lambda: load("iris", key=KEY, n=10), TypeError, r"load: options must be empty for the real dataset 'iris'"),
    (lambda: load("xor", key=KEY, classes=3), TypeError, r"classes"),
    (lambda: load("xor", key=None), TypeError, r"load: key must be a single PRNG key"),
    (lambda: load("xor", key=KEY, test_fraction=2.0), ValueError, r"test_fraction must be in \(0, 1\)"),
])
def test_load_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("module", [datasets, _datasets_prep, _datasets_bundled])
def test_docstring_examples_run(module):
    if module is _datasets_bundled:
        pytest.importorskip("sklearn")
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
