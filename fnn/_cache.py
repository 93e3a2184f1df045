"""Factories that return the same object for the same arguments (private).

``jax.jit`` caches compiled programs by the identity of the functions it is handed.
Layers, models and optimizers are immutable pairs of pure functions, so two calls of
``fnn.mlp([128, 10])`` (or ``adam(1e-3)``) may share one object: a second ``fit`` with
a freshly built but identical model then reuses the compiled program instead of
recompiling. Arguments that cannot be hashed (traced values inside ``vmap``, arrays)
bypass the cache.
"""

from __future__ import annotations

import collections
import functools
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable)
MAX_ENTRIES = 256


def _typed(value: Any) -> Any:
    """``value`` with the type of every element beside it: ``16`` and ``16.0``, ``1`` and
    ``True`` are equal and hash alike, but a factory may accept one and refuse the other."""
    if isinstance(value, (tuple, list)):
        return (type(value), tuple(_typed(v) for v in value))
    if isinstance(value, dict):
        return (dict, tuple((k, _typed(v)) for k, v in value.items()))
    return (type(value), value)


def same_object_for_same_arguments(fn: F) -> F:
    """Cache ``fn``'s result by its arguments and their types (so validation never
    depends on what was built before: a call that would raise is never a cache hit)."""
    cache: collections.OrderedDict = collections.OrderedDict()

    @functools.wraps(fn)
    def factory(*args, **kwargs):
        key = (_typed(args), _typed(kwargs))
        try:
            hit = cache.get(key)
        except TypeError:               # unhashable (arrays, traced values): no cache
            return fn(*args, **kwargs)
        if hit is not None:
            cache.move_to_end(key)
            return hit
        made = fn(*args, **kwargs)
        cache[key] = made
        if len(cache) > MAX_ENTRIES:
            cache.popitem(last=False)
        return made

    factory.cache_clear = cache.clear  # type: ignore[attr-defined]
    return factory  # type: ignore[return-value]
