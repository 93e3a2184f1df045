r"""Skip connections and branches: ``residual``, ``parallel``, ``fan_out``, ``fan_in_*`` (part of :mod:`fnn.layers`).

Branching networks pass LISTS of arrays between layers: ``fan_out(n)`` turns one input
into a list of ``n``, ``parallel(*layers)`` applies layer ``i`` to element ``i``, and
``fan_in_sum()`` / ``fan_in_concat(axis)`` join a list back into one array. An
input shape of such a layer is the list of the elements' shapes. Every combinator is a
pure :class:`Layer` when its parts are, and a :class:`StatefulLayer` as soon as one part
is general (its state is a list with one entry per part, or the part's own state for
:func:`residual`; the key is split among the parts as in :func:`fnn.serial`).
"""

from __future__ import annotations

from typing import Any, Sequence, cast

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from fnn import _checks
from fnn._cache import same_object_for_same_arguments
from fnn.layers._core import (Layer, StatefulLayer, as_layer, check_empty_state, check_train,
                              example_shape, stateful)
from fnn.layers._registry import named
from fnn.layers._serial import check_part_list, split_key

__all__ = ["residual", "parallel", "fan_out", "fan_in_sum", "fan_in_concat", "shape_list"]


def shape_list(fn: str, input_shapes: Any, n: int | None = None) -> list[tuple[int, ...]]:
    """A list of example shapes (one per branch), each checked."""
    if not isinstance(input_shapes, (list, tuple)) or not input_shapes or not all(
            isinstance(s, (list, tuple)) for s in input_shapes) or (n is not None and len(input_shapes) != n):
        count = "" if n is None else f"{n} "
        _checks.fail(fn, "input_shape", f"be a list of {count}shapes (one per branch)", repr(input_shapes))
    return [example_shape(fn, s) for s in input_shapes]


def _inputs(fn: str, xs: Any, n: int | None = None) -> list:
    if not isinstance(xs, (list, tuple)) or not xs or (n is not None and len(xs) != n):
        count = "" if n is None else f"{n} "
        _checks.fail(fn, "x", f"be a list of {count}arrays (one per branch)",
                     f"{type(xs).__name__} of length {len(xs)}" if isinstance(xs, (list, tuple))
                     else _checks.describe(xs), TypeError if not isinstance(xs, (list, tuple)) else ValueError)
    for i, x in enumerate(xs):
        _checks.array_like(fn, f"x[{i}]", x)
    return list(xs)


@same_object_for_same_arguments
def residual(layer: Any) -> Layer | StatefulLayer:
    r"""Skip connection: the layer's output added to its input.

    .. math:: y = x + f(x)

    The gradient reaches ``x`` through the identity path undiminished
    (:math:`\partial y / \partial x = I + \partial f / \partial x`), the reason deep
    residual networks train where plain deep stacks suffer the notes' vanishing
    gradient. ``f`` must keep the shape; params (and state) are ``f``'s own.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> block = fnn.layers.residual(fnn.serial(fnn.dense(3), fnn.relu))
      >>> params = block.init(jax.random.key(0), (3,))
      >>> block.apply(params, jnp.zeros((2, 3))).shape
      (2, 3)
    """
    part = as_layer("residual", 0, layer)

    def check(x: Any, y: Any) -> None:
        if jnp.shape(y) != jnp.shape(x):
            _checks.fail("residual", "layer", "keep the shape of its input (y = x + layer(x))",
                         f"x of shape {tuple(jnp.shape(x))} -> output of shape {tuple(jnp.shape(y))}")

    if isinstance(part, StatefulLayer):
        def apply_general(params: Any, state: Any, x: ArrayLike, *, key: Any = None,
                          train: bool = False) -> tuple[jax.Array, Any]:
            _checks.array_like("residual", "x", x)
            y, state = part.apply(params, state, x, key=key, train=train)
            check(x, y)
            return x + y, state

        return named(StatefulLayer(part.init, apply_general), "residual", (layer,), "wrap")

    def apply(params: Any, x: ArrayLike) -> jax.Array:
        _checks.array_like("residual", "x", x)
        y = part.apply(params, x)
        check(x, y)
        return x + y

    return named(Layer(part.init, apply), "residual", (layer,), "wrap")


