"""fnn.training: train_step, make_train_step, fit, evaluate, ensembles and sweeps."""

from __future__ import annotations

import io
import contextlib

import chex
import jax
import jax.numpy as jnp
import os
import signal
import threading

import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

import fnn
from fnn import optimizers as O
from fnn.losses import mse, softmax_cross_entropy
from fnn.training._order import order_from_bits, sort_passes
from fnn.training import (evaluate, fit, fit_ensemble, fit_sweep, init_ensemble, make_train_step,
                          train_step)

MODEL = fnn.mlp([8, 3])


def _data(n=50, d=4, classes=3, seed=0):
    x = jax.random.normal(jax.random.key(seed), (n, d))
    y = jnp.argmax(x[:, :classes], axis=1)        # learnable labels
    return x, y


def _params(seed=1, d=4):
    return MODEL.init(jax.random.key(seed), (d,))


def _python_loop(params, optimizer, x, y, *, epochs, batch_size, key, shuffle=True,
                 loss=softmax_cross_entropy, model=MODEL):
    """The reference: the same epochs as fit, written as a plain Python loop."""
    state = optimizer.init(params)
    n = x.shape[0]
    losses = []
    for epoch in range(epochs):
        order = fnn.training.epoch_order(key, epoch, n) if shuffle else jnp.arange(n)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            params, state, value = train_step(params, state, x[idx], y[idx], model=model,
                                              optimizer=optimizer, loss=loss)
            total += float(value) * len(idx)
        losses.append(total / n)
    return params, state, np.asarray(losses)


