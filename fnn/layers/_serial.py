"""``serial``: composition of layers, pure or general (part of :mod:`fnn.layers`)."""

from __future__ import annotations

from typing import Any, Callable, Sequence, TypeAlias, cast

import jax
import jax.numpy as jnp

from fnn import _checks
from fnn._cache import same_object_for_same_arguments
from fnn.layers._core import (Layer, StatefulLayer, as_layer, check_train, example_shape, stateful)
from fnn.layers._registry import input_dtype, named

__all__ = ["serial", "split_key", "check_part_list", "output_shape"]

Params = Any
Shape: TypeAlias = tuple[int, ...]
# One example's shape, or a list of them (one per branch, between the branch combinators).
Shapes: TypeAlias = Shape | list[Shape]


def check_part_list(fn: str, arg: str, value: Any, n: int) -> None:
    """``value`` must be a list or tuple with one entry per part."""
    if not isinstance(value, (list, tuple)) or len(value) != n:
        length = len(value) if hasattr(value, "__len__") else "?"
        _checks.fail(fn, arg, f"be a list of {n} per-layer {arg}", f"{type(value).__name__} of length {length}")


def split_key(fn: str, key: Any, n: int) -> list:
    """``n`` independent keys from ``key`` (``[None] * n`` when no key is given)."""
    if key is None:
        return [None] * n
    _checks.prng_key(fn, "key", key)
    return list(jax.random.split(key, n))


def output_shape(layer: Layer | StatefulLayer, params: Params, state: Any,
                 shape: Sequence[Any], dtype: Any = jnp.float32) -> Shapes:
    """Shape of one example's output of ``layer``, traced abstractly (no computation).

    A list of shapes (the input of a branch combinator) gives a list of inputs, a layer
    that returns a list gives a list of shapes; ids for an ``embedding`` are int32.
    """
    dtype = input_dtype(layer, dtype)
    is_one = all(isinstance(d, int) for d in shape)
    x = (jax.ShapeDtypeStruct(tuple(shape), dtype) if is_one else
         [jax.ShapeDtypeStruct(tuple(s), dtype) for s in shape])
    if isinstance(layer, StatefulLayer):
        out = jax.eval_shape(lambda p, s, v: layer.apply(p, s, v, train=False)[0], params, state, x)
    else:
        out = jax.eval_shape(layer.apply, params, x)
    if isinstance(out, jax.ShapeDtypeStruct):
        return tuple(out.shape)
    return [tuple(o.shape) for o in out]


@same_object_for_same_arguments
def serial(*layers: Layer | StatefulLayer | Callable[[jax.Array], jax.Array]) -> Layer | StatefulLayer:
    r"""Compose layers: the output of each is the input of the next.

    .. math:: y = f_n(\dots f_2(f_1(x)))

    A plain callable (``fnn.relu``, ``jnp.tanh``) is a layer without params; its params
    are ``()``. Params of the composition are a list with one entry per layer.
    ``init`` infers each layer's input shape from the previous one with
    ``jax.eval_shape`` (no computation).

    When every part is a pure :class:`Layer` the result is a pure :class:`Layer`. As soon
    as one part is a :class:`StatefulLayer` the result is one too: its state is a list
    with one entry per part (``()`` for pure parts), ``apply`` threads each part's state
    through and splits ``key`` into one key per part (``jax.random.split(key, n)``, part
    ``i`` gets the ``i``-th), and passes ``train`` to every part.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> net = fnn.serial(fnn.dense(4), fnn.relu, fnn.dense(1))
      >>> params = net.init(jax.random.key(0), (3,))
      >>> [jax.tree.map(jnp.shape, p) for p in params]
      [{'b': (4,), 'w': (3, 4)}, (), {'b': (1,), 'w': (4, 1)}]
      >>> net.apply(params, jnp.ones((2, 3))).shape
      (2, 1)
      >>> general = fnn.serial(fnn.dense(4), fnn.layers.dropout(0.5), fnn.dense(1))
      >>> params, state = general.init(jax.random.key(0), (3,))
      >>> y, state = general.apply(params, state, jnp.ones((2, 3)), key=jax.random.key(1),
      ...                          train=True)
      >>> y.shape
      (2, 1)
    """
    if not layers:
        _checks.fail("serial", "layers", "contain at least one layer", "none")
    parts = [as_layer("serial", i, layer) for i, layer in enumerate(layers)]
    if any(isinstance(p, StatefulLayer) for p in parts):
        return named(_general_serial([stateful(p) for p in parts]), "serial", layers, "serial")

    pure = cast(list[Layer], parts)  # no part is a StatefulLayer (that case returned above)

    def init(key: jax.Array, input_shape: Sequence[int]) -> Params:
        shape: Shapes = example_shape("serial", input_shape)
        params = []
        for part, part_key in zip(parts, jax.random.split(key, len(parts))):
            p = part.init(part_key, shape)
            shape = output_shape(part, p, None, shape)
            params.append(p)
        return params

    # x and the result: arrays, or lists of arrays where a part is a branch combinator.
    def apply(params: Params, x: Any) -> Any:
        check_part_list("serial", "params", params, len(parts))
        for part, p in zip(pure, params):
            x = part.apply(p, x)
        return x

    return named(Layer(init, apply), "serial", layers, "serial")


def _general_serial(parts: list[StatefulLayer]) -> StatefulLayer:
    def init(key: jax.Array, input_shape: Sequence[int]) -> tuple[list, list]:
        shape: Shapes = example_shape("serial", input_shape)
        params, states = [], []
        for part, part_key in zip(parts, jax.random.split(key, len(parts))):
            p, s = part.init(part_key, shape)
            shape = output_shape(part, p, s, shape)
            params.append(p)
            states.append(s)
        return params, states

    def apply(params: Params, state: Any, x: Any, *, key: Any = None,
              train: bool = False) -> tuple[Any, list]:
        check_train("serial", train)
        check_part_list("serial", "params", params, len(parts))
        check_part_list("serial", "state", state, len(parts))
        new_state = []
        for part, p, s, k in zip(parts, params, state, split_key("serial", key, len(parts))):
            x, s = part.apply(p, s, x, key=k, train=train)
            new_state.append(s)
        return x, new_state

    return StatefulLayer(init, apply)
