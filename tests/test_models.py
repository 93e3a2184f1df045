"""Tests for fnn.models.mlp: layout, forward pass, default inits, dtypes, errors."""

from __future__ import annotations

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import initializers, models

KEY = jax.random.key(0)
# Few distinct kernel shapes across the file: each new (shape, dtype) compiles the
# random draws again. Two-layer nets are [5, 3] on 4 inputs, three-layer [6, 5, 3].


def _x(shape, dtype=jnp.float32):
    # NumPy draws: a jax.random draw compiles once per shape, which adds up in a suite.
    return jnp.asarray(np.random.default_rng(1).standard_normal(shape), dtype)


def _kernel_keys(key, n_layers):
    """The key each dense layer's kernel is drawn from: mlp splits per layer, dense splits w/b."""
    return [jax.random.split(k)[0] for k in jax.random.split(key, n_layers)]


def test_mlp_param_layout():
    params = fnn.mlp([6, 5, 3]).init(KEY, (4,))
    assert isinstance(params, list) and len(params) == 3
    assert jax.tree.map(jnp.shape, params) == [
        {"w": (4, 6), "b": (6,)}, {"w": (6, 5), "b": (5,)}, {"w": (5, 3), "b": (3,)}]
    chex.assert_type(jax.tree.leaves(params), jnp.float32)


def test_mlp_init_accepts_int_input_size():
    chex.assert_trees_all_equal(fnn.mlp([5, 3]).init(KEY, 4), fnn.mlp([5, 3]).init(KEY, (4,)))


class MlpApplyTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_mlp_apply_matches_manual_forward(self):
        ramp = lambda key, shape, dtype: jnp.linspace(-1, 1, shape[0], dtype=dtype)  # noqa: E731
        model = fnn.mlp([6, 5, 3], activation="tanh", b_init=ramp)
        params = model.init(KEY, (4,))
        x = _x((7, 4))
        y = self.variant(model.apply)(params, x)
        chex.assert_shape(y, (7, 3))
        a = np.asarray(x, np.float64)
        p = [{k: np.asarray(v, np.float64) for k, v in layer.items()} for layer in params]
        a = np.tanh(a @ p[0]["w"] + p[0]["b"])
        a = np.tanh(a @ p[1]["w"] + p[1]["b"])
        expected = a @ p[2]["w"] + p[2]["b"]  # logits: no output activation by default
        chex.assert_trees_all_close(np.asarray(y, np.float64), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "prelu", "elu", fnn.relu])
def test_mlp_default_init_he_normal_for_relu_family(activation):
    params = fnn.mlp([6, 5, 3], activation=activation).init(KEY, (4,))
    keys = _kernel_keys(KEY, 3)
    he, glorot = jax.nn.initializers.he_normal(), jax.nn.initializers.glorot_uniform()
    chex.assert_trees_all_equal(params[0]["w"], he(keys[0], (4, 6)))
    chex.assert_trees_all_equal(params[1]["w"], he(keys[1], (6, 5)))
    chex.assert_trees_all_equal(params[2]["w"], glorot(keys[2], (5, 3)))  # output layer


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", fnn.tanh, jnp.sin])
def test_mlp_default_init_glorot_uniform_for_sigmoid_tanh_and_custom(activation):
    params = fnn.mlp([5, 3], activation=activation).init(KEY, (4,))
    keys = _kernel_keys(KEY, 2)
    glorot = jax.nn.initializers.glorot_uniform()
    chex.assert_trees_all_equal(params[0]["w"], glorot(keys[0], (4, 5)))
    chex.assert_trees_all_equal(params[1]["w"], glorot(keys[1], (5, 3)))


def test_default_w_init_by_name():
    key = jax.random.key(3)
    for name, reference in [("relu", jax.nn.initializers.he_normal()),
                            ("sigmoid", jax.nn.initializers.glorot_uniform())]:
        chex.assert_trees_all_equal(models.default_w_init(name)(key, (6, 5)), reference(key, (6, 5)))


