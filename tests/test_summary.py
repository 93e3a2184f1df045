"""Tests for fnn.summary and fnn.cnn."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import layers

KEY = jax.random.key(0)


def _row(table, name):
    return next(line for line in table.splitlines() if line.strip().startswith(name))


def test_summary_counts_match_hand_count():
    net = fnn.serial(layers.conv(8, (3, 3)), fnn.relu, layers.max_pool((2, 2)), layers.flatten(),
                     layers.dropout(0.5), fnn.dense(10), layers.batch_norm())
    table = fnn.summary(net, (8, 8, 1))
    conv_params = 3 * 3 * 1 * 8 + 8
    dense_params = 4 * 4 * 8 * 10 + 10
    assert re.search(rf"conv\(8, \(3, 3\)\)\s+\(8, 8, 8\)\s+b\(8,\), w\(3, 3, 1, 8\)\s+{conv_params}$",
                     _row(table, "conv"))
    assert "(4, 4, 8)" in _row(table, "max_pool") and "(128,)" in _row(table, "flatten")
    assert _row(table, "dense(10)").endswith(f"{dense_params:,}")
    assert re.search(r"batch_norm\s+\(10,\).*\s20\s+20$", _row(table, "batch_norm"))
    total = conv_params + dense_params + 20
    assert f"total params: {total:,}   state: 20" in table


def test_summary_indents_nested_combinators():
    net = fnn.serial(layers.fan_out(2), layers.parallel(layers.residual(fnn.dense(4)), fnn.dense(3)),
                     layers.fan_in_concat())
    lines = fnn.summary(net, (4,)).splitlines()
    names = [line[:24].rstrip() for line in lines[2:-2]]
    assert names == ["serial", "  fan_out(2)", "  parallel", "    residual", "      dense(4)", "    dense(3)",
                     "  fan_in_concat(-1)"]
    assert "[(4,), (3,)]" in lines[4]


def test_summary_flops_of_a_dense_layer():
    table = fnn.summary(fnn.dense(10), (64,))
    flops = float(table.rsplit(":", 1)[1].replace(",", ""))
    assert 2 * 64 * 10 <= flops <= 2 * 64 * 10 + 2 * 10  # one multiply-add = 2 FLOPs, plus the bias


def test_summary_undescribed_layer_is_one_row():
    layer = fnn.Layer(lambda key, shape: {"a": jnp.ones(3)}, lambda p, x: x * p["a"])
    table = fnn.summary(layer, (3,))
    assert _row(table, "Layer").split()[-1] == "3"


def test_summary_rejects_non_layer():
    with pytest.raises(TypeError, match="summary: model must be a fnn Layer"):
        fnn.summary(jnp.tanh, (3,))


# ---- cnn -----------------------------------------------------------------------------------

def test_cnn_structure_is_conv_blocks_pool_then_dense():
    net = fnn.cnn((4, 8), (16, 10), image_shape=(8, 8, 1))
    assert isinstance(net, layers.Layer)
    params = jax.eval_shape(lambda k: net.init(k, (64,)), KEY)  # shapes only: no init to compile
    shapes = [jax.tree.map(jnp.shape, p) for p in params]
    params = jax.tree.map(lambda a: jnp.full(a.shape, 0.1, a.dtype), params)
    assert shapes == [{"example": (64, 0)}, {"b": (4,), "w": (3, 3, 1, 4)}, (), {"b": (8,), "w": (3, 3, 4, 8)},
                      (), (), {"example": (4, 4, 8, 0)}, {"b": (16,), "w": (128, 16)}, (),
                      {"b": (10,), "w": (16, 10)}]
    assert net.apply(params, jnp.ones((2, 64))).shape == (2, 10)


def test_cnn_with_batch_norm_and_dropout_is_stateful():
    net = fnn.cnn((4,), (10,), batch_norm=True, dropout=0.25, pool_each=True)
    assert isinstance(net, layers.StatefulLayer)
    params, state = jax.tree.map(lambda a: jnp.ones(a.shape, a.dtype),
                                 jax.eval_shape(lambda k: net.init(k, (8, 8, 1)), KEY))
    y, _ = net.apply(params, state, jnp.ones((2, 8, 8, 1)), key=jax.random.key(1), train=True)
    assert y.shape == (2, 10)
    assert "dropout(0.25)" in fnn.summary(net, (8, 8, 1))


@pytest.mark.parametrize("kwargs,arg", [(dict(channels=(0,)), "channels"), (dict(dense_sizes=()), "dense_sizes"),
                                        (dict(dropout=1.0), "dropout")])
def test_cnn_rejects_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=f"cnn: {arg} must"):
        fnn.cnn(**kwargs)
