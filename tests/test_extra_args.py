"""Optimizers that take extra arguments (optax.lbfgs: value, grad, value_fn) in fit and
train_step, and fit_sweep over a schedule's parameter. References: scikit-learn's
LogisticRegression, optax's documented hand-written lbfgs loop, single fits."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.linear_model import LogisticRegression

import fnn
from fnn import training

C = 1.0            # sklearn's inverse penalty strength
LBFGS_STEPS = 40
LINEAR = fnn.mlp([1])
LBFGS = optax.lbfgs()    # one object: the compiled loop is shared by the tests


@functools.cache
def cancer():
    x, y = fnn.datasets.breast_cancer()
    return fnn.datasets.standardize(x, fnn.datasets.fit_standardizer(x)), y.astype(jnp.float32)


def penalised(params, x):
    r"""Logits and, beside them, the L2 penalty :math:`\|w\|^2 / (2 C n)` of sklearn's
    objective divided by n (fit's loss sees predictions only, so the penalty rides along)."""
    z = LINEAR.apply(params, x)
    penalty = jnp.sum(params[0]["w"] ** 2) / (2 * C * cancer()[0].shape[0])
    return jnp.concatenate([z, jnp.broadcast_to(penalty, z.shape)], axis=-1)


def penalised_loss(predictions, y):
    return fnn.losses.binary_cross_entropy(predictions[:, 0], y) + jnp.mean(predictions[:, 1])


def zeros():
    return jax.tree.map(jnp.zeros_like, LINEAR.init(jax.random.key(0), (30,)))


@pytest.fixture(scope="module")
def lbfgs_fit():
    x, y = cancer()
    return fnn.fit(penalised, zeros(), LBFGS, x, y, loss=penalised_loss, epochs=LBFGS_STEPS,
                   batch_size=x.shape[0], shuffle=False, progress=False)


def test_fit_lbfgs_full_batch_reaches_sklearn_logistic_regression_optimum(lbfgs_fit):
    x, y = (np.asarray(a, np.float64) for a in cancer())
    sk = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(x, y)
    w, b = np.asarray(lbfgs_fit.params[0]["w"][:, 0]), float(lbfgs_fit.params[0]["b"][0])

    def objective(w, b):     # sklearn's, divided by C n
        z = x @ w + b
        return np.mean(np.logaddexp(0, z) - y * z) + w @ w / (2 * C * len(y))

    np.testing.assert_allclose(w, sk.coef_[0], atol=2e-4 * np.abs(sk.coef_).max())
    np.testing.assert_allclose(b, sk.intercept_[0], atol=2e-4)
    np.testing.assert_allclose(objective(w, b), objective(sk.coef_[0], sk.intercept_[0]), rtol=1e-6)


def test_fit_lbfgs_equals_optax_value_and_grad_from_state_loop(lbfgs_fit):
    x, y = cancer()

    def f(p):
        return penalised_loss(penalised(p, x), y)
    value_and_grad = optax.value_and_grad_from_state(f)

    @jax.jit
    def step(p, s):
        value, grad = value_and_grad(p, state=s)
        updates, s = LBFGS.update(grad, s, p, value=value, grad=grad, value_fn=f)
        return optax.apply_updates(p, updates), s, value

    p, s, values = zeros(), LBFGS.init(zeros()), []
    for _ in range(LBFGS_STEPS):
        p, s, value = step(p, s)
        values.append(value)
    chex.assert_trees_all_close(lbfgs_fit.params, p, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(lbfgs_fit.history["train_loss"], np.stack(values), rtol=1e-6)


def _recording(updates, state, params, *, value, grad, value_fn):
    """An update that keeps the largest ``|value_fn(params) - value|`` and ``|grad - updates|``
    over all the updates of a run."""
    value_gap, grad_gap = state
    value_gap = jnp.maximum(value_gap, jnp.abs(value_fn(params) - value) / value)
    grad_gap = jnp.maximum(grad_gap, optax.tree.norm(jax.tree.map(jnp.subtract, grad, updates)))
    return jax.tree.map(lambda g: -0.1 * g, updates), (value_gap, grad_gap)


RECORDING = optax.GradientTransformationExtraArgs(lambda p: (jnp.float32(0), jnp.float32(0)), _recording)
DROPOUT_NET = fnn.serial(fnn.dense(8), fnn.relu, fnn.layers.dropout(0.5), fnn.dense(3))


# A model with dropout: value_fn must run with train=True and the step's key (and, when
# accumulating, each micro-batch with its own key), or it differs from the batch loss.
def test_make_train_step_value_fn_is_the_loss_of_the_step_and_grad_its_gradient():
    x, y = fnn.datasets.blobs(jax.random.key(0), 16)
    params, state = DROPOUT_NET.init(jax.random.key(1), (2,))
    step = training.make_train_step(DROPOUT_NET, RECORDING, donate=False)
    _, (value_gap, grad_gap), _, _ = step(params, RECORDING.init(params), state, x, y, jax.random.key(2))
    assert float(value_gap) < 1e-6 and float(grad_gap) == 0.0


def test_fit_accumulated_value_fn_is_the_mean_loss_of_the_update_and_grad_its_gradient():
    x, y = fnn.datasets.blobs(jax.random.key(0), 64)   # updates of 2 x 10 examples, then the last 4
    params, state = DROPOUT_NET.init(jax.random.key(1), (2,))
    r = fnn.fit(DROPOUT_NET, params, RECORDING, x, y, state=state, epochs=2, batch_size=10,
                accumulation_steps=2, key=jax.random.key(2), progress=False)
    value_gap, grad_gap = r.opt_state
    assert float(value_gap) < 1e-6 and float(grad_gap) == 0.0


def test_make_train_step_extra_args_only_those_the_update_names():
    def update(updates, state, params=None, *, value):     # no grad=, value_fn=, **kwargs
        return jax.tree.map(lambda g: -0.1 * g, updates), value
    opt = optax.GradientTransformationExtraArgs(lambda p: jnp.float32(0), update)
    params = LINEAR.init(jax.random.key(0), (30,))
    x, y = (a[:8] for a in cancer())
    step = training.make_train_step(penalised, opt, penalised_loss, donate=False)
    _, seen, loss = step(params, opt.init(params), x, y)
    np.testing.assert_allclose(seen, loss)


# --- fit_sweep over a schedule's parameter -------------------------------------------------

SWEEP_MODEL = fnn.mlp([8, 3])
SWEEP_STEPS = 12     # 3 epochs of 4 batches


def _cosine(learning_rate):              # traced under vmap: one program for all members
    return fnn.optimizers.adam(optax.cosine_decay_schedule(learning_rate, SWEEP_STEPS))


@functools.cache
def _sweep_data():
    return fnn.datasets.blobs(jax.random.key(0), 64)


def _sweep(make, hyper):
    x, y = _sweep_data()
    return training.fit_sweep(SWEEP_MODEL, SWEEP_MODEL.init(jax.random.key(1), (2,)), make, hyper,
                              x, y, epochs=3, batch_size=16, key=jax.random.key(2), progress=False)


def _assert_member_is_single_fit(r, make, hyper, k):
    x, y = _sweep_data()
    single = fnn.fit(SWEEP_MODEL, SWEEP_MODEL.init(jax.random.key(1), (2,)),
                     make(jax.tree.map(lambda a: a[k].item(), hyper)), x, y, epochs=3,
                     batch_size=16, key=jax.random.key(2), progress=False)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[k], r.params), single.params,
                                rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.history["train_loss"][k], single.history["train_loss"], rtol=1e-5)


def test_fit_sweep_schedule_rate_traced_member_equals_single_fit():
    hyper = jnp.array([0.01, 0.1])
    _assert_member_is_single_fit(_sweep(_cosine, hyper), _cosine, hyper, 1)


def test_fit_sweep_schedule_built_per_member_equals_single_fits_and_compiles_once():
    traced = []

    def make(h):       # optax tests peak_value == 0 in Python, and warmup steps are an int
        schedule = optax.warmup_cosine_decay_schedule(0.0, h["peak"], h["warmup"], SWEEP_STEPS)
        return fnn.optimizers.adam(lambda count: traced.append(1) or schedule(count))

    hyper = {"peak": jnp.array([0.01, 0.1]), "warmup": jnp.array([2, 6])}
    r = _sweep(make, hyper)
    compiled = len(traced)
    chex.assert_trees_all_equal(_sweep(make, hyper).params, r.params)
    assert compiled > 0 and len(traced) == compiled       # the second call reused the program
    for k in range(2):
        _assert_member_is_single_fit(r, make, hyper, k)
