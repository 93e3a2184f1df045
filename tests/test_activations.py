"""Tests for fnn.activations: values and gradients against jax.nn, kinks, ranges, errors."""

from __future__ import annotations

import functools

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import fnn
from fnn import activations

# name -> (fnn function, reference). prelu's reference is leaky_relu with the same slope;
# step's is its closed form (and its gradient, zero, comes out of the comparison too).
CASES = {
    "sigmoid": (fnn.sigmoid, jax.nn.sigmoid),
    "tanh": (fnn.tanh, jnp.tanh),
    "relu": (fnn.relu, jax.nn.relu),
    "leaky_relu": (fnn.leaky_relu, jax.nn.leaky_relu),
    "leaky_relu_0.2": (functools.partial(fnn.leaky_relu, negative_slope=0.2),
                       functools.partial(jax.nn.leaky_relu, negative_slope=0.2)),
    "prelu_0.1": (lambda x: fnn.prelu(x, 0.1), lambda x: jax.nn.leaky_relu(x, 0.1)),
    "elu": (fnn.elu, jax.nn.elu),
    "elu_0.5": (functools.partial(fnn.elu, alpha=0.5), functools.partial(jax.nn.elu, alpha=0.5)),
    "softmax": (fnn.softmax, jax.nn.softmax),
    "softmax_axis0": (functools.partial(fnn.softmax, axis=0),
                      functools.partial(jax.nn.softmax, axis=0)),
    "log_softmax": (fnn.log_softmax, jax.nn.log_softmax),
    "log_softmax_axis0": (functools.partial(fnn.log_softmax, axis=0),
                          functools.partial(jax.nn.log_softmax, axis=0)),
    "identity": (fnn.identity, lambda x: x),
    "step": (fnn.step, lambda x: jnp.where(x >= 0, 1.0, 0.0).astype(x.dtype)),
}

# Relative/absolute tolerance of "the same quantity computed two ways in this dtype".
TOL = {
    "float16": {"rtol": 2e-3, "atol": 2e-3},
    "bfloat16": {"rtol": 1.6e-2, "atol": 1.6e-2},
    "float32": {"rtol": 2e-6, "atol": 2e-7},
    "float64": {"rtol": 1e-13, "atol": 1e-15},
}


def _inputs(dtype: str) -> jax.Array:
    """(3, 11): a row of extremes (kink at 0, tiny, huge) and two random rows."""
    info = jnp.finfo(dtype)
    # Huge values whose differences stay representable, so the exact answer is finite.
    huge = {"float16": 3e4, "bfloat16": 1e30, "float32": 1e30, "float64": 1e300}[dtype]
    extremes = np.array([-huge, -1e4, -1.0, -float(info.tiny), -0.0, 0.0, float(info.tiny),
                         1e-3, 1.0, 1e4, huge])
    rand = np.random.default_rng(0).standard_normal((2, extremes.size)) * 4
    return jnp.asarray(np.vstack([extremes, rand]), dtype)


def _assert_close(actual, expected, dtype):
    chex.assert_trees_all_close(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                                **TOL[dtype])


def _value_and_vjp(f, x, ct):
    y, vjp = jax.vjp(f, x)
    return y, vjp(ct)[0]


# Outside float32 the extra slopes and axes add compile time but no new numerics.
CORE = ("sigmoid", "tanh", "relu", "leaky_relu", "prelu_0.1", "elu", "softmax", "log_softmax",
        "identity", "step")


def _all_values_and_grads(functions, names, x, ct):
    """{name: (f(x), vjp of f at x with cotangent ct)} for the cases, in one program."""
    return {name: _value_and_vjp(CASES[name][functions], x, ct) for name in names}


def _check_against_reference(results, x, ct, dtype):
    names = tuple(results)
    expected = jax.jit(_all_values_and_grads, static_argnums=(0, 1))(1, names, x, ct)
    for name in names:
        for what, actual, reference in zip(("value", "grad"), results[name], expected[name]):
            try:
                chex.assert_shape(actual, x.shape)
                chex.assert_type(actual, jnp.dtype(dtype))
                chex.assert_tree_all_finite(actual)
                _assert_close(actual, reference, dtype)
            except AssertionError as e:
                raise AssertionError(f"{name} {what} in {dtype}: {e}") from e


def _cotangent(x):
    # A random cotangent, so softmax's Jacobian is probed off its null direction.
    return jnp.asarray(np.random.default_rng(1).standard_normal(x.shape), x.dtype)


