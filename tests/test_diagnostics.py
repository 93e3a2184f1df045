"""Tests for fnn.diagnostics: gradient checking, layer norms, the vanishing-gradient report."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import backprop, diagnostics


def small_problem(activation="tanh", dtype=jnp.float32):
    model = fnn.mlp([6, 3], activation=activation, dtype=dtype)
    params = model.init(jax.random.key(0), (4,))
    x = jax.random.normal(jax.random.key(1), (10, 4), dtype)
    y = jnp.arange(10) % 3

    def loss(p, x, y):
        return fnn.losses.softmax_cross_entropy(model.apply(p, x), y)

    return loss, params, x, y


# --- check_gradients -------------------------------------------------------------------

def test_check_gradients_passes_for_jax_grad_and_names_every_leaf():
    loss, params, x, y = small_problem()
    report = diagnostics.check_gradients(loss, params, x, y)
    assert report.passed
    assert [c.path for c in report.leaves] == ["[0]['b']", "[0]['w']", "[1]['b']", "[1]['w']"]
    assert [c.checked for c in report.leaves] == [6, 24, 3, 18]
    # Float32 params are checked in float64: the agreement is far beyond float32's.
    assert max(c.max_abs_error for c in report.leaves) < 1e-8


def test_check_gradients_accepts_hand_written_backprop():
    loss, params, x, y = small_problem("sigmoid")
    report = diagnostics.check_gradients(
        loss, params, x, y,
        grad_fn=lambda p, x, y: backprop.mlp_grads(p, x, y, activation="sigmoid",
                                                   loss="softmax_cross_entropy").grads)
    assert report.passed, str(report)


def test_check_gradients_says_which_leaf_and_element_is_wrong():
    loss, params, x, y = small_problem()

    def wrong(p, x, y):
        g = jax.grad(loss)(p, x, y)
        g[1]["w"] = g[1]["w"].at[4, 2].add(1e-3)
        return g

    report = diagnostics.check_gradients(loss, params, x, y, grad_fn=wrong)
    assert not report.passed
    assert [c.passed for c in report.leaves] == [True, True, True, False]
    assert report.leaves[3].worst_index == (4, 2)
    assert report.leaves[3].max_abs_error == pytest.approx(1e-3, rel=1e-4)
    assert "FAILED: 1 of 4 leaves disagree: [1]['w']" in str(report)


def test_check_gradients_catches_a_wrong_custom_vjp():
    @jax.custom_vjp
    def cube(x):
        return x ** 3

    cube.defvjp(lambda x: (x ** 3, x), lambda x, g: (2 * x ** 2 * g,))  # should be 3 x^2

    params = {"a": jnp.array([0.5, -1.0, 2.0]), "b": jnp.array(0.3)}
    report = diagnostics.check_gradients(lambda p: jnp.sum(cube(p["a"])) + jnp.sin(p["b"]), params)
    assert [(c.path, c.passed) for c in report.leaves] == [("['a']", False), ("['b']", True)]
    # Analytic 2 x^2 against the true 3 x^2: relative error 1/3 everywhere.
    assert report.leaves[0].max_rel_error == pytest.approx(1 / 3, rel=1e-6)


def test_check_gradients_max_elements_samples_evenly():
    params = {"big": jnp.linspace(-1, 1, 1000), "small": jnp.ones(3)}
    report = diagnostics.check_gradients(
        lambda p: jnp.sum(jnp.sin(p["big"])) * jnp.sum(p["small"] ** 2), params, max_elements=10)
    assert [c.checked for c in report.leaves] == [10, 3]
    assert report.passed


def test_check_gradients_keeps_non_array_args_static():
    def fn(p, x, mode):
        return jnp.sum(jnp.tanh(p * x)) if mode == "tanh" else jnp.sum(p * x)

    report = diagnostics.check_gradients(fn, jnp.array([0.1, 0.2]), jnp.array([1.0, 3.0]), "tanh")
    assert report.passed


def test_check_gradients_does_not_leak_x64():
    loss, params, x, y = small_problem()
    diagnostics.check_gradients(loss, params, x, y)
    assert jnp.ones(1).dtype == jnp.float32
    assert params[0]["w"].dtype == jnp.float32


def test_check_gradients_table_lists_leaves_and_verdict():
    loss, params, x, y = small_problem()
    text = str(diagnostics.check_gradients(loss, params, x, y))
    assert "[0]['w']" in text and "(4, 6)" in text and "PASSED: all 4 leaves agree" in text


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"eps": 0.0}, ValueError, "check_gradients: eps must"),
    ({"rtol": -1.0}, ValueError, "check_gradients: rtol must"),
    ({"atol": -1.0}, ValueError, "check_gradients: atol must"),
    ({"max_elements": 0}, ValueError, "check_gradients: max_elements must"),
    ({"grad_fn": lambda p: [p]}, ValueError, "check_gradients: grad_fn must"),
])
def test_check_gradients_rejects_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        diagnostics.check_gradients(lambda p: jnp.sum(p ** 2), jnp.ones(3), **kwargs)


def test_check_gradients_rejects_integer_leaf():
    with pytest.raises(TypeError, match=r"check_gradients: params\['n'\] must be floating"):
        diagnostics.check_gradients(lambda p: jnp.sum(p["w"]), {"w": jnp.ones(2), "n": jnp.arange(2)})


def test_check_gradients_rejects_non_scalar_fn():
    with pytest.raises(ValueError, match="check_gradients: fn must return a scalar"):
        diagnostics.check_gradients(lambda p: p ** 2, jnp.ones(3))


# --- layer_grad_norms, grad_norms_fn ------------------------------------------------------

def test_layer_grad_norms_equals_numpy():
    loss, params, x, y = small_problem()
    grads = jax.grad(loss)(params, x, y)
    chex.assert_trees_all_close(diagnostics.layer_grad_norms(grads),
                                jnp.array([np.linalg.norm(g["w"]) for g in grads]), rtol=1e-6)
    with_bias = [np.sqrt(np.sum(np.square(g["w"])) + np.sum(np.square(g["b"]))) for g in grads]
    chex.assert_trees_all_close(diagnostics.layer_grad_norms(grads, include_bias=True),
                                jnp.array(with_bias), rtol=1e-6)


@pytest.mark.parametrize("dtype,tiny", [(jnp.float32, 1e-30), (jnp.bfloat16, 1e-30)])
def test_layer_grad_norms_tiny_gradients_do_not_underflow(dtype, tiny):
    # Squaring 1e-30 gives 1e-60: zero in float32. Vanishing gradients must still read.
    grads = [{"w": jnp.full((4, 4), tiny, dtype), "b": jnp.zeros(4, dtype)}]
    norm = diagnostics.layer_grad_norms(grads)
    assert float(norm[0]) == pytest.approx(4 * float(jnp.asarray(tiny, dtype)), rel=1e-6)


def test_layer_grad_norms_zero_gradient_is_zero_not_nan():
    norms = diagnostics.layer_grad_norms([{"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)}])
    chex.assert_trees_all_equal(norms, jnp.zeros(1))


def test_layer_grad_norms_jit_and_vmap():
    stacked = [{"w": jnp.arange(12.0).reshape(3, 2, 2), "b": jnp.ones((3, 2))}]
    batched = jax.jit(jax.vmap(diagnostics.layer_grad_norms))(stacked)
    expected = jnp.array([[np.linalg.norm(np.arange(12.0).reshape(3, 4)[i])] for i in range(3)])
    chex.assert_trees_all_close(batched, expected, rtol=1e-6)


def test_layer_grad_norms_rejects_non_mlp_grads():
    with pytest.raises(ValueError, match="layer_grad_norms: grads must"):
        diagnostics.layer_grad_norms({"w": jnp.ones(2)})


def test_grad_norms_fn_is_a_pure_hook():
    loss, params, x, y = small_problem()
    hook = diagnostics.grad_norms_fn(loss)
    expected = diagnostics.layer_grad_norms(jax.grad(loss)(params, x, y))
    chex.assert_trees_all_close(jax.jit(hook)(params, x, y), expected, rtol=1e-6)


def test_grad_norms_fn_rejects_non_callable():
    with pytest.raises(TypeError, match="grad_norms_fn: loss_fn must be callable"):
        diagnostics.grad_norms_fn("mse")


# --- vanishing_gradient_report --------------------------------------------------------------

@pytest.fixture(scope="module")
def depth_10_report():
    return diagnostics.vanishing_gradient_report(jax.random.key(0))


def test_vanishing_gradient_report_sigmoid_vanishes_relu_does_not(depth_10_report):
    report = depth_10_report
    assert report.activations == ("sigmoid", "tanh", "relu")
    chex.assert_shape([report.norms, report.ratios, report.mean_derivatives], [(3, 10), (3,), (3, 9)])
    sigmoid, relu = report.norms[0], report.norms[2]
    # Sigmoid: every step back towards the input loses more than half of the norm...
    assert bool(jnp.all(sigmoid[:-1] < 0.5 * sigmoid[1:]))
    assert float(report.ratios[0]) < 1e-5
    # ...because each chain-rule factor sigma'(z) is at most 1/4.
    assert float(report.mean_derivatives[0].max()) <= 0.25
    # ReLU (He init) keeps the first layer's gradient within 10x of the last one's.
    assert float(report.ratios[2]) > 0.1
    assert float(relu[0]) > 1e4 * float(sigmoid[0])


def test_vanishing_gradient_report_equals_jax_grad_norms():
    x = jax.random.normal(jax.random.key(5), (32, 3))
    y = jnp.arange(32) % 4
    report = diagnostics.vanishing_gradient_report(jax.random.key(7), x, y, depth=4, width=8,
                                                   activations=("sigmoid", "elu"),
                                                   loss="softmax_cross_entropy")
    for i, activation in enumerate(("sigmoid", "elu")):
        model = fnn.mlp([8, 8, 8, 4], activation=activation)
        params = model.init(jax.random.split(jax.random.key(7))[1], (3,))
        loss = lambda p: fnn.losses.softmax_cross_entropy(model.apply(p, x), y)  # noqa: E731
        value, grads = jax.jit(jax.value_and_grad(loss))(params)
        chex.assert_trees_all_close(report.norms[i], diagnostics.layer_grad_norms(grads), rtol=1e-5)
        chex.assert_trees_all_close(report.loss[i], value, rtol=1e-6)
        chex.assert_trees_all_close(report.ratios[i], report.norms[i, 0] / report.norms[i, -1])


def test_vanishing_gradient_report_mse_with_shared_init():
    x = jax.random.normal(jax.random.key(5), (16, 3))
    report = diagnostics.vanishing_gradient_report(
        jax.random.key(1), x, jnp.zeros((16, 2)), depth=3, width=4, activations=("tanh", "identity"),
        loss="mse", w_init=fnn.initializers.glorot_uniform())
    chex.assert_shape(report.norms, (2, 3))
    chex.assert_trees_all_close(report.mean_derivatives[1], jnp.ones(2))  # identity' = 1


def test_vanishing_gradient_report_table(depth_10_report):
    lines = str(depth_10_report).splitlines()
    assert lines[1].split() == ["layer", "sigmoid", "tanh", "relu"]
    assert [line.split()[0] for line in lines[2:12]] == [str(i) for i in range(1, 11)]
    assert lines[12].startswith("first/last") and lines[13].startswith("mean f'(z)")


@pytest.mark.parametrize("kwargs,match", [
    ({"depth": 1}, "vanishing_gradient_report: depth must be at least 2"),
    ({"width": 0}, "vanishing_gradient_report: width must"),
    ({"activations": ("sigmoid", "softmax")}, "vanishing_gradient_report: activations must"),
    ({"activations": "relu"}, "vanishing_gradient_report: activations must"),
    ({"loss": "hinge"}, "vanishing_gradient_report: loss must"),
    ({"loss": "mse"}, "vanishing_gradient_report: x must"),
    ({"x": jnp.ones((4, 2))}, "vanishing_gradient_report: y must be given"),
    ({"x": jnp.ones((4, 2)), "y": jnp.ones(3)}, "vanishing_gradient_report: y must"),
    ({"x": jnp.ones((4, 2)), "y": jnp.ones(4), "loss": "mse"}, "vanishing_gradient_report: y must"),
])
def test_vanishing_gradient_report_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        diagnostics.vanishing_gradient_report(jax.random.key(0), **kwargs)