@same_object_for_same_arguments
def parallel(*layers: Any) -> Layer | StatefulLayer:
    r"""Branches side by side: layer ``i`` applied to input ``i`` of a list.

    .. math:: [y_1, \dots, y_n] = [f_1(x_1), \dots, f_n(x_n)]

    ``init(key, input_shapes)`` takes a list of ``n`` shapes; params are a list with one
    entry per layer; ``apply`` takes and returns a list of ``n`` arrays. Use after
    :func:`fan_out` and before :func:`fan_in_sum` or :func:`fan_in_concat`.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> net = fnn.serial(fnn.layers.fan_out(2), fnn.layers.parallel(fnn.dense(3), fnn.dense(2)),
      ...                  fnn.layers.fan_in_concat())
      >>> params = net.init(jax.random.key(0), (4,))
      >>> net.apply(params, jnp.ones((5, 4))).shape
      (5, 5)
    """
    if not layers:
        _checks.fail("parallel", "layers", "contain at least one layer", "none")
    parts = [as_layer("parallel", i, layer) for i, layer in enumerate(layers)]
    n = len(parts)
    general = any(isinstance(p, StatefulLayer) for p in parts)
    if general:
        parts = [stateful(p) for p in parts]
    lifted = cast(list[StatefulLayer], parts)  # read only when general, after the line above

    def init(key: jax.Array, input_shape: Any) -> Any:
        shapes = shape_list("parallel", input_shape, n)
        out = [p.init(k, s) for p, k, s in zip(parts, jax.random.split(key, n), shapes)]
        return ([o[0] for o in out], [o[1] for o in out]) if general else out

    def apply_pure(params: Any, x: Any) -> list:
        check_part_list("parallel", "params", params, n)
        return [p.apply(q, xi) for p, q, xi in zip(parts, params, _inputs("parallel", x, n))]

    def apply_general(params: Any, state: Any, x: Any, *, key: Any = None,
                      train: bool = False) -> tuple[list, list]:
        check_train("parallel", train)
        check_part_list("parallel", "params", params, n)
        check_part_list("parallel", "state", state, n)
        out = [p.apply(q, s, xi, key=k, train=train) for p, q, s, xi, k in
               zip(lifted, params, state, _inputs("parallel", x, n), split_key("parallel", key, n))]
        return [o[0] for o in out], [o[1] for o in out]

    result = StatefulLayer(init, apply_general) if general else Layer(init, apply_pure)
    return named(result, "parallel", layers, "parallel")


@same_object_for_same_arguments
def fan_out(n: int) -> Layer:
    r"""One input copied into a list of ``n``: :math:`[x, \dots, x]`. No params.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> len(fnn.layers.fan_out(3).apply((), jnp.ones(2)))
      3
    """
    n = _checks.positive_int("fan_out", "n", n)

    def apply(params: Any, x: ArrayLike) -> list:
        check_empty_state("fan_out", params, "params")
        _checks.array_like("fan_out", "x", x)
        return [jnp.asarray(x)] * n

    return named(Layer(lambda key, input_shape: (example_shape("fan_out", input_shape), ())[1], apply),
                 f"fan_out({n})")


def _join_init(fn: str):
    def init(key: jax.Array, input_shape: Any) -> tuple:
        shape_list(fn, input_shape)
        return ()
    return init


@same_object_for_same_arguments
def fan_in_sum() -> Layer:
    r"""A list of arrays of one shape summed: :math:`y = \sum_i x_i`. No params.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.layers.fan_in_sum().apply((), [jnp.ones(2), 2 * jnp.ones(2)])
      Array([3., 3.], dtype=float32)
    """

    def apply(params: Any, x: Any) -> jax.Array:
        check_empty_state("fan_in_sum", params, "params")
        xs = _inputs("fan_in_sum", x)
        for i, xi in enumerate(xs[1:], 1):
            if jnp.shape(xi) != jnp.shape(xs[0]):
                _checks.fail("fan_in_sum", f"x[{i}]", f"have the shape of x[0] {tuple(jnp.shape(xs[0]))}",
                             f"shape {tuple(jnp.shape(xi))}")
        return sum(xs[1:], jnp.asarray(xs[0]))

    return named(Layer(_join_init("fan_in_sum"), apply), "fan_in_sum")


def _without(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    i = len(shape) + axis
    return shape[:i] + shape[i + 1:]


@same_object_for_same_arguments
def fan_in_concat(axis: int = -1) -> Layer:
    r"""A list of arrays joined along ``axis``: ``jnp.concatenate(x, axis)``. No params.

    ``axis`` is negative, counted from the last axis (the channels by default), because
    the number of leading batch axes varies. The other axes must agree.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.layers.fan_in_concat().apply((), [jnp.ones((4, 2)), jnp.ones((4, 3))]).shape
      (4, 5)
    """
    if isinstance(axis, bool) or not isinstance(axis, int) or axis >= 0:
        _checks.fail("fan_in_concat", "axis", "be a negative int (counted from the last axis)", repr(axis))
    name = f"fan_in_concat({axis})"

    def apply(params: Any, x: Any) -> jax.Array:
        check_empty_state(name, params, "params")
        xs = [jnp.asarray(v) for v in _inputs(name, x)]
        first = xs[0].shape
        for i, xi in enumerate(xs):
            if xi.ndim < -axis:
                _checks.fail(name, f"x[{i}]", f"have at least {-axis} axes", f"shape {tuple(xi.shape)}")
            if xi.ndim != len(first) or _without(xi.shape, axis) != _without(first, axis):
                _checks.fail(name, f"x[{i}]", f"match x[0] {tuple(first)} on every axis but {axis}",
                             f"shape {tuple(xi.shape)}")
        return jnp.concatenate(xs, axis=axis)

    return named(Layer(_join_init(name), apply), name)
