r"""Pooling, flatten and reshape: layers without params (part of :mod:`fnn.layers`)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from fnn import _checks
from fnn._cache import same_object_for_same_arguments
from fnn.layers._conv import check_padding, spatial_tuple
from fnn.layers._core import Layer, check_empty_state, example_shape
from fnn.layers._registry import named

__all__ = ["max_pool", "avg_pool", "flatten", "reshape"]


def _window_args(fn: str, window: Any, strides: Any, padding: Any):
    if not isinstance(window, (tuple, list)) or not 1 <= len(window) <= 3:
        _checks.fail(fn, "window", "be a tuple of 1, 2 or 3 positive ints (one per spatial axis)", repr(window))
    n = len(window)
    window = spatial_tuple(fn, "window", tuple(window), n)
    strides = window if strides is None else spatial_tuple(fn, "strides", strides, n)
    return window, strides, check_padding(fn, padding, n)


def _pool(fn: str, x: ArrayLike, params: Any, window, strides, padding, kind: str) -> jax.Array:
    check_empty_state(fn, params, "params")
    _checks.array_like(fn, "x", x)
    x = jnp.asarray(x)
    n = len(window)
    if x.ndim < n + 1:
        _checks.fail(fn, "x", f"have at least {n + 1} axes ({n} spatial, then channels)",
                     f"x of shape {tuple(x.shape)}")
    if padding == "VALID" and any(s < w for s, w in zip(x.shape[-(n + 1):-1], window)):
        _checks.fail(fn, "x", f"have spatial size at least {window} (the window) with padding 'VALID'",
                     f"x of shape {tuple(x.shape)}")
    lead = (1,) * (x.ndim - n - 1)
    dims, steps = lead + window + (1,), lead + strides + (1,)
    pads = padding if isinstance(padding, str) else ((0, 0),) * len(lead) + tuple(padding) + ((0, 0),)
    if kind == "max":
        # A Python scalar init lets JAX recognise the max reduction (and differentiate it).
        low = -float("inf") if jnp.issubdtype(x.dtype, jnp.floating) else int(jnp.iinfo(x.dtype).min)
        return jax.lax.reduce_window(x, low, jax.lax.max, dims, steps, pads)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, steps, pads)
    if padding == "VALID":
        return total / jnp.asarray(math.prod(window), x.dtype)
    # Count of the real (unpadded) inputs under each window: only the spatial axes matter.
    ones = jnp.ones(x.shape[-(n + 1):-1] + (1,), x.dtype)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window + (1,), strides + (1,),
                                  padding if isinstance(padding, str) else tuple(padding) + ((0, 0),))
    return total / count


def _pool_layer(kind: str, window: Any, strides: Any, padding: Any) -> Layer:
    window, strides, padding = _window_args(f"{kind}_pool", window, strides, padding)
    name = f"{kind}_pool({window})"

    def apply(params: Any, x: ArrayLike) -> jax.Array:
        return _pool(name, x, params, window, strides, padding, kind)

    return named(Layer(lambda key, input_shape: (example_shape(name, input_shape), ())[1], apply), name)


@same_object_for_same_arguments
def max_pool(window: Sequence[int], *, strides: int | Sequence[int] | None = None,
             padding: str | Sequence[tuple[int, int]] = "VALID") -> Layer:
    r"""Max pooling: the largest value in each window, per channel.

    .. math:: y_{p, c} = \max_{k \in \text{window}} x_{s p + k, c}

    Spatial axes are those before the last (channels) axis, ``N = len(window)`` of
    them; padded positions never win (they hold :math:`-\infty`). Keeps the dtype.

    Args:
      window: tuple of ``N`` window sizes.
      strides: int or ``N`` ints; default the window (non-overlapping windows).
      padding: ``"VALID"`` (default), ``"SAME"`` or ``N`` pairs ``(low, high)``.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
      >>> fnn.layers.max_pool((2, 2)).apply((), x)[0, :, :, 0]
      Array([[ 5.,  7.],
             [13., 15.]], dtype=float32)
    """
    return _pool_layer("max", window, strides, padding)


@same_object_for_same_arguments
def avg_pool(window: Sequence[int], *, strides: int | Sequence[int] | None = None,
             padding: str | Sequence[tuple[int, int]] = "VALID") -> Layer:
    r"""Average pooling: the mean of each window, per channel, over the real inputs only.

    .. math:: y_{p, c} = \frac{1}{|W_p|} \sum_{k \in W_p} x_{s p + k, c}

    where :math:`W_p` is the set of window offsets that fall inside ``x``: with
    ``"SAME"`` (or explicit) padding, padded positions are neither summed nor counted.
    This equals Keras' ``AveragePooling2D(padding="same")`` and PyTorch's
    ``AvgPool2d(count_include_pad=False)`` (PyTorch's default ``True`` divides by the full
    window); with ``"VALID"`` every window is full and all conventions agree. Integer
    inputs give float32.

    Args:
      window: tuple of ``N`` window sizes.
      strides: int or ``N`` ints; default the window.
      padding: ``"VALID"`` (default), ``"SAME"`` or ``N`` pairs ``(low, high)``.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> x = jnp.arange(9.0).reshape(3, 3, 1)
      >>> fnn.layers.avg_pool((2, 2), padding="SAME").apply((), x)[:, :, 0]
      Array([[2. , 3.5],
             [6.5, 8. ]], dtype=float32)
    """
    return _pool_layer("avg", window, strides, padding)


def _example_init(name: str):
    """``init`` of a layer that must know one example's shape: a zero-size marker of that shape."""
    def init(key: jax.Array, input_shape: Sequence[int]) -> dict:
        return {"example": jnp.zeros(example_shape(name, input_shape) + (0,), jnp.float32)}
    return init


