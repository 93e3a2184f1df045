"""The general layer form: dropout, batch norm, serial promotion and training with state.

References: NumPy batch norm, the closed-form EMA of the running averages, binomial
bounds for dropout, finite differences, and Python loops over ``train_step`` with the
keys of :func:`fnn.training.step_key` for ``fit``, ensembles and sweeps.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
import textwrap
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import fnn
from fnn.layers import StatefulLayer, batch_norm, dropout
from fnn.losses import softmax_cross_entropy
from fnn.training import epoch_order, evaluate, make_train_step, step_key

KEY = jax.random.key(0)


def _key_data(k):
    return np.asarray(jax.random.key_data(k))


def _data(n=40, d=4, classes=3, seed=0):
    x = jax.random.normal(jax.random.key(seed), (n, d)) * 2.0 + 1.0
    y = jnp.argmax(x[:, :classes] * jnp.array([1.0, -1.0, 0.5]), axis=1)
    return x, y


@functools.cache
def _init(model):
    """``model.init(KEY, (4,))``, compiled (one program instead of many eager ops), once per model."""
    return jax.jit(model.init, static_argnums=1)(KEY, (4,))


@functools.cache
def _init_ensemble(model):
    return jax.jit(lambda keys: fnn.training.init_ensemble(model, keys, (4,)))(jax.random.split(KEY, 2))


def _bn_net():
    return fnn.serial(fnn.dense(8), batch_norm(momentum=0.9), fnn.relu, fnn.dense(3))


def _general_net():
    return fnn.serial(fnn.dense(8), batch_norm(momentum=0.9), fnn.relu, dropout(0.25), fnn.dense(3))


# ----------------------------------------------------------------------------- dropout

def test_dropout_fraction_within_binomial_bounds():
    rate, n = 0.3, 100_000
    layer = dropout(rate)
    y, _ = layer.apply((), (), jnp.ones((n,)), key=jax.random.key(1), train=True)
    dropped = float(jnp.mean(y == 0))
    sigma = math.sqrt(rate * (1 - rate) / n)
    assert abs(dropped - rate) < 4 * sigma, (dropped, rate, sigma)


def test_dropout_scales_kept_units():
    rate = 0.4
    x = jax.random.normal(jax.random.key(2), (1000,)) + 3.0      # no zero inputs
    y, _ = dropout(rate).apply((), (), x, key=jax.random.key(3), train=True)
    kept = np.asarray(y != 0)
    assert 0 < kept.sum() < x.size
    np.testing.assert_allclose(np.asarray(y)[kept], np.asarray(x)[kept] / (1 - rate), rtol=1e-6)


def test_dropout_preserves_expectation():
    rate, draws = 0.5, 4000
    x = jnp.array([1.0, -2.0, 3.0, 0.5])
    keys = jax.random.split(jax.random.key(4), draws)
    ys = jax.vmap(lambda k: dropout(rate).apply((), (), x, key=k, train=True)[0])(keys)
    # Each draw of y_i is x_i / (1 - p) w.p. 1 - p, else 0: std |x_i| sqrt(p / (1 - p)).
    sigma = np.abs(np.asarray(x)) * math.sqrt(rate / (1 - rate)) / math.sqrt(draws)
    assert np.all(np.abs(np.asarray(ys.mean(0)) - np.asarray(x)) < 4 * sigma)


def test_dropout_is_identity_at_inference():
    x = jax.random.normal(jax.random.key(5), (6, 7))
    y, state = dropout(0.7).apply((), (), x, key=jax.random.key(6), train=False)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
    assert state == ()
    y, _ = dropout(0.7).apply((), (), x)                         # no key needed
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))


def test_dropout_same_key_same_mask():
    x = jnp.ones((64,))
    a, _ = dropout(0.5).apply((), (), x, key=jax.random.key(7), train=True)
    b, _ = dropout(0.5).apply((), (), x, key=jax.random.key(7), train=True)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_dropout_different_step_keys_different_masks():
    x = jnp.ones((256,))
    masks = [np.asarray(dropout(0.5).apply((), (), x, key=step_key(KEY, t), train=True)[0] == 0)
             for t in range(3)]
    assert not np.array_equal(masks[0], masks[1])
    assert not np.array_equal(masks[1], masks[2])
    member = np.asarray(dropout(0.5).apply((), (), x, key=step_key(KEY, 0, 1), train=True)[0] == 0)
    assert not np.array_equal(masks[0], member)


def test_dropout_preserves_bfloat16():
    x = (jax.random.normal(jax.random.key(8), (500,)) + 3.0).astype(jnp.bfloat16)
    y, _ = dropout(0.2).apply((), (), x, key=jax.random.key(9), train=True)
    assert y.dtype == jnp.bfloat16
    kept = np.asarray(y != 0)
    expected = (x / jnp.asarray(0.8, jnp.bfloat16)).astype(jnp.bfloat16)
    np.testing.assert_array_equal(np.asarray(y, np.float32)[kept], np.asarray(expected, np.float32)[kept])


def test_dropout_jit_equals_eager():
    layer = dropout(0.3)
    x = jax.random.normal(jax.random.key(10), (5, 9))
    eager, _ = layer.apply((), (), x, key=jax.random.key(11), train=True)
    jitted = jax.jit(lambda v, k: layer.apply((), (), v, key=k, train=True)[0])(x, jax.random.key(11))
    np.testing.assert_array_equal(np.asarray(eager), np.asarray(jitted))


def test_dropout_without_key_in_training_names_key():
    with pytest.raises(ValueError, match="dropout: key"):
        dropout(0.5).apply((), (), jnp.ones(3), train=True)


def test_dropout_given_params_names_params():
    # A bug fixed with this test: the check of the (empty) params blamed "state".
    with pytest.raises(ValueError, match=r"dropout: params must be \(\)"):
        dropout(0.5).apply({"w": jnp.ones(2)}, (), jnp.ones(3))
    with pytest.raises(ValueError, match=r"dropout: state must be \(\)"):
        dropout(0.5).apply((), {"w": jnp.ones(2)}, jnp.ones(3))


# -------------------------------------------------------------------------- batch norm

def _bn_reference(x, scale, offset, mean, var, eps, axes):
    return (x - mean) / np.sqrt(var + eps) * scale + offset


def _bn_inputs(shape, seed=12):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    c = shape[-1]
    x = jax.random.normal(k1, shape) * 3.0 + 2.0
    params = {"scale": jax.random.uniform(k2, (c,), minval=0.5, maxval=2.0),
              "offset": jax.random.normal(k3, (c,))}
    return x, params


@pytest.mark.parametrize("shape", [(16, 5), (4, 3, 5)])
def test_batch_norm_training_matches_numpy(shape):
    layer = batch_norm(momentum=0.8, eps=1e-3)
    x, params = _bn_inputs(shape)
    _, state = layer.init(KEY, shape[1:])
    y, new = layer.apply(params, state, x, train=True)
    xn = np.asarray(x, np.float64)
    axes = tuple(range(xn.ndim - 1))                   # every axis but the last
    mu, var = xn.mean(axis=axes), xn.var(axis=axes)    # biased variance
    ref = _bn_reference(xn, np.asarray(params["scale"]), np.asarray(params["offset"]), mu, var, 1e-3, axes)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(new["mean"]), 0.8 * 0 + 0.2 * mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(new["var"]), 0.8 * 1 + 0.2 * var, rtol=1e-5, atol=1e-6)


def test_batch_norm_inference_matches_numpy_and_keeps_state():
    layer = batch_norm(eps=1e-5)
    x, params = _bn_inputs((10, 4))
    state = {"mean": jnp.array([0.5, -1.0, 2.0, 0.0]), "var": jnp.array([1.0, 4.0, 0.25, 9.0])}
    y, new = layer.apply(params, state, x, train=False)
    ref = _bn_reference(np.asarray(x), np.asarray(params["scale"]), np.asarray(params["offset"]),
                        np.asarray(state["mean"]), np.asarray(state["var"]), 1e-5, (0,))
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_equal(new, state)


def test_batch_norm_running_averages_after_k_steps_match_closed_form_ema():
    rho, k = 0.7, 5
    layer = batch_norm(momentum=rho)
    params, state = layer.init(KEY, (3,))
    batches = [jax.random.normal(jax.random.key(20 + i), (8, 3)) * (i + 1) + i for i in range(k)]
    for b in batches:
        _, state = layer.apply(params, state, b, train=True)
    xs = [np.asarray(b, np.float64) for b in batches]
    # r_k = rho^k r_0 + (1 - rho) sum_i rho^(k - 1 - i) m_i
    mean = rho ** k * 0.0 + (1 - rho) * sum(rho ** (k - 1 - i) * x.mean(0) for i, x in enumerate(xs))
    var = rho ** k * 1.0 + (1 - rho) * sum(rho ** (k - 1 - i) * x.var(0) for i, x in enumerate(xs))
    np.testing.assert_allclose(np.asarray(state["mean"]), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(state["var"]), var, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_gradients_match_finite_differences(x64, train):
    layer = batch_norm(momentum=0.9, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(30), (6, 2, 3), jnp.float64) * 2.0 + 1.0
    params = {"scale": jnp.array([1.5, 0.5, 2.0]), "offset": jnp.array([0.1, -0.2, 0.3])}
    state = {"mean": jnp.array([0.2, 0.1, -0.3]), "var": jnp.array([1.5, 0.7, 2.0])}

    def f(p, v):
        y, _ = layer.apply(p, state, v, train=train)
        return jnp.sum(jnp.sin(y))          # a non-linear read-out: the sum of y alone has zero x-grad

    check_grads(jax.jit(f), (params, x), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)


def test_batch_norm_keeps_bfloat16_output():
    layer = batch_norm()
    params, state = layer.init(KEY, (4,))
    x = jax.random.normal(jax.random.key(31), (8, 4)).astype(jnp.bfloat16)
    y, new = layer.apply(params, state, x, train=True)
    assert y.dtype == jnp.bfloat16
    assert new["mean"].dtype == jnp.float32


# ------------------------------------------------------------------- serial promotion

def test_serial_of_pure_layers_stays_pure_with_the_same_params():
    net = fnn.serial(fnn.dense(4), fnn.relu, fnn.dense(2))
    assert isinstance(net, fnn.layers.Layer) and not isinstance(net, StatefulLayer)
    params = net.init(KEY, (3,))
    k = jax.random.split(KEY, 3)
    expected = [fnn.dense(4).init(k[0], (3,)), (), fnn.dense(2).init(k[2], (4,))]
    chex.assert_trees_all_equal(params, expected)


def test_serial_with_one_general_part_is_general_with_a_state_per_part():
    net = fnn.serial(fnn.dense(4), batch_norm(), fnn.relu, fnn.dense(2))
    assert isinstance(net, StatefulLayer)
    params, state = net.init(KEY, (3,))
    assert isinstance(state, list) and len(state) == 4
    assert state[0] == () and state[2] == () and state[3] == ()
    chex.assert_trees_all_equal(state[1], {"mean": jnp.zeros(4), "var": jnp.ones(4)})
    k = jax.random.split(KEY, 4)
    chex.assert_trees_all_equal(params[0], fnn.dense(4).init(k[0], (3,)))
    chex.assert_trees_all_equal(params[3], fnn.dense(2).init(k[3], (4,)))


def test_serial_gives_part_i_the_ith_split_key():
    net = fnn.serial(dropout(0.5), fnn.relu, dropout(0.3))
    params, state = net.init(KEY, (200,))
    x = jax.random.uniform(jax.random.key(40), (2, 200), minval=0.5, maxval=1.5)
    key = jax.random.key(41)
    y, _ = net.apply(params, state, x, key=key, train=True)
    keys = jax.random.split(key, 3)
    h, _ = dropout(0.5).apply((), (), x, key=keys[0], train=True)
    expected, _ = dropout(0.3).apply((), (), jax.nn.relu(h), key=keys[2], train=True)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(expected))


# ---------------------------------------------------------------- fit and train_step
# Every fit of one model below uses the same optimizer, batch size and flags, so the
# compiled loop (cached per configuration) is built once for the whole file. SGD rather
# than Adam: the bias of a dense layer before batch norm has a gradient that is zero up to
# rounding noise, which Adam's normalisation would blow up to full steps.

SGD = fnn.optimizers.sgd(0.1)
FIT = dict(batch_size=16, key=jax.random.key(50), progress=False)
_STEPS = {}


def _step(model):
    if model not in _STEPS:
        _STEPS[model] = make_train_step(model, SGD, donate=False)
    return _STEPS[model]


def _loop(model, params, state, x, y, key, epochs, batch_size, shuffle, member=None):
    """Python reference for fit: train_step over the batches, with the step keys."""
    step = _step(model)
    opt_state = SGD.init(params)
    n = x.shape[0]
    starts = list(range(0, n, batch_size))
    history = []
    for e in range(epochs):
        order = np.asarray(epoch_order(key, e, n)) if shuffle else np.arange(n)
        xe, ye = x[order], y[order]
        total = 0.0
        for i, s in enumerate(starts):
            xb, yb = xe[s:s + batch_size], ye[s:s + batch_size]
            t = e * len(starts) + i
            k = step_key(key, t) if member is None else step_key(key, t, member)
            params, opt_state, state, loss = step(params, opt_state, state, xb, yb, k)
            total += float(loss) * xb.shape[0]
        history.append(total / n)
    return params, state, np.array(history)


def test_fit_general_model_equals_python_loop_over_train_step():
    # With shuffle (the batches follow epoch_order); the fixed order is in the ensemble
    # test below.
    model = _general_net()
    params, state = _init(model)
    x, y = _data()
    r = fnn.fit(model, params, SGD, x, y, state=state, epochs=2, **FIT)
    p, s, h = _loop(model, params, state, x, y, FIT["key"], 2, 16, True)
    chex.assert_trees_all_close(r.params, p, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(r.state, s, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(r.history["train_loss"]), h, rtol=1e-5)
    assert not np.allclose(np.asarray(r.state[1]["mean"]), 0.0)       # the state moved


def test_evaluate_uses_inference_mode():
    model = _general_net()
    params, state = _init(model)
    x, y = _data()
    state = jax.tree.map(lambda a: a + 0.5, state)          # running averages away from 0/1
    out = evaluate(model, params, x, y, state=state)
    apply = jax.jit(model.apply, static_argnames="train")
    pred, _ = apply(params, state, x, train=False)
    np.testing.assert_allclose(float(out["loss"]), float(softmax_cross_entropy(pred, y)), rtol=1e-6)
    trained, _ = apply(params, state, x, key=KEY, train=True)
    assert abs(float(softmax_cross_entropy(trained, y)) - float(out["loss"])) > 1e-3


def test_fit_general_model_without_state_names_state():
    model = _general_net()
    params, _ = _init(model)
    x, y = _data()
    with pytest.raises(ValueError, match="fit: state"):
        fnn.fit(model, params, SGD, x, y, **FIT)


def test_fit_general_model_without_key_names_key():
    model = _general_net()
    params, state = _init(model)
    x, y = _data()
    with pytest.raises(ValueError, match="fit: key"):
        fnn.fit(model, params, SGD, x, y, state=state, shuffle=False, progress=False)


# ------------------------------------------------------------------ ensembles, sweeps

def _member(tree, k):
    return jax.tree.map(lambda a: a[k], tree)


def test_fit_ensemble_member_equals_single_fit_with_batch_norm():
    model = _bn_net()
    params, state = _init_ensemble(model)
    x, y = _data()
    r = fnn.training.fit_ensemble(model, params, SGD, x, y, state=state, epochs=2, **FIT)
    chex.assert_shape(r.state[1]["mean"], (2, 8))
    for k in range(2):
        single = fnn.fit(model, _member(params, k), SGD, x, y, state=_member(state, k), epochs=2, **FIT)
        chex.assert_trees_all_close(_member(r.params, k), single.params, rtol=1e-5, atol=1e-6)
        chex.assert_trees_all_close(_member(r.state, k), single.state, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(r.history["train_loss"][k]),
                                   np.asarray(single.history["train_loss"]), rtol=1e-5)


def test_fit_ensemble_member_draws_with_its_step_keys():
    model = _general_net()
    params, state = _init_ensemble(model)
    x, y = _data()
    r = fnn.training.fit_ensemble(model, params, SGD, x, y, state=state, epochs=2, shuffle=False,
                                  **FIT)
    for k in range(2):
        p, s, h = _loop(model, _member(params, k), _member(state, k), x, y, FIT["key"], 2, 16,
                        False, member=k)
        chex.assert_trees_all_close(_member(r.params, k), p, rtol=1e-5, atol=1e-6)
        chex.assert_trees_all_close(_member(r.state, k), s, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(r.history["train_loss"][k]), h, rtol=1e-5)


def test_fit_sweep_broadcasts_state_and_member_equals_single_fit():
    model = _bn_net()
    params, state = _init(model)
    x, y = _data()
    r = fnn.training.fit_sweep(model, params, fnn.optimizers.sgd, jnp.array([0.01, 0.1]), x, y,
                               state=state, epochs=2, **FIT)
    chex.assert_shape(r.state[1]["var"], (2, 8))
    single = fnn.fit(model, params, SGD, x, y, state=state, epochs=2, **FIT)     # rate 0.1
    chex.assert_trees_all_close(_member(r.params, 1), single.params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(_member(r.state, 1), single.state, rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(r.state[1]["mean"][0]), np.asarray(r.state[1]["mean"][1]))


# ---------------------------------------------------------------------- data parallel

# The sharded run happens in a subprocess with 8 simulated devices; the single-device run
# it is compared with is the fit of the loop test above (same program, compiled once).
PARALLEL_SCRIPT = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp, numpy as np, fnn, fnn.parallel
    assert len(jax.devices()) == 8, jax.devices()
    data = np.load(sys.argv[1])
    model = fnn.serial(fnn.dense(8), fnn.layers.batch_norm(momentum=0.9), fnn.relu,
                       fnn.layers.dropout(0.25), fnn.dense(3))
    template = jax.eval_shape(lambda k: model.init(k, (4,)), jax.random.key(0))
    leaves, tree = jax.tree.flatten(template)
    params, state = jax.tree.unflatten(tree, [data[f"p{i}"] for i in range(len(leaves))])
    r = fnn.parallel.fit(model, params, fnn.optimizers.sgd(0.1), data["x"], data["y"], state=state,
                         epochs=2, batch_size=16, key=jax.random.key(50), progress=False)
    assert len(r.params[0]["w"].sharding.device_set) == 8, r.params[0]["w"].sharding
    leaves = jax.tree.leaves((r.params, r.state, r.history))
    np.savez(sys.argv[2], *[np.asarray(a) for a in leaves])
    print("OK")
""")


