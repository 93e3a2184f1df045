"""Factories that return the same object for the same arguments (private).

``jax.jit`` caches compiled programs by the identity of the functions it is handed.
Layers, models and optimizers are immutable pairs of pure functions, so two calls of
``fnn.mlp([128, 10])`` (or ``adam(1e-3)``) may share one object: a second ``fit`` with
a freshly built but identical model then reuses the compiled program instead of
recompiling. Arguments that cannot be hashed (traced values inside ``vmap``, arrays)
bypass the cache.
"""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


def same_object_for_same_arguments(fn: F) -> F:
    cached = functools.lru_cache(maxsize=256)(fn)

    @functools.wraps(fn)
    def factory(*args, **kwargs):
        try:
            hash((args, tuple(kwargs.items())))
        except TypeError:
            return fn(*args, **kwargs)
        return cached(*args, **kwargs)

    factory.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return factory  # type: ignore[return-value]
