"""Tests for fnn.layers: Layer, dense, prelu, serial."""

from __future__ import annotations

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import fnn
from fnn import initializers, layers

KEY = jax.random.key(0)
# Most dense layers here are dense(3) on 4 inputs: each new kernel (shape, dtype)
# compiles the random draw again.


def _ramp(key, shape, dtype=jnp.float32):
    """A deterministic non-constant initializer (no random kernel to compile)."""
    del key
    return jnp.arange(np.prod(shape), dtype=dtype).reshape(shape) / 4 - 0.3


def _x(shape, dtype=jnp.float32, seed=1):
    # NumPy draws: a jax.random draw compiles once per shape, which adds up in a suite.
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


# ---- Layer -----------------------------------------------------------------------------

def test_layer_is_namedtuple_init_apply():
    assert issubclass(layers.Layer, tuple)
    assert layers.Layer._fields == ("init", "apply")
    layer = fnn.dense(3)
    assert isinstance(layer, layers.Layer)
    init, apply = layer  # unpacks like stax's pairs
    assert init is layer.init and apply is layer.apply


# ---- dense -------------------------------------------------------------------------------

def test_dense_init_param_layout():
    params = fnn.dense(3).init(KEY, (4,))
    assert set(params) == {"w", "b"}
    chex.assert_shape(params["w"], (4, 3))
    chex.assert_shape(params["b"], (3,))
    chex.assert_type([params["w"], params["b"]], jnp.float32)
    np.testing.assert_array_equal(params["b"], np.zeros(3))


def test_dense_init_uses_last_axis_of_input_shape():
    params = fnn.dense(3).init(KEY, (5, 4))
    chex.assert_shape(params["w"], (4, 3))


def test_dense_default_w_init_is_glorot_uniform():
    params = fnn.dense(3).init(KEY, (4,))
    w_key, _ = jax.random.split(KEY)
    chex.assert_trees_all_equal(params["w"], jax.nn.initializers.glorot_uniform()(w_key, (4, 3)))


def test_dense_custom_initializers_used():
    params = fnn.dense(3, w_init=initializers.ones, b_init=initializers.normal(1.0)).init(KEY, (4,))
    np.testing.assert_array_equal(params["w"], np.ones((4, 3)))
    _, b_key = jax.random.split(KEY)
    chex.assert_trees_all_equal(params["b"], initializers.normal(1.0)(b_key, (3,)))


class DenseApplyTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(((4,),), ((2, 4),), ((3, 2, 4),))
    def test_dense_apply_matches_manual_computation(self, x_shape):
        layer = fnn.dense(3, b_init=_ramp)
        params = layer.init(KEY, (4,))
        x = _x(x_shape)
        y = self.variant(layer.apply)(params, x)
        chex.assert_shape(y, x_shape[:-1] + (3,))
        w, b = (np.asarray(params[k], np.float64) for k in ("w", "b"))
        expected = np.einsum("...i,ij->...j", np.asarray(x, np.float64), w) + b
        chex.assert_trees_all_close(np.asarray(y, np.float64), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dense_preserves_dtype(dtype):
    layer = fnn.dense(3, dtype=dtype)
    params = layer.init(KEY, (4,))
    chex.assert_type([params["w"], params["b"]], dtype)
    y = jax.jit(layer.apply)(params, _x((2, 4), dtype))
    assert y.dtype == dtype
    g = jax.grad(lambda p: layer.apply(p, _x((2, 4), dtype)).sum())(params)
    chex.assert_type([g["w"], g["b"]], dtype)


def test_dense_float64_under_x64(x64):
    layer = fnn.dense(3, dtype=jnp.float64)
    params = layer.init(KEY, (4,))
    x = _x((2, 4), jnp.float64)
    y = layer.apply(params, x)
    assert params["w"].dtype == jnp.float64 and y.dtype == jnp.float64
    expected = np.asarray(x) @ np.asarray(params["w"]) + np.asarray(params["b"])
    np.testing.assert_allclose(y, expected, rtol=1e-14)


def test_dense_grad_matches_closed_form():
    # L = mean((x W + b - t)^2):  dL/dW = x^T (2/m)(y - t),  dL/db = sum_rows (2/m)(y - t)
    layer = fnn.dense(3)
    params = layer.init(KEY, (4,))
    x, t = _x((5, 4)), _x((5, 3), seed=2)
    grads = jax.jit(jax.grad(lambda p: fnn.losses.mse(layer.apply(p, x), t)))(params)
    delta = 2 * (x @ params["w"] + params["b"] - t) / t.size
    chex.assert_trees_all_close(grads, {"w": x.T @ delta, "b": delta.sum(0)}, rtol=1e-5, atol=1e-6)


def test_dense_vmap_over_init_keys_builds_ensemble():
    layer = fnn.dense(3)
    keys = jax.random.split(KEY, 4)
    ensemble = jax.jit(jax.vmap(layer.init, in_axes=(0, None)), static_argnums=1)(keys, (4,))
    chex.assert_shape([ensemble["w"], ensemble["b"]], [(4, 4, 3), (4, 3)])
    x = _x((5, 4))
    ys = jax.vmap(layer.apply, in_axes=(0, None))(ensemble, x)
    for i, key in enumerate(keys):
        member = layer.init(key, (4,))
        chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], ensemble), member)
        chex.assert_trees_all_close(ys[i], layer.apply(member, x), rtol=1e-6, atol=1e-6)


