r"""Layers as ``(init, apply)`` pairs: the pure :class:`Layer` and the general :class:`StatefulLayer`.

A :class:`Layer` owns no state. ``init(key, input_shape) -> params`` builds the
parameter pytree for ONE example of shape ``input_shape`` (no batch axis);
``apply(params, x) -> y`` runs the forward stage on ``x`` with any number of leading
batch axes. Because params are an ordinary pytree, ``jax.grad`` of a loss of
``apply`` returns gradients of the same structure, and ``jax.vmap`` over ``init``
builds ensembles.

A :class:`StatefulLayer` is the general form, for layers that draw random numbers
(:func:`dropout`) or keep values that are not trained (:func:`batch_norm`'s running
averages): ``init(key, input_shape) -> (params, state)`` and
``apply(params, state, x, *, key=None, train=False) -> (y, state)``. Keys, state and the
train/inference switch are explicit arguments and results: no hidden RNG streams, no
mutable globals. :func:`stateful` lifts a pure layer; :func:`serial` returns the general
form as soon as one of its parts is general.
"""

from fnn.layers._core import Layer, StatefulLayer, stateful
from fnn.layers._dense import dense, prelu
from fnn.layers._serial import serial
from fnn.layers._dropout import dropout
from fnn.layers._batch_norm import batch_norm

__all__ = ["Layer", "StatefulLayer", "stateful", "dense", "prelu", "serial", "dropout",
           "batch_norm"]
