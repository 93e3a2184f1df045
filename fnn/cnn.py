r"""A small configurable convolutional network: the notes' MLP with shared local weights.

The notes' multi-layer perceptron connects every unit to every input. A convolutional
network replaces the first dense layers by :func:`fnn.layers.conv` layers: each unit
sees a small window of neighbouring pixels, and the same weights are used at every
position (shared local weights), so an edge detector learned in one corner works
everywhere, with far fewer params. Pooling then summarises each neighbourhood, and
dense layers as in the MLP map the features to the class logits:

.. math:: a^{(l)} = f\big(\text{conv}_l(a^{(l-1)})\big) \;(l \le L_c), \qquad
          h = \text{flatten}(\text{pool}(a^{(L_c)})), \qquad \hat y = \text{MLP}(h)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from fnn import _checks
from fnn import activations as _activations
from fnn._cache import same_object_for_same_arguments
from fnn.layers import (Layer, StatefulLayer, batch_norm as _batch_norm, conv, dense, dropout as _dropout,
                        flatten, max_pool, reshape, serial)

__all__ = ["cnn"]


def _sizes(arg: str, value: Any, *, allow_empty: bool) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or (not value and not allow_empty):
        _checks.fail("cnn", arg, "be a " + ("" if allow_empty else "non-empty ") + "tuple of positive ints",
                     repr(value))
    return tuple(_checks.positive_int("cnn", arg, v) for v in value)


@same_object_for_same_arguments
def cnn(channels: Sequence[int] = (32, 64), dense_sizes: Sequence[int] = (10,), *,
        kernel_size: Sequence[int] = (3, 3), pool: Sequence[int] | None = (2, 2), pool_each: bool = False,
        activation: Callable = _activations.relu, batch_norm: bool = False, dropout: float = 0.0,
        image_shape: Sequence[int] | None = None) -> Layer | StatefulLayer:
    r"""Conv blocks, optional batch norm and pooling, then dense layers: a convolutional classifier.

    The notes' MLP with its first dense layers replaced by shared local weights (see
    the module docstring). Layers, in order: optional ``reshape(image_shape)`` (for
    flat data such as the digits' 64 pixels); for each ``c`` in ``channels``:
    ``conv(c, kernel_size)`` (``"SAME"`` padding, He init), ``batch_norm()`` if asked,
    ``activation``, and ``max_pool(pool)`` after every block if ``pool_each`` else once
    after the last; ``flatten()``; then for each hidden size in ``dense_sizes[:-1]``:
    ``dropout`` (if > 0), ``dense``, ``activation``; finally ``dropout`` and
    ``dense(dense_sizes[-1])`` with no activation (logits, for
    :func:`fnn.losses.softmax_cross_entropy`).

    Args:
      channels: output channels of each conv block, e.g. ``(32, 64)``.
      dense_sizes: sizes of the dense layers after the conv blocks; the last is the
        number of classes.
      kernel_size: window of every conv, e.g. ``(3, 3)`` (its length is the number of
        spatial axes).
      pool: max-pool window, or None for no pooling.
      pool_each: pool after every conv block instead of once after the last.
      activation: the hidden activation, default :func:`fnn.relu`.
      batch_norm: add :func:`fnn.layers.batch_norm` after each conv (before the
        activation); makes the model a :class:`fnn.layers.StatefulLayer`.
      dropout: rate of :func:`fnn.layers.dropout` before each dense layer (0 = none);
        > 0 makes the model a :class:`fnn.layers.StatefulLayer`.
      image_shape: shape of one image, e.g. ``(8, 8, 1)``, when the inputs are flat.

    Returns:
      A :class:`fnn.layers.Layer` (or :class:`fnn.layers.StatefulLayer` with batch norm
      or dropout) taking images ``(B, *spatial, C)`` (or ``(B, prod(image_shape))``).

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> net = fnn.cnn((8, 16), (10,), image_shape=(8, 8, 1))
      >>> params = net.init(jax.random.key(0), (64,))
      >>> net.apply(params, jnp.ones((2, 64))).shape
      (2, 10)
    """
    channels = _sizes("channels", channels, allow_empty=True)
    dense_sizes = _sizes("dense_sizes", dense_sizes, allow_empty=False)
    batch_norm = _checks.boolean("cnn", "batch_norm", batch_norm)
    pool_each = _checks.boolean("cnn", "pool_each", pool_each)
    _checks.number("cnn", "dropout", dropout, low=0.0, high=1.0, high_open=True)
    if not callable(activation):
        _checks.fail("cnn", "activation", "be a callable such as fnn.relu", type(activation).__name__, TypeError)
    layers: list = [] if image_shape is None else [reshape(tuple(image_shape))]
    for i, c in enumerate(channels):
        layers.append(conv(c, tuple(kernel_size)))
        if batch_norm:
            layers.append(_batch_norm())
        layers.append(activation)
        if pool is not None and (pool_each or i == len(channels) - 1):
            layers.append(max_pool(tuple(pool)))
    layers.append(flatten())
    for i, size in enumerate(dense_sizes):
        if dropout > 0:
            layers.append(_dropout(float(dropout)))
        layers.append(dense(size))
        if i < len(dense_sizes) - 1:
            layers.append(activation)
    return serial(*layers)
