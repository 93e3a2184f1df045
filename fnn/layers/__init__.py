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

Layers for real networks (channels-last, one example's shape without the batch axis):
:func:`conv`, :func:`max_pool`, :func:`avg_pool`, :func:`flatten`, :func:`reshape`,
:func:`layer_norm`, :func:`embedding`; combinators :func:`residual`, :func:`parallel`,
:func:`fan_out`, :func:`fan_in_sum`, :func:`fan_in_concat`; :func:`mixed_precision`.
:func:`named` files a layer's name and parts for :func:`fnn.summary`.
"""

from fnn.layers._core import Layer, StatefulLayer, stateful
from fnn.layers._dense import dense, prelu
from fnn.layers._serial import serial
from fnn.layers._dropout import dropout
from fnn.layers._batch_norm import batch_norm
from fnn.layers._conv import conv
from fnn.layers._pool import avg_pool, flatten, max_pool, reshape
from fnn.layers._norm import embedding, layer_norm
from fnn.layers._combinators import fan_in_concat, fan_in_sum, fan_out, parallel, residual
from fnn.layers._mixed_precision import mixed_precision
from fnn.layers._registry import Description, description, named

__all__ = ["Layer", "StatefulLayer", "stateful", "dense", "prelu", "serial", "dropout",
           "batch_norm", "conv", "max_pool", "avg_pool", "flatten", "reshape", "layer_norm",
           "embedding", "residual", "parallel", "fan_out", "fan_in_sum", "fan_in_concat",
           "mixed_precision", "Description", "description", "named"]
