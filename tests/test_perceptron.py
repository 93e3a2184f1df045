"""Tests for fnn.perceptron: Rosenblatt's rule against hand traces, Novikoff, numpy."""

import functools

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import perceptron

X = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]], jnp.float32)
AND = jnp.array([0, 0, 0, 1])
OR = jnp.array([0, 1, 1, 1])
XOR = jnp.array([0, 1, 1, 0])


def numpy_rosenblatt(w, b, x, y, learning_rate, max_epochs):
    """The textbook loop in plain Python/numpy: the reference for the compiled one."""
    w, b = np.array(w, np.float64), float(b)
    errors = []
    for _ in range(max_epochs):
        mistakes = 0
        for x_i, y_i in zip(np.asarray(x, np.float64), np.asarray(y, np.float64)):
            y_hat = 1.0 if x_i @ w + b >= 0 else 0.0
            error = y_i - y_hat
            w, b = w + learning_rate * error * x_i, b + learning_rate * error
            mistakes += error != 0
        errors.append(mistakes)
        if mistakes == 0:
            break
    return w, b, errors


def run_errors(history):
    return [int(e) for e in history.errors[: int(history.epochs)]]


def test_fit_and_converges_in_hand_traced_epochs():
    """AND from w = (0, 0), b = 0, lr = 1, examples in the order 00, 01, 10, 11.

    z = x.w + b, y_hat = step(z) (z = 0 gives 1), update w += (y - y_hat) x, b += y - y_hat.
    Epoch 1: 00 z=0 -> 1, wrong: b=-1. 01 z=-1 ok. 10 z=-1 ok.
             11 z=-1 -> 0, wrong: w=(1,1) b=0.                                2 errors
    Epoch 2: 00 z=0 wrong: b=-1. 01 z=0 wrong: w=(1,0) b=-2. 10 z=-1 ok.
             11 z=-1 wrong: w=(2,1) b=-1.                                     3 errors
    Epoch 3: 00 z=-1 ok. 01 z=0 wrong: w=(2,0) b=-2. 10 z=0 wrong: w=(1,0) b=-3.
             11 z=-2 wrong: w=(2,1) b=-2.                                     3 errors
    Epoch 4: 00 z=-2 ok. 01 z=-1 ok. 10 z=0 wrong: w=(1,1) b=-3.
             11 z=-1 wrong: w=(2,2) b=-2.                                     2 errors
    Epoch 5: 00 z=-2 ok. 01 z=0 wrong: w=(2,1) b=-3. 10 z=-1 ok. 11 z=0 ok.  1 error
    Epoch 6: 00 z=-3, 01 z=-2, 10 z=-1, 11 z=0: all right.                    0 errors
    So: errors [2, 3, 3, 2, 1, 0], 6 epochs, w = (2, 1), b = -3.
    """
    params, history = perceptron.fit(perceptron.init(2), X, AND, max_epochs=10)
    assert run_errors(history) == [2, 3, 3, 2, 1, 0]
    assert int(history.epochs) == 6 and bool(history.converged)
    assert history.errors.tolist()[6:] == [perceptron.NOT_RUN] * 4
    chex.assert_trees_all_equal(params, {"w": jnp.array([2.0, 1.0]), "b": jnp.array(-3.0)})
    chex.assert_trees_all_equal(perceptron.predict(params, X), AND.astype(jnp.float32))


def test_fit_or_converges_in_hand_traced_epochs():
    """OR, same start and order.

    Epoch 1: 00 z=0 wrong: b=-1. 01 z=-1 wrong: w=(0,1) b=0. 10 z=0 ok. 11 z=1 ok.  2 errors
    Epoch 2: 00 z=0 wrong: b=-1. 01 z=0 ok. 10 z=-1 wrong: w=(1,1) b=0. 11 ok.      2 errors
    Epoch 3: 00 z=0 wrong: b=-1. 01 z=0 ok. 10 z=0 ok. 11 z=1 ok.                  1 error
    Epoch 4: 00 z=-1, 01 z=0, 10 z=0, 11 z=1: all right.                            0 errors
    So: errors [2, 2, 1, 0], 4 epochs, w = (1, 1), b = -1 (01 and 10 sit exactly on the
    boundary and are class 1 by the z = 0 convention).
    """
    params, history = perceptron.fit(perceptron.init(2), X, OR, max_epochs=10)
    assert run_errors(history) == [2, 2, 1, 0]
    assert int(history.epochs) == 4 and bool(history.converged)
    chex.assert_trees_all_equal(params, {"w": jnp.array([1.0, 1.0]), "b": jnp.array(-1.0)})
    chex.assert_trees_all_equal(perceptron.predict(params, X), OR.astype(jnp.float32))


