"""What a fit call does on the host besides the compiled loop: the start state without a
dispatch when nothing needs computing, the label check read once per array, and the wait
for a call's result (no oversleeping, Ctrl-C at once)."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.training import _data_checks, _driver

MODEL = fnn.mlp([8, 3])
OPTIMIZER = fnn.optimizers.adam(1e-2)


@pytest.fixture(scope="module")
def problem():
    x = jax.random.normal(jax.random.key(0), (40, 2))
    y = jnp.argmax(jnp.concatenate([x, -x[:, :1]], axis=1), axis=1)
    return x, y, MODEL.init(jax.random.key(1), (2,))


def _fit(problem, **kwargs):
    x, y, params = problem
    return fnn.fit(MODEL, kwargs.pop("params", params), OPTIMIZER, x, y, epochs=kwargs.pop("epochs", 2),
                   batch_size=8, key=jax.random.key(2), progress=False, **kwargs)


def test_fit_from_a_given_opt_state_starts_without_the_start_program(problem, monkeypatch):
    """With the optimizer state given the start is put together on the host (no
    dispatch), and the run is bit-identical to the one whose start program initialises it."""
    fresh, longer = _fit(problem), _fit(problem, epochs=4)

    def refused(*args, **kwargs):
        raise AssertionError("the start program ran")
    monkeypatch.setattr(_driver, "build_start", refused)
    given = _fit(problem, opt_state=OPTIMIZER.init(problem[2]))
    chex.assert_trees_all_equal((given.params, given.opt_state, given.history),
                                (fresh.params, fresh.opt_state, fresh.history))
    resumed = _fit(problem, params=None, epochs=4, initial=given)
    chex.assert_trees_all_equal((resumed.params, resumed.history), (longer.params, longer.history))


def test_check_labels_passes_an_array_again_only_for_the_case_it_passed(problem):
    _, y, _ = problem
    three, two = jax.ShapeDtypeStruct((3,), jnp.float32), jax.ShapeDtypeStruct((2,), jnp.float32)
    _data_checks.check_labels("fit", fnn.losses.softmax_cross_entropy, three, y, "y")
    with pytest.raises(ValueError, match=r"fit: y must be class indices in \[0, 2\)"):
        _data_checks.check_labels("fit", fnn.losses.softmax_cross_entropy, two, y, "y")


def test_check_labels_forgets_an_array_when_it_is_collected():
    y = jnp.arange(3)
    _data_checks.check_labels("fit", fnn.losses.softmax_cross_entropy, jax.ShapeDtypeStruct((3,), jnp.float32),
                              y, "y")
    key = id(y)
    assert _data_checks._PASSED[key][0]() is y
    del y
    gc.collect()
    assert key not in _data_checks._PASSED


@jax.jit
def _matmul_chain(a, steps):
    """A program that runs long enough (1,500 256x256 matmuls) to be waited for."""
    return jax.lax.fori_loop(0, steps, lambda i, b: jnp.tanh(b @ b), a)


def test_wait_hands_a_long_wait_to_a_thread_instead_of_sleeping_between_polls(monkeypatch):
    """Polls that sleep would oversleep the result by up to their last sleep; the wait
    must return the result without sleeping at all once it is past its spin."""
    start = jnp.eye(256) * 0.5
    expected = np.asarray(_matmul_chain(start, 300))

    def refused(seconds):
        raise AssertionError(f"the wait slept {seconds} s")
    value = _matmul_chain(start, 300)
    monkeypatch.setattr(time, "sleep", refused)
    np.testing.assert_array_equal(_driver._wait(value, spin_s=0.0), expected)


def test_wait_is_interrupted_by_ctrl_c_before_the_program_ends(ctrl_c):
    value = _matmul_chain(jnp.eye(256) * 0.5, 1500)
    threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        _driver._wait(value)
    assert not value.is_ready()       # it came while the program still ran
    value.block_until_ready()


@pytest.mark.parametrize("last, spin", [(0.0, _driver.SPIN_S), (1.0, 0.0)])
def test_fit_polls_before_waiting_only_for_a_runner_whose_last_wait_was_short(problem, monkeypatch, last, spin):
    """Polling takes a core from the program: a runner that ran long the last time is
    waited for without polling first; the wait of this call is what the next call goes by."""
    cell, spins = [last], []
    wait = _driver._wait

    def recorded(value, spin_s=_driver.SPIN_S):
        spins.append(spin_s)
        return wait(value, spin_s)
    monkeypatch.setattr(_driver, "_last_wait", lambda cfg, hooked: cell)
    monkeypatch.setattr(_driver, "_wait", recorded)
    reference = _fit(problem)
    assert spins == [spin]
    assert 0.0 < cell[0] < 1.0
    monkeypatch.undo()
    chex.assert_trees_all_equal(reference.params, _fit(problem).params)
