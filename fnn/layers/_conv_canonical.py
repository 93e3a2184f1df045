r"""Convolution whose backward convolutions are written out in XLA:CPU's canonical layout.

XLA:CPU runs a convolution on its fast (Eigen) path only in *canonical* form: input
``(batch, *spatial, features)``, kernel ``(*spatial, in, out)``, output like the input,
no window reversal, 1 to 3 spatial axes, float32 or float16. The forward convolution of
:func:`fnn.layers.conv` is canonical, but the two that JAX's transpose rules emit for
the backward pass are not (the kernel gradient contracts over the batch; the input
gradient uses the kernel reversed, ``(*spatial, out, in)``). ``ConvCanonicalization``
would rewrite them, but it visits the entry computation only, so inside a ``while``
body (``lax.scan``, ``fnn.fit``'s compiled epoch) they run as naive loop nests, 10-30
times slower (jax-ml/jax#12868). This module writes both gradients as canonical
convolutions. For ``y = x \star W`` (stride :math:`s`, dilation :math:`d`, padding
``(lo, hi)``, per axis: input size :math:`H`, kernel :math:`K`, output :math:`P`),
with :math:`g = \partial L / \partial y`:

.. math::

   \frac{\partial L}{\partial x} &= \operatorname{dilate}_s(g) \star
      \operatorname{flip}(W)^{\top_{io}}, \quad \text{rhs dilation } d,\
      \text{padding } (d (K - 1) - lo,\ H - 1 - s (P - 1) + lo) \\
   \frac{\partial L}{\partial W}^{\top_{bc}} &= x^{\top_{bc}} \star g^{\top_{bc}}, \quad
      \text{stride } d,\ \text{rhs dilation } s,\
      \text{padding } (lo,\ d (K - 1) + s (P - 1) + 1 - H - lo)

(:math:`\top_{bc}`: batch and channel axes swapped, so the channels are the "batch" and
the examples the contracted "features"). Negative paddings become crops.

Forward mode must keep working, so this is a ``custom_jvp``, not a ``custom_vjp``: the
tangent is :math:`T_x(\dot x) + T_W(\dot W)` where :math:`T_x` and :math:`T_W` are the
*transposes* (``jax.linear_transpose``) of the two gradient functions above. JAX's
reverse mode transposes the tangent once more, and a transpose of a transpose gives
back the canonical gradient convolutions (their dimension numbers, strides and
dilations are swapped twice). Higher derivatives go through JAX's own rules.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

__all__ = ["canonical_conv", "plain_conv", "input_gradient", "kernel_gradient", "dimension_numbers"]

Pads = tuple[tuple[int, int], ...]


def dimension_numbers(n: int) -> jax.lax.ConvDimensionNumbers:
    """Canonical channels-last numbers: lhs ``(N, *spatial, C)``, rhs ``(*spatial, in, out)``, out like lhs."""
    spatial = tuple(range(1, n + 1))
    return jax.lax.ConvDimensionNumbers(lhs_spec=(0, n + 1) + spatial, rhs_spec=(n + 1, n) + tuple(range(n)),
                                        out_spec=(0, n + 1) + spatial)


def _conv(lhs: jax.Array, rhs: jax.Array, *, strides=None, pads: Any, lhs_dilation=None,
          rhs_dilation=None) -> jax.Array:
    return jax.lax.conv_general_dilated(lhs, rhs, window_strides=strides or (1,) * (rhs.ndim - 2), padding=pads,
                                        lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                                        dimension_numbers=dimension_numbers(rhs.ndim - 2))


def input_gradient(g: jax.Array, w: jax.Array, spatial: tuple[int, ...], *, strides: tuple[int, ...],
                   pads: Pads, dilation: tuple[int, ...]) -> jax.Array:
    """``dL/dx`` ``(N, *spatial, C)`` from ``g = dL/dy`` ``(N, *out, F)`` as one canonical convolution."""
    n = len(spatial)
    out = g.shape[1:-1]
    k = w.shape[:n]
    want = [(dd * (kk - 1) - lo, size - 1 - s * (p - 1) + lo)
            for dd, kk, (lo, _), size, s, p in zip(dilation, k, pads, spatial, strides, out)]
    # The window reversed and (in, out) swapped: a canonical (*spatial, F, C) kernel.
    w_t = jnp.swapaxes(jax.lax.rev(w, tuple(range(n))), -1, -2)
    dx = _conv(g, w_t, pads=[(max(lo, 0), max(hi, 0)) for lo, hi in want], lhs_dilation=strides,
               rhs_dilation=dilation)
    starts = [max(-lo, 0) for lo, _ in want]
    if any(starts) or dx.shape[1:-1] != tuple(spatial):  # a negative padding is a crop
        dx = jax.lax.slice(dx, (0, *starts, 0), (dx.shape[0], *(a + b for a, b in zip(starts, spatial)),
                                                 dx.shape[-1]))
    return dx


def kernel_gradient(x: jax.Array, g: jax.Array, kernel: tuple[int, ...], *, strides: tuple[int, ...],
                    pads: Pads, dilation: tuple[int, ...]) -> jax.Array:
    """``dL/dW`` ``(*kernel, C, F)`` from ``x`` ``(N, *spatial, C)`` and ``g`` ``(N, *out, F)``, canonically."""
    n = len(kernel)
    out = g.shape[1:-1]
    his = [dd * (kk - 1) + s * (p - 1) + 1 - size - lo
           for dd, kk, s, p, size, (lo, _) in zip(dilation, kernel, strides, out, x.shape[1:-1], pads)]
    if any(hi < 0 for hi in his):  # input rows the forward window never reached
        x = jax.lax.slice(x, (0,) * x.ndim, (x.shape[0], *(size + min(hi, 0) for size, hi in
                                                           zip(x.shape[1:-1], his)), x.shape[-1]))
    # Channels as the batch, examples as the contracted features: (C, *spatial, N) * (*out, N, F).
    dw_t = _conv(jnp.swapaxes(x, 0, -1), jnp.moveaxis(g, 0, -2), strides=dilation,
                 pads=[(lo, max(hi, 0)) for (lo, _), hi in zip(pads, his)], rhs_dilation=strides)
    return jnp.moveaxis(dw_t, 0, -2)


def plain_conv(x: jax.Array, w: jax.Array, *, strides: tuple[int, ...], pads: Pads,
               dilation: tuple[int, ...]) -> jax.Array:
    """The same convolution with JAX's own derivatives (canonical forward, non-canonical backward)."""
    return _conv(x, w, strides=strides, pads=pads, rhs_dilation=dilation)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def _canonical(x: jax.Array, w: jax.Array, strides, pads, dilation) -> jax.Array:
    return plain_conv(x, w, strides=strides, pads=pads, dilation=dilation)


