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