def test_mlp_w_init_overrides_every_layer():
    params = fnn.mlp([5, 3], w_init=initializers.ones).init(KEY, (4,))
    np.testing.assert_array_equal(params[0]["w"], np.ones((4, 5)))
    np.testing.assert_array_equal(params[1]["w"], np.ones((5, 3)))


@pytest.mark.parametrize("output_activation,reference",
                         [("sigmoid", jax.nn.sigmoid), (fnn.softmax, jax.nn.softmax)])
def test_mlp_output_activation(output_activation, reference):
    logits_model = fnn.mlp([5, 3])
    model = fnn.mlp([5, 3], output_activation=output_activation)
    params = model.init(KEY, (4,))
    chex.assert_trees_all_equal(params, logits_model.init(KEY, (4,)))
    x = _x((6, 4))
    chex.assert_trees_all_close(model.apply(params, x), reference(logits_model.apply(params, x)),
                                rtol=1e-6, atol=1e-6)


def test_mlp_activation_by_name_equals_by_callable():
    x = _x((6, 4))
    by_name, by_callable = fnn.mlp([5, 3], activation="elu"), fnn.mlp([5, 3], activation=fnn.elu)
    params = by_name.init(KEY, (4,))
    chex.assert_trees_all_equal(params, by_callable.init(KEY, (4,)))
    chex.assert_trees_all_equal(by_name.apply(params, x), by_callable.apply(params, x))


def test_mlp_custom_activation_callable_is_applied():
    model, reference = fnn.mlp([5, 3], activation=jnp.sin), fnn.mlp([5, 3], activation="identity")
    params = model.init(KEY, (4,))
    x = _x((6, 4))
    h = jnp.sin(x @ params[0]["w"] + params[0]["b"])
    chex.assert_trees_all_close(model.apply(params, x), h @ params[1]["w"] + params[1]["b"],
                                rtol=1e-6, atol=1e-6)
    assert not np.allclose(model.apply(params, x), reference.apply(params, x))


@pytest.mark.parametrize("activation", ["prelu", fnn.prelu])
def test_mlp_prelu_hidden_layers_have_alpha(activation):
    model = fnn.mlp([6, 5, 3], activation=activation, prelu_init_alpha=0.3)
    params = model.init(KEY, (4,))
    assert [set(p) for p in params] == [{"w", "b", "alpha"}, {"w", "b", "alpha"}, {"w", "b"}]
    assert params[0]["alpha"] == np.float32(0.3) and params[0]["alpha"].shape == ()
    x = _x((8, 4))
    h = jax.nn.leaky_relu(x @ params[0]["w"] + params[0]["b"], 0.3)
    h = jax.nn.leaky_relu(h @ params[1]["w"] + params[1]["b"], 0.3)
    chex.assert_trees_all_close(model.apply(params, x), h @ params[2]["w"] + params[2]["b"],
                                rtol=1e-5, atol=1e-6)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, x) ** 2)))(params)
    assert grads[0]["alpha"] != 0 and grads[1]["alpha"] != 0


@pytest.mark.parametrize("dtype", [jnp.bfloat16])  # float16: see test_layers' dense tests
def test_mlp_low_precision_dtype_preserved(dtype):
    model = fnn.mlp([5, 3], activation="prelu", dtype=dtype)
    params = model.init(KEY, (4,))
    chex.assert_type(jax.tree.leaves(params), dtype)
    x = _x((4, 4), dtype)
    assert jax.jit(model.apply)(params, x).dtype == dtype
    labels = jnp.array([0, 1, 1, 0])
    grads = jax.jit(jax.grad(lambda p: fnn.losses.softmax_cross_entropy(model.apply(p, x), labels)))(
        params)
    chex.assert_type(jax.tree.leaves(grads), dtype)
    chex.assert_tree_all_finite(grads)


