"""Tests for fnn.metrics.accuracy: multi-class and binary rules, dtype, errors."""

from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import metrics


def _logits(shape, dtype=jnp.float32):
    return jnp.asarray(np.random.default_rng(0).standard_normal(shape), dtype)


class AccuracyTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_accuracy_multiclass_is_argmax_agreement(self):
        z = _logits((50, 4))
        y = jnp.asarray(np.random.default_rng(1).integers(0, 4, 50), jnp.int32)
        value = self.variant(metrics.accuracy)(z, y)
        chex.assert_shape(value, ())
        assert value.dtype == jnp.float32
        expected = np.mean(np.argmax(np.asarray(z), -1) == np.asarray(y))
        assert 0 < expected < 1  # the data must exercise both outcomes
        assert float(value) == pytest.approx(expected, abs=1e-7)

    @chex.variants(with_jit=True, without_jit=True)
    def test_accuracy_binary_thresholds_logits_at_zero(self):
        z = jnp.array([2.0, -1.0, 0.0, -0.0, 0.5, -3.0])
        y = jnp.array([1, 0, 1, 1, 0, 1])
        # z >= 0 predicts 1 (sigmoid(z) >= 0.5), so 0.0 and -0.0 count as class 1.
        assert float(self.variant(metrics.accuracy)(z, y)) == pytest.approx(4 / 6)


@pytest.mark.parametrize("label_shape", [(6,), (6, 1)])
def test_accuracy_binary_single_output_column(label_shape):
    z = jnp.array([[2.0], [-1.0], [0.0], [0.5], [-3.0], [1.0]])
    y = jnp.array([1, 0, 1, 0, 1, 1]).reshape(label_shape)
    assert float(metrics.accuracy(z, y)) == pytest.approx(4 / 6)


def test_accuracy_binary_accepts_bool_and_float_labels():
    z = jnp.array([1.5, -0.5, 0.0])
    assert float(metrics.accuracy(z, jnp.array([True, False, False]))) == pytest.approx(2 / 3)
    assert float(metrics.accuracy(z, jnp.array([1.0, 0.0, 0.0]))) == pytest.approx(2 / 3)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_accuracy_is_float32_for_low_precision_logits(dtype):
    # 1/3 is not exact in bfloat16 (0.333984); the count must not be rounded to it.
    z = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype)
    value = metrics.accuracy(z, jnp.array([0, 0, 1]))
    assert value.dtype == jnp.float32
    assert float(value) == pytest.approx(1 / 3, abs=1e-7)


def test_accuracy_is_float32_under_x64(x64):
    value = metrics.accuracy(_logits((5, 3), jnp.float64), jnp.zeros(5, jnp.int64))
    assert value.dtype == jnp.float32


def test_accuracy_leading_batch_axes():
    z = _logits((3, 4, 5))
    y = jnp.argmax(z, -1).at[0, 0].set(0 if jnp.argmax(z[0, 0]) else 1)
    assert float(metrics.accuracy(z, y)) == pytest.approx(11 / 12)


def test_accuracy_uint8_labels_with_many_classes():
    # Regression: argmax was cast to the labels' dtype, so class 256 wrapped to 0 in uint8.
    z = jnp.zeros((1, 300)).at[0, 256].set(5.0)
    assert float(metrics.accuracy(z, jnp.array([0], jnp.uint8))) == 0.0


def test_accuracy_labels_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"accuracy: labels must have shape \(8,\) \(class indices\) "
                                         r"or \(8, 3\) \(binary\); got shape \(7,\) for logits"):
        metrics.accuracy(jnp.zeros((8, 3)), jnp.zeros(7, jnp.int32))


def test_accuracy_non_array_logits_raise():
    with pytest.raises(TypeError, match=r"accuracy: logits must be an array"):
        metrics.accuracy("logits", jnp.zeros(3))


def test_accuracy_non_array_labels_raise():
    with pytest.raises(TypeError, match=r"accuracy: labels must be an array"):
        metrics.accuracy(jnp.zeros(3), None)


# --- precision, recall, f1, confusion_matrix, top_k_accuracy against scikit-learn ------

sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn is in the test extra")
import functools  # noqa: E402
import warnings  # noqa: E402

import jax  # noqa: E402

_K = 6  # labels use classes 0-3 only; the logits rarely pick class 5: absent classes exist


def _multiclass(seed=0, n=60):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, _K)).astype(np.float32)
    z[:, 5] -= 3.0
    y = rng.integers(0, 4, n).astype(np.int32)
    return jnp.asarray(z), jnp.asarray(y)


