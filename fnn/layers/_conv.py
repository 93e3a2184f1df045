r"""Convolution, channels-last, in 1, 2 or 3 spatial dimensions (part of :mod:`fnn.layers`)."""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from fnn import _checks
from fnn import initializers as _initializers
from fnn._cache import same_object_for_same_arguments
from fnn.layers._core import Layer, compiles_exactly, example_shape
from fnn.layers._patches import conv_by_matmul
from fnn.layers._registry import named

__all__ = ["conv", "conv_apply", "spatial_tuple", "check_padding"]


def spatial_tuple(fn: str, arg: str, value: Any, n: int, *, low: int = 1) -> tuple[int, ...]:
    """An int or a sequence of ``n`` ints, each ``>= low``, as a tuple of ``n`` ints."""
    items = (value,) * n if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    ok = isinstance(items, (tuple, list)) and len(items) == n and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= low for v in items)
    if not ok:
        _checks.fail(fn, arg, f"be an int >= {low} or a tuple of {n} such ints (one per spatial axis)",
                     repr(value))
    return tuple(int(v) for v in items)


def check_padding(fn: str, padding: Any, n: int) -> str | tuple[tuple[int, int], ...]:
    """``"SAME"``, ``"VALID"`` or ``n`` pairs ``(low, high)`` of non-negative ints."""
    if isinstance(padding, str) and padding.upper() in ("SAME", "VALID"):
        return padding.upper()
    try:
        pairs = tuple((int(lo), int(hi)) for lo, hi in padding)
        ok = len(pairs) == n and all(v >= 0 for pair in pairs for v in pair) and not isinstance(padding, str)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        _checks.fail(fn, "padding", f"be 'SAME', 'VALID' or {n} pairs (low, high) of non-negative ints",
                     repr(padding))
    return pairs


def _dimension_numbers(n: int) -> jax.lax.ConvDimensionNumbers:
    # Channels-last: lhs (N, spatial..., C), rhs (spatial..., in, out), out like lhs.
    spatial = tuple(range(1, n + 1))
    return jax.lax.ConvDimensionNumbers(lhs_spec=(0, n + 1) + spatial, rhs_spec=(n + 1, n) + tuple(range(n)),
                                        out_spec=(0, n + 1) + spatial)


def _lax_conv(x: jax.Array, w: jax.Array, *, strides: tuple[int, ...], pads: tuple[tuple[int, int], ...],
              dilation: tuple[int, ...]) -> jax.Array:
    return jax.lax.conv_general_dilated(x, w, window_strides=strides, padding=pads, rhs_dilation=dilation,
                                        dimension_numbers=_dimension_numbers(len(strides)))


def conv_apply(params: Mapping, x: ArrayLike, *, strides: tuple[int, ...], padding: Any,
               dilation: tuple[int, ...], name: str = "conv") -> jax.Array:
    """The convolution of :func:`conv` with its shape checks (static facts only)."""
    if not isinstance(params, Mapping) or "w" not in params or "b" not in params:
        _checks.fail(name, "params", "be a dict with a kernel 'w' and a bias 'b'", _checks.describe(params),
                     TypeError if not isinstance(params, Mapping) else ValueError)
    n = len(strides)
    w, b = params["w"], params["b"]
    if jnp.ndim(w) != n + 2 or jnp.shape(b) != (jnp.shape(w)[-1],):
        _checks.fail(name, "params", f"hold a kernel w of rank {n + 2} (kernel_size + (in, out)) and a bias "
                     "b of shape (out,)", f"w of shape {tuple(jnp.shape(w))}, b of shape {tuple(jnp.shape(b))}")
    _checks.array_like(name, "x", x)
    x = jnp.asarray(x)
    if x.ndim < n + 1 or x.shape[-1] != w.shape[-2]:
        _checks.fail(name, "x", f"have shape (..., {', '.join(['size'] * n)}, {w.shape[-2]}) ({n} spatial axes, "
                     f"then {w.shape[-2]} channels for the kernel w of shape {tuple(w.shape)})",
                     f"x of shape {tuple(x.shape)}")
    spatial = x.shape[-(n + 1):-1]
    reach = [(k - 1) * d + 1 for k, d in zip(w.shape[:n], dilation)]
    if padding == "VALID" and any(s < r for s, r in zip(spatial, reach)):
        _checks.fail(name, "x", f"have spatial size at least {tuple(reach)} (the dilated kernel) with "
                     "padding 'VALID'", f"x of shape {tuple(x.shape)}")
    dtype = jnp.result_type(x, w)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.promote_types(dtype, jnp.float32)
    batch = x.shape[:-(n + 1)]
    lhs = x.reshape((-1,) + x.shape[-(n + 1):]).astype(dtype)
    pads = jax.lax.padtype_to_pads(spatial, reach, strides, padding) if isinstance(padding, str) else padding
    options: dict[str, Any] = dict(strides=tuple(strides), pads=tuple(map(tuple, pads)),
                                   dilation=tuple(dilation))
    # On CPU as im2col + GEMM: lax's convolution is fast there only outside loops (see _patches).
    y = jax.lax.platform_dependent(lhs, w.astype(dtype), cpu=functools.partial(conv_by_matmul, **options),
                                   default=functools.partial(_lax_conv, **options))
    y = y + b.astype(dtype)
    return y.reshape(batch + y.shape[1:])


