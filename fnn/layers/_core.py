r"""The two layer forms: a pure :class:`Layer` and the general :class:`StatefulLayer`.

A :class:`Layer` owns no state. ``init(key, input_shape) -> params`` builds the
parameter pytree for ONE example of shape ``input_shape`` (no batch axis);
``apply(params, x) -> y`` runs the forward stage on ``x`` with any number of leading
batch axes. Because params are an ordinary pytree, ``jax.grad`` of a loss of
``apply`` returns gradients of the same structure, and ``jax.vmap`` over ``init``
builds ensembles.

A :class:`StatefulLayer` is the general form, for layers that draw random numbers
(dropout) or keep values that are not trained (batch norm's running averages):

.. math:: (\theta, s_0) = \text{init}(k, \text{shape}), \qquad
          (y, s_{t+1}) = \text{apply}(\theta, s_t, x; k_t, \text{train})

``state`` is a pytree the optimizer never sees; ``key`` is an explicit ``jax.random``
key (required when a stochastic layer runs with ``train=True``); ``train`` selects the
training behaviour (dropout on, batch statistics, running averages updated) or the
inference behaviour (dropout off, running averages used, state returned unchanged).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnn import _checks

__all__ = ["Layer", "StatefulLayer", "stateful", "as_layer", "example_shape", "compiles_exactly",
           "check_train", "check_empty_state", "is_general"]

Params = Any
State = Any


class Layer(NamedTuple):
    """A pure layer: ``init(key, input_shape) -> params`` and ``apply(params, x) -> y``."""

    init: Callable[..., Params]
    # x and y are arrays, or lists of arrays between the branch combinators (fan_out, parallel).
    apply: Callable[[Params, Any], Any]


class StatefulLayer(NamedTuple):
    """The general layer form.

    ``init(key, input_shape) -> (params, state)`` and
    ``apply(params, state, x, *, key=None, train=False) -> (y, state)``.
    """

    init: Callable[..., tuple[Params, State]]
    apply: Callable[..., tuple[Any, State]]  # y: an array, or a list of arrays as in Layer


def is_general(layer: Any) -> bool:
    """Whether ``layer`` is a :class:`StatefulLayer` (the general form)."""
    return isinstance(layer, StatefulLayer)


def example_shape(fn: str, input_shape: Any, type_fn: str | None = None) -> tuple[int, ...]:
    """The shape of one example as a tuple of positive ints (hashable: a static jit argument).

    ``type_fn`` names the function blamed for a value that is no shape at all (a model
    checks the type, its first layer the sizes).
    """
    shape = None
    if not isinstance(input_shape, (str, bytes)):
        try:
            shape = tuple(int(d) for d in input_shape)
        except (TypeError, ValueError):
            shape = None
    if shape is None:
        _checks.fail(type_fn or fn, "input_shape", "be a tuple of ints (the shape of one example)",
                     _checks.describe(input_shape), TypeError)
    if not shape or any(d <= 0 for d in shape):
        _checks.fail(fn, "input_shape", "be a non-empty tuple of positive ints", repr(input_shape))
    return shape


def compiles_exactly(dtype) -> bool:
    """Whether a compiled init gives the same bits as eager ops for params of ``dtype``.

    For 16-bit floats XLA keeps fused intermediates in float32 (excess precision), so a
    compiled ``normal * stddev`` skips one rounding that eager ops perform; those inits
    stay eager.
    """
    return jnp.dtype(dtype).itemsize >= 4


def check_train(fn: str, train: Any) -> bool:
    """``train`` must be a Python bool (it selects a program at trace time)."""
    return _checks.boolean(fn, "train", train)


def check_empty_state(fn: str, state: Any, arg: str = "state") -> None:
    """A layer without state (``arg="params"``: without params) takes ``()`` (or an empty pytree)."""
    if jax.tree.leaves(state):
        what = "keeps no state" if arg == "state" else f"has no {arg}"
        _checks.fail(fn, arg, f"be () (this layer {what})",
                     f"a pytree with {len(jax.tree.leaves(state))} arrays")


def as_layer(fn: str, i: int, layer: Any) -> Layer | StatefulLayer:
    """A part of a combinator: a layer as it is, or a plain callable as a param-free Layer."""
    if isinstance(layer, (Layer, StatefulLayer)):
        return layer
    if callable(layer):
        return Layer(lambda key, input_shape: (), lambda params, x: layer(x))
    _checks.fail(fn, f"layers[{i}]", "be a Layer or a callable such as fnn.relu (or a StatefulLayer)",
                 type(layer).__name__, TypeError)


def stateful(layer: Layer | StatefulLayer) -> StatefulLayer:
    r"""Lift a pure :class:`Layer` to the general form, with an empty state ``()``.

    ``init`` returns ``(params, ())``; ``apply(params, state, x, *, key=None,
    train=False)`` returns ``(layer.apply(params, x), state)``: the key is not used and
    ``train`` changes nothing. A :class:`StatefulLayer` is returned as it is.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> layer = fnn.layers.stateful(fnn.dense(2))
      >>> params, state = layer.init(jax.random.key(0), (3,))
      >>> y, state = layer.apply(params, state, jnp.ones((4, 3)), train=True)
      >>> y.shape, state
      ((4, 2), ())
    """
    if isinstance(layer, StatefulLayer):
        return layer
    if not isinstance(layer, Layer):
        _checks.fail("stateful", "layer", "be a fnn Layer", type(layer).__name__, TypeError)

    def init(key: jax.Array, input_shape: Any) -> tuple[Params, State]:
        return layer.init(key, input_shape), ()

    def apply(params: Params, state: State, x: Any, *, key: Any = None,
              train: bool = False) -> tuple[jax.Array, State]:
        check_train("stateful layer", train)
        check_empty_state("stateful layer", state)
        return layer.apply(params, x), state

    return StatefulLayer(init, apply)