def test_dense_vmap_over_examples_matches_batch():
    layer = fnn.dense(3)
    params = layer.init(KEY, (4,))
    x = _x((6, 4))
    chex.assert_trees_all_close(jax.vmap(layer.apply, in_axes=(None, 0))(params, x),
                                layer.apply(params, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_dense_wrong_input_size_names_layer_and_shapes(transform):
    layer = fnn.dense(3)
    params = layer.init(KEY, (4,))
    message = re.escape("dense(3): x must have last dimension 4 to match the kernel w of shape "
                        "(4, 3); got x of shape (2, 5)")
    with pytest.raises(ValueError, match=message):
        transform(layer.apply)(params, jnp.ones((2, 5)))


def test_dense_scalar_input_raises():
    params = fnn.dense(3).init(KEY, (4,))
    with pytest.raises(ValueError,
                       match=r"dense\(3\): x must have last dimension 4 .*got x of shape \(\)"):
        fnn.dense(3).apply(params, jnp.float32(1.0))


def test_dense_non_array_input_raises():
    params = fnn.dense(3).init(KEY, (4,))
    with pytest.raises(TypeError, match=r"dense\(3\): x must be an array"):
        fnn.dense(3).apply(params, "x")


@pytest.mark.parametrize("features", [0, -2, 2.5, True, "3", None])
def test_dense_bad_features_raises(features):
    with pytest.raises(ValueError, match=r"dense: features must be a positive integer"):
        fnn.dense(features)


@pytest.mark.parametrize("input_shape", [3, None])
def test_dense_init_non_tuple_input_shape_raises(input_shape):
    with pytest.raises(TypeError, match=r"dense\(2\): input_shape must be a tuple of ints"):
        fnn.dense(2).init(KEY, input_shape)


@pytest.mark.parametrize("input_shape", [(), (0,), (3, -1)])
def test_dense_init_empty_or_nonpositive_input_shape_raises(input_shape):
    with pytest.raises(ValueError, match=r"dense\(2\): input_shape must be a non-empty tuple of "
                                         r"positive ints"):
        fnn.dense(2).init(KEY, input_shape)


# ---- prelu layer -------------------------------------------------------------------------

def test_prelu_layer_params_and_values():
    layer = layers.prelu()
    params = layer.init(KEY, (3,))
    assert set(params) == {"alpha"}
    chex.assert_shape(params["alpha"], ())
    assert params["alpha"] == np.float32(0.25)
    x = jnp.array([[-4.0, 0.0, 4.0]])
    chex.assert_trees_all_close(layer.apply(params, x), jax.nn.leaky_relu(x, 0.25))


def test_prelu_layer_dtype():
    layer = layers.prelu(0.1, dtype=jnp.bfloat16)
    params = layer.init(KEY, (2,))
    assert params["alpha"].dtype == jnp.bfloat16
    assert layer.apply(params, jnp.ones((3, 2), jnp.bfloat16)).dtype == jnp.bfloat16


def test_prelu_layer_grad_wrt_alpha():
    layer = layers.prelu()
    params = layer.init(KEY, (3,))
    x = jnp.array([[-1.0, -2.0, 3.0], [0.5, -0.5, 0.0]])
    grad = jax.grad(lambda p: layer.apply(p, x).sum())(params)
    assert grad["alpha"] == pytest.approx(-3.5)  # sum of negative inputs
    grad_positive = jax.grad(lambda p: layer.apply(p, jnp.abs(x)).sum())(params)
    assert grad_positive["alpha"] == 0


def test_prelu_layer_learns_alpha():
    # Fit the slope to data generated by leaky_relu with slope 0.1, by gradient descent.
    layer = layers.prelu(0.5)
    params = layer.init(KEY, (8,))
    x = _x((32, 8))
    target = jax.nn.leaky_relu(x, 0.1)
    loss = lambda p: fnn.losses.mse(layer.apply(p, x), target)  # noqa: E731

    @jax.jit
    def step(p):
        return jax.tree.map(lambda a, g: a - 1.0 * g, p, jax.grad(loss)(p))

    for _ in range(50):
        params = step(params)
    assert params["alpha"] == pytest.approx(0.1, abs=1e-3)


def test_prelu_layer_non_number_init_alpha_raises():
    with pytest.raises(TypeError, match=r"prelu: init_alpha must be a number; got str"):
        layers.prelu("0.25")


def test_prelu_layer_bad_input_shape_raises():
    with pytest.raises(ValueError, match=r"prelu: input_shape must be a non-empty tuple"):
        layers.prelu().init(KEY, ())


# ---- serial --------------------------------------------------------------------------------

def _net():
    return fnn.serial(fnn.dense(3), layers.prelu(), fnn.dense(4), fnn.relu, fnn.dense(3), jnp.tanh)


def test_serial_params_one_entry_per_layer():
    params = _net().init(KEY, (4,))
    shapes = jax.tree.map(jnp.shape, params)
    assert shapes == [{"w": (4, 3), "b": (3,)}, {"alpha": ()}, {"w": (3, 4), "b": (4,)}, (),
                      {"w": (4, 3), "b": (3,)}, ()]


class SerialApplyTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_serial_apply_matches_manual_composition(self):
        net = _net()
        params = net.init(KEY, (4,))
        x = _x((5, 4))
        y = self.variant(net.apply)(params, x)
        h = jax.nn.leaky_relu(x @ params[0]["w"] + params[0]["b"], 0.25)
        h = jax.nn.relu(h @ params[2]["w"] + params[2]["b"])
        expected = jnp.tanh(h @ params[4]["w"] + params[4]["b"])
        chex.assert_trees_all_close(y, expected, rtol=1e-6, atol=1e-6)


def test_serial_init_splits_key_per_layer():
    params = fnn.serial(fnn.dense(3), fnn.dense(4)).init(KEY, (4,))
    keys = jax.random.split(KEY, 2)
    chex.assert_trees_all_equal(params, [fnn.dense(3).init(keys[0], (4,)),
                                         fnn.dense(4).init(keys[1], (3,))])


def test_serial_grad_and_vmap():
    net = _net()
    params = net.init(KEY, (4,))
    x = _x((5, 4))
    grads = jax.jit(jax.grad(lambda p: jnp.sum(net.apply(p, x) ** 2)))(params)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    chex.assert_tree_all_finite(grads)
    assert grads[1]["alpha"] != 0
    chex.assert_trees_all_close(jax.vmap(net.apply, in_axes=(None, 0))(params, x),
                                net.apply(params, x), rtol=1e-6, atol=1e-6)


def test_serial_nested():
    inner = fnn.serial(fnn.dense(3), fnn.relu)
    net = fnn.serial(inner, fnn.dense(4))
    params = net.init(KEY, (4,))
    x = _x((2, 4))
    expected = inner.apply(params[0], x) @ params[1]["w"] + params[1]["b"]
    chex.assert_trees_all_close(net.apply(params, x), expected)


def test_serial_bfloat16_end_to_end():
    net = fnn.serial(fnn.dense(3, dtype=jnp.bfloat16), layers.prelu(dtype=jnp.bfloat16), fnn.tanh)
    params = net.init(KEY, (4,))
    chex.assert_type(jax.tree.leaves(params), jnp.bfloat16)
    assert net.apply(params, _x((5, 4), jnp.bfloat16)).dtype == jnp.bfloat16


def test_serial_of_only_callables():
    net = fnn.serial(fnn.relu, fnn.sigmoid)
    params = net.init(KEY, (3,))
    assert params == [(), ()]
    x = _x((2, 3))
    chex.assert_trees_all_close(net.apply(params, x), jax.nn.sigmoid(jax.nn.relu(x)))


def test_serial_empty_raises():
    with pytest.raises(ValueError, match=r"serial: layers must contain at least one layer; got none"):
        fnn.serial()


@pytest.mark.parametrize("bad", [3, "relu", None])
def test_serial_non_callable_raises(bad):
    with pytest.raises(TypeError, match=r"serial: layers\[1\] must be a Layer or a callable"):
        fnn.serial(fnn.dense(2), bad)


@pytest.mark.parametrize("params", [[{"w": 1}], {"w": 1}, None])
def test_serial_apply_wrong_params_raises(params):
    net = fnn.serial(fnn.dense(2), fnn.relu)
    with pytest.raises(ValueError, match=r"serial: params must be a list of 2 per-layer params"):
        net.apply(params, jnp.ones((1, 3)))


def test_serial_wrong_input_size_names_the_dense_layer():
    net = fnn.serial(fnn.dense(4), fnn.relu, fnn.dense(2))
    params = net.init(KEY, (3,))
    with pytest.raises(ValueError, match=re.escape("dense(4): x must have last dimension 3")):
        jax.jit(net.apply)(params, jnp.ones((2, 5)))


def test_serial_init_bad_input_shape_raises():
    with pytest.raises(TypeError, match=r"serial: input_shape must be a tuple of ints"):
        fnn.serial(fnn.relu).init(KEY, 3)
