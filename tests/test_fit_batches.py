"""fnn.training.fit_batches: training from host batches equals fit fed the same batches.

Every run here shares one model, optimizer, batch size (16, a ragged last batch of 4) and
chunk length (4), so the chunk programs compile once for the whole file.
"""

from __future__ import annotations

import functools
import importlib.util

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import training

N, B, K = 100, 16, 4
KEY = jax.random.key(2)
OPT = fnn.optimizers.adam(1e-2)
PURE = fnn.mlp([16, 3])
GENERAL = fnn.mlp([16, 3], dropout=0.2, batch_norm=True)


@functools.cache
def data():
    x, y = fnn.datasets.blobs(jax.random.key(0), N)
    return np.asarray(x), np.asarray(y)


def fit_order(epoch: int) -> list:
    """The batches fit visits in epoch ``epoch`` (its order epoch_order(KEY, epoch, N))."""
    x, y = data()
    perm = np.asarray(training.epoch_order(KEY, epoch, N))
    return [(x[perm[i:i + B]], y[perm[i:i + B]]) for i in range(0, N, B)]


def pure_params():
    return PURE.init(jax.random.key(1), (2,))


def fit_batches(batches, **kw):
    kw = {"epochs": 2, "steps_per_call": K, "progress": False, **kw}
    params = kw.pop("params", None) if "initial" in kw else kw.pop("params", pure_params())
    return training.fit_batches(kw.pop("model", PURE), params, OPT, batches, **kw)


@functools.cache
def reference():
    """fit, and fit_batches on fit's order, of the pure model with eval data (2 epochs)."""
    x, y = data()
    r = training.fit(PURE, pure_params(), OPT, x, y, epochs=2, batch_size=B, key=KEY, progress=False,
                     eval_data=(x, y))
    return r, fit_batches(fit_order, eval_data=(x, y))


