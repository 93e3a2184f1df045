"""Loop controls of fnn.fit: per-epoch hooks, early stopping, gradient accumulation,
optimizers that take the loss value. References: a plain fit's history walked by a
Python version of Keras' rule, steps on concatenated batches, optax driven by hand."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnn
from fnn import checkpoint, training

MODEL = fnn.mlp([8, 3])
KEY = jax.random.key(2)
ADAM = fnn.optimizers.adam(0.05)      # one object: the compiled loop is reused across tests
SGD0 = fnn.optimizers.sgd(0.0)


@functools.cache
def data():
    x, y = fnn.datasets.blobs(jax.random.key(0), 96)
    return x[:64], y[:64], x[64:], y[64:]


def params():
    return MODEL.init(jax.random.key(1), (2,))


def run(epochs=12, **kw):
    x, y, xe, ye = data()
    kw.setdefault("optimizer", ADAM)
    return fnn.fit(MODEL, kw.pop("params", None) or params(), kw.pop("optimizer"), x, y, epochs=epochs,
                   batch_size=16, key=KEY, progress=False, eval_data=(xe, ye), **kw)


def keras_rule(values, patience, min_delta, mode):
    """(stopped_epoch or None, best_epoch): Keras' EarlyStopping over a recorded history."""
    best, wait, best_epoch = (np.inf if mode == "min" else -np.inf), 0, None
    for epoch, v in enumerate(values):
        wait += 1
        if (v < best - min_delta) if mode == "min" else (v > best + min_delta):
            best, best_epoch, wait = v, epoch, 0
            continue
        if wait >= patience and epoch > 0:
            return epoch, best_epoch
    return None, best_epoch


# --- on_epoch -------------------------------------------------------------------------

def test_fit_on_epoch_called_once_per_epoch_in_order_with_history_values():
    seen = []
    r = run(epochs=5, on_epoch=lambda e, logs: seen.append((e, logs)))
    assert [e for e, _ in seen] == list(range(5))
    for e, logs in seen:
        assert set(logs) == {"train_loss", "eval_loss", "eval_accuracy"}
        assert all(isinstance(v, float) for v in logs.values())
        assert logs["eval_loss"] == float(r.history["eval_loss"][e])


def test_fit_on_epoch_true_stops_after_that_epoch():
    r = run(epochs=10, on_epoch=lambda e, logs: e == 2)
    plain = run(epochs=3)
    assert r.epoch == 3 and r.history["train_loss"].shape == (3,)
    chex.assert_trees_all_equal(r.params, plain.params)


def test_fit_on_epoch_exception_propagates_and_keeps_last_checkpoint(tmp_path):
    path = tmp_path / "ck.fnn"

    def hook(epoch, logs):
        if epoch == 2:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        run(epochs=6, on_epoch=hook, checkpoint=path)
    saved = checkpoint.load(path)
    assert int(saved["epoch"]) == 3
    chex.assert_trees_all_close(saved["params"], run(epochs=3).params, atol=0, rtol=0)


def test_fit_on_epoch_another_hook_runs_the_same_program_in_one_call():
    traces = []

    def loss(predictions, targets):
        traces.append(1)
        return fnn.losses.softmax_cross_entropy(predictions, targets)

    run(epochs=4, loss=loss, on_epoch=lambda e, logs: None)
    first, calls = len(traces), []
    hooked = training._loop.build_runner

    def counted(*args, **kw):
        program = hooked(*args, **kw)
        return lambda *a: calls.append(1) or program(*a)

    training._driver.build_runner = counted
    try:
        r = run(epochs=4, loss=loss, on_epoch=lambda e, logs: e == 2)
    finally:
        training._driver.build_runner = hooked
    assert (len(traces), len(calls), r.epoch) == (first, 1, 3)


# --- early stopping -------------------------------------------------------------------