def _example(name: str, params: Any, x: Any) -> tuple[jax.Array, tuple[int, ...]]:
    """``x`` as an array and its leading batch axes, checked against the recorded example shape."""
    if not isinstance(params, dict) or "example" not in params or jnp.size(params["example"]) != 0:
        _checks.fail(name, "params", "be the dict {'example': ...} made by init", _checks.describe(params),
                     TypeError if not isinstance(params, dict) else ValueError)
    shape = tuple(jnp.shape(params["example"])[:-1])
    _checks.array_like(name, "x", x)
    x = jnp.asarray(x)
    if x.shape[x.ndim - len(shape):] != shape or x.ndim < len(shape):
        _checks.fail(name, "x", f"have shape (..., {', '.join(map(str, shape))}) (the example shape given to "
                     "init, after any batch axes)", f"x of shape {tuple(x.shape)}")
    return x, x.shape[:x.ndim - len(shape)]


@same_object_for_same_arguments
def flatten() -> Layer:
    r"""Flatten each example: ``(..., d_1, ..., d_k) -> (..., d_1 \cdots d_k)``.

    ``(d_1, ..., d_k)`` is the example shape given to ``init``; any leading batch axes
    are kept (none, one as ``torch.nn.Flatten()`` and Keras' ``Flatten``, or more). That
    shape is what ``apply`` needs to tell batch axes from example axes, so ``init``
    records it as the shape of an EMPTY marker array: params ``{"example": (d_1, ...,
    d_k, 0)}``, zero values, nothing to train.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> layer = fnn.layers.flatten()
      >>> params = layer.init(jax.random.key(0), (4, 4, 3))
      >>> layer.apply(params, jnp.ones((2, 4, 4, 3))).shape, layer.apply(params, jnp.ones((4, 4, 3))).shape
      ((2, 48), (48,))
    """

    def apply(params: Any, x: ArrayLike) -> jax.Array:
        x, batch = _example("flatten", params, x)
        return x.reshape(batch + (-1,))

    return named(Layer(_example_init("flatten"), apply), "flatten")


@same_object_for_same_arguments
def reshape(shape: Sequence[int]) -> Layer:
    r"""Reshape each example to ``shape``, keeping any leading batch axes (as :func:`flatten`).

    Params: the empty marker ``{"example": input_shape + (0,)}`` (see :func:`flatten`).

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> layer = fnn.layers.reshape((8, 8, 1))
      >>> params = layer.init(jax.random.key(0), (64,))
      >>> layer.apply(params, jnp.ones((5, 64))).shape
      (5, 8, 8, 1)
    """
    target = example_shape("reshape", shape)
    name = f"reshape({target})"
    example_init = _example_init(name)

    def init(key: jax.Array, input_shape: Sequence[int]) -> dict:
        params = example_init(key, input_shape)
        if math.prod(params["example"].shape[:-1]) != math.prod(target):
            _checks.fail(name, "input_shape", f"have {math.prod(target)} values (those of {target})",
                         repr(input_shape))
        return params

    def apply(params: Any, x: ArrayLike) -> jax.Array:
        x, batch = _example(name, params, x)
        return x.reshape(batch + target)

    return named(Layer(init, apply), name)
