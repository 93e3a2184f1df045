"""Fuzzing the numerics: activations, losses and optimizers on any finite input.

Hypothesis draws arrays over a dtype's whole finite range — the extremes (about ±3.4e38
in float32 and bfloat16, ±65504 in float16), subnormals, ±0 — and checks: finite in,
finite out; shape and dtype preserved; softmax sums to 1; losses are >= 0; optimizer
updates stay finite for finite gradients; zero gradients leave the params unchanged.

Where the exact result itself overflows, the input range is bounded and the bound says
why (``log_softmax`` of ``[3e38, -3e38]`` is ``-6e38``, which no float32 holds).
``tests/test_checkpoint.py`` fuzzes ``checkpoint.load`` with random and mutated bytes.
"""

from __future__ import annotations

import math

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from fnn import activations as A
from fnn import losses, optimizers

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
SHAPES = [(1,), (3,), (2, 4), (5, 3)]   # few shapes: each new one compiles every eager op
# too_slow only measures data generation, which a busy CI machine can slow down.
FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _max(dtype) -> float:
    return float(jnp.finfo(dtype).max)


@st.composite
def finite_arrays(draw, dtype, shapes=SHAPES, bound=None, shape=None, subnormals=True):
    """Finite arrays of ``dtype``: extremes, subnormals and zeros drawn on purpose.

    Values are drawn in float32 within ``bound`` (default the dtype's largest finite
    value, which float32 holds exactly for all three dtypes) and rounded to ``dtype``;
    rounding a value <= max cannot overflow.
    """
    finfo = jnp.finfo(dtype)
    top = np.float32(_max(dtype) if bound is None else min(bound, _max(dtype)))
    top = float(top if top <= (bound or math.inf) else np.nextafter(top, np.float32(0)))
    special = [0.0, -0.0, top, -top, float(finfo.tiny), 1.0, -1.0]
    if subnormals:
        special += [float(finfo.smallest_subnormal), -float(finfo.smallest_subnormal)]
    elements = st.one_of(st.floats(-top, top, width=32, allow_subnormal=subnormals),
                         st.sampled_from([s for s in special if abs(s) <= top]))
    shape = draw(st.sampled_from(shapes)) if shape is None else shape
    return jnp.asarray(draw(hnp.arrays(np.float32, shape, elements=elements)), dtype)


def _assert_finite_like(y, x):
    assert y.shape == x.shape and y.dtype == x.dtype, (y.shape, y.dtype, x.shape, x.dtype)
    assert bool(jnp.all(jnp.isfinite(y))), (x, y)


# --- activations --------------------------------------------------------------------------

ELEMENTWISE = {                       # name -> (function, range check on the output)
    "step": (A.step, lambda y: (y == 0) | (y == 1)),
    "sigmoid": (A.sigmoid, lambda y: (y >= 0) & (y <= 1)),
    "tanh": (A.tanh, lambda y: (y >= -1) & (y <= 1)),
    "relu": (A.relu, lambda y: y >= 0),
    "leaky_relu": (A.leaky_relu, lambda y: jnp.isfinite(y)),
    "elu": (A.elu, lambda y: y >= -1),
    "identity": (A.identity, lambda y: jnp.isfinite(y)),
}


@pytest.mark.parametrize("name", list(ELEMENTWISE))
@FUZZ
@given(data=st.data(), dtype=st.sampled_from(list(DTYPES)))
def test_activation_finite_in_finite_out_keeps_shape_and_dtype(name, data, dtype):
    fn, in_range = ELEMENTWISE[name]
    x = data.draw(finite_arrays(DTYPES[dtype]))
    y = fn(x)
    _assert_finite_like(y, x)
    assert bool(jnp.all(in_range(y))), (x, y)


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(list(DTYPES)), alpha=st.floats(-1, 1, width=32))
def test_prelu_finite_in_finite_out_keeps_shape_and_dtype(data, dtype, alpha):
    # |alpha| <= 1 keeps alpha * x within range (a learned slope beyond that is a model
    # problem, not an activation one).
    x = data.draw(finite_arrays(DTYPES[dtype]))
    y = A.prelu(x, alpha)
    _assert_finite_like(y, x)
    assert bool(jnp.all(jnp.where(x >= 0, y == x, True)))