def test_train_step_is_the_notes_update_with_sgd():
    x, y = _data()
    params = _params()
    lr = 0.3
    grads = jax.grad(lambda p: softmax_cross_entropy(MODEL.apply(p, x), y))(params)
    new, _, loss = train_step(params, O.sgd(lr).init(params), x, y, model=MODEL, optimizer=O.sgd(lr))
    expected = jax.tree.map(lambda w, g: w - lr * g, params, grads)   # w_new = w_old - lr dL/dw
    chex.assert_trees_all_close(new, expected, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(loss, softmax_cross_entropy(MODEL.apply(params, x), y))


def test_train_step_accepts_optax_optimizer_and_plain_apply():
    x, y = _data()
    params = _params()
    opt = optax.adam(1e-2)
    new, state, _ = train_step(params, opt.init(params), x, y, model=MODEL.apply, optimizer=opt)
    ours, _, _ = train_step(params, O.adam(1e-2).init(params), x, y, model=MODEL, optimizer=O.adam(1e-2))
    chex.assert_trees_all_close(new, ours, rtol=1e-6, atol=1e-7)


def test_make_train_step_does_not_retrace_and_donates():
    x, y = _data()
    opt = O.adam(1e-2)
    params = _params()
    state = opt.init(params)
    step = make_train_step(MODEL, opt)
    first_w = params[0]["w"]
    params, state, _ = step(params, state, x, y)
    assert first_w.is_deleted(), "donated params should be consumed"
    traced = step._cache_size()
    for _ in range(3):
        params, state, _ = step(params, state, x + 1.0, y)
    assert step._cache_size() == traced == 1


def test_make_train_step_without_donation_keeps_inputs():
    x, y = _data()
    opt = O.sgd(0.1)
    params = _params()
    step = make_train_step(MODEL, opt, donate=False)
    step(params, opt.init(params), x, y)
    assert not params[0]["w"].is_deleted()


def test_fit_returns_history_and_learns():
    x, y = _data(200)
    r = fit(MODEL, _params(), O.adam(1e-2), x, y, epochs=15, batch_size=16, key=jax.random.key(0),
            eval_data=(x, y), progress=False)
    assert set(r.history) == {"train_loss", "eval_loss", "eval_accuracy"}
    for v in r.history.values():
        chex.assert_shape(v, (15,))
    assert r.history["train_loss"][-1] < 0.8 * r.history["train_loss"][0]
    assert r.epoch == 15 and r.nonfinite == ()
    chex.assert_trees_all_close(r.history["eval_loss"][-1],
                                evaluate(MODEL, r.params, x, y)["loss"], rtol=1e-5)


@pytest.fixture(params=["whole", "per_batch"])
def gather(request, monkeypatch):
    """fit's two ways to put an epoch's batches together: the data gathered in epoch order
    once (up to WHOLE_GATHER_MAX_BYTES), or one gather per batch (larger data)."""
    from fnn.training import _loop
    if request.param == "per_batch":
        monkeypatch.setattr(_loop, "WHOLE_GATHER_MAX_BYTES", 0)
    _loop.build_runner.cache_clear()
    yield request.param
    _loop.build_runner.cache_clear()


def test_fit_gathers_the_whole_data_only_for_small_batches_of_bounded_data():
    from fnn.training._loop import _gathers_whole
    x, y = jnp.zeros((1000, 64)), jnp.zeros(1000, jnp.int32)       # 260 bytes an example
    assert _gathers_whole(x, y, 64)                                 # 16.6 KB batches
    assert not _gathers_whole(x, y, 160)                            # 41.6 KB batches
    big = jax.ShapeDtypeStruct((300_000, 256), jnp.float32)         # 307 MB of data
    assert not _gathers_whole(big, jax.ShapeDtypeStruct((300_000,), jnp.int32), 8)


@pytest.mark.parametrize("n,batch_size,shuffle", [(48, 16, True), (50, 16, True), (50, 16, False),
                                                  (7, 32, True)])
def test_fit_scan_equals_python_loop(n, batch_size, shuffle, gather):
    """Same batches in the same order, ragged last batch included, as a Python loop."""
    x, y = _data(n)
    key = jax.random.key(3)
    opt = O.adam(1e-2)
    r = fit(MODEL, _params(), opt, x, y, epochs=3, batch_size=batch_size, key=key,
            shuffle=shuffle, progress=False)
    params, state, losses = _python_loop(_params(), opt, x, y, epochs=3, batch_size=batch_size,
                                         key=key, shuffle=shuffle)
    chex.assert_trees_all_close(r.params, params, rtol=2e-5, atol=2e-6)
    chex.assert_trees_all_close(r.opt_state, state, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(r.history["train_loss"], losses, rtol=2e-5)


@settings(max_examples=5, deadline=None)
@given(n=st.integers(1, 24), batch_size=st.integers(1, 8), seed=st.integers(0, 100))
def test_fit_scan_equals_python_loop_property(n, batch_size, seed):
    x, y = _data(n, seed=seed)
    key = jax.random.key(seed)
    opt = O.sgd(0.05)
    r = fit(MODEL, _params(), opt, x, y, epochs=1, batch_size=batch_size, key=key, progress=False)
    params, _, _ = _python_loop(_params(), opt, x, y, epochs=1, batch_size=batch_size, key=key)
    chex.assert_trees_all_close(r.params, params, rtol=1e-5, atol=1e-6)


def test_fit_ragged_last_batch_is_trained_on():
    """n=9, batch 4: the 9th example's gradient must reach the params."""
    x, y = _data(9)
    r_all = fit(MODEL, _params(), O.sgd(0.1), x, y, epochs=1, batch_size=4, shuffle=False,
                progress=False)
    r_drop = fit(MODEL, _params(), O.sgd(0.1), x[:8], y[:8], epochs=1, batch_size=4,
                 shuffle=False, progress=False)
    assert not np.allclose(r_all.params[0]["w"], r_drop.params[0]["w"])


def test_fit_compiles_once_across_epochs_and_calls():
    traces = []

    def counting_loss(predictions, targets):
        traces.append(1)
        return softmax_cross_entropy(predictions, targets)

    x, y = _data(40)
    opt = O.adam(1e-2)
    kwargs = dict(loss=counting_loss, epochs=4, batch_size=16, key=jax.random.key(0), progress=False)
    fit(MODEL, _params(), opt, x, y, **kwargs)
    after_first = len(traces)
    x2, y2 = _data(40, seed=5)
    fit(MODEL, _params(2), opt, x2, y2, **kwargs)
    fit(MODEL, _params(3), opt, x2, y2, **{**kwargs, "progress": True})   # chunked epochs
    assert after_first > 0 and len(traces) == after_first


def test_fit_resume_is_bit_identical():
    x, y = _data(60)
    opt, key = O.adam(1e-2), jax.random.key(4)
    kwargs = dict(batch_size=16, key=key, eval_data=(x, y), progress=False)
    whole = fit(MODEL, _params(), opt, x, y, epochs=6, **kwargs)
    part = fit(MODEL, _params(), opt, x, y, epochs=3, **kwargs)
    resumed = fit(MODEL, None, opt, x, y, epochs=6, initial=part, **kwargs)
    chex.assert_trees_all_equal(resumed.params, whole.params)
    chex.assert_trees_all_equal(resumed.opt_state, whole.opt_state)
    chex.assert_trees_all_equal(resumed.history, whole.history)


def test_fit_donation_flag():
    x, y = _data()
    params = _params()
    fit(MODEL, params, O.sgd(0.1), x, y, key=jax.random.key(0), progress=False)
    assert not params[0]["w"].is_deleted()
    fit(MODEL, params, O.sgd(0.1), x, y, key=jax.random.key(0), progress=False, donate=True)
    assert params[0]["w"].is_deleted()


@pytest.mark.parametrize("where", ["large", "small", "none"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_all_finite_sees_every_leaf_large_or_small_per_member(where, bad):
    from fnn.training._loop import OWN_REDUCTION_MIN_SIZE, all_finite
    big = OWN_REDUCTION_MIN_SIZE + 3
    tree = {"w": jnp.full((3, big), 1e38), "b": jnp.ones((3, 5)), "c": jnp.ones((3, 2, 2))}
    if where != "none":
        tree = {**tree, "w" if where == "large" else "c": (tree["w"] if where == "large" else
                                                          tree["c"]).at[1, -1].set(bad)}
    expected = np.array([True, where == "none", True])
    np.testing.assert_array_equal(jax.jit(all_finite, static_argnums=1)(tree, 1), expected)
    single = jax.tree.map(lambda a: a[1], tree)
    assert bool(all_finite(single, 0)) == (where == "none")


def test_fit_nan_guard_stops_and_keeps_last_good_params():
    x, y = _data(32)
    x = x.at[20].set(jnp.nan)          # example 20 poisons the first batch that holds it
    opt = O.sgd(0.1)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        r = fit(MODEL, _params(), opt, x, y, epochs=5, batch_size=8, shuffle=False, progress=False)
    (report,) = r.nonfinite
    assert (report.epoch, report.step) == (0, 2)
    assert report.leaf == "[0]['b']" or report.leaf.startswith("[0]")
    chex.assert_trees_all_equal(r.params, _params())        # rolled back to before epoch 0
    chex.assert_tree_all_finite(r.params)
    # epoch, history and state describe the same moment: the start of the failing epoch
    assert r.epoch == 0 and r.history["train_loss"].shape == (0,)
    chex.assert_trees_all_equal(r.opt_state, opt.init(_params()))


def test_fit_nan_guard_later_epoch_keeps_previous_epoch():
    x, y = _data(32)
    opt = O.sgd(1e6)                    # diverges after a few epochs
    with pytest.warns(RuntimeWarning):
        r = fit(MODEL, _params(), opt, x, y, epochs=50, batch_size=32, shuffle=False, progress=False,
                loss=lambda p, t: jnp.mean(p ** 2) * 1e30)
    (report,) = r.nonfinite
    good = fit(MODEL, _params(), opt, x, y, epochs=report.epoch, batch_size=32, shuffle=False,
               progress=False, loss=lambda p, t: jnp.mean(p ** 2) * 1e30) if report.epoch else None
    chex.assert_tree_all_finite(r.params)
    if good is not None:
        chex.assert_trees_all_equal(r.params, good.params)


def test_fit_with_mse_regression_and_optax():
    x, _ = _data(64, d=3)
    y = x @ jnp.array([[1.0], [-2.0], [0.5]]) + 0.3
    model = fnn.mlp([1])
    r = fit(model, model.init(jax.random.key(0), (3,)), optax.sgd(0.1), x, y, loss=mse, epochs=60,
            batch_size=64, shuffle=False, progress=False)
    assert "eval_accuracy" not in r.history
    chex.assert_trees_all_close(r.params[0]["w"][:, 0], jnp.array([1.0, -2.0, 0.5]), atol=1e-3)
    chex.assert_trees_all_close(r.params[0]["b"], jnp.array([0.3]), atol=1e-3)


def test_fit_bfloat16_params_stay_bfloat16():
    x, y = _data()
    model = fnn.mlp([8, 3], dtype=jnp.bfloat16)
    params = model.init(jax.random.key(0), (4,))
    r = fit(model, params, O.adam(1e-2), x.astype(jnp.bfloat16), y, epochs=2, key=jax.random.key(0),
            progress=False)
    assert all(a.dtype == jnp.bfloat16 for a in jax.tree.leaves(r.params))


def test_fit_progress_bar_prints_each_update():
    x, y = _data()
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        fit(MODEL, _params(), O.adam(1e-2), x, y, epochs=3, key=jax.random.key(0), progress=True)
    lines = buf.getvalue().strip().splitlines()
    assert lines and lines[-1].startswith("epoch 3/3") and "train_loss" in lines[-1]


@pytest.mark.parametrize("kwargs,arg,exc", [
    (dict(y=jnp.zeros(7, int)), "y", ValueError),
    (dict(key=None), "key", ValueError),
    (dict(epochs=0), "epochs", ValueError),
    (dict(batch_size=-1), "batch_size", ValueError),
    (dict(y=jnp.full(50, 3)), "y", ValueError),
    (dict(optimizer=object()), "optimizer", TypeError),
    (dict(model="mlp"), "model", TypeError),
    (dict(loss=3), "loss", TypeError),
    (dict(x=jnp.zeros((50, 5))), "x", ValueError),
    (dict(eval_data=(jnp.zeros((3, 4)),)), "eval_data", TypeError),
    (dict(eval_data=(jnp.zeros((3, 4)), jnp.array([0, 1, 9]))), "eval_data y", ValueError),
])
def test_fit_errors_name_the_argument(kwargs, arg, exc):
    x, y = _data()
    args = dict(model=MODEL, params=_params(), optimizer=O.sgd(0.1), x=x, y=y, key=jax.random.key(0),
                progress=False)
    args.update(kwargs)
    with pytest.raises(exc, match=f"fit: {arg}"):
        fit(**args)


def test_evaluate_batched_equals_full():
    x, y = _data(50)
    full = evaluate(MODEL, _params(), x, y)
    chunked = evaluate(MODEL, _params(), x, y, batch_size=16)
    chex.assert_trees_all_close(full, chunked, rtol=1e-6)
    chex.assert_trees_all_close(full["loss"], softmax_cross_entropy(MODEL.apply(_params(), x), y))


def test_ensemble_member_equals_single_fit():
    x, y = _data(60)
    keys = jax.random.split(jax.random.key(7), 4)
    opt, key = O.adam(1e-2), jax.random.key(8)
    kwargs = dict(epochs=3, batch_size=16, key=key, eval_data=(x, y), progress=False)
    r = fit_ensemble(MODEL, init_ensemble(MODEL, keys, (4,)), opt, x, y, **kwargs)
    chex.assert_shape(r.history["train_loss"], (4, 3))
    for k in (0, 3):
        single = fit(MODEL, MODEL.init(keys[k], (4,)), opt, x, y, **kwargs)
        chex.assert_trees_all_close(jax.tree.map(lambda a: a[k], r.params), single.params,
                                    rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(r.history["eval_accuracy"][k], single.history["eval_accuracy"])


def test_ensemble_of_one_is_a_plain_fit():
    x, y = _data(40)
    keys = jax.random.split(jax.random.key(7), 1)
    kwargs = dict(epochs=2, batch_size=16, key=jax.random.key(8), progress=False,
                  eval_data=(x, y), grad_norms=True)
    r = fit_ensemble(MODEL, init_ensemble(MODEL, keys, (4,)), O.adam(1e-2), x, y, **kwargs)
    single = fit(MODEL, MODEL.init(keys[0], (4,)), O.adam(1e-2), x, y, **kwargs)
    chex.assert_trees_all_equal(jax.tree.map(lambda a: a[0], (r.params, r.opt_state, r.history)),
                                (single.params, single.opt_state, single.history))
    chex.assert_shape(r.history["train_loss"], (1, 2))
    chex.assert_shape(r.history["grad_norms"], (1, 2, len(single.params)))
    swept = fit_sweep(MODEL, MODEL.init(keys[0], (4,)), O.adam, jnp.array([1e-2]), x, y, **kwargs)
    chex.assert_trees_all_equal(swept.params, r.params)
    chex.assert_trees_all_equal(swept.history, r.history)


def test_sweep_member_equals_single_fit_with_that_rate():
    x, y = _data(60)
    rates = jnp.array([1e-3, 3e-2, 1e-1])
    kwargs = dict(epochs=3, batch_size=16, key=jax.random.key(8), progress=False)
    r = fit_sweep(MODEL, _params(), O.adam, rates, x, y, **kwargs)
    for k, lr in enumerate([1e-3, 3e-2, 1e-1]):
        single = fit(MODEL, _params(), O.adam(lr), x, y, **kwargs)
        chex.assert_trees_all_close(jax.tree.map(lambda a: a[k], r.params), single.params,
                                    rtol=1e-5, atol=1e-6)


def test_sweep_freezes_only_the_diverging_member():
    x, y = _data(32)
    rates = jnp.array([1e-2, 1e38])
    with pytest.warns(RuntimeWarning, match="member 1"):
        r = fit_sweep(MODEL, _params(), O.sgd, rates, x, y, epochs=4, batch_size=32,
                      shuffle=False, progress=False)
    assert [rep.member for rep in r.nonfinite] == [1]
    assert np.all(np.isfinite(r.history["train_loss"][0]))
    chex.assert_tree_all_finite(r.params)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), epoch=st.integers(0, 2**31 - 1), seed=st.integers(0, 2**32 - 1))
def test_epoch_order_is_a_permutation(n, epoch, seed):
    order = fnn.training.epoch_order(jax.random.key(seed), epoch, n)
    chex.assert_shape(order, (n,))
    assert order.dtype == jnp.int32
    np.testing.assert_array_equal(np.sort(np.asarray(order)), np.arange(n))


def test_epoch_order_is_uniform_and_changes_every_epoch():
    """All 24 orders of 4 examples over 4,800 epochs: a chi-square test at p = 1e-4."""
    orders = jax.vmap(lambda e: fnn.training.epoch_order(jax.random.key(3), e, 4))(
        jnp.arange(4800))
    codes = np.asarray(orders) @ np.array([64, 16, 4, 1])
    counts = np.array([np.sum(codes == c) for c in np.unique(codes)])
    assert counts.size == 24
    chi2 = np.sum((counts - 200.0) ** 2 / 200.0)
    assert chi2 < 61.1                    # chi-square, 23 degrees of freedom, p = 1e-4
    jitted = jax.jit(fnn.training.epoch_order, static_argnums=2)(jax.random.key(3), 7, 4)
    chex.assert_trees_all_equal(jitted, orders[7])
    legacy = fnn.training.epoch_order(jax.random.PRNGKey(3), 7, 1000)
    assert sorted(np.asarray(legacy).tolist()) == list(range(1000))


@settings(max_examples=12, deadline=None)   # each new (passes, n) compiles: kept few
@given(n=st.one_of(st.sampled_from([1, 2, 3, 2048]), st.integers(1, 3000)), passes=st.integers(1, 6),
       seed=st.integers(0, 2**32 - 1))
def test_order_from_bits_sorts_by_every_pass_and_breaks_ties_by_the_earlier_ones(n, passes, seed):
    bits = jax.random.bits(jax.random.key(seed), (passes, n), jnp.uint32)
    np.testing.assert_array_equal(np.sort(np.asarray(order_from_bits(bits))), np.arange(n))
    free_bits = 32 - (n - 1).bit_length()
    random_part = np.asarray(bits[0]) & np.uint32((1 << free_bits) - 1)
    # Later passes that tie everywhere keep the order of the first (a stable sort by it).
    first_only = bits.at[1:].set(0)
    np.testing.assert_array_equal(order_from_bits(first_only),
                                  np.argsort(random_part, kind="stable"))
    # Earlier passes that tie everywhere leave the index order for the last to sort.
    last_only = jnp.zeros_like(bits).at[-1].set(bits[0])
    np.testing.assert_array_equal(order_from_bits(last_only),
                                  np.argsort(random_part, kind="stable"))
    if passes >= 2 and n >= 2:
        # A later pass decides first: positions (in the first pass's order) whose second
        # word is 0 come before those whose word is 1, each group in the first pass's order.
        halves = first_only.at[1].set(jnp.arange(n, dtype=jnp.uint32) % 2)
        first = np.argsort(random_part, kind="stable")
        np.testing.assert_array_equal(order_from_bits(halves),
                                      np.concatenate([first[0::2], first[1::2]]))


def test_sort_passes_leave_under_one_tied_pair_in_256_epochs():
    for n in [1, 2, 16, 256, 257, 1797, 12800, 16385, 60000, 2**20, 2**23]:
        passes = sort_passes(n)
        assert 1 <= passes <= 6
        random_bits = passes * (32 - (n - 1).bit_length())
        assert n * (n - 1) / 2 * 2.0 ** -random_bits <= 2.0 ** -8
    assert [sort_passes(n) for n in (256, 257, 16384, 16385)] == [1, 2, 2, 3]
    assert sort_passes(2**23 + 1) == 0          # two-word key sort from here on


def test_epoch_order_puts_each_example_anywhere_with_equal_chance_over_several_passes():
    """n = 20000 (3 sort passes): where examples 0-9 land over 1,000 epochs, in 20
    bins, is uniform (chi-square at p = 1e-4), and epochs differ."""
    n = 20000
    assert sort_passes(n) == 3
    orders = np.asarray(jax.jit(jax.vmap(lambda e: fnn.training.epoch_order(
        jax.random.key(5), e, n)))(jnp.arange(1000)))
    positions = np.argsort(orders, axis=1)[:, :10].ravel()
    counts = np.bincount(positions * 20 // n, minlength=20)
    chi2 = np.sum((counts - 500.0) ** 2 / 500.0)
    assert chi2 < 43.8                    # chi-square, 19 degrees of freedom, p = 1e-4
    assert len({tuple(o[:20]) for o in orders}) == 1000


def test_epoch_order_beyond_the_one_word_passes_is_a_permutation(monkeypatch):
    from fnn.training import _order
    monkeypatch.setattr(_order, "MAX_PASSES", 1)
    n = 300
    assert sort_passes(n) == 0
    order = np.asarray(fnn.training.epoch_order(jax.random.key(0), 1, n))
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    assert not np.array_equal(order[:100], np.arange(100))


def _diverging_sweep(epochs, **kwargs):
    """Member 1 (rate 0.1 on a loss scaled by 100) overflows at epoch 2, member 0 never."""
    x, y = _data(32)
    return fit_sweep(MODEL, _params(), O.sgd, jnp.array([1e-3, 0.1]), x, y, epochs=epochs,
                     batch_size=16, shuffle=False, progress=False,
                     loss=lambda p, t: jnp.mean(p ** 2) * 100, **kwargs)


def test_sweep_rolls_a_member_back_to_before_its_failing_epoch(tmp_path):
    """The guarded loop runs on; the failed member is rebuilt by running again up to
    its failing epoch, so it equals a sweep stopped there, bit for bit."""
    with pytest.warns(RuntimeWarning, match="member 1"):
        r = _diverging_sweep(12)
    (report,) = r.nonfinite
    assert report.member == 1 and report.epoch >= 1       # a later epoch: the rerun path
    assert report.leaf is not None and report.leaf.startswith("[")
    before = _diverging_sweep(report.epoch)
    chex.assert_trees_all_equal(jax.tree.map(lambda a: a[1], r.params),
                                jax.tree.map(lambda a: a[1], before.params))
    chex.assert_trees_all_equal(jax.tree.map(lambda a: a[1], r.opt_state),
                                jax.tree.map(lambda a: a[1], before.opt_state))
    chex.assert_tree_all_finite(r.params)
    assert np.all(np.isfinite(r.history["train_loss"][0]))
    assert np.all(np.isnan(r.history["train_loss"][1, report.epoch + 1:]))
    # Run in one-epoch chunks (a checkpoint after each): the same result, and every
    # checkpoint holds the member's last good params, not the NaNs it ran on with.
    path = tmp_path / "sweep.ckpt"
    with pytest.warns(RuntimeWarning, match="member 1"):
        chunked = _diverging_sweep(12, checkpoint=path)
    chex.assert_trees_all_equal(chunked.params, r.params)
    chex.assert_trees_all_equal(chunked.nonfinite, r.nonfinite)
    chex.assert_tree_all_finite(fnn.checkpoint.load(path)["params"])


def test_ensemble_errors():
    x, y = _data()
    with pytest.raises(ValueError, match="fit_ensemble: params"):
        fit_ensemble(MODEL, _params(), O.sgd(0.1), x, y, key=jax.random.key(0))
    with pytest.raises(TypeError, match="fit_sweep: make_optimizer"):
        fit_sweep(MODEL, _params(), 0.1, jnp.ones(2), x, y, key=jax.random.key(0))


def test_fit_checkpoint_and_resume_after_an_interrupt(tmp_path, ctrl_c):
    """Checkpoint every 2 epochs; a run interrupted (Ctrl-C) after epoch 4 resumes to 7 exactly."""
    x, y = _data(60)
    opt = O.adam(1e-2)
    kwargs = dict(batch_size=16, key=jax.random.key(4), eval_data=(x, y), progress=False)
    whole = fit(MODEL, _params(), opt, x, y, epochs=7, **kwargs)
    path = tmp_path / "state.fnn"
    calls = []

    def interrupt_after_epoch_4(predictions, targets):
        # A metric runs inside the compiled loop; its host callback sends this process a
        # real SIGINT during epoch 5, after epoch 4 has been checkpointed.
        def host(_):
            calls.append(1)
            if len(calls) == 5:
                threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGINT)).start()
            return np.float32(0)
        return jax.pure_callback(host, jax.ShapeDtypeStruct((), jnp.float32), predictions[0, 0])

    with pytest.raises(KeyboardInterrupt) as caught:
        fit(MODEL, _params(), opt, x, y, epochs=7, checkpoint=path, checkpoint_every=2,
            **dict(kwargs, metrics={"accuracy": fnn.metrics.accuracy, "probe": interrupt_after_epoch_4}))
    saved = fnn.checkpoint.load(path)
    assert saved["epoch"] in (4, 6)                 # a multiple of 2 at or after epoch 4
    assert isinstance(caught.value, fnn.training.Interrupted)
    assert caught.value.result.epoch in (4, 6) and caught.value.result.epoch >= saved["epoch"]
    for start in (path, caught.value.result):       # both resume to the uninterrupted run
        resumed = fit(MODEL, None, opt, x, y, epochs=7, initial=start, **kwargs)
        chex.assert_trees_all_equal(resumed.params, whole.params)
        chex.assert_trees_all_equal(resumed.history, whole.history)
        assert resumed.epoch == 7


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A 3-epoch run of MODEL on 60 examples, batch 16, checkpointed at its end."""
    x, y = _data(60)
    path = tmp_path_factory.mktemp("resume") / "state.fnn"
    fit(MODEL, _params(), O.adam(1e-2), x, y, epochs=3, batch_size=16, key=jax.random.key(4),
        checkpoint=path, checkpoint_every=3, progress=False)
    return path, x, y


@pytest.mark.parametrize("change, arg", [
    (dict(batch_size=8), "batch_size"), (dict(shuffle=False), "shuffle"),
    (dict(accumulation_steps=2), "accumulation_steps"), (dict(n=50), "x")])
def test_fit_resume_refuses_what_the_checkpoint_was_not_saved_with(saved_run, change, arg):
    path, x, y = saved_run
    assert fnn.checkpoint.load(path)["resume_needs"] == {
        "batch_size": 16, "examples": 60, "shuffle": "sort", "accumulation_steps": 1}
    n = change.pop("n", 60)
    kwargs = dict(dict(batch_size=16, key=jax.random.key(4), progress=False), **change)
    with pytest.raises(ValueError, match=f"fit: {arg} must be as in the checkpoint resumed"):
        fit(MODEL, None, O.adam(1e-2), x[:n], y[:n], epochs=5, initial=path, **kwargs)


def test_fit_from_a_checkpoints_params_and_opt_state_trains_on_with_another_batch_size(saved_run):
    path, x, y = saved_run
    saved = fnn.checkpoint.load(path)
    opt = O.adam(1e-2)
    r = fit(MODEL, saved["params"], opt, x, y, epochs=2, batch_size=8, key=jax.random.key(4),
            opt_state=saved["opt_state"], progress=False)
    assert r.epoch == 2 and int(r.opt_state.count) == int(saved["opt_state"][0]) + 2 * 8


def test_fit_initial_must_be_a_result_or_checkpoint():
    x, y = _data()
    with pytest.raises(TypeError, match="fit: initial"):
        fit(MODEL, _params(), O.sgd(0.1), x, y, key=jax.random.key(0), initial=3)


def test_fit_records_per_layer_grad_norms():
    x, y = _data(40)
    model = fnn.mlp([8, 8, 8, 3], activation="sigmoid")
    params = model.init(jax.random.key(0), (4,))
    r = fit(model, params, O.sgd(0.1), x, y, epochs=3, batch_size=40, shuffle=False,
            progress=False, grad_norms=True)
    chex.assert_shape(r.history["grad_norms"], (3, 4))
    grads = jax.grad(lambda p: softmax_cross_entropy(model.apply(p, x), y))(r.params)
    chex.assert_trees_all_close(r.history["grad_norms"][-1],
                                fnn.diagnostics.layer_grad_norms(grads), rtol=1e-5)


def test_fit_with_rebuilt_identical_model_and_optimizer_does_not_recompile():
    """fnn.mlp([8, 3]) and adam(1e-2) built again are the same objects: no new compile."""
    traces = []

    def counting_loss(predictions, targets):
        traces.append(1)
        return softmax_cross_entropy(predictions, targets)

    x, y = _data(40)
    kwargs = dict(loss=counting_loss, epochs=2, batch_size=16, key=jax.random.key(0), progress=False)
    fit(fnn.mlp([8, 3]), _params(), O.adam(1e-2), x, y, **kwargs)
    first = len(traces)
    fit(fnn.mlp([8, 3]), _params(), O.adam(1e-2), x, y, **kwargs)
    assert len(traces) == first


def test_fit_many_short_chunks_with_progress(tmp_path, capsys):
    """Chunks cut short (by checkpoint_every, or to one epoch by an on_epoch hook) kept
    growing the next chunk's size until it overflowed (OverflowError: cannot convert float
    infinity to integer). The hook cuts them without a file written per epoch."""
    x, y = _data(8)
    seen = []
    r = fit(MODEL, _params(), O.sgd(0.01), x, y, epochs=400, batch_size=8, key=jax.random.key(0),
            progress=True, on_epoch=lambda epoch, logs: seen.append(epoch))
    assert r.epoch == 400 and seen == list(range(400))
    r = fit(MODEL, _params(), O.sgd(0.01), x, y, epochs=30, batch_size=8, key=jax.random.key(0),
            progress=True, checkpoint=tmp_path / "c.fnn", checkpoint_every=1)
    assert r.epoch == 30 and fnn.checkpoint.load(tmp_path / "c.fnn")["epoch"] == 30
