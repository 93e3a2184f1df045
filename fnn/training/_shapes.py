"""One cached ``jax.eval_shape``: abstract shapes of what training builds, traced once."""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

__all__ = ["abstract", "eval_shape"]


def _spec(a: Any) -> tuple:
    """Shape and canonical dtype; read directly from a jax array or abstract value (whose
    dtype is canonical already: ``jnp.result_type`` costs tens of microseconds a leaf)."""
    if isinstance(a, (jax.Array, jax.ShapeDtypeStruct)):
        return tuple(a.shape), a.dtype
    return tuple(jnp.shape(a)), jnp.result_type(a)


def abstract(tree: Any, drop_leading: int = 0) -> Any:
    """``tree`` with every array replaced by a hashable ``ShapeDtypeStruct`` (leading axes dropped)."""
    def one(a):
        shape, dtype = _spec(a)
        return jax.ShapeDtypeStruct(shape[drop_leading:], dtype)
    return jax.tree.map(one, tree)


def _hashable(tree: Any) -> tuple:
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple(_spec(a) for a in leaves)


@functools.lru_cache(maxsize=512)
def _cached(fn: Callable, static: Any, treedef: Any, leaves: tuple) -> Any:
    args = jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(s, d) for s, d in leaves])
    return jax.eval_shape(functools.partial(fn, static), *args)


def eval_shape(fn: Callable, static: Any, *args: Any) -> Any:
    """``jax.eval_shape(lambda *a: fn(static, *a), *args)``, cached.

    The cache key is ``fn``, the hashable ``static`` (a model, a loop config) and the
    shapes and dtypes of ``args``: ``fit`` is called often with the same shapes, and
    tracing costs milliseconds. ``fn`` must be pure.
    """
    treedef, leaves = _hashable(args)
    return _cached(fn, static, treedef, leaves)