def test_mlp_float64_under_x64(x64):
    model = fnn.mlp([5, 3], dtype=jnp.float64)
    params = model.init(KEY, (4,))
    chex.assert_type(jax.tree.leaves(params), jnp.float64)
    assert model.apply(params, _x((4, 4), jnp.float64)).dtype == jnp.float64


def test_mlp_vmap_over_stacked_params_matches_members():
    # (vmap over init keys itself is tested on dense in test_layers: it is costly to compile.)
    model = fnn.mlp([5, 3])
    members = [model.init(key, (4,)) for key in jax.random.split(KEY, 3)]
    ensemble = jax.tree.map(lambda *leaves: jnp.stack(leaves), *members)
    x = _x((6, 4))
    ys = jax.jit(jax.vmap(model.apply, in_axes=(0, None)))(ensemble, x)
    chex.assert_shape(ys, (3, 6, 3))
    for i, member in enumerate(members):
        chex.assert_trees_all_close(ys[i], model.apply(member, x), rtol=1e-5, atol=1e-6)


def test_mlp_leading_batch_axes():
    model = fnn.mlp([5, 3])
    params = model.init(KEY, (4,))
    x = _x((5, 6, 4))
    y = model.apply(params, x)
    chex.assert_shape(y, (5, 6, 3))
    chex.assert_trees_all_close(y[1, 2], model.apply(params, x[1, 2]), rtol=1e-6, atol=1e-6)


# ---- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("features", [[], 10, None, "10"])
def test_mlp_features_not_a_list_raises(features):
    with pytest.raises(ValueError, match=r"mlp: features must be a non-empty list of layer sizes"):
        fnn.mlp(features)


@pytest.mark.parametrize("features", [[8, 0], [8, 2.5], [8, -1]])
def test_mlp_bad_layer_size_raises(features):
    with pytest.raises(ValueError, match=r"mlp: features\[1\] must be a positive integer"):
        fnn.mlp(features)


def test_mlp_unknown_activation_name_lists_names():
    with pytest.raises(ValueError, match=r"mlp: activation must be one of step, sigmoid, .* or a "
                                         r"callable; got 'relu6'"):
        fnn.mlp([4, 2], activation="relu6")


def test_mlp_unknown_output_activation_name_raises():
    with pytest.raises(ValueError, match=r"mlp: output_activation must be one of .*; got 'probs'"):
        fnn.mlp([4, 2], output_activation="probs")


def test_mlp_non_callable_activation_raises():
    with pytest.raises(TypeError, match=r"mlp: activation must be an activation name or a callable; "
                                        r"got int"):
        fnn.mlp([4, 2], activation=3)


def test_default_w_init_unknown_name_raises():
    with pytest.raises(ValueError, match=r"default_w_init: activation must be one of"):
        models.default_w_init("swish")


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_mlp_wrong_input_size_names_layer_and_shapes(transform):
    model = fnn.mlp([5, 3])
    params = model.init(KEY, (4,))
    message = re.escape("mlp layer 0 (dense 5): x must have last dimension 4 to match the kernel w "
                        "of shape (4, 5); got x of shape (2, 6)")
    with pytest.raises(ValueError, match=message):
        transform(model.apply)(params, jnp.ones((2, 6)))


@pytest.mark.parametrize("params", [[], {"w": 1}, None])
def test_mlp_apply_wrong_params_raises(params):
    with pytest.raises(ValueError, match=r"mlp: params must be a list of 2 layer dicts"):
        fnn.mlp([5, 3]).apply(params, jnp.ones((2, 4)))


def test_mlp_same_arguments_give_the_same_model_object():
    """Equal models share their functions, so jit (and fit) reuse compiled programs."""
    assert fnn.mlp([8, 3]) is fnn.mlp([8, 3]) is fnn.mlp((8, 3))
    assert fnn.mlp([8, 3]) is not fnn.mlp([8, 4])
    assert fnn.mlp([8, 3], activation="tanh") is not fnn.mlp([8, 3])