def test_parallel_fit_with_batch_norm_equals_single_device_on_8_devices(tmp_path):
    model = _general_net()
    params, state = _init(model)
    x, y = _data()
    start = {f"p{i}": np.asarray(a) for i, a in enumerate(jax.tree.leaves((params, state)))}
    np.savez(tmp_path / "data.npz", x=np.asarray(x), y=np.asarray(y), **start)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", PARALLEL_SCRIPT, str(tmp_path / "data.npz"),
                          str(tmp_path / "sharded.npz")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("OK")
    single = fnn.fit(model, params, SGD, x, y, state=state, epochs=2, **FIT)
    expected = jax.tree.leaves((single.params, single.state, single.history))
    with np.load(tmp_path / "sharded.npz") as sharded:
        got = [sharded[f"arr_{i}"] for i in range(len(sharded.files))]
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- resume and NaN guard

def test_fit_resume_from_checkpoint_is_bit_identical(tmp_path):
    model = _general_net()
    params, state = _init(model)
    x, y = _data()
    path = tmp_path / "run.ckpt"
    # 2 epochs, checkpointed after each, then resumed to 4 (a history of 4 epochs is a
    # new program, compiled once for both 4-epoch runs).
    fnn.fit(model, params, SGD, x, y, state=state, epochs=2, checkpoint=path, **FIT)
    resumed = fnn.fit(model, None, SGD, x, y, epochs=4, initial=path, **FIT)
    whole = fnn.fit(model, params, SGD, x, y, state=state, epochs=4, **FIT)
    assert resumed.epoch == whole.epoch == 4
    chex.assert_trees_all_equal(resumed.params, whole.params)
    chex.assert_trees_all_equal(resumed.state, whole.state)
    chex.assert_trees_all_equal(resumed.opt_state, whole.opt_state)
    chex.assert_trees_all_equal(resumed.history, whole.history)