def test_fit_batches_equals_fit_on_fit_epoch_order():
    r, rb = reference()
    chex.assert_trees_all_close(rb.params, r.params, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(rb.opt_state, r.opt_state, rtol=1e-6, atol=1e-6)
    assert set(rb.history) == set(r.history) == {"train_loss", "eval_loss", "eval_accuracy"}
    chex.assert_trees_all_close(rb.history, r.history, rtol=1e-6)
    assert rb.epoch == r.epoch == 2 and rb.nonfinite == () and rb.state == ()


def test_fit_batches_short_chunks_and_more_epochs_compile_nothing_new():
    # After reference(): a chunk of 1 full batch (padded), the ragged batch, a third
    # epoch and another number of batches per epoch all reuse the programs made.
    reference()
    batches = [fit_order(e)[:5] + fit_order(e)[-1:] for e in range(3)]
    compiled = []

    def listen(event, seconds, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(event)
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        r = fit_batches(lambda e: batches[e], epochs=3, eval_data=data())
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert r.epoch == 3 and compiled == []


def test_fit_batches_general_model_equals_fit():
    # Dropout draws with step_key(KEY, t) and batch norm threads its state, as in fit.
    x, y = data()
    params, state = GENERAL.init(jax.random.key(1), (2,))
    r = training.fit(GENERAL, params, OPT, x, y, epochs=2, batch_size=B, key=KEY, state=state,
                     progress=False)
    # steps_per_call=3: two full chunks and the ragged batch, no padded chunk (one program less).
    rb = fit_batches(fit_order, model=GENERAL, params=params, key=KEY, state=state, steps_per_call=3)
    chex.assert_trees_all_close((rb.params, rb.state, rb.history), (r.params, r.state, r.history),
                                rtol=1e-6, atol=1e-6)


def test_fit_batches_resumes_from_its_checkpoint_bit_identically(tmp_path):
    path = tmp_path / "run.ckpt"
    seen = []
    stopped = fit_batches(fit_order, eval_data=data(), checkpoint=path,
                          on_epoch=lambda epoch, logs: seen.append((epoch, logs)) or True)
    assert stopped.epoch == 1 and [e for e, _ in seen] == [0]
    assert seen[0][1]["train_loss"] == float(stopped.history["train_loss"][0])
    resumed = fit_batches(fit_order, eval_data=data(), initial=path)
    chex.assert_trees_all_equal((resumed.params, resumed.opt_state, resumed.history),
                                (reference()[1].params, reference()[1].opt_state, reference()[1].history))


RULE = training.EarlyStopping("eval_loss", patience=1, min_delta=0.05)


@functools.cache
def early_reference():
    """fit and fit_batches with early stopping (it stops after epoch 2 of 12) and grad_norms."""
    x, y = data()
    kw = dict(epochs=12, eval_data=(x[:40], y[:40]), early_stopping=RULE, grad_norms=True)
    r = training.fit(PURE, pure_params(), OPT, x, y, batch_size=B, key=KEY, progress=False, **kw)
    return r, fit_batches(fit_order, **kw), kw


def test_fit_batches_early_stopping_equals_fit():
    r, rb, _ = early_reference()
    assert (rb.epoch, rb.stopped_epoch, rb.best_epoch) == (r.epoch, r.stopped_epoch, r.best_epoch) == (3, 2, 1)
    chex.assert_trees_all_close((rb.params, rb.opt_state, rb.early_stopping),
                                (r.params, r.opt_state, r.early_stopping), rtol=1e-5, atol=1e-6)


def test_fit_batches_grad_norms_equal_fit():
    r, rb, _ = early_reference()
    assert rb.history["grad_norms"].shape == (3, 2)
    chex.assert_trees_all_close(rb.history, r.history, rtol=1e-5, atol=1e-7)


def test_fit_batches_resumes_early_stopping_from_its_checkpoint(tmp_path):
    _, rb, kw = early_reference()
    path = tmp_path / "run.ckpt"
    fit_batches(fit_order, checkpoint=path, on_epoch=lambda epoch, logs: True, **kw)
    resumed = fit_batches(fit_order, initial=path, **kw)
    assert (resumed.epoch, resumed.stopped_epoch, resumed.best_epoch) == (3, 2, 1)
    chex.assert_trees_all_equal((resumed.params, resumed.history), (rb.params, rb.history))


def test_fit_batches_ctrl_c_returns_the_last_finished_epoch():
    def interrupt(epoch, logs):
        raise KeyboardInterrupt
    with pytest.raises(training.Interrupted) as caught:
        fit_batches(fit_order, eval_data=data(), on_epoch=interrupt)
    resumed = fit_batches(fit_order, eval_data=data(), initial=caught.value.result)
    assert caught.value.result.epoch == 1
    chex.assert_trees_all_equal((resumed.params, resumed.history), (reference()[1].params, reference()[1].history))


def test_fit_batches_nan_guard_rolls_back_to_the_failing_epoch():
    def poisoned(epoch):
        batches = fit_order(epoch)
        if epoch == 1:
            batches[2] = (np.full_like(batches[2][0], np.nan), batches[2][1])
        return batches
    one = fit_batches(fit_order, epochs=1)
    with pytest.warns(RuntimeWarning, match="non-finite loss or parameter at step 2 of epoch 1"):
        r = fit_batches(poisoned)
    assert r.epoch == 1 and r.nonfinite == (training.NonFiniteReport(1, 2, "[0]['w']"),)
    chex.assert_trees_all_equal((r.params, r.history), (one.params, one.history))


def test_fit_batches_one_shot_stream_with_steps_runs_on_across_epochs():
    # A generator is consumed across epochs: epoch e takes its next `steps` batches.
    stream = (b for e in range(2) for b in fit_order(e)[:6])
    r = fit_batches(stream, steps=6)
    expected = fit_batches(lambda e: fit_order(e)[:6])
    chex.assert_trees_all_equal((r.params, r.history), (expected.params, expected.history))


def test_fit_batches_stream_that_runs_out_stops_with_a_warning():
    with pytest.warns(RuntimeWarning, match="batches ran out after 1 epochs"):
        r = fit_batches(iter(fit_order(0)), epochs=3)
    expected = fit_batches(fit_order, epochs=1)
    assert r.epoch == 1
    chex.assert_trees_all_equal(r.params, expected.params)


def test_fit_batches_jax_batches_equal_numpy_batches():
    on_device = [[(jnp.asarray(x), jnp.asarray(y)) for x, y in fit_order(e)] for e in range(2)]
    r = fit_batches(lambda e: on_device[e])
    chex.assert_trees_all_equal(r.params, reference()[1].params)


def test_fit_batches_checks_every_batch():
    bad_shape = fit_order(0)
    bad_shape[3] = (bad_shape[3][0][:, :1], bad_shape[3][1])
    with pytest.raises(ValueError, match=r"^fit_batches: batches\[3\] x must have the first batch's example "
                                         r"shape \(2,\) and dtype float32; got \(1,\) float32"):
        fit_batches(bad_shape, epochs=1)
    bad_labels = fit_order(0)
    bad_labels[2] = (bad_labels[2][0], bad_labels[2][1] + 3)
    with pytest.raises(ValueError, match=r"^fit_batches: batches\[2\] y must be class indices in \[0, 3\)"):
        fit_batches(bad_labels, epochs=1)
    with pytest.raises(ValueError, match=r"^fit_batches: batches must yield at least one batch"):
        fit_batches([], epochs=1)


@pytest.mark.skipif(importlib.util.find_spec("grain") is None,
                    reason="grain is not installed (pip install 'fnn[grain]')")
def test_fit_batches_trains_from_a_grain_dataloader():
    import grain.python as grain

    x, y = data()
    loader = grain.DataLoader(
        data_source=[{"x": x[i], "y": y[i]} for i in range(N)],
        sampler=grain.IndexSampler(N, shuffle=False, num_epochs=1, shard_options=grain.NoSharding()),
        operations=[grain.Batch(B, drop_remainder=False)], worker_count=0)
    batches = (lambda e: ((b["x"], b["y"]) for b in loader))
    r = fit_batches(batches)
    expected = fit_batches([(x[i:i + B], y[i:i + B]) for i in range(0, N, B)])
    chex.assert_trees_all_equal((r.params, r.history), (expected.params, expected.history))