@pytest.mark.parametrize("monitor,patience,min_delta,mode", [
    ("eval_loss", 0, 0.0, None), ("train_loss", 2, 1e-3, None), ("eval_accuracy", 1, 0.0, None)])
def test_early_stopping_matches_keras_rule_on_the_same_history(monitor, patience, min_delta, mode):
    rule = training.EarlyStopping(monitor, patience=patience, min_delta=min_delta, mode=mode)
    plain = run(epochs=25)
    stopped, best = keras_rule(np.asarray(plain.history[monitor]), patience, min_delta, rule.mode)
    r = run(epochs=25, early_stopping=rule)
    assert (r.stopped_epoch, r.best_epoch) == (stopped, best)
    assert r.epoch == (25 if stopped is None else stopped + 1)
    for k in plain.history:
        np.testing.assert_array_equal(r.history[k], plain.history[k][:r.epoch])
    chex.assert_trees_all_equal(r.params, run(epochs=best + 1).params)


def test_early_stopping_min_delta_boundary_is_not_an_improvement():
    # lr 0: train_loss is the same every epoch; an equal value never improves (strict).
    rule = training.EarlyStopping("train_loss", patience=2, min_delta=0.0)
    r = run(epochs=10, early_stopping=rule, optimizer=SGD0)
    assert (r.stopped_epoch, r.best_epoch, r.epoch) == (2, 0, 3)


def test_early_stopping_restore_best_false_returns_last_params():
    rule = training.EarlyStopping("eval_loss", patience=0, restore_best=False)
    r = run(epochs=25, early_stopping=rule)
    chex.assert_trees_all_equal(r.params, run(epochs=r.epoch).params)


def test_early_stopping_resume_mid_patience_equals_uninterrupted(tmp_path):
    rule = training.EarlyStopping("train_loss", patience=3, min_delta=1e-3)
    whole = run(epochs=30, early_stopping=rule)
    assert whole.stopped_epoch is not None
    cut = whole.stopped_epoch - 1          # inside the patience window
    path = tmp_path / "ck.fnn"
    first = run(epochs=cut, early_stopping=rule, checkpoint=path)
    for initial in (first, path):
        again = run(epochs=30, early_stopping=rule, initial=initial)
        assert (again.epoch, again.stopped_epoch, again.best_epoch) == (
            whole.epoch, whole.stopped_epoch, whole.best_epoch)
        chex.assert_trees_all_equal(again.params, whole.params)
        chex.assert_trees_all_equal(again.history, whole.history)


def test_early_stopping_sweep_stops_per_member_and_logs_per_member_arrays():
    x, y, _, _ = data()
    rule = training.EarlyStopping("train_loss", patience=2)

    def sweep(epochs, **kw):
        return training.fit_sweep(MODEL, params(), fnn.optimizers.adam, jnp.array([0.0, 0.05]), x, y,
                                  epochs=epochs, key=KEY, progress=False, **kw)

    plain = sweep(8)
    seen = []
    r = sweep(8, early_stopping=rule, on_epoch=lambda e, logs: seen.append(logs))
    np.testing.assert_array_equal(seen[1]["train_loss"], np.asarray(r.history["train_loss"][:, 1]))
    for k in range(2):
        stopped, best = keras_rule(np.asarray(plain.history["train_loss"][k]), 2, 0.0, "min")
        assert int(r.best_epoch[k]) == best
        assert int(r.stopped_epoch[k]) == (-1 if stopped is None else stopped)
        at_best = sweep(best + 1)      # the same compiled loop, fewer epochs
        chex.assert_trees_all_equal(jax.tree.map(lambda a: a[k], r.params),
                                    jax.tree.map(lambda a: a[k], at_best.params))
        ran = 8 if stopped is None else stopped + 1
        assert np.isnan(r.history["train_loss"][k, ran:]).all()
        np.testing.assert_array_equal(r.history["train_loss"][k, :ran], plain.history["train_loss"][k, :ran])
    assert int(r.stopped_epoch[0]) == 2      # lr 0 never improves; the other member goes on