_SUM_TOL = {"float32": 1e-5, "bfloat16": 2 ** -6, "float16": 2 ** -9}


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(list(DTYPES)), axis=st.sampled_from([-1, 0]))
def test_softmax_is_a_distribution_for_any_finite_scores(data, dtype, axis):
    x = data.draw(finite_arrays(DTYPES[dtype], shapes=[(3,), (2, 4), (5, 3)]))
    p = A.softmax(x, axis=axis)
    _assert_finite_like(p, x)
    assert bool(jnp.all((p >= 0) & (p <= 1)))
    total = jnp.sum(p.astype(jnp.float32), axis=axis)
    k = x.shape[axis]
    np.testing.assert_allclose(np.asarray(total), 1.0, atol=k * _SUM_TOL[dtype])


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(list(DTYPES)), axis=st.sampled_from([-1, 0]))
def test_log_softmax_finite_and_nonpositive_while_the_result_is_representable(data, dtype, axis):
    # With |x| <= max/2 the shifted scores x - max(x) stay >= -max; beyond that the
    # exact log-probability itself (e.g. -6e38) is out of range and -inf is its rounding.
    x = data.draw(finite_arrays(DTYPES[dtype], shapes=[(3,), (2, 4), (5, 3)], bound=_max(DTYPES[dtype]) / 2))
    lp = A.log_softmax(x, axis=axis)
    _assert_finite_like(lp, x)
    assert bool(jnp.all(lp <= 0))


# --- losses ----------------------------------------------------------------------------------

N = 6  # examples per batch in the loss properties


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(list(DTYPES)))
def test_mse_finite_nonnegative_scalar_in_the_input_dtype(data, dtype):
    # The mean of squared errors is representable when |error| <= sqrt(max / n); inputs
    # are bounded to half of that.
    dt = DTYPES[dtype]
    bound = math.sqrt(_max(dt) / N) / 2
    p = data.draw(finite_arrays(dt, shape=(N,), bound=bound))
    t = data.draw(finite_arrays(dt, shape=(N,), bound=bound))
    value = losses.mse(p, t)
    assert value.shape == () and value.dtype == dt
    assert bool(jnp.isfinite(value)) and float(value) >= 0


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(list(DTYPES)),
       labels=hnp.arrays(np.float32, (N,), elements=st.sampled_from([0.0, 1.0, 0.25, 0.5])))
def test_binary_cross_entropy_finite_nonnegative_for_any_logits(data, dtype, labels):
    # Each term softplus(z) - y z is at most |z| + log 2, so the mean is representable
    # for |z| <= max / n (float32 sums in float32; float16 and bfloat16 in float32).
    dt = DTYPES[dtype]
    z = data.draw(finite_arrays(dt, shape=(N,), bound=_max(jnp.float32 if dt == jnp.float16 else dt) / (2 * N)))
    value = losses.binary_cross_entropy(z, labels)
    assert value.shape == () and value.dtype == dt
    assert bool(jnp.isfinite(value)) and float(value) >= 0


@FUZZ
@given(data=st.data(), dtype=st.sampled_from(list(DTYPES)),
       labels=hnp.arrays(np.int32, (N,), elements=st.integers(0, 3)))
def test_softmax_cross_entropy_finite_nonnegative_for_any_logits(data, dtype, labels):
    # Each term is at most the score spread plus log K: bounded by max / (2 n) per score.
    dt = DTYPES[dtype]
    z = data.draw(finite_arrays(dt, shape=(N, 4), bound=_max(dt) / (4 * N)))
    value = losses.softmax_cross_entropy(z, labels)
    assert value.shape == () and value.dtype == dt
    assert bool(jnp.isfinite(value)) and float(value) >= 0


@pytest.mark.parametrize("dtype", list(DTYPES))
@FUZZ
@given(data=st.data(), label=st.integers(0, 1))
def test_one_example_losses_are_finite_at_the_extremes(dtype, data, label):
    # A single example at any finite logit: softplus(3e38) = 3e38 is representable.
    dt = DTYPES[dtype]
    z = data.draw(finite_arrays(dt, shape=(1,)))
    bce = losses.binary_cross_entropy(z, jnp.array([label]))
    assert bool(jnp.isfinite(bce)) and float(bce) >= 0
    scores = data.draw(finite_arrays(dt, shape=(1, 3), bound=_max(dt) / 2))
    sce = losses.softmax_cross_entropy(scores, jnp.array([label]))
    assert bool(jnp.isfinite(sce)) and float(sce) >= 0


def test_mean_of_representable_per_example_losses_is_finite():
    z = jnp.array([3e38, 3e38], jnp.float32)
    assert bool(jnp.isfinite(losses.binary_cross_entropy(z, jnp.array([0, 0]))))
    scores = jnp.array([[1.5e38, -1.5e38], [1.5e38, -1.5e38]], jnp.float32)
    assert bool(jnp.isfinite(losses.softmax_cross_entropy(scores, jnp.array([1, 1]))))


