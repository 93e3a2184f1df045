r"""``fnn.summary``: a table of a model's layers, shapes, params and FLOPs."""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from fnn.layers._core import StatefulLayer, example_shape
from fnn.layers._registry import description, input_dtype
from fnn.layers._serial import output_shape

__all__ = ["summary"]


def _count(tree: Any) -> int:
    return sum(math.prod(jnp.shape(a)) for a in jax.tree.leaves(tree))


def _shapes(tree: Any) -> str:
    leaves = [(p, a) for p, a in jax.tree.leaves_with_path(tree) if math.prod(jnp.shape(a))]  # not markers
    def key(path: tuple) -> str:
        return ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
    return ", ".join(f"{key(p)}{tuple(jnp.shape(a))}" for p, a in leaves) if len(leaves) <= 3 \
        else f"{len(leaves)} arrays"


def _name(layer: Any) -> str:
    info = description(layer)
    if info is not None:
        return info.name
    return getattr(layer, "__name__", type(layer).__name__)


def _rows(layer: Any, params: Any, state: Any, shape: Any, depth: int, rows: list) -> Any:
    """Append one row for ``layer`` and rows for its parts; return its output shape."""
    info = description(layer)
    general = isinstance(layer, StatefulLayer)
    if callable(layer) and not isinstance(layer, tuple):  # fnn.relu inside serial
        out = output_shape(_as_pure(layer), (), None, shape)
    else:
        out = output_shape(layer, params, state if general else None, shape)
    rows.append(("  " * depth + _name(layer), out, params, state if general else ()))
    if info is None or info.route == "leaf":
        rows[-1] = rows[-1] + (True,)
        return out
    rows[-1] = rows[-1] + (False,)
    n = len(info.children)
    states = state if general and info.route != "wrap" else [state if general else None] * n
    if info.route == "wrap":
        _rows(info.children[0], params, state if general else None, shape, depth + 1, rows)
    else:
        child_shape = shape
        for i, child in enumerate(info.children):
            child_state = states[i] if isinstance(child, StatefulLayer) else None
            child_out = _rows(child, params[i], child_state, shape[i] if info.route == "parallel" else child_shape,
                              depth + 1, rows)
            child_shape = child_out
    return out


def _as_pure(fn: Callable):
    from fnn.layers._core import Layer  # noqa: PLC0415 (a plain callable becomes a param-free layer)
    return Layer(lambda key, input_shape: (), lambda params, x: fn(x))


def _flops(model: Any, params: Any, state: Any, shape: tuple[int, ...]) -> float | None:
    """FLOPs of one example's forward pass, from XLA's cost analysis of the compiled program."""
    x = jnp.zeros((1,) + shape, input_dtype(model, jnp.float32))
    if isinstance(model, StatefulLayer):
        fn = jax.jit(lambda p, s, v: model.apply(p, s, v, train=False)[0])
        args: tuple = (params, state, x)
    else:
        fn, args = jax.jit(model.apply), (params, x)
    try:
        cost = fn.lower(*args).compile().cost_analysis()
    except Exception:  # noqa: BLE001 (a backend without cost analysis: no FLOPs column)
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    return None if not cost or "flops" not in cost else float(cost["flops"])


def summary(model: Any, input_shape: Any, *, key: jax.Array | None = None) -> str:
    r"""A table of every layer of ``model``: output shape, param shapes and counts, state; totals.

    One row per layer, the parts of :func:`fnn.serial`, :func:`fnn.layers.parallel`,
    :func:`fnn.layers.residual` and :func:`fnn.layers.mixed_precision` indented under
    them; a combinator's counts include its parts'. Shapes are one example's (no batch
    axis). The last lines give the totals (trainable params, state values) and the FLOPs
    of one example's forward pass as XLA's cost analysis of the compiled program counts
    them (a multiply-add is 2 FLOPs; "n/a" where the backend gives no analysis). Layers
    are described by :func:`fnn.layers.named` (every fnn factory does it); a layer never
    described (a hand-written ``Layer``, :func:`fnn.mlp`) is one row.

    Args:
      model: a :class:`fnn.layers.Layer` or :class:`fnn.layers.StatefulLayer`.
      input_shape: the shape of one example, e.g. ``(8, 8, 1)``.
      key: key for ``init`` (default ``jax.random.key(0)``; only shapes are used).

    Returns:
      The table as a string (print it).

    Example:
      >>> import fnn
      >>> net = fnn.serial(fnn.layers.conv(4, (3, 3)), fnn.relu, fnn.layers.flatten(), fnn.dense(10))
      >>> print(fnn.summary(net, (8, 8, 1)))  # doctest: +ELLIPSIS
      layer                   output          params                     count   state
      --------------------------------------------------------------------------------
      serial                  (10,)                                      2,610
        conv(4, (3, 3))       (8, 8, 4)       b(4,), w(3, 3, 1, 4)          40
        relu                  (8, 8, 4)                                      0
        flatten               (256,)                                         0
        dense(10)             (10,)           b(10,), w(256, 10)         2,570
      --------------------------------------------------------------------------------
      total params: 2,610   state: 0   FLOPs per example (forward): ...
    """
    if not isinstance(model, tuple) or not hasattr(model, "init"):
        from fnn import _checks  # noqa: PLC0415
        _checks.fail("summary", "model", "be a fnn Layer or StatefulLayer", type(model).__name__, TypeError)
    shape = example_shape("summary", input_shape)
    key = jax.random.key(0) if key is None else key
    out = jax.eval_shape(lambda k: model.init(k, shape), key)
    params, state = out if isinstance(model, StatefulLayer) else (out, ())
    rows: list = []
    _rows(model, params, state, shape, 0, rows)
    width = max(24, max(len(r[0]) for r in rows) + 2)
    lines = [f"{'layer':<{width}}{'output':<16}{'params':<24}{'count':>8}{'state':>8}",
             "-" * (width + 56)]
    for name, out_shape, p, s, leaf in rows:
        lines.append(f"{name:<{width}}{str(tuple(out_shape)) if isinstance(out_shape, tuple) else str(out_shape):<16}"
                     f"{_shapes(p) if leaf else '':<24}{_count(p):>8,}{_count(s) or '':>8}")
    flops = _flops(model, jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), params),
                   jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), state), shape)
    lines += ["-" * (width + 56), f"total params: {_count(params):,}   state: {_count(state):,}   "
              f"FLOPs per example (forward): {'n/a' if flops is None else f'{flops:,.0f}'}"]
    return "\n".join(line.rstrip() for line in lines)