def _jvp(strides, pads, dilation, primals, tangents):
    x, w = primals
    dx, dw = tangents
    y = plain_conv(x, w, strides=strides, pads=pads, dilation=dilation)
    cotangent = jax.ShapeDtypeStruct(y.shape, y.dtype)
    options = dict(strides=strides, pads=pads, dilation=dilation)
    dy = None
    if not isinstance(dx, SymbolicZero):
        t_x = jax.linear_transpose(lambda g: input_gradient(g, w, x.shape[1:-1], **options), cotangent)
        dy = t_x(dx)[0]
    if not isinstance(dw, SymbolicZero):
        t_w = jax.linear_transpose(lambda g: kernel_gradient(x, g, w.shape[:-2], **options), cotangent)
        dy = t_w(dw)[0] if dy is None else dy + t_w(dw)[0]
    return y, jnp.zeros_like(y) if dy is None else dy


_canonical.defjvp(_jvp, symbolic_zeros=True)


def canonical_conv(x: jax.Array, w: jax.Array, *, strides: tuple[int, ...], pads: Pads,
                   dilation: tuple[int, ...]) -> jax.Array:
    """``lax.conv_general_dilated`` channels-last (``x`` ``(N, *spatial, C)``, ``w`` ``(*kernel, C, F)``,
    explicit non-negative ``pads``) whose reverse mode is two canonical convolutions."""
    return _canonical(x, w, tuple(strides), tuple(map(tuple, pads)), tuple(dilation))