# --- optimizers ------------------------------------------------------------------------------

PARAM_SHAPES = {"w": (2, 3), "b": (3,)}


@st.composite
def hyperparameters(draw, name, dtype):
    """An optimizer with reasonable hyperparameters (eps must not round to 0 in float16)."""
    eps = st.floats(1e-4 if dtype == jnp.float16 else 1e-8, 1e-3)
    kwargs = {"learning_rate": draw(st.floats(0.0, 1.0))}
    if name == "momentum":
        kwargs.update(beta=draw(st.floats(0.0, 0.99)), nesterov=draw(st.booleans()))
    elif name == "adagrad":
        kwargs.update(initial_accumulator_value=draw(st.floats(0.0, 1.0)), eps=draw(eps))
    elif name == "rmsprop":
        kwargs.update(decay=draw(st.floats(0.0, 0.999)), eps=draw(eps))
    elif name in ("adam", "adamw"):
        # b2 >= b1 as in practice: with b2 < b1**2, v can decay faster than m and the step
        # m_hat / (sqrt(v_hat) + eps) approaches |g| / eps, beyond float16's range.
        b1 = draw(st.floats(0.0, 0.99))
        kwargs.update(b1=b1, b2=draw(st.floats(b1, 0.999)), eps=draw(eps))
        if name == "adamw":
            kwargs.update(weight_decay=draw(st.floats(0.0, 0.1)))
    note(f"{name}({kwargs})")
    return getattr(optimizers, name)(**kwargs)


def _grad_bound(dtype) -> float:
    # g * g must stay finite (Adam, RMSProp and AdaGrad square it, as optax does); for
    # float16 also (1 - b2) g^2 + ..., so sqrt(max) / 2.
    return math.sqrt(_max(dtype)) / 2


def _tree(data, dtype, bound, subnormals=True):
    return {k: data.draw(finite_arrays(dtype, shape=s, bound=bound, subnormals=subnormals))
            for k, s in PARAM_SHAPES.items()}


def _assert_like_params(tree, params):
    chex.assert_trees_all_equal_shapes_and_dtypes(tree, params)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"])
@FUZZ
@given(data=st.data(), dtype=st.sampled_from(list(DTYPES)), steps=st.integers(1, 3))
def test_optimizer_updates_finite_for_finite_grads_keep_shapes_and_dtypes(name, data, dtype, steps):
    dt = DTYPES[dtype]
    opt = data.draw(hyperparameters(name, dt))
    params = _tree(data, dt, bound=1e4 if dt != jnp.float16 else 100.0)
    state = opt.init(params)
    for _ in range(steps):
        grads = _tree(data, dt, bound=_grad_bound(dt))
        updates, state = opt.update(grads, state, params)
        _assert_like_params(updates, params)
        chex.assert_tree_all_finite(updates)
        for field in state._fields:
            if field != "count":
                _assert_like_params(getattr(state, field), params)
                chex.assert_tree_all_finite(getattr(state, field))
        assert state.count.dtype == jnp.int32
        params = optimizers.apply_updates(params, updates)
        _assert_like_params(params, updates)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw-no-decay"])
@FUZZ
@given(data=st.data(), dtype=st.sampled_from(list(DTYPES)), steps=st.integers(1, 3))
def test_zero_grads_leave_params_unchanged(name, data, dtype, steps):
    dt = DTYPES[dtype]
    if name == "adamw-no-decay":
        opt = optimizers.adamw(data.draw(st.floats(0.0, 1.0)), weight_decay=0.0,
                               eps=1e-4 if dt == jnp.float16 else 1e-8)
    else:
        opt = data.draw(hyperparameters(name, dt))
    # Any finite params, extremes included, but no subnormals: XLA:CPU flushes float32 and
    # bfloat16 subnormals to zero in every op, so there p + 0 == 0 for p = 1e-45.
    params = _tree(data, dt, bound=None, subnormals=False)
    state = opt.init(params)
    new = params
    for _ in range(steps):
        updates, state = opt.update(jax.tree.map(jnp.zeros_like, params), state, new)
        chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, params))
        new = optimizers.apply_updates(new, updates)
    chex.assert_trees_all_equal(new, params)     # equal values (-0.0 == 0.0) and dtypes
    _assert_like_params(new, params)
