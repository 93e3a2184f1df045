"""Tests for pooling, flatten, reshape, layer_norm and embedding against NumPy references."""

from __future__ import annotations

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from fnn import layers

KEY = jax.random.key(0)


def _x(shape, dtype=np.float32, seed=1):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def np_pool(x, window, strides, padding, kind):
    """Pooling with explicit loops over windows; padded cells neither win nor count."""
    n = len(window)
    spatial = x.shape[1:-1]
    if padding == "SAME":
        outs = [-(-s // st) for s, st in zip(spatial, strides)]
        lows = [max((o - 1) * st + w - s, 0) // 2 for o, st, w, s in zip(outs, strides, window, spatial)]
    else:
        outs = [(s - w) // st + 1 for s, w, st in zip(spatial, window, strides)]
        lows = [0] * n
    y = np.zeros((x.shape[0], *outs, x.shape[-1]))
    for pos in itertools.product(*map(range, outs)):
        cells = []
        for tap in itertools.product(*map(range, window)):
            idx = [p * st + t - lo for p, st, t, lo in zip(pos, strides, tap, lows)]
            if all(0 <= i < s for i, s in zip(idx, spatial)):
                cells.append(x[(slice(None), *idx)])
        cells = np.stack(cells)
        y[(slice(None), *pos)] = cells.max(0) if kind == "max" else cells.mean(0)
    return y


POOL_CASES = [((2, 2), None, "VALID", (4, 4)), ((3, 3), (2, 2), "SAME", (5, 6)),
              ((2,), (1,), "SAME", (5,)), ((2, 2, 2), None, "VALID", (4, 2, 4))]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("window,strides,padding,spatial", POOL_CASES)
def test_pool_matches_numpy_loops(kind, window, strides, padding, spatial):
    layer = (layers.max_pool if kind == "max" else layers.avg_pool)(window, strides=strides, padding=padding)
    x = _x((2,) + spatial + (3,))
    ref = np_pool(x, window, strides or window, padding, kind)
    np.testing.assert_allclose(layer.apply((), x), ref, rtol=1e-6, atol=1e-6)


def test_avg_pool_same_equals_torch_count_include_pad_false():
    torch = pytest.importorskip("torch", reason="torch not installed (pip install torch==2.13.0)")
    x = _x((2, 5, 5, 3))
    ref = torch.nn.functional.avg_pool2d(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), 3, stride=1,
                                         padding=1, count_include_pad=False)
    y = layers.avg_pool((3, 3), strides=1, padding="SAME").apply((), x)
    np.testing.assert_allclose(y, ref.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_keeps_dtype(kind, dtype):
    layer = (layers.max_pool if kind == "max" else layers.avg_pool)((2, 2), padding="SAME")
    assert layer.apply((), jnp.ones((3, 3, 1), dtype)).dtype == dtype


def test_pool_grads_match_finite_differences(x64):
    x = jnp.asarray(np.random.default_rng(0).permutation(2 * 4 * 4).reshape(2, 4, 4, 1) / 7.0)  # no ties
    for layer in (layers.max_pool((2, 2), strides=1), layers.avg_pool((3, 3), strides=1, padding="SAME")):
        check_grads(jax.jit(lambda v, layer=layer: layer.apply((), v)), (x,), order=1, modes=["rev"], eps=1e-4)


def test_pool_rejects_bad_window_and_small_input():
    with pytest.raises(ValueError, match="max_pool: window must be a tuple"):
        layers.max_pool(2)
    with pytest.raises(ValueError, match="avg_pool: strides must be"):
        layers.avg_pool((2, 2), strides=(1,))
    with pytest.raises(ValueError, match=r"max_pool\(\(3, 3\)\): x must have spatial size at least"):
        layers.max_pool((3, 3)).apply((), jnp.ones((1, 2, 2, 1)))
    with pytest.raises(ValueError, match=r"avg_pool\(\(2, 2\)\): x must have at least 3 axes"):
        layers.avg_pool((2, 2)).apply((), jnp.ones((4, 1)))


def test_flatten_and_reshape_keep_any_batch_axes():
    x = _x((2, 3, 4, 5))
    flat = layers.flatten()
    params = flat.init(KEY, (4, 5))
    assert jax.tree.map(jnp.shape, params) == {"example": (4, 5, 0)}  # a marker: no values
    np.testing.assert_array_equal(flat.apply(params, x), x.reshape(2, 3, 20))
    np.testing.assert_array_equal(flat.apply(params, x[0, 0]), x[0, 0].reshape(20))
    shaped = layers.reshape((2, 10))
    np.testing.assert_array_equal(shaped.apply(shaped.init(KEY, (4, 5)), x), x.reshape(2, 3, 2, 10))


def test_flatten_and_reshape_reject_other_example_shapes():
    params = layers.flatten().init(KEY, (4, 5))
    with pytest.raises(ValueError, match=r"flatten: x must have shape \(\.\.\., 4, 5\).*got x of shape \(2, 5, 4\)"):
        layers.flatten().apply(params, jnp.ones((2, 5, 4)))
    with pytest.raises(ValueError, match=r"reshape\(\(7,\)\): input_shape must have 7 values"):
        layers.reshape((7,)).init(KEY, (4, 5))


# ---- layer_norm ----------------------------------------------------------------------------

def test_layer_norm_matches_numpy_with_scale_and_offset():
    x = _x((3, 2, 5))
    params = {"scale": _x((5,), seed=2), "offset": _x((5,), seed=3)}
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    ref = (x - mean) / np.sqrt(var + 1e-3) * params["scale"] + params["offset"]
    np.testing.assert_allclose(layers.layer_norm(eps=1e-3).apply(params, x), ref, rtol=1e-5, atol=1e-5)


def test_layer_norm_init_and_bfloat16():
    layer = layers.layer_norm()
    params = layer.init(KEY, (4,))
    np.testing.assert_array_equal(params["scale"], np.ones(4))
    np.testing.assert_array_equal(params["offset"], np.zeros(4))
    assert layer.apply(params, jnp.ones((2, 4), jnp.bfloat16)).dtype == jnp.bfloat16


def test_layer_norm_grads_match_finite_differences(x64):
    params = {"scale": jnp.asarray(_x((4,), np.float64, 2)), "offset": jnp.asarray(_x((4,), np.float64, 3))}
    check_grads(layers.layer_norm().apply, (params, jnp.asarray(_x((3, 4), np.float64))), order=1,
                modes=["rev"], eps=1e-4)


def test_layer_norm_rejects_wrong_feature_count():
    params = {"scale": jnp.ones(4), "offset": jnp.zeros(4)}
    with pytest.raises(ValueError, match=r"layer_norm: x must have last dimension 4.*got x of shape \(2, 3\)"):
        jax.jit(layers.layer_norm().apply)(params, jnp.ones((2, 3)))


# ---- embedding -----------------------------------------------------------------------------

def test_embedding_matches_numpy_indexing():
    layer = layers.embedding(6, 3)
    params = {"w": _x((6, 3))}
    ids = np.array([[0, 5, 2], [1, 1, 4]])
    y = layer.apply(params, ids)
    chex.assert_shape(y, (2, 3, 3))
    np.testing.assert_array_equal(y, params["w"][ids])


def test_embedding_grad_sums_rows_of_repeated_ids(x64):
    params = {"w": jnp.asarray(_x((4, 2), np.float64))}
    ids = jnp.array([1, 1, 3])
    g = jax.grad(lambda p: jnp.sum(layers.embedding(4, 2).apply(p, ids) ** 2))(params)
    ref = np.zeros((4, 2))
    np.add.at(ref, np.asarray(ids), 2 * np.asarray(params["w"])[np.asarray(ids)])
    np.testing.assert_allclose(g["w"], ref)


def test_embedding_init_normal_stddev_one():
    params = layers.embedding(1000, 16).init(KEY, (3,))
    chex.assert_shape(params["w"], (1000, 16))
    np.testing.assert_allclose(np.std(params["w"]), 1.0, rtol=0.05)


def test_embedding_out_of_range_concrete_raises_and_jit_gives_nan():
    layer = layers.embedding(4, 2)
    params = {"w": jnp.ones((4, 2))}
    with pytest.raises(ValueError, match=r"embedding\(4, 2\): x must hold ids in \[0, 4\); got id 4"):
        layer.apply(params, jnp.array([0, 4]))
    y = jax.jit(layer.apply)(params, jnp.array([0, 4, -1]))
    np.testing.assert_array_equal(np.isnan(y).all(-1), [False, True, True])


def test_embedding_rejects_float_ids():
    with pytest.raises(TypeError, match=r"embedding\(4, 2\): x must have an integer dtype"):
        layers.embedding(4, 2).apply({"w": jnp.ones((4, 2))}, jnp.ones(3))
