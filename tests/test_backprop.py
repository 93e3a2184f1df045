"""Tests for fnn.backprop: the hand-written chain rule against jax.grad."""

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import backprop

@pytest.fixture(autouse=True)
def full_precision_matmuls():
    """Full float32 matmuls: on GPUs the default (TF32) would blur a 1e-5 comparison."""
    with jax.default_matmul_precision("highest"):
        yield


ACTIVATIONS = backprop.ACTIVATIONS
LOSSES = backprop.LOSSES
OUTPUTS = {"mse": 3, "binary_cross_entropy": 1, "softmax_cross_entropy": 4}
N_IN, WIDTH, BATCH = 3, 5, 7


def make_problem(activation, loss, depth, dtype=jnp.float32, *, seed=0):
    """An mlp of ``depth`` dense layers, random params, a batch and its targets.

    Drawn with numpy rather than ``model.init``: eager jax.random ops compile once per
    shape and dtype, which would cost more than the tests themselves.
    """
    model = fnn.mlp([WIDTH] * (depth - 1) + [OUTPUTS[loss]], activation=activation, dtype=dtype)
    rng = np.random.default_rng(seed * 10 + depth)
    sizes = [N_IN] + [WIDTH] * (depth - 1) + [OUTPUTS[loss]]
    params = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer = {"w": jnp.asarray(rng.normal(size=(n_in, n_out)) * (1.5 / np.sqrt(n_in)), dtype),
                 "b": jnp.asarray(rng.normal(size=(n_out,)) * 0.5, dtype)}
        if activation == "prelu" and l < depth - 1:  # a slope other than 0.25 by layer
            layer["alpha"] = jnp.asarray(0.1 + 0.1 * l, dtype)
        params.append(layer)
    x = jnp.asarray(rng.normal(size=(BATCH, N_IN)), dtype)
    if loss == "mse":
        y = jnp.asarray(rng.normal(size=(BATCH, OUTPUTS[loss])), dtype)
    elif loss == "binary_cross_entropy":
        y = jnp.asarray(rng.integers(0, 2, size=(BATCH,)), jnp.int32)
    else:
        y = jnp.asarray(rng.integers(0, OUTPUTS[loss], size=(BATCH,)), jnp.int32)
    return model, params, x, y


def reference_grads(model, loss, params, x, y):
    loss_fn = getattr(fnn.losses, loss)
    return jax.grad(lambda p: loss_fn(model.apply(p, x), y))(params)


@functools.partial(jax.jit, static_argnames=("activation", "loss"))
def jitted_pair(params, x, y, *, activation, loss):
    """``(mlp_grads(...), jax.grad reference)`` as one compiled program.

    For the tests with one-off shapes or dtypes: one compilation instead of one per
    eager op.
    """
    model = fnn.mlp([p["b"].shape[0] for p in params], activation=activation)
    return (backprop.mlp_grads(params, x, y, activation=activation, loss=loss),
            reference_grads(model, loss, params, x, y))


def assert_close_to_leaf_scale(actual, expected, rtol):
    """Elementwise ``|a - e| <= rtol * (|e| + max|e of the leaf|)``.

    A pure elementwise rtol is meaningless for entries that cancel to ~0 (their
    rounding error is that of the large terms that cancelled), so the absolute slack
    is rtol times the leaf's largest entry.
    """
    chex.assert_trees_all_equal_structs(actual, expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        assert a.dtype == e.dtype and a.shape == e.shape
        scale = float(jnp.max(jnp.abs(e))) if e.size else 0.0
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(e, np.float64),
                                   rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("activation,loss", list(itertools.product(ACTIVATIONS, LOSSES)))
def test_mlp_grads_equals_jax_grad_float32(activation, loss):
    for depth in range(1, 7):
        model, params, x, y = make_problem(activation, loss, depth)
        grads, _ = backprop.mlp_grads(params, x, y, activation=activation, loss=loss)
        assert_close_to_leaf_scale(grads, reference_grads(model, loss, params, x, y), 1e-5)


@pytest.mark.parametrize("activation,loss", list(itertools.product(ACTIVATIONS, LOSSES)))
def test_mlp_grads_equals_jax_grad_float64(activation, loss):
    with jax.enable_x64(True):
        for depth in range(1, 7):
            model, params, x, y = make_problem(activation, loss, depth, jnp.float64)
            grads, _ = backprop.mlp_grads(params, x, y, activation=activation, loss=loss)
            reference = reference_grads(model, loss, params, x, y)
            assert jax.tree.leaves(grads)[0].dtype == jnp.float64
            assert_close_to_leaf_scale(grads, reference, 1e-10)
    assert jnp.ones(1).dtype == jnp.float32  # x64 did not leak


def forward_with_offsets(model_params, x, offsets, activation):
    """The mlp forward stage with ``offsets[l]`` added to each net sum z_l."""
    act = fnn.activations.get(activation)
    a = x
    for l, (p, offset) in enumerate(zip(model_params, offsets)):
        z = a @ p["w"] + p["b"] + offset
        if l == len(model_params) - 1:
            return z
        a = act(z, p["alpha"]) if activation == "prelu" else act(z)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_mlp_grads_deltas_are_dloss_dz(activation):
    loss = "softmax_cross_entropy"
    _, params, x, y = make_problem(activation, loss, 4)
    offsets = [jnp.zeros((BATCH, p["b"].shape[0])) for p in params]
    expected = jax.grad(lambda o: fnn.losses.softmax_cross_entropy(
        forward_with_offsets(params, x, o, activation), y))(offsets)
    _, deltas = backprop.mlp_grads(params, x, y, activation=activation, loss=loss)
    assert_close_to_leaf_scale(deltas, expected, 1e-5)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "prelu"])
