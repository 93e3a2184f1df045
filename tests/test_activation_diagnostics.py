"""Tests for fnn.diagnostics.dead_units, activation_stats and hidden_layers (NumPy references)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import diagnostics

NUMPY_ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z >= 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
}


def problem(activation, *, shift=-0.5, features=(6, 5, 2)):
    """An mlp with negative biases (so some ReLU units are dead) and its inputs."""
    model = fnn.mlp(list(features), activation=activation)
    params = model.init(jax.random.key(0), (3,))
    params = [dict(p, b=p["b"] + shift) if i < len(params) - 1 else p for i, p in enumerate(params)]
    x = jax.random.normal(jax.random.key(1), (40, 3))
    return model, params, x


def numpy_hidden(params, x, f, alpha=None):
    """(z, a) per hidden layer in float64 NumPy."""
    out, a = [], np.asarray(x, np.float64)
    for p in params[:-1]:
        z = a @ np.asarray(p["w"], np.float64) + np.asarray(p["b"], np.float64)
        a = np.where(z >= 0, z, float(p["alpha"]) * z) if alpha else f(z)
        out.append((z, a))
    return out


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "tanh", "sigmoid"])
def test_dead_units_matches_numpy_reference(activation):
    model, params, x = problem(activation, shift=-1.0)
    expected = [np.mean(np.all(z <= 0, axis=0)) for z, _ in numpy_hidden(params, x, NUMPY_ACTIVATIONS[activation])]
    chex.assert_trees_all_close(diagnostics.dead_units(model, params, x), np.asarray(expected, np.float32))


def test_dead_units_of_relu_equals_units_whose_output_is_always_zero():
    model, params, x = problem("relu", shift=-1.0)
    always_zero = [np.mean(np.all(a == 0, axis=0)) for _, a in numpy_hidden(params, x, NUMPY_ACTIVATIONS["relu"])]
    dead = np.asarray(diagnostics.dead_units(model, params, x))
    assert dead.max() > 0, "the setup must have dead units"
    np.testing.assert_allclose(dead, always_zero)


@pytest.mark.parametrize("activation", ["relu", "elu", "tanh", "sigmoid"])
def test_activation_stats_matches_numpy_reference(activation):
    model, params, x = problem(activation)
    hidden = numpy_hidden(params, x, NUMPY_ACTIVATIONS[activation])
    stats = diagnostics.activation_stats(model, params, x)
    chex.assert_trees_all_close(stats.mean, np.asarray([a.mean() for _, a in hidden], np.float32), atol=1e-6)
    chex.assert_trees_all_close(stats.std, np.asarray([a.std() for _, a in hidden], np.float32), atol=1e-6)
    chex.assert_trees_all_close(stats.zero_fraction,
                                np.asarray([np.mean(a == 0) for _, a in hidden], np.float32))


def test_activation_stats_reads_learned_prelu_slopes():
    model, params, x = problem("prelu")
    params = [dict(p, alpha=jnp.float32(0.1 * (i + 1))) if "alpha" in p else p for i, p in enumerate(params)]
    hidden = numpy_hidden(params, x, None, alpha=True)
    stats = diagnostics.activation_stats(model, params, x)
    chex.assert_trees_all_close(stats.mean, np.asarray([a.mean() for _, a in hidden], np.float32), atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "tanh", "sigmoid"])
def test_hidden_layers_finds_the_activation_of_the_model(activation):
    model, params, x = problem(activation)
    found = diagnostics.hidden_layers(model, params, x)
    given = diagnostics.hidden_layers(model, params, x, activation=activation)
    chex.assert_trees_all_close(found, given)


def test_dead_units_with_given_activation_works_under_jit():
    model, params, x = problem("relu", shift=-1.0)
    jitted = jax.jit(lambda p, x: diagnostics.dead_units(model, p, x, activation="relu"))
    chex.assert_trees_all_close(jitted(params, x), diagnostics.dead_units(model, params, x))


def test_activation_stats_shape_is_one_entry_per_hidden_layer():
    model, params, x = problem("tanh", features=(4, 4, 4, 1))
    stats = diagnostics.activation_stats(model, params, x)
    for field in stats:
        chex.assert_shape(field, (3,))


BAD_INPUTS = [
    ("params", ValueError, lambda m, p, x: ([p[0]], x, {})),
    ("params", ValueError, lambda m, p, x: ({"w": 1}, x, {})),
    ("x", ValueError, lambda m, p, x: (p, x[:, :2], {})),
    ("x", TypeError, lambda m, p, x: (p, jnp.ones((4, 3), jnp.int32), {})),
    ("activation", ValueError, lambda m, p, x: (p, x, {"activation": "tanh"})),
    ("activation", ValueError, lambda m, p, x: (p, x, {"activation": "swish"})),
    ("activation", TypeError, lambda m, p, x: (p, x, {"activation": 3})),
]


@pytest.mark.parametrize("arg, error, make", BAD_INPUTS, ids=[f"{a}-{e.__name__}-{i}" for i, (a, e, _)
                                                             in enumerate(BAD_INPUTS)])
def test_dead_units_rejects_bad_inputs_naming_the_argument(arg, error, make):
    model, params, x = problem("relu")
    p, xx, kwargs = make(model, params, x)
    with pytest.raises(error, match=rf"dead_units: {arg} must"):
        diagnostics.dead_units(model, p, xx, **kwargs)


def test_hidden_layers_rejects_a_model_without_apply():
    _, params, x = problem("relu")
    with pytest.raises(TypeError, match="hidden_layers: model must"):
        diagnostics.hidden_layers(object(), params, x)


def test_hidden_layers_needs_the_activation_under_jit():
    model, params, x = problem("relu")
    with pytest.raises(ValueError, match="activation_stats: activation must be given when"):
        jax.jit(lambda p: diagnostics.activation_stats(model, p, x).mean)(params)