@same_object_for_same_arguments
def conv(features: int, kernel_size: Sequence[int], *, strides: int | Sequence[int] = 1,
         padding: str | Sequence[tuple[int, int]] = "SAME", dilation: int | Sequence[int] = 1,
         w_init: Callable | None = None, b_init: Callable = _initializers.zeros,
         dtype: Any = jnp.float32) -> Layer:
    r"""Convolution: a dense layer whose weights are shared across positions and see a local window.

    The notes' neuron computes a net sum of ALL its inputs; a convolutional unit computes
    the same net sum over a small window of neighbouring positions, with the same weights
    at every position (the window slides). For ``N`` = ``len(kernel_size)`` spatial axes,
    channels last, stride :math:`s` and dilation :math:`d`:

    .. math:: y_{p, o} = b_o + \sum_{k} \sum_{c} x_{s p + d k - \text{pad}, c}\, W_{k, c, o}

    where :math:`p` and :math:`k` run over the ``N``-d output positions and kernel
    offsets, :math:`c` over the ``in`` input channels and :math:`o` over the
    ``features``; positions outside ``x`` read 0 (padding). Output size per axis:
    ``ceil(size / s)`` with ``"SAME"``, ``ceil((size - d (k - 1)) / s)`` with
    ``"VALID"``. It is cross-correlation (no kernel flip), as in every NN library.
    On CPU it runs as the window's taps stacked side by side times the reshaped kernel
    (im2col, one matrix product), elsewhere as ``lax.conv_general_dilated``: XLA:CPU
    runs the backward pass's convolutions naively inside loops such as ``fit``'s
    (jax-ml/jax#12868), 20 times slower on the digits CNN.

    Params: ``{"w": kernel_size + (in, features), "b": (features,)}``, ``in =
    input_shape[-1]`` (Keras/flax layout; PyTorch stores ``(out, in, *kernel_size)``:
    ``w_torch = w.transpose(N + 1, N, 0, ..., N - 1)``). The default kernel init is
    :func:`fnn.initializers.he_normal` (He et al. 2015: variance ``2 / fan_in`` with
    ``fan_in = in * prod(kernel_size)``, keeping activations' scale through ReLU
    layers); flax and Keras default to LeCun normal / Glorot uniform, PyTorch to a
    uniform with variance ``1 / (3 fan_in)``.

    Args:
      features: number of output channels.
      kernel_size: tuple of ``N`` window sizes (``N`` = 1, 2 or 3).
      strides: int or ``N`` ints, step of the window.
      padding: ``"SAME"`` (output size ``ceil(size / stride)``, zeros around),
        ``"VALID"`` (no padding) or ``N`` pairs ``(low, high)``.
      dilation: int or ``N`` ints, spacing of the kernel taps (atrous convolution).
      w_init: kernel initializer, default He normal.
      b_init: bias initializer, default zeros.
      dtype: dtype of the params.

    Returns:
      A :class:`fnn.layers.Layer`; ``apply(params, x)`` takes ``x`` of shape
      ``(..., *spatial, in)`` (any leading batch axes) and returns ``(..., *spatial',
      features)`` in the promoted dtype of ``x`` and the params.

    Raises:
      ValueError: for bad arguments; from ``apply``, when ``x`` has the wrong channel
        count or too few axes, naming the layer and both shapes (at trace time).

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> layer = fnn.layers.conv(4, (3, 3))
      >>> params = layer.init(jax.random.key(0), (8, 8, 1))
      >>> jax.tree.map(jnp.shape, params)
      {'b': (4,), 'w': (3, 3, 1, 4)}
      >>> layer.apply(params, jnp.ones((2, 8, 8, 1))).shape
      (2, 8, 8, 4)
      >>> fnn.layers.conv(4, (3, 3), strides=2, padding="VALID").apply(params, jnp.ones((8, 8, 1))).shape
      (3, 3, 4)
    """
    features = _checks.positive_int("conv", "features", features)
    if not isinstance(kernel_size, (tuple, list)) or not 1 <= len(kernel_size) <= 3:
        _checks.fail("conv", "kernel_size", "be a tuple of 1, 2 or 3 positive ints (one per spatial axis)",
                     repr(kernel_size))
    n = len(kernel_size)
    kernel_size = spatial_tuple("conv", "kernel_size", tuple(kernel_size), n)
    strides = spatial_tuple("conv", "strides", strides, n)
    dilation = spatial_tuple("conv", "dilation", dilation, n)
    padding = check_padding("conv", padding, n)
    w_init = _initializers.he_normal() if w_init is None else w_init
    name = f"conv({features}, {kernel_size})"

    def init_impl(key: jax.Array, channels: int) -> dict:
        w_key, b_key = jax.random.split(key)
        return {"w": w_init(w_key, kernel_size + (channels, features), dtype),
                "b": b_init(b_key, (features,), dtype)}

    compiled_init = jax.jit(init_impl, static_argnums=1)

    def init(key: jax.Array, input_shape: Sequence[int]) -> dict:
        _checks.prng_key(name, "key", key)
        shape = example_shape(name, input_shape)
        if len(shape) != n + 1:
            _checks.fail(name, "input_shape", f"have {n + 1} axes ({n} spatial, then channels)", repr(input_shape))
        return (compiled_init if compiles_exactly(dtype) else init_impl)(key, shape[-1])

    def apply(params: dict, x: ArrayLike) -> jax.Array:
        return conv_apply(params, x, strides=strides, padding=padding, dilation=dilation, name=name)

    return named(Layer(init, apply), name)
