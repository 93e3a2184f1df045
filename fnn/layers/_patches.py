r"""Convolution as patch extraction and one matrix product: the form XLA:CPU runs fast in any loop.

:func:`fnn.layers.conv` computes, at every output position :math:`p`,

.. math:: y_{p, o} = \sum_{k} \sum_{c} x_{s p + d k - \text{pad}, c}\, W_{k, c, o}

Stacking the window's taps :math:`x_{s p + d k - \text{pad}, :}` for every :math:`k`
side by side gives a patch matrix :math:`P` of shape ``(N, *out, prod(kernel) * C)``
("im2col"), and the convolution is the matrix product :math:`y = P\, W'` with the kernel
reshaped to ``(prod(kernel) * C, features)``. Each tap is one static strided slice of
the padded input, so the forward pass is pads, slices and a GEMM, and so is its
autodiff (a slice's transpose is a pad, a product's transpose two products), forward
mode included. The price is memory: the patches hold ``prod(kernel)`` copies of the
input (9 for 3x3, 27 for 3x3x3), live until the backward pass.

Why not ``lax.conv_general_dilated``: XLA:CPU runs a convolution on its fast (Eigen)
path only when its dimension numbers are canonical (batch first, features last, kernel
``(*spatial, in, out)``). The pass that rewrites the other ones into canonical form
(``ConvCanonicalization``) visits the entry computation only, so inside a
``while`` loop body (``lax.scan``, ``fori_loop``: ``fnn.fit``'s compiled epoch) the
backward pass's convolutions stay non-canonical: the kernel gradient (batch and
channels swapped) and the input gradient (kernel ``(*spatial, out, in)``, reversed)
fall back to a naive loop nest, 10-30 times slower than the whole step jitted alone
(jax-ml/jax#12868). GEMMs have no such condition.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp

__all__ = ["patches", "conv_by_matmul"]


def patches(x: jax.Array, kernel_size: tuple[int, ...], *, strides: tuple[int, ...],
            pads: tuple[tuple[int, int], ...], dilation: tuple[int, ...]) -> jax.Array:
    """The windows of ``x`` ``(B, *spatial, C)`` as ``(B, *out, prod(kernel_size) * C)``, taps major, channels minor.

    ``pads`` are explicit ``(low, high)`` pairs per spatial axis, non-negative.
    """
    n = len(kernel_size)
    config = [(0, 0, 0)] + [(lo, hi, 0) for lo, hi in pads] + [(0, 0, 0)]
    xp = jax.lax.pad(x, jnp.zeros((), x.dtype), config)
    size = xp.shape[1:-1]
    out = [(size[i] - (kernel_size[i] - 1) * dilation[i] - 1) // strides[i] + 1 for i in range(n)]
    taps = []
    for tap in itertools.product(*map(range, kernel_size)):
        start = tuple(t * d for t, d in zip(tap, dilation))
        limit = tuple(a + (o - 1) * s + 1 for a, o, s in zip(start, out, strides))
        taps.append(jax.lax.slice(xp, (0,) + start + (0,), (xp.shape[0],) + limit + (xp.shape[-1],),
                                  (1,) + tuple(strides) + (1,)))
    return taps[0] if len(taps) == 1 else jnp.concatenate(taps, axis=-1)


def conv_by_matmul(x: jax.Array, w: jax.Array, *, strides: tuple[int, ...], pads: tuple[tuple[int, int], ...],
                   dilation: tuple[int, ...]) -> jax.Array:
    """``lax.conv_general_dilated`` channels-last (``x`` ``(B, *spatial, C)``, ``w`` ``(*kernel, C, F)``) as im2col + GEMM."""
    n = w.ndim - 2
    cols = patches(x, w.shape[:n], strides=strides, pads=pads, dilation=dilation)
    return jax.lax.dot_general(cols, w.reshape(-1, w.shape[-1]), (((n + 1,), (0,)), ((), ())))