class ReferenceTest(chex.TestCase):
    """Every activation against jax.nn (or its closed form): value and gradient.

    One program evaluates all cases per dtype (compiling 14 small programs per dtype and
    variant would dominate the suite's time); a failure names the case.
    """

    @chex.variants(with_jit=True, without_jit=True)
    def test_activation_matches_reference(self):
        x = _inputs("float32")
        results = self.variant(_all_values_and_grads, static_argnums=(0, 1))(
            0, tuple(CASES), x, _cotangent(x))
        _check_against_reference(results, x, _cotangent(x), "float32")


# Low precision under jit only: eager op-by-op runs the same primitives in the same dtype.
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_activation_low_precision_matches_reference(dtype):
    x = _inputs(dtype)
    results = jax.jit(_all_values_and_grads, static_argnums=(0, 1))(0, CORE, x, _cotangent(x))
    _check_against_reference(results, x, _cotangent(x), dtype)


def test_activation_float64_matches_reference(x64):
    x = _inputs("float64")
    results = jax.jit(_all_values_and_grads, static_argnums=(0, 1))(0, CORE, x, _cotangent(x))
    _check_against_reference(results, x, _cotangent(x), "float64")


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "leaky_relu", "prelu_0.1", "elu", "softmax",
                                  "log_softmax"])
def test_activation_integer_input_becomes_float(name):
    # Regression: the slope 0.01 used to be cast to int32 (0), so leaky_relu(-2) was 0.
    f, _ = CASES[name]
    x = jnp.array([[-3, -1, 0, 2]])
    y = f(x)
    assert y.dtype == jnp.float32
    chex.assert_trees_all_close(y, f(x.astype(jnp.float32)))


@pytest.mark.parametrize("f", [fnn.relu, fnn.step, fnn.identity])
def test_activation_integer_input_stays_integer(f):
    x = jnp.array([-3, 0, 2])
    assert f(x).dtype == jnp.int32
    np.testing.assert_array_equal(f(x), f(x.astype(jnp.float32)).astype(jnp.int32))


# ---- kinks: the derivative at 0 is a deliberate choice, equal to jax.nn's -------------

def _grad_at(f, x, dtype=jnp.float32):
    return jax.grad(lambda x: f(x).sum())(jnp.asarray(x, dtype))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_relu_grad_at_zero_is_zero(dtype):
    assert _grad_at(fnn.relu, 0.0, dtype) == 0
    assert _grad_at(jax.nn.relu, 0.0, dtype) == 0
    # The naive max(x, 0) splits the subgradient: what fnn.relu must not do.
    assert _grad_at(lambda x: jnp.maximum(x, 0), 0.0, dtype) == 0.5


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_leaky_relu_grad_at_zero_is_one(dtype):
    assert _grad_at(fnn.leaky_relu, 0.0, dtype) == 1
    assert _grad_at(fnn.leaky_relu, -1.0, dtype) == jnp.asarray(0.01, dtype)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0])
def test_elu_grad_at_zero_is_alpha(alpha):
    assert _grad_at(functools.partial(fnn.elu, alpha=alpha), 0.0) == alpha
    assert _grad_at(functools.partial(jax.nn.elu, alpha=alpha), 0.0) == alpha


def test_prelu_grad_at_zero_is_one():
    assert _grad_at(lambda x: fnn.prelu(x, 0.3), 0.0) == 1
    assert _grad_at(lambda x: fnn.prelu(x, 0.3), -2.0) == pytest.approx(0.3)