def test_mlp_grads_kink_conventions_match_jax_grad(activation):
    # x = 0 and zero biases put every net sum exactly on the kink z = 0, so the bias
    # gradients depend on f'(0): relu'(0) = 0, leaky_relu'(0) = prelu'(0) = 1, elu'(0) = 1.
    model, params, _, y = make_problem(activation, "mse", 4)
    params = [dict(p, b=jnp.zeros_like(p["b"])) for p in params]
    x = jnp.zeros((BATCH, N_IN))
    grads, deltas = backprop.mlp_grads(params, x, y, activation=activation, loss="mse")
    chex.assert_trees_all_close(grads, reference_grads(model, "mse", params, x, y), rtol=1e-6)
    if activation == "relu":
        assert all(float(jnp.abs(d).max()) == 0.0 for d in deltas[:-1])
    else:
        assert float(jnp.abs(deltas[0]).max()) > 0.0


@pytest.mark.parametrize("shape", [(N_IN,), (2, 3, N_IN)])
def test_mlp_grads_any_batch_axes(shape):
    _, params, _, _ = make_problem("tanh", "softmax_cross_entropy", 3)
    x = jax.random.normal(jax.random.key(1), shape)
    y = jnp.zeros(shape[:-1], jnp.int32) + 2
    (grads, deltas), reference = jitted_pair(params, x, y, activation="tanh",
                                             loss="softmax_cross_entropy")
    chex.assert_trees_all_close(grads, reference, rtol=1e-5, atol=1e-7)
    chex.assert_shape(deltas, [shape[:-1] + (WIDTH,), shape[:-1] + (WIDTH,), shape[:-1] + (4,)])


def test_mlp_grads_binary_labels_with_trailing_axis():
    _, params, x, y = make_problem("sigmoid", "binary_cross_entropy", 3)
    (grads, _), reference = jitted_pair(params, x, y[:, None], activation="sigmoid",
                                        loss="binary_cross_entropy")
    chex.assert_trees_all_close(grads, reference, rtol=1e-5, atol=1e-8)


def test_mlp_grads_accepts_fnn_functions_and_tuple_params():
    model, params, x, y = make_problem("elu", "mse", 3)
    by_name = backprop.mlp_grads(params, x, y, activation="elu", loss="mse")
    by_function = backprop.mlp_grads(tuple(params), x, y, activation=fnn.elu, loss=fnn.losses.mse)
    assert isinstance(by_function.grads, tuple)
    chex.assert_trees_all_close(list(by_function.grads), by_name.grads)
    chex.assert_trees_all_close(by_function.deltas, by_name.deltas)


