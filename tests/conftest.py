"""Shared test fixtures."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest


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