def test_step_grad_is_zero_everywhere():
    x = jnp.array([-1e30, -1.0, -1e-30, 0.0, 1e-30, 1.0, 1e30])
    np.testing.assert_array_equal(fnn.step(x), [0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(_grad_at(fnn.step, x), np.zeros(7))


def test_prelu_grad_wrt_alpha_is_negative_part_of_x():
    x = jnp.array([-3.0, -0.5, 0.0, 2.0])
    g = jax.grad(lambda a: fnn.prelu(x, a).sum())(jnp.float32(0.25))
    assert g == pytest.approx(-3.5)  # sum of x over x < 0; x >= 0 contributes 0


def test_prelu_grad_wrt_per_feature_alpha():
    x = jnp.array([[-1.0, 2.0, -4.0], [-2.0, -1.0, 3.0]])
    alpha = jnp.full((3,), 0.25)
    g = jax.grad(lambda a: fnn.prelu(x, a).sum())(alpha)
    chex.assert_trees_all_close(g, jnp.array([-3.0, -1.0, -4.0]))


def test_prelu_keeps_x_dtype_with_float32_alpha():
    x = jnp.array([-2.0, 1.0], jnp.bfloat16)
    assert fnn.prelu(x, jnp.float32(0.25)).dtype == jnp.bfloat16


# ---- derivative ranges (the vanishing-gradient bounds of the notes) ------------------

def test_sigmoid_derivative_at_most_quarter_with_max_at_zero():
    x = jnp.arange(-3000, 3001) / 100  # contains 0 exactly
    d = jax.vmap(jax.grad(fnn.sigmoid))(x)
    assert float(d.max()) == 0.25
    assert float(x[jnp.argmax(d)]) == 0.0
    assert bool((d >= 0).all())
    s = fnn.sigmoid(x)
    chex.assert_trees_all_close(d, s * (1 - s), atol=1e-7)


def test_tanh_derivative_at_most_one_with_max_at_zero():
    x = jnp.arange(-3000, 3001) / 100
    d = jax.vmap(jax.grad(fnn.tanh))(x)
    assert float(d.max()) == 1.0
    assert float(x[jnp.argmax(d)]) == 0.0
    chex.assert_trees_all_close(d, 1 - fnn.tanh(x) ** 2, atol=1e-6)


# ---- finite differences in float64, away from kinks ---------------------------------

def _away_from_kinks(shape):
    x = jnp.asarray(np.random.default_rng(2).standard_normal(shape) * 3, jnp.float64)
    return jnp.where(jnp.abs(x) < 0.1, 0.5, x)


def test_activation_check_grads_float64(x64):
    # One stacked program for all cases: a check per case costs a compilation each.
    names = [name for name in CASES if name != "step"]
    stacked = jax.jit(lambda x: jnp.stack([CASES[name][0](x) for name in names]))
    check_grads(stacked, (_away_from_kinks((3, 5)),), order=1, modes=("fwd", "rev"), eps=1e-6)


def test_prelu_check_grads_wrt_alpha_float64(x64):
    x = jnp.array([[-1.5, 2.0, -0.3], [0.7, -2.2, 1.1]], jnp.float64)
    check_grads(jax.jit(lambda a: fnn.prelu(x, a)), (jnp.array([0.2, 0.5, 1.5]),), order=1,
                modes=("fwd", "rev"))


# ---- stability at any magnitude ------------------------------------------------------

def test_softmax_of_large_scores_is_one_hot():
    np.testing.assert_array_equal(fnn.softmax(jnp.array([1000.0, 0.0])), [1.0, 0.0])
    np.testing.assert_array_equal(fnn.log_softmax(jnp.array([1000.0, 0.0])), [0.0, -1000.0])


def test_sigmoid_saturates_without_nan():
    np.testing.assert_array_equal(fnn.sigmoid(jnp.array([-1000.0, 1000.0])), [0.0, 1.0])
    np.testing.assert_array_equal(jax.vmap(jax.grad(fnn.sigmoid))(jnp.array([-1e30, 1e30])), [0, 0])


def test_elu_grad_finite_for_huge_positive_input():
    # The untaken branch expm1(1e30) = inf must not leak NaN into the gradient.
    assert _grad_at(fnn.elu, 1e30) == 1.0
    assert _grad_at(fnn.elu, 100.0) == 1.0


# ---- hypothesis properties -----------------------------------------------------------

# Few distinct shapes: every new shape costs a compilation of each eager op.
_scores = hnp.arrays(np.float32, st.sampled_from([(1, 2), (4, 3), (2, 7)]),
                     elements=st.floats(-1e4, 1e4, width=32))
_HUGE = float(np.float32(1e30))
_huge_scores = hnp.arrays(np.float32, st.sampled_from([(2,), (5,)]),
                          elements=st.floats(-_HUGE, _HUGE, width=32))


@settings(max_examples=25, deadline=None)
@given(_scores)
def test_softmax_sums_to_one(x):
    p = fnn.softmax(x)
    chex.assert_tree_all_finite(p)
    assert bool(((p >= 0) & (p <= 1)).all())
    chex.assert_trees_all_close(p.sum(-1), jnp.ones(x.shape[0]), atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(_huge_scores)
def test_softmax_sums_to_one_for_huge_scores(x):
    p = fnn.softmax(x)
    chex.assert_tree_all_finite(p)
    chex.assert_trees_all_close(p.sum(), 1.0, atol=1e-5)
    chex.assert_tree_all_finite(fnn.log_softmax(x))


@settings(max_examples=25, deadline=None)
@given(st.floats(-50, 50, width=32), st.floats(-50, 50, width=32))
def test_softmax_two_classes_is_sigmoid_of_difference(a, b):
    p = fnn.softmax(jnp.array([a, b], jnp.float32))
    chex.assert_trees_all_close(p[0], fnn.sigmoid(jnp.float32(a) - jnp.float32(b)), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(_scores)
def test_log_softmax_nonpositive_and_logs_softmax(x):
    lp = fnn.log_softmax(x)
    chex.assert_tree_all_finite(lp)
    assert bool((lp <= 0).all())
    chex.assert_trees_all_close(jnp.exp(lp), fnn.softmax(x), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(hnp.arrays(np.int32, st.sampled_from([(2,), (5,)]), elements=st.integers(-640, 640)),
       st.integers(-1000, 1000))
def test_softmax_invariant_to_shift(eighths, c):
    # Multiples of 1/8 plus an integer shift are exact in float32, so only the
    # softmax itself can make the two sides differ.
    x = jnp.asarray(eighths, jnp.float32) / 8
    chex.assert_trees_all_close(fnn.softmax(x + c), fnn.softmax(x), atol=1e-6)
    chex.assert_trees_all_close(fnn.log_softmax(x + c), fnn.log_softmax(x), atol=1e-6)


# ---- vmap ----------------------------------------------------------------------------

def test_activation_vmap_matches_batched_call():
    # axis=0 cases normalise across the batch, which vmap by design changes.
    names = [name for name in CASES if not name.endswith("axis0")]
    x = _inputs("float32")
    mapped = jax.jit(jax.vmap(lambda row: {name: CASES[name][0](row) for name in names}))(x)
    for name in names:
        chex.assert_trees_all_close(mapped[name], CASES[name][0](x), rtol=1e-6, atol=1e-7,
                                    custom_message=name)


def test_prelu_vmap_over_alpha():
    x = jnp.array([-2.0, 1.0, -0.5])
    alphas = jnp.array([0.0, 0.1, 0.5])
    ys = jax.vmap(fnn.prelu, in_axes=(None, 0))(x, alphas)
    chex.assert_trees_all_close(ys, jnp.stack([jax.nn.leaky_relu(x, float(a)) for a in alphas]))


# ---- get(name) and errors ------------------------------------------------------------

@pytest.mark.parametrize("name", activations.names())
def test_get_returns_the_named_function(name):
    assert activations.get(name) is getattr(fnn, name)
    assert activations.get(name) is getattr(activations, name)


def test_get_names_cover_the_design():
    assert set(activations.names()) == {"step", "sigmoid", "tanh", "relu", "leaky_relu", "prelu",
                                        "elu", "softmax", "log_softmax", "identity"}


def test_get_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"get: name must be one of .*; got 'relu6'") as info:
        activations.get("relu6")
    for name in activations.names():
        assert name in str(info.value)


def test_get_non_string_raises_type_error():
    with pytest.raises(TypeError, match="get: name must be a string; got function"):
        activations.get(fnn.relu)


@pytest.mark.parametrize("f", [fnn.step, fnn.sigmoid, fnn.tanh, fnn.relu, fnn.leaky_relu,
                               fnn.elu, fnn.softmax, fnn.log_softmax, fnn.identity,
                               lambda x: fnn.prelu(x, 0.1)])
@pytest.mark.parametrize("bad", ["0.5", None, {"x": 1.0}])
def test_activation_rejects_non_array_x(f, bad):
    with pytest.raises(TypeError, match=r": x must be an array"):
        f(bad)


@pytest.mark.parametrize("x_shape,alpha_shape", [((2, 3), (4,)), ((3,), (2, 3)), ((), (3,))])
def test_prelu_alpha_that_does_not_broadcast_raises(x_shape, alpha_shape):
    with pytest.raises(ValueError, match=r"prelu: alpha must broadcast to x of shape .*; got shape"):
        fnn.prelu(jnp.ones(x_shape), jnp.ones(alpha_shape))