def test_fit_nan_guard_rolls_back_state_with_params():
    model = _bn_net()
    params, state = _init(model)
    x, y = _data()
    opt = fnn.optimizers.sgd(1e30)
    kw = FIT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = fnn.fit(model, params, opt, x, y, state=state, epochs=2, **kw)
    assert r.nonfinite, "a learning rate of 1e30 did not fail"
    e = r.nonfinite[0].epoch
    assert r.epoch == e
    chex.assert_tree_all_finite((r.params, r.state))
    if e == 0:
        expected_params, expected_state = params, state
    else:
        before = fnn.fit(model, params, opt, x, y, state=state, epochs=e, **kw)
        expected_params, expected_state = before.params, before.state
    chex.assert_trees_all_equal(r.params, expected_params)
    chex.assert_trees_all_equal(r.state, expected_state)


# ----------------------------------------------------------------------- no retrace

def test_fit_second_call_with_same_shapes_does_not_retrace():
    traces = []

    def init(key, shape):
        return (), {"count": jnp.zeros((), jnp.float32)}

    def apply(params, state, x, *, key=None, train=False):
        traces.append(train)
        return x, {"count": state["count"] + 1} if train else state

    counter = StatefulLayer(init, apply)
    model = fnn.serial(fnn.dense(3), counter)
    params, state = _init(model)
    x, y = _data()
    first = fnn.fit(model, params, SGD, x, y, state=state, epochs=2, **FIT)
    assert float(first.state[1]["count"]) == 6           # 3 steps per epoch, 2 epochs
    seen = len(traces)
    params2 = jax.tree.map(lambda a: a + 1.0, params)
    fnn.fit(model, params2, SGD, x, y, state=state, epochs=2, **FIT)
    assert len(traces) == seen, f"second fit traced apply {len(traces) - seen} more times"
