"""Shared test fixtures."""

from __future__ import annotations

import os
import signal

import jax
import jax.numpy as jnp
import pytest

# The `fnn` command keeps compiled programs on disk by default. In-process CLI tests
# must not turn that on for the whole test session (it is a global jax setting), nor
# write into the home directory; tests of the cache set the variable themselves.
os.environ["FNN_COMPILATION_CACHE"] = "off"


@pytest.fixture
def x64():
    """Run one test with 64-bit types enabled, and only that test.

    ``jax.enable_x64`` is a context manager, so the flag is restored when the test ends,
    failed or not; nothing leaks into tests that expect float32 defaults.
    """
    default = jnp.zeros(()).dtype
    with jax.enable_x64(True):
        yield
    assert jnp.zeros(()).dtype == default, "x64 leaked out of the x64 fixture"


@pytest.fixture
def ctrl_c():
    """Python's own SIGINT handler (raise KeyboardInterrupt) for one test, then the old one.

    A process started in the background by a non-interactive shell (``cmd &``, nohup, some
    CI runners) inherits SIGINT ignored, and Python then installs no handler: a test that
    sends itself a SIGINT would see nothing happen. Tests that do must not depend on how
    pytest was started.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
