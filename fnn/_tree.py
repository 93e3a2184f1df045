"""Pytree arithmetic helpers shared by the library (private).

Small, structure-preserving maps over pytrees of arrays. They add no arithmetic of
their own: each helper only routes leaves, so callers keep full control over the order
of floating-point operations (the optimizers rely on this to match optax bit for bit).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from fnn import _checks


def zeros_like(tree: Any, dtype: Any = None) -> Any:
    """A tree of zeros with ``tree``'s structure, shapes and (unless given) dtypes."""
    return jax.tree.map(lambda x: jnp.zeros_like(x, dtype=dtype), tree)


def full_like(tree: Any, fill_value: Any, dtype: Any = None) -> Any:
    """A tree filled with ``fill_value``, with ``tree``'s structure, shapes and dtypes."""
    return jax.tree.map(lambda x: jnp.full_like(x, fill_value, dtype=dtype), tree)


def check_same_structure(fn: str, arg: str, tree: Any, like: Any, like_name: str) -> None:
    """Raise ValueError naming ``arg`` unless ``tree`` has ``like``'s tree structure."""
    expected, got = jax.tree.structure(like), jax.tree.structure(tree)
    if got != expected:
        _checks.fail(fn, arg, f"have the same tree structure as {like_name} {expected}", got)


def map_unzip(leaf_fn: Callable[..., tuple], tree: Any, *rest: Any, n_out: int) -> tuple:
    """Map ``leaf_fn`` over same-structured trees and unzip its tuple results.

    ``leaf_fn(x, *ys)`` takes one leaf of ``tree`` and the matching leaves of ``rest``
    and returns ``n_out`` arrays; the result is a tuple of ``n_out`` trees shaped like
    ``tree``. One traversal replaces ``n_out`` calls of ``jax.tree.map`` that would each
    recompute the shared intermediates (under ``jit`` XLA would deduplicate them anyway;
    outside it, this is ``n_out`` times less dispatch).
    """
    leaves, treedef = jax.tree.flatten(tree)
    columns = [leaves] + [treedef.flatten_up_to(r) for r in rest]
    outs = [leaf_fn(*xs) for xs in zip(*columns)]
    if not outs:
        return tuple(treedef.unflatten([]) for _ in range(n_out))
    return tuple(treedef.unflatten(list(col)) for col in zip(*outs))