def _sklearn(name, y, p, labels, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on the zero divisions under test
        return getattr(sk, f"{name}_score")(y, p, labels=labels, **kw)


_SCORES = {"precision": metrics.precision, "recall": metrics.recall, "f1": metrics.f1}


@pytest.mark.parametrize("zero_division", [0.0, 1.0, float("nan")])
@pytest.mark.parametrize("average", ["macro", "micro", None])
@pytest.mark.parametrize("name", sorted(_SCORES))
def test_scores_match_sklearn_multiclass_with_absent_classes(name, average, zero_division):
    z, y = _multiclass()
    predicted = np.argmax(np.asarray(z), -1)
    assert not {4, 5} & set(np.asarray(y).tolist())  # classes 4 and 5 never occur
    value = jax.jit(functools.partial(_SCORES[name], average=average, zero_division=zero_division))(z, y)
    expected = _sklearn(name, np.asarray(y), predicted, list(range(_K)), average=average,
                        zero_division=zero_division)
    assert value.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(value), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("average", ["binary", "macro", "micro"])
@pytest.mark.parametrize("name", sorted(_SCORES))
def test_scores_match_sklearn_binary(name, average):
    rng = np.random.default_rng(3)
    z = jnp.asarray(rng.standard_normal((40, 1)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, 40), jnp.int32)
    value = _SCORES[name](z, y, average=average)
    expected = _sklearn(name, np.asarray(y), (np.asarray(z)[:, 0] >= 0).astype(int), [0, 1],
                        average=average)
    assert float(value) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("name", sorted(_SCORES))
def test_scores_class_never_predicted_nor_present_is_zero_division(name):
    # Every example is class 0 and predicted 0: class 1 has no TP+FP and no TP+FN.
    z, y = jnp.array([[1.0, 0.0], [2.0, 0.0]]), jnp.array([0, 0])
    per_class = _SCORES[name](z, y, average=None, zero_division=1.0)
    np.testing.assert_array_equal(np.asarray(per_class), [1.0, 1.0])
    assert float(_SCORES[name](z, y)) == 0.5  # default zero_division=0: (1 + 0) / 2


def test_f1_micro_equals_accuracy():
    z, y = _multiclass(seed=5)
    assert float(metrics.f1(z, y, average="micro")) == pytest.approx(float(metrics.accuracy(z, y)))


def test_f1_usable_as_fit_metric():
    import fnn
    x, y = fnn.datasets.blobs(jax.random.key(0), n=64, centers=3)
    model = fnn.mlp([8, 3])
    params = model.init(jax.random.key(1), x.shape[1:])
    result = fnn.fit(model, params, fnn.optimizers.adam(1e-2), x, y, epochs=2, batch_size=16,
                     key=jax.random.key(2), eval_data=(x, y), progress=False,
                     metrics={"f1": metrics.f1, "top2": functools.partial(metrics.top_k_accuracy, k=2)})
    final = metrics.f1(model.apply(result.params, x), y)
    assert float(result.history["eval_f1"][-1]) == pytest.approx(float(final), abs=1e-6)
    assert result.history["eval_top2"].shape == (2,)


@pytest.mark.parametrize("binary", [False, True])
def test_confusion_matrix_matches_sklearn(binary):
    if binary:
        rng = np.random.default_rng(4)
        z, y = jnp.asarray(rng.standard_normal(30), jnp.float32), jnp.asarray(rng.integers(0, 2, 30))
        predicted, k = (np.asarray(z) >= 0).astype(int), 2
    else:
        (z, y), k = _multiclass(seed=1), _K
        predicted = np.argmax(np.asarray(z), -1)
    cm = jax.jit(metrics.confusion_matrix)(z, y)
    assert cm.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(cm), sk.confusion_matrix(np.asarray(y), predicted,
                                                                       labels=list(range(k))))


def test_confusion_matrix_under_jit_drops_out_of_range_labels():
    z = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    cm = jax.jit(metrics.confusion_matrix)(z, jnp.array([0, 7, 1]))
    np.testing.assert_array_equal(np.asarray(cm), [[1, 0], [0, 1]])


def test_confusion_matrix_num_classes_mismatch_raises():
    with pytest.raises(ValueError, match=r"confusion_matrix: num_classes must equal the 3 classes"):
        metrics.confusion_matrix(jnp.zeros((4, 3)), jnp.zeros(4, jnp.int32), num_classes=4)


@pytest.mark.parametrize("k", [1, 2, 3, _K])
def test_top_k_accuracy_matches_sklearn(k):
    z, y = _multiclass(seed=2)
    value = jax.jit(metrics.top_k_accuracy, static_argnums=2)(z, y, k)
    expected = sk.top_k_accuracy_score(np.asarray(y), np.asarray(z), k=k, labels=list(range(_K)))
    assert float(value) == pytest.approx(expected, abs=1e-7)


def test_top_k_accuracy_counts_ties_in_favour():
    assert float(metrics.top_k_accuracy(jnp.array([[1.0, 1.0, 1.0]]), jnp.array([2]), k=1)) == 1.0


@pytest.mark.parametrize("k", [0, 4])
def test_top_k_accuracy_k_out_of_range_raises(k):
    with pytest.raises(ValueError, match=r"top_k_accuracy: k must be"):
        metrics.top_k_accuracy(jnp.zeros((2, 3)), jnp.zeros(2, jnp.int32), k)


def test_top_k_accuracy_binary_logits_raise():
    with pytest.raises(ValueError, match=r"top_k_accuracy: logits must have shape \(\.\.\., K\)"):
        metrics.top_k_accuracy(jnp.zeros(4), jnp.zeros(4, jnp.int32), 1)


def test_f1_unknown_average_raises():
    with pytest.raises(ValueError, match=r'f1: average must be "macro", "micro", "binary" or None; '
                                         r"got 'weighted'"):
        metrics.f1(jnp.zeros((2, 3)), jnp.zeros(2, jnp.int32), average="weighted")


def test_precision_bad_zero_division_raises():
    with pytest.raises(ValueError, match=r"precision: zero_division must be 0.0, 1.0 or nan"):
        metrics.precision(jnp.zeros((2, 3)), jnp.zeros(2, jnp.int32), zero_division="warn")


def test_recall_binary_average_for_multiclass_raises():
    with pytest.raises(ValueError, match=r'recall: average must be "macro", "micro" or None for 3'):
        metrics.recall(jnp.zeros((2, 3)), jnp.zeros(2, jnp.int32), average="binary")


def test_f1_out_of_range_labels_raise():
    with pytest.raises(ValueError, match=r"f1: labels must be class indices in \[0, 3\)"):
        metrics.f1(jnp.zeros((2, 3)), jnp.array([0, 3]))
