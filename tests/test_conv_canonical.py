"""Tests for conv's CPU derivatives: hand-written canonical gradient convolutions against lax's."""

from __future__ import annotations

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import layers

EDGE_CASES = [  # (spatial, kernel, strides, padding, dilation): crops, strides past the kernel, 1-3 axes
    ((7,), (3,), (2,), "SAME", (1,)),
    ((9,), (2,), (3,), ((3, 4),), (2,)),
    ((8, 7), (3, 2), (3, 2), "VALID", (1, 2)),
    ((5, 6), (2, 3), (2, 1), ((4, 0), (0, 3)), (2, 1)),
    ((5, 4, 6), (2, 3, 2), (2, 1, 3), "SAME", (1, 2, 1)),
]


def _x(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def _lax(params, x, strides, padding, dilation):
    n = len(strides)
    spec = "NWC NHWC NDHWC".split()[n - 1]
    return jax.lax.conv_general_dilated(x, params["w"], strides, padding, rhs_dilation=dilation,
                                        dimension_numbers=(spec, spec[1:-1] + "IO", spec)) + params["b"]


def _derivatives(apply, params, x, tangents):
    y, vjp = jax.vjp(apply, params, x)
    return vjp(jnp.sin(y)), jax.jvp(apply, (params, x), tangents)[1]


@pytest.mark.parametrize("spatial,kernel,strides,padding,dilation", EDGE_CASES)
def test_conv_grads_and_jvp_match_lax_in_float64(x64, spatial, kernel, strides, padding, dilation):
    layer = layers.conv(3, kernel, strides=strides, padding=padding, dilation=dilation)
    params = {"w": _x(kernel + (2, 3), 1), "b": _x((3,), 2)}
    x = _x((2,) + spatial + (2,), 3)
    tangents = ({"w": _x(kernel + (2, 3), 4), "b": _x((3,), 5)}, _x(x.shape, 6))
    got = jax.jit(lambda p, x, t: _derivatives(layer.apply, p, x, t))(params, x, tangents)
    ref = jax.jit(lambda p, x, t: _derivatives(lambda p, x: _lax(p, x, strides, padding, dilation), p, x, t))(
        params, x, tangents)
    chex.assert_trees_all_close(got, ref, rtol=1e-10, atol=1e-10)


def _loop_convolutions(kernel, strides, dilation):
    """The convolutions of a compiled ``lax.scan`` of gradient steps through two conv layers."""
    first = layers.conv(4, kernel, strides=strides, dilation=dilation)
    second = layers.conv(3, kernel)
    params = [{"w": jnp.ones(kernel + (2, 4)), "b": jnp.zeros(4)}, {"w": jnp.ones(kernel + (4, 3)), "b": jnp.zeros(3)}]
    x = jnp.ones((2,) + (7,) * len(kernel) + (2,))

    def loss(params):
        return jnp.sum(second.apply(params[1], jax.nn.relu(first.apply(params[0], x))) ** 2)

    def epoch(params):
        step = lambda p, _: (jax.tree.map(lambda a, g: a - 1e-3 * g, p, jax.grad(loss)(p)), None)  # noqa: E731
        return jax.lax.scan(step, params, None, length=2)[0]

    text = jax.jit(epoch).lower(params).compile().as_text()
    return [line for line in text.splitlines() if " convolution(" in line]


@pytest.mark.parametrize("kernel,strides,dilation", [((3, 2), (2, 1), (1, 2)), ((2, 2, 2), (1, 2, 1), (1, 1, 2))])
def test_conv_compiles_only_canonical_convolutions_inside_a_training_loop(kernel, strides, dilation):
    # XLA:CPU's Eigen path: batch first, features last, kernel (*spatial, in, out), no reversal.
    axes = "012"[:len(kernel)]
    canonical = f"dim_labels=b{axes}f_{axes}io->b{axes}f"
    convolutions = _loop_convolutions(kernel, strides, dilation)
    assert len(convolutions) == 5  # 2 forward, 2 kernel gradients, 1 input gradient
    for line in convolutions:
        assert canonical in line and "rhs_reversal" not in line and "feature_group_count" not in line, line
        assert re.search(r"\bwhile\b|body", line), line