def test_early_stopping_compiles_once_for_two_calls():
    rule = training.EarlyStopping("eval_loss", patience=50)
    run(epochs=3, early_stopping=rule)
    before = training._loop.build_runner.cache_info().misses
    run(epochs=3, early_stopping=training.EarlyStopping("eval_loss", patience=50))
    assert training._loop.build_runner.cache_info().misses == before


def test_early_stopping_default_mode_per_name():
    assert training.EarlyStopping("eval_accuracy").mode == "max"
    assert training.EarlyStopping("eval_loss").mode == "min"
    assert training.EarlyStopping("eval_loss", mode="max").mode == "max"


# --- gradient accumulation --------------------------------------------------------------

def test_fit_accumulation_equals_step_on_concatenated_batch():
    x, y, _, _ = data()
    opt = fnn.optimizers.sgd(0.5)
    r = fnn.fit(MODEL, params(), opt, x, y, epochs=2, batch_size=8, accumulation_steps=4,
                shuffle=False, progress=False)
    big = fnn.fit(MODEL, params(), opt, x, y, epochs=2, batch_size=32, shuffle=False, progress=False)
    chex.assert_trees_all_close(r.params, big.params, atol=1e-6)
    np.testing.assert_allclose(r.history["train_loss"][0], big.history["train_loss"][0], rtol=1e-6)


def test_fit_accumulation_ragged_tail_is_one_update_on_the_rest():
    x, y, _, _ = data()      # 64 examples, batch 10, k 4: one update of 40, one of the last 24
    opt = fnn.optimizers.sgd(0.5)
    r = fnn.fit(MODEL, params(), opt, x, y, epochs=1, batch_size=10, accumulation_steps=4,
                shuffle=False, progress=False)
    p, s = params(), opt.init(params())
    step = training.make_train_step(MODEL, opt, donate=False)
    for sl in (slice(0, 40), slice(40, 64)):
        p, s, _ = step(p, s, x[sl], y[sl])
    chex.assert_trees_all_close(r.params, p, atol=1e-6)


# --- optimizers with extra arguments ------------------------------------------------------

def test_fit_reduce_on_plateau_gets_the_loss_and_matches_a_hand_loop():
    x, y, _, _ = data()
    opt = optax.chain(fnn.optimizers.adam(0.05),
                      optax.contrib.reduce_on_plateau(patience=1, factor=0.5, accumulation_size=1))
    r = fnn.fit(MODEL, params(), opt, x, y, epochs=6, batch_size=16, shuffle=False, progress=False)
    @jax.jit
    def step(p, s, xb, yb):
        loss, g = jax.value_and_grad(lambda q: fnn.losses.softmax_cross_entropy(MODEL.apply(q, xb), yb))(p)
        u, s = opt.update(g, s, p, value=loss)
        return optax.apply_updates(p, u), s

    p, s = params(), opt.init(params())
    for _ in range(6):
        for i in range(0, 64, 16):
            p, s = step(p, s, x[i:i + 16], y[i:i + 16])
    chex.assert_trees_all_close(r.params, p, rtol=1e-5, atol=1e-6)
    assert float(r.opt_state[1].scale) < 1.0     # the rate really dropped on a plateau
    np.testing.assert_allclose(float(r.opt_state[1].scale), float(s[1].scale))


# --- the command line ---------------------------------------------------------------------

def test_cli_train_early_stopping_and_schedule(tmp_path):
    import contextlib
    import io
    import json

    from fnn.cli import main

    out = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["train", "--data", "moons", "--samples", "200", "--hidden", "8", "--epochs", "40",
                     "--lr", "0.5", "--early-stopping", "1", "--schedule", "warmup-cosine",
                     "--no-progress", "--no-compilation-cache", "--out", str(out)])
    assert code == 0
    result = json.load(open(out / "config.json"))["result"]
    assert result["epochs_run"] < 40
