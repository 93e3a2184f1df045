"""Tests for fnn.layers.conv: NumPy loop reference, lax, PyTorch, grads, dtypes, errors."""

from __future__ import annotations

import itertools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import fnn
from fnn import layers

KEY = jax.random.key(0)


def _x(shape, dtype=np.float32, seed=1):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def _pads(size, k, s, d, padding):
    if padding == "VALID":
        return 0, 0
    if padding == "SAME":
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        return total // 2, total - total // 2
    return padding


def np_conv(x, w, b, strides, padding, dilation):
    """Channels-last N-d cross-correlation with explicit loops over positions and taps."""
    n = w.ndim - 2
    spatial = x.shape[1:-1]
    pads = [_pads(spatial[i], w.shape[i], strides[i], dilation[i], padding if isinstance(padding, str)
                  else padding[i]) for i in range(n)]
    xp = np.pad(x, [(0, 0)] + list(pads) + [(0, 0)])
    out_sizes = [(xp.shape[1 + i] - (w.shape[i] - 1) * dilation[i] - 1) // strides[i] + 1 for i in range(n)]
    y = np.zeros((x.shape[0], *out_sizes, w.shape[-1]))
    for bi in range(x.shape[0]):
        for pos in itertools.product(*map(range, out_sizes)):
            total = b.astype(np.float64).copy()
            for tap in itertools.product(*map(range, w.shape[:n])):
                idx = tuple(p * s + t * d for p, s, t, d in zip(pos, strides, tap, dilation))
                total += xp[(bi, *idx)] @ w[tap]
            y[(bi, *pos)] = total
    return y


def _params(kernel, c_in, c_out, dtype=np.float32):
    return {"w": _x(kernel + (c_in, c_out), dtype, seed=2), "b": _x((c_out,), dtype, seed=3)}


CASES = [  # (spatial, kernel, strides, padding, dilation)
    ((7,), (3,), (1,), "SAME", (1,)),
    ((9,), (2,), (2,), "VALID", (2,)),
    ((6, 5), (3, 3), (1, 1), "SAME", (1, 1)),
    ((6, 5), (3, 2), (2, 1), "VALID", (1, 1)),
    ((7, 7), (3, 3), (2, 2), "SAME", (2, 1)),
    ((6, 6), (2, 3), (1, 2), ((1, 0), (2, 1)), (1, 1)),
    ((4, 4, 3), (2, 2, 2), (1, 2, 1), "SAME", (1, 1, 1)),
]


@pytest.mark.parametrize("spatial,kernel,strides,padding,dilation", CASES)
def test_conv_matches_numpy_loops(spatial, kernel, strides, padding, dilation):
    layer = layers.conv(3, kernel, strides=strides, padding=padding, dilation=dilation)
    params = _params(kernel, 2, 3)  # NumPy draws: no init program to compile per case
    x = _x((2,) + spatial + (2,))
    y = layer.apply(params, x)
    ref = np_conv(x, np.asarray(params["w"]), np.asarray(params["b"]), strides, padding, dilation)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_conv_matches_lax_conv_general_dilated():
    layer = layers.conv(4, (3, 3), strides=2, dilation=1, padding="SAME")
    params = _params((3, 3), 3, 4)
    x = _x((2, 8, 8, 3))
    ref = jax.lax.conv_general_dilated(x, params["w"], (2, 2), "SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC")) + params["b"]
    np.testing.assert_allclose(layer.apply(params, x), ref, rtol=1e-6, atol=1e-6)


def test_conv_matches_torch_conv2d_after_transposition():
    torch = pytest.importorskip("torch", reason="torch not installed (pip install torch==2.13.0)")
    layer = layers.conv(4, (3, 2), strides=(2, 1), padding=((1, 1), (0, 0)), dilation=(1, 2))
    params = _params((3, 2), 3, 4)
    x = _x((2, 7, 6, 3))
    w_torch = torch.from_numpy(np.asarray(params["w"]).transpose(3, 2, 0, 1).copy())  # (out, in, kh, kw)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), w_torch,
                                     torch.from_numpy(np.array(params["b"])), stride=(2, 1),
                                     padding=(1, 0), dilation=(1, 2))
    np.testing.assert_allclose(layer.apply(params, x), ref.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)