def test_fit_xor_never_converges():
    params, history = perceptron.fit(perceptron.init(2), X, XOR, max_epochs=50)
    assert not bool(history.converged)
    assert int(history.epochs) == 50
    assert int(history.errors.min()) >= 1  # every epoch makes a mistake: no line splits XOR
    assert float(jnp.mean(perceptron.predict(params, X) == XOR)) < 1.0


def separable_problem(seed, n_examples=200, n_features=5, margin=0.02):
    """Points in [-1, 1]^n labelled by a random plane, those closer than ``margin`` dropped.

    Returns x, y, the unit separator ``w_star`` of the augmented inputs ``[x, 1]``, the
    radius R = max |[x, 1]| and the margin gamma of ``w_star``.
    """
    rng = np.random.default_rng(seed)
    w_star = rng.normal(size=n_features + 1)
    w_star[-1] *= 0.1                                  # a plane through the data cloud
    w_star /= np.linalg.norm(w_star)
    x = rng.uniform(-1, 1, size=(4 * n_examples, n_features))
    augmented = np.hstack([x, np.ones((len(x), 1))])
    signed = augmented @ w_star
    keep = np.abs(signed) >= margin
    x, augmented, signed = x[keep][:n_examples], augmented[keep][:n_examples], signed[keep][:n_examples]
    y = (signed > 0).astype(np.int32)
    radius = np.linalg.norm(augmented, axis=1).max()
    return jnp.asarray(x, jnp.float32), jnp.asarray(y), w_star, radius, np.abs(signed).min()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_separable_within_novikoff_bound(seed):
    """Novikoff (1962): from zero weights, at most (R / gamma)^2 updates.

    The proof's two lemmas hold after any k updates of size lr, for the augmented
    weights u = [w, b] and any unit separator u* with margin gamma:
    u . u* >= k lr gamma (each update gains at least lr gamma along u*), and
    |u|^2 <= k lr^2 R^2 (each update is made on a point with y+-(u . [x, 1]) <= 0, which
    also holds for the z = 0 -> class 1 convention). Together: k <= (R / gamma)^2.
    """
    x, y, w_star, radius, gamma = separable_problem(seed)
    learning_rate = 0.5
    bound = (radius / gamma) ** 2
    params, history = perceptron.fit(perceptron.init(x.shape[1]), x, y,
                                     learning_rate=learning_rate, max_epochs=int(bound) + 2)
    updates = sum(run_errors(history))
    assert bool(history.converged)
    assert 10 < updates <= bound
    u = np.append(np.asarray(params["w"], np.float64), float(params["b"]))
    assert u @ w_star >= updates * learning_rate * gamma * (1 - 1e-5)
    assert u @ u <= updates * learning_rate**2 * radius**2 * (1 + 1e-5)
    chex.assert_trees_all_equal(perceptron.predict(params, x), y.astype(jnp.float32))


def test_fit_learning_rate_only_scales_weights_from_zero():
    _, history_1 = perceptron.fit(perceptron.init(2), X, AND)
    params, history = perceptron.fit(perceptron.init(2), X, AND, learning_rate=0.25)
    chex.assert_trees_all_equal(history, history_1)
    chex.assert_trees_all_close(params, {"w": jnp.array([0.5, 0.25]), "b": jnp.array(-0.75)})


def test_fit_stops_at_once_when_already_right():
    params = {"w": jnp.array([1.0, 1.0]), "b": jnp.array(-1.5)}
    trained, history = perceptron.fit(params, X, AND, max_epochs=5)
    assert history.errors.tolist() == [0, -1, -1, -1, -1] and int(history.epochs) == 1
    chex.assert_trees_all_equal(trained, params)


def test_predict_boundary_point_is_class_one():
    params = {"w": jnp.array([1.0, -1.0]), "b": jnp.array(0.0)}
    chex.assert_trees_all_equal(perceptron.predict(params, jnp.array([[2.0, 2.0], [1.0, 2.0]])),
                                jnp.array([1.0, 0.0]))