class TestJit(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_mlp_grads_jit(self):
        model, params, x, y = make_problem("relu", "softmax_cross_entropy", 4)

        @self.variant
        def grads_of(params, x, y):
            return backprop.mlp_grads(params, x, y, activation="relu", loss="softmax_cross_entropy")

        grads, _ = grads_of(params, x, y)
        chex.assert_trees_all_close(
            grads, reference_grads(model, "softmax_cross_entropy", params, x, y), rtol=1e-5, atol=1e-7)


def test_mlp_grads_bfloat16_keeps_dtype():
    _, params, x, y = make_problem("tanh", "mse", 3, jnp.bfloat16)
    (grads, deltas), reference = jitted_pair(params, x, y, activation="tanh", loss="mse")
    assert all(g.dtype == jnp.bfloat16 for g in jax.tree.leaves(grads))
    assert all(d.dtype == jnp.bfloat16 for d in deltas)
    assert_close_to_leaf_scale(grads, reference, 5e-2)


def test_mlp_grads_vmap_over_models():
    members = [make_problem("sigmoid", "softmax_cross_entropy", 2, seed=s)[1] for s in range(4)]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *members)
    _, _, x, y = make_problem("sigmoid", "softmax_cross_entropy", 2)
    batched, reference = jax.vmap(functools.partial(
        jitted_pair, x=x, y=y, activation="sigmoid", loss="softmax_cross_entropy"))(stacked)
    chex.assert_trees_all_close(batched.grads, reference, rtol=1e-5, atol=1e-7)
    for i, member in enumerate(members):
        single, _ = jitted_pair(member, x, y, activation="sigmoid", loss="softmax_cross_entropy")
        chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], batched.grads), single.grads,
                                    rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", [n for n in ACTIVATIONS if n != "prelu"])
def test_derivative_equals_jax_grad(name):
    z = jnp.array([-1000.0, -30.0, -2.0, -1e-3, 0.0, 1e-3, 0.5, 2.0, 30.0, 1000.0])
    expected = jax.vmap(jax.grad(fnn.activations.get(name)))(z)
    # atol: jax differentiates expm1 as expm1(z) + 1, which rounds e^-30 to 0 in float32;
    # the hand-written exp(z) keeps it.
    chex.assert_trees_all_close(backprop.derivative(name)(z), expected, rtol=1e-6, atol=1e-7)


def test_derivative_sigmoid_at_most_a_quarter():
    z = jnp.linspace(-10, 10, 2001)
    assert float(backprop.derivative("sigmoid")(z).max()) == 0.25


@pytest.mark.parametrize("kwargs,match", [
    ({"activation": "softmax"}, "mlp_grads: activation must be one of"),
    ({"activation": jnp.tanh}, "mlp_grads: activation must be one of"),
    ({"loss": "hinge"}, "mlp_grads: loss must be one of"),
])
def test_mlp_grads_rejects_unknown_names(kwargs, match):
    _, params, x, y = make_problem("relu", "mse", 2)
    options = {"activation": "relu", "loss": "mse", **kwargs}
    with pytest.raises(ValueError, match=match):
        backprop.mlp_grads(params, x, y, **options)


@pytest.mark.parametrize("params", [[], {"w": jnp.ones((3, 1))}, [{"w": jnp.ones((3, 1))}]])
def test_mlp_grads_rejects_bad_params(params):
    with pytest.raises(ValueError, match="mlp_grads: params must"):
        backprop.mlp_grads(params, jnp.ones((2, 3)), jnp.ones((2, 1)), activation="relu", loss="mse")


def test_mlp_grads_prelu_needs_alpha():
    _, params, x, y = make_problem("relu", "mse", 3)
    with pytest.raises(ValueError, match='mlp_grads: params must hold "alpha"'):
        backprop.mlp_grads(params, x, y, activation="prelu", loss="mse")


def test_mlp_grads_rejects_wrong_input_size():
    _, params, _, y = make_problem("relu", "mse", 2)
    with pytest.raises(ValueError, match="x must have last dimension 3"):
        backprop.mlp_grads(params, jnp.ones((BATCH, 4)), y, activation="relu", loss="mse")


@pytest.mark.parametrize("loss,y,exc", [
    ("mse", jnp.ones((BATCH, 2)), ValueError),
    ("binary_cross_entropy", jnp.full((BATCH,), 2), ValueError),
    ("softmax_cross_entropy", jnp.zeros((BATCH,)), TypeError),
])
def test_mlp_grads_rejects_bad_targets(loss, y, exc):
    _, params, x, _ = make_problem("relu", loss, 2)
    with pytest.raises(exc, match=r"mlp_grads: y must suit"):
        backprop.mlp_grads(params, x, y, activation="relu", loss=loss)


def test_derivative_rejects_unknown_name():
    with pytest.raises(ValueError, match="derivative: name must be one of"):
        backprop.derivative("prelu")