def test_conv_init_param_layout_and_he_variance():
    params = layers.conv(64, (3, 3)).init(KEY, (5, 5, 32))
    chex.assert_shape(params["w"], (3, 3, 32, 64))
    chex.assert_shape(params["b"], (64,))
    np.testing.assert_array_equal(params["b"], np.zeros(64))
    np.testing.assert_allclose(np.std(params["w"]), math.sqrt(2 / (9 * 32)), rtol=0.05)


def test_conv_any_leading_batch_axes():
    layer = layers.conv(2, (3,))
    params = _params((3,), 2, 2)
    x = _x((3, 4, 5, 2))
    y = layer.apply(params, x)
    chex.assert_shape(y, (3, 4, 5, 2))
    np.testing.assert_allclose(y[1, 2], layer.apply(params, x[1, 2]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_conv_dtype_in_equals_dtype_out(dtype):
    layer = layers.conv(2, (2, 2))
    params = jax.tree.map(lambda a: jnp.asarray(a, dtype), _params((2, 2), 1, 2))
    assert layer.apply(params, jnp.ones((1, 3, 3, 1), dtype)).dtype == dtype


def test_conv_grads_match_finite_differences(x64):
    layer = layers.conv(2, (2, 2), strides=(2, 1), dilation=(1, 2))
    params = jax.tree.map(jnp.asarray, _params((2, 2), 2, 2, np.float64))
    x = jnp.asarray(_x((2, 4, 5, 2), np.float64))
    check_grads(layer.apply, (params, x), order=1, modes=["rev"], eps=1e-4)


def test_conv_works_under_jit_and_vmap_over_params():
    layer = layers.conv(2, (3, 3))
    stacked = jax.vmap(lambda k: layer.init(k, (4, 4, 1)))(jax.random.split(KEY, 3))
    x = _x((2, 4, 4, 1))
    y = jax.jit(jax.vmap(layer.apply, in_axes=(0, None)))(stacked, x)
    chex.assert_shape(y, (3, 2, 4, 4, 2))
    first = jax.tree.map(lambda a: a[0], stacked)
    np.testing.assert_allclose(y[0], layer.apply(first, x), rtol=1e-5, atol=1e-5)


def test_conv_rejects_wrong_channel_count_naming_layer():
    layer = layers.conv(4, (3, 3))
    params = _params((3, 3), 1, 4)
    with pytest.raises(ValueError, match=r"conv\(4, \(3, 3\)\): x must have shape .* 1 channels.*got x of shape "
                       r"\(2, 8, 8, 3\)"):
        jax.jit(layer.apply)(params, jnp.ones((2, 8, 8, 3)))


@pytest.mark.parametrize("kwargs,arg", [
    (dict(kernel_size=3), "kernel_size"), (dict(kernel_size=(3, 0)), "kernel_size"),
    (dict(kernel_size=(1, 1, 1, 1)), "kernel_size"), (dict(strides=(1,)), "strides"),
    (dict(dilation=0), "dilation"), (dict(padding="FULL"), "padding"), (dict(padding=((1, 1),)), "padding"),
    (dict(features=0), "features"),
])
def test_conv_rejects_bad_arguments(kwargs, arg):
    args = dict(features=2, kernel_size=(3, 3)) | kwargs
    with pytest.raises(ValueError, match=f"conv: {arg} must"):
        layers.conv(args.pop("features"), args.pop("kernel_size"), **args)


def test_conv_rejects_input_shape_of_wrong_rank():
    with pytest.raises(ValueError, match=r"conv\(2, \(3, 3\)\): input_shape must have 3 axes"):
        layers.conv(2, (3, 3)).init(KEY, (8, 8))


def test_conv_rejects_valid_input_smaller_than_kernel():
    layer = layers.conv(2, (3, 3), padding="VALID")
    params = _params((3, 3), 1, 2)
    with pytest.raises(ValueError, match=r"x must have spatial size at least \(3, 3\)"):
        layer.apply(params, jnp.ones((2, 2, 1)))


def test_conv_rejects_params_without_kernel():
    with pytest.raises(ValueError, match="params must be a dict with a kernel 'w'"):
        layers.conv(2, (3,)).apply({"b": jnp.zeros(2)}, jnp.ones((4, 1)))


def _lowered_ops(platform):
    layer = layers.conv(2, (3, 3))
    params = _params((3, 3), 1, 2)
    grad = jax.jit(jax.grad(lambda p, x: jnp.sum(layer.apply(p, x) ** 2)))
    text = jax.export.export(grad, platforms=[platform])(params, jnp.ones((2, 5, 5, 1))).mlir_module()
    return text.count("stablehlo.convolution"), text.count("stablehlo.dot_general")


def test_conv_lowers_to_matmuls_on_cpu_and_to_convolutions_elsewhere():
    # XLA:CPU runs non-canonical (backward) convolutions inside while loops naively.
    assert _lowered_ops("cpu") == (0, 2)
    assert _lowered_ops("cuda") == (2, 0)


def test_conv_grads_inside_scan_match_lax_conv_general_dilated():
    layer = layers.conv(3, (3, 2), strides=(2, 1), padding="SAME", dilation=(1, 2))
    params = _params((3, 2), 2, 3)
    xs = _x((2, 2, 7, 6, 2))

    def grads(apply):
        def body(carry, x):
            g = jax.grad(lambda p: jnp.sum(jnp.sin(apply(p, x))))(params)
            return jax.tree.map(jnp.add, carry, g), None
        return jax.jit(lambda: jax.lax.scan(body, jax.tree.map(jnp.zeros_like, params), xs)[0])()

    ref = grads(lambda p, x: jax.lax.conv_general_dilated(
        x, p["w"], (2, 1), "SAME", rhs_dilation=(1, 2), dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["b"])
    chex.assert_trees_all_close(grads(layer.apply), ref, rtol=1e-5, atol=1e-5)


def test_conv_forward_mode_matches_lax_conv_general_dilated():
    layer = layers.conv(2, (3,), strides=2)
    params = _params((3,), 2, 2)
    x, dx = _x((2, 7, 2)), _x((2, 7, 2), seed=4)
    _, tangent = jax.jvp(lambda x: layer.apply(params, x), (x,), (dx,))
    ref = jax.lax.conv_general_dilated(dx, params["w"], (2,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"))
    np.testing.assert_allclose(tangent, ref, rtol=1e-5, atol=1e-5)


EDGE_CASES = [  # (spatial, kernel, strides, padding, dilation): crops, strides past the kernel, 1-3 axes
    ((7,), (3,), (2,), "SAME", (1,)),
    ((9,), (2,), (3,), ((3, 4),), (2,)),
    ((8, 7), (3, 2), (3, 2), "VALID", (1, 2)),
    ((5, 6), (2, 3), (2, 1), ((4, 0), (0, 3)), (2, 1)),
    ((5, 4, 6), (2, 3, 2), (2, 1, 3), "SAME", (1, 2, 1)),
]


def _derivatives(apply, params, x, tangents):
    y, vjp = jax.vjp(apply, params, x)
    return vjp(jnp.sin(y)), jax.jvp(apply, (params, x), tangents)[1]


@pytest.mark.parametrize("spatial,kernel,strides,padding,dilation", EDGE_CASES)
def test_conv_grads_and_jvp_match_lax_in_float64(x64, spatial, kernel, strides, padding, dilation):
    def lax_conv(params, x):
        spec = "NWC NHWC NDHWC".split()[len(kernel) - 1]
        return jax.lax.conv_general_dilated(x, params["w"], strides, padding, rhs_dilation=dilation,
                                            dimension_numbers=(spec, spec[1:-1] + "IO", spec)) + params["b"]

    rng = np.random.default_rng(0)
    layer = layers.conv(3, kernel, strides=strides, padding=padding, dilation=dilation)
    params = {"w": rng.standard_normal(kernel + (2, 3)), "b": rng.standard_normal(3)}
    x = rng.standard_normal((2,) + spatial + (2,))
    tangents = ({"w": rng.standard_normal(kernel + (2, 3)), "b": rng.standard_normal(3)},
                rng.standard_normal(x.shape))
    got = jax.jit(lambda p, x, t: _derivatives(layer.apply, p, x, t))(params, x, tangents)
    ref = jax.jit(lambda p, x, t: _derivatives(lax_conv, p, x, t))(params, x, tangents)
    chex.assert_trees_all_close(got, ref, rtol=1e-10, atol=1e-10)
