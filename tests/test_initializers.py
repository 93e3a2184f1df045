"""Tests for fnn.initializers: same numbers as jax.nn.initializers, variances, errors."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import initializers

# name -> (fnn initializer, jax.nn.initializers reference)
CASES = {
    "glorot_uniform": (initializers.glorot_uniform(), jax.nn.initializers.glorot_uniform()),
    "glorot_normal": (initializers.glorot_normal(), jax.nn.initializers.glorot_normal()),
    "he_uniform": (initializers.he_uniform(), jax.nn.initializers.he_uniform()),
    "he_normal": (initializers.he_normal(), jax.nn.initializers.he_normal()),
    "lecun_uniform": (initializers.lecun_uniform(), jax.nn.initializers.lecun_uniform()),
    "lecun_normal": (initializers.lecun_normal(), jax.nn.initializers.lecun_normal()),
    "normal": (initializers.normal(), jax.nn.initializers.normal()),
    "normal_0.3": (initializers.normal(0.3), jax.nn.initializers.normal(0.3)),
    "uniform": (initializers.uniform(), jax.nn.initializers.uniform()),
    "uniform_2": (initializers.uniform(2.0), jax.nn.initializers.uniform(2.0)),
    "zeros": (initializers.zeros, jax.nn.initializers.zeros),
    "ones": (initializers.ones, jax.nn.initializers.ones),
    "variance_scaling_fan_out_uniform": (initializers.variance_scaling(0.7, "fan_out", "uniform"),
                                 jax.nn.initializers.variance_scaling(0.7, "fan_out", "uniform")),
    "variance_scaling_fan_avg_truncated_normal": (
        initializers.variance_scaling(3.0, "fan_avg", "truncated_normal"),
        jax.nn.initializers.variance_scaling(3.0, "fan_avg", "truncated_normal")),
}

def _assert_same_numbers_as_jax(key, shape, dtype, names=tuple(CASES)):
    for name in names:
        init, reference = CASES[name]
        w = init(key, shape, dtype)
        assert w.shape == shape and w.dtype == dtype, (name, w.shape, w.dtype)
        # Bit for bit: same key, same shape, same dtype, same draw.
        np.testing.assert_array_equal(w, reference(key, shape, dtype), err_msg=name)


# Each new (shape, dtype) compiles jax.random's kernels again (up to a second each), so
# every initializer runs on a dense kernel in float32 and bfloat16; float16 and a
# conv-like kernel (receptive field 2 enters both fans) run the uniform and truncated
# normal paths only.
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_initializer_same_numbers_as_jax(dtype):
    _assert_same_numbers_as_jax(jax.random.key(42), (5, 7), dtype)


def test_variance_scaling_same_numbers_as_jax_float16():
    names = ("glorot_uniform", "he_normal", "variance_scaling_fan_out_uniform", "uniform", "ones")
    _assert_same_numbers_as_jax(jax.random.key(42), (5, 7), jnp.float16, names)


def test_variance_scaling_receptive_field_same_numbers_as_jax():
    # fan_in = 2 * 4, fan_out = 2 * 6: the leading axis multiplies both fans.
    names = ("glorot_uniform", "variance_scaling_fan_out_uniform")
    _assert_same_numbers_as_jax(jax.random.key(42), (2, 4, 6), jnp.float32, names)


def test_initializer_float64_same_numbers_as_jax(x64):
    names = ("glorot_uniform", "he_normal", "variance_scaling_fan_out_uniform", "uniform", "ones")
    _assert_same_numbers_as_jax(jax.random.key(7), (5, 7), jnp.float64, names)


@pytest.mark.parametrize("name", list(CASES))
def test_initializer_default_dtype_is_float32(name):
    assert CASES[name][0](jax.random.key(0), (5, 7)).dtype == jnp.float32


@pytest.mark.parametrize("name", [n for n in CASES if n not in ("zeros", "ones")])
def test_initializer_depends_on_key_only(name):
    init, _ = CASES[name]
    a = init(jax.random.key(0), (5, 7))
    chex.assert_trees_all_equal(a, init(jax.random.key(0), (5, 7)))
    assert not np.array_equal(a, init(jax.random.key(1), (5, 7)))


def test_zeros_and_ones_values():
    np.testing.assert_array_equal(initializers.zeros(jax.random.key(0), (2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(initializers.ones(jax.random.key(0), (4,), jnp.bfloat16),
                                  np.ones(4))


# ---- empirical moments of a large draw -------------------------------------------------

FAN_IN, FAN_OUT = 400, 600  # fan_in, fan_out and fan_avg differ by >= 17%


@pytest.mark.parametrize("name,scale,fan", [
    ("glorot_uniform", 1.0, (FAN_IN + FAN_OUT) / 2), ("glorot_normal", 1.0, (FAN_IN + FAN_OUT) / 2),
    ("he_uniform", 2.0, FAN_IN), ("he_normal", 2.0, FAN_IN),
    ("lecun_uniform", 1.0, FAN_IN), ("lecun_normal", 1.0, FAN_IN),
    ("variance_scaling_fan_out_uniform", 0.7, FAN_OUT),
])
def test_variance_scaling_empirical_variance(name, scale, fan):
    w = np.asarray(CASES[name][0](jax.random.key(3), (FAN_IN, FAN_OUT)), np.float64)
    target = scale / fan
    # 240 000 draws: the variance estimate's relative standard error is about 0.3%.
    assert w.var() == pytest.approx(target, rel=0.02)
    assert abs(w.mean()) < 5 * np.sqrt(target / w.size)
    if name.endswith("uniform"):
        limit = np.sqrt(3 * target)  # U(-limit, limit) has variance limit^2 / 3
        assert np.abs(w).max() <= limit
        assert np.abs(w).max() > 0.99 * limit
    else:
        limit = 2 * np.sqrt(target) / 0.87962566103423978  # truncated at 2 std of the base
        assert np.abs(w).max() <= limit * (1 + 1e-6)
        assert np.abs(w).max() > 0.99 * limit


def test_normal_empirical_std():
    w = np.asarray(initializers.normal(0.3)(jax.random.key(4), (FAN_IN, FAN_OUT)), np.float64)
    assert w.std() == pytest.approx(0.3, rel=0.01)
    assert abs(w.mean()) < 5 * 0.3 / np.sqrt(w.size)


def test_uniform_empirical_range_and_mean():
    w = np.asarray(initializers.uniform(2.0)(jax.random.key(5), (FAN_IN, FAN_OUT)), np.float64)
    assert w.min() >= 0 and w.max() < 2.0
    assert w.mean() == pytest.approx(1.0, rel=0.01)
    assert w.var() == pytest.approx(4.0 / 12, rel=0.02)


# ---- errors ------------------------------------------------------------------------------

def test_normal_negative_stddev_raises():
    with pytest.raises(ValueError, match=r"normal: stddev must be >= 0; got -0.1"):
        initializers.normal(-0.1)


def test_normal_non_number_stddev_raises():
    with pytest.raises(TypeError, match=r"normal: stddev must be a number; got str"):
        initializers.normal("0.1")


def test_uniform_negative_scale_raises():
    with pytest.raises(ValueError, match=r"uniform: scale must be >= 0; got -1"):
        initializers.uniform(-1.0)


@pytest.mark.parametrize("scale", [0.0, -2.0, float("nan")])
def test_variance_scaling_nonpositive_scale_raises(scale):
    with pytest.raises(ValueError, match=r"variance_scaling: scale must be > 0"):
        initializers.variance_scaling(scale, "fan_in", "uniform")


def test_variance_scaling_bad_mode_raises():
    with pytest.raises(ValueError, match=r"variance_scaling: mode must be .*; got 'fan_sum'"):
        initializers.variance_scaling(1.0, "fan_sum", "uniform")


def test_variance_scaling_bad_distribution_raises():
    # jax.nn accepts "normal" (untruncated) too; fnn offers the two the notes use.
    with pytest.raises(ValueError, match=r"variance_scaling: distribution must be .*; got 'cauchy'"):
        initializers.variance_scaling(1.0, "fan_in", "cauchy")


@pytest.mark.parametrize("shape", [(), (5,)])
def test_variance_scaling_shape_without_fans_raises(shape):
    with pytest.raises(ValueError, match=r"variance_scaling: shape must have at least 2 dimensions"):
        initializers.glorot_uniform()(jax.random.key(0), shape)


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (0, 2, 3)])
def test_variance_scaling_zero_fan_raises(shape):
    # jax.nn raises ZeroDivisionError here; fnn names the argument.
    with pytest.raises(ValueError, match=r"variance_scaling: shape must have non-zero fan_in and "
                                         r"fan_out; got shape"):
        initializers.he_normal()(jax.random.key(0), shape)