@hypothesis.settings(max_examples=10, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**31 - 1), learning_rate=st.sampled_from([0.5, 1.0, 2.0]))
def test_fit_equals_python_loop(seed, learning_rate):
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=(8, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=8)
    w0 = rng.integers(-2, 3, size=3).astype(np.float32)
    b0 = float(rng.integers(-2, 3))
    params, history = perceptron.fit({"w": jnp.asarray(w0), "b": jnp.asarray(b0)}, x, y,
                                     learning_rate=learning_rate, max_epochs=12)
    w, b, errors = numpy_rosenblatt(w0, b0, x, y, learning_rate, 12)
    assert run_errors(history) == errors
    assert bool(history.converged) == (errors[-1] == 0)
    # Integer data and power-of-two rates: every float32 step is exact.
    np.testing.assert_array_equal(params["w"], w)
    assert float(params["b"]) == b


def test_fit_vmap_equals_individual_runs():
    datasets = jnp.stack([AND, OR, XOR, AND])
    rates = jnp.array([1.0, 0.5, 1.0, 0.1])
    starts = {"w": jnp.array([[0.0, 0.0], [0.3, -0.2], [0.0, 0.0], [-1.0, 2.0]]),
              "b": jnp.array([0.0, 0.5, 0.0, 0.2])}
    batched = jax.vmap(lambda p, y, lr: perceptron.fit(p, X, y, learning_rate=lr, max_epochs=30))(
        starts, datasets, rates)
    for i in range(4):
        start = jax.tree.map(lambda a: a[i], starts)
        single = perceptron.fit(start, X, datasets[i], learning_rate=rates[i], max_epochs=30)
        chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], batched), single)
    assert batched[1].converged.tolist() == [True, True, False, True]


class TestJit(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_fit_jit(self):
        fit = self.variant(functools.partial(perceptron.fit, max_epochs=10))
        params, history = fit(perceptron.init(2), X, AND)
        assert int(history.epochs) == 6
        chex.assert_trees_all_equal(params, {"w": jnp.array([2.0, 1.0]), "b": jnp.array(-3.0)})


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_fit_keeps_dtype(dtype):
    params, history = perceptron.fit(perceptron.init(2, dtype), X, AND)
    assert params["w"].dtype == dtype and params["b"].dtype == dtype
    assert perceptron.predict(params, X).dtype == dtype
    assert run_errors(history) == [2, 3, 3, 2, 1, 0]


def test_fit_float64_under_x64():
    with jax.enable_x64(True):
        params, history = perceptron.fit(perceptron.init(2, jnp.float64), X, AND)
        assert params["w"].dtype == jnp.float64
        assert run_errors(history) == [2, 3, 3, 2, 1, 0]


@pytest.mark.parametrize("call,exc,match", [
    (lambda: perceptron.init(0), ValueError, "perceptron.init: n_features must"),
    (lambda: perceptron.init(2, jnp.int32), TypeError, "perceptron.init: dtype must"),
    (lambda: perceptron.predict([1.0, 2.0], X), TypeError, "perceptron.predict: params must"),
    (lambda: perceptron.predict({"w": jnp.ones(2), "b": jnp.ones(2)}, X), ValueError,
     "perceptron.predict: params must"),
    (lambda: perceptron.predict({"w": jnp.ones(2, jnp.int32), "b": jnp.array(0)}, X), TypeError,
     r'params\["w"\] must'),
    (lambda: perceptron.predict(perceptron.init(3), X), ValueError, "perceptron.predict: x must"),
    (lambda: perceptron.fit(perceptron.init(2), X[0], AND), ValueError, "perceptron.fit: x must"),
    (lambda: perceptron.fit(perceptron.init(2), X[:0], AND[:0]), ValueError,
     "perceptron.fit: x must hold at least one"),
    (lambda: perceptron.fit(perceptron.init(2), X, AND[:3]), ValueError, "perceptron.fit: y must have"),
    (lambda: perceptron.fit(perceptron.init(2), X, 2 * AND - 1), ValueError,
     r"perceptron.fit: y must hold labels in \{0, 1\}"),
    (lambda: perceptron.fit(perceptron.init(2), X, AND, learning_rate=0.0), ValueError,
     "perceptron.fit: learning_rate must"),
    (lambda: perceptron.fit(perceptron.init(2), X, AND, max_epochs=0), ValueError,
     "perceptron.fit: max_epochs must"),
])
def test_perceptron_errors_name_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
