"""Validation helpers shared by the public API (private).

Every check works on static facts only (shapes, ranks, dtypes, Python numbers), so it
runs at trace time under ``jit`` and costs nothing inside compiled loops. Messages
follow one format: ``"<function>: <arg> must <expectation>; got <what came>"``.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

import jax
import jax.numpy as jnp
import numpy as np


def message(fn: str, arg: str, expectation: str, got: Any) -> str:
    """The one error-message format of fnn."""
    return f"{fn}: {arg} must {expectation}; got {got}"


def fail(fn: str, arg: str, expectation: str, got: Any, exc: type[Exception] = ValueError) -> NoReturn:
    """Raise ``exc`` with the standard message."""
    raise exc(message(fn, arg, expectation, got))


def describe(x: Any) -> str:
    """Shape and dtype of an array-like, or its type name, for error messages."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None and dtype is not None:
        return f"shape {tuple(shape)} dtype {dtype}"
    return f"{type(x).__name__} {x!r}" if isinstance(x, (int, float, bool, str)) else type(x).__name__


def array_like(fn: str, arg: str, x: Any):
    """Reject things that are not array-like (strings, None, dicts...)."""
    if isinstance(x, (str, bytes)) or x is None or isinstance(x, dict):
        fail(fn, arg, "be an array", describe(x), TypeError)
    try:
        dtype = jnp.result_type(x)
    except TypeError:
        fail(fn, arg, "be an array", describe(x), TypeError)
    return dtype


def floating(fn: str, arg: str, x: Any) -> None:
    """``x`` must hold floating-point values (python floats count)."""
    dtype = array_like(fn, arg, x)
    if not jnp.issubdtype(dtype, jnp.floating):
        fail(fn, arg, "have a floating dtype", describe(x) if hasattr(x, "dtype") else f"dtype {dtype}", TypeError)


def integer(fn: str, arg: str, x: Any) -> None:
    """``x`` must hold integers (class labels)."""
    dtype = array_like(fn, arg, x)
    if not (jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_):
        fail(fn, arg, "have an integer dtype (class indices)", describe(x), TypeError)


def ndim_at_least(fn: str, arg: str, x: Any, n: int) -> None:
    if jnp.ndim(x) < n:
        fail(fn, arg, f"have at least {n} dimension(s)", f"shape {jnp.shape(x)}")


def same_shape(fn: str, arg_a: str, a: Any, arg_b: str, b: Any) -> None:
    if jnp.shape(a) != jnp.shape(b):
        fail(fn, arg_b, f"have the same shape as {arg_a} {jnp.shape(a)}", f"shape {jnp.shape(b)}")


def positive_int(fn: str, arg: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        fail(fn, arg, "be a positive integer", repr(value))
    return int(value)


def nonneg_int(fn: str, arg: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        fail(fn, arg, "be a non-negative integer", repr(value))
    return int(value)


def concrete(x: Any) -> np.ndarray | None:
    """The value of ``x`` if it is known at trace time (not a tracer), else None."""
    if isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x)


def _is_static_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def number(fn: str, arg: str, value: Any, *, low=None, high=None, low_open=False, high_open=False,
           expectation: str | None = None) -> None:
    """Check a hyperparameter lies in a range; traced values pass unchecked.

    Traced values (a learning rate swept with ``vmap``) cannot be inspected at trace time
    and are accepted as they are.
    """
    if isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, (jax.Array, np.ndarray)) and np.ndim(value) == 0:
        value = value.item()
    if not _is_static_number(value):
        if callable(value) or isinstance(value, (jax.Array, np.ndarray)):
            return
        fail(fn, arg, "be a number", describe(value), TypeError)
    ok = not math.isnan(value)
    if low is not None:
        ok = ok and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        if expectation is None:
            lo = "" if low is None else ("(" if low_open else "[") + f"{low}"
            hi = "" if high is None else f"{high}" + (")" if high_open else "]")
            if low is not None and high is not None:
                expectation = f"be in {lo}, {hi}"
            elif low is not None:
                expectation = f"be {'>' if low_open else '>='} {low}"
            else:
                expectation = f"be {'<' if high_open else '<='} {high}"
        fail(fn, arg, expectation, repr(value))


def prng_key(fn: str, arg: str, key: Any) -> None:
    """``key`` must be one PRNG key: typed (``jax.random.key(0)``) or raw uint32 (``PRNGKey(0)``)."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if jnp.shape(key) == ():
            return
    elif dtype == jnp.uint32 and jnp.ndim(key) == 1:
        return
    fail(fn, arg, "be a single PRNG key such as jax.random.key(0)", describe(key), TypeError)


def boolean(fn: str, arg: str, value: Any) -> bool:
    """A flag must be a Python (or NumPy) bool: ``"no"`` or ``None`` would read as truthy/falsy."""
    if not isinstance(value, (bool, np.bool_)):
        fail(fn, arg, "be a bool", describe(value), TypeError)
    return bool(value)


def scalar(fn: str, arg: str, value: Any) -> None:
    """``value`` must be 0-d (a number or a 0-d array, traced or not), not a vector."""
    if not callable(value) and np.ndim(value) != 0:  # np.ndim reads .ndim: tracers work
        fail(fn, arg, "be a scalar", f"shape {np.shape(value)}")
