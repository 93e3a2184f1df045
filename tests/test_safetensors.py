"""Tests for fnn.checkpoint.export_safetensors / import_safetensors: other loaders read
every tensor, bfloat16 bit for bit, structure kept, bad files raise CheckpointError."""

from __future__ import annotations

import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import checkpoint

st_numpy = pytest.importorskip("safetensors.numpy", reason="safetensors is in the test extra")


def _params(dtype=jnp.float32):
    params = fnn.mlp([5, 3]).init(jax.random.key(0), (4,))
    return jax.tree.map(lambda a: a.astype(dtype), params)


def _flat(params):
    return {".".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


def test_export_safetensors_numpy_loader_reads_every_tensor(tmp_path):
    params = _params()
    f = tmp_path / "m.safetensors"
    checkpoint.export_safetensors(f, params)
    loaded = st_numpy.load_file(str(f))
    assert sorted(loaded) == ["0.b", "0.w", "1.b", "1.w"]
    for key, leaf in _flat(params).items():
        np.testing.assert_array_equal(loaded[key], np.asarray(leaf))
        assert loaded[key].dtype == np.float32


def test_import_safetensors_bfloat16_bit_exact(tmp_path):
    params = jax.tree.map(lambda a: a * 1.0001, _params(jnp.bfloat16))
    f = tmp_path / "bf16.safetensors"
    checkpoint.export_safetensors(f, params)
    back = checkpoint.import_safetensors(f, like=params)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back)):
        assert b.dtype == jnp.bfloat16
        np.testing.assert_array_equal(np.asarray(a).view(np.uint16), np.asarray(b).view(np.uint16))


def test_export_safetensors_torch_loader_reads_every_tensor(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is optional: pip install torch==2.13.0 (CPU)")
    st_torch = pytest.importorskip("safetensors.torch")
    params = {"f32": _params(), "bf16": _params(jnp.bfloat16)}
    f = tmp_path / "t.safetensors"
    checkpoint.export_safetensors(f, params)
    loaded = st_torch.load_file(str(f))
    assert set(loaded) == set(_flat(params))
    for key, leaf in _flat(params).items():
        t = loaded[key]
        if leaf.dtype == jnp.bfloat16:
            assert t.dtype == torch.bfloat16
            np.testing.assert_array_equal(t.view(torch.int16).numpy().view(np.uint16),
                                          np.asarray(leaf).view(np.uint16))
        else:
            np.testing.assert_array_equal(t.numpy(), np.asarray(leaf))


def test_import_safetensors_reads_torch_written_file(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is optional: pip install torch==2.13.0 (CPU)")
    st_torch = pytest.importorskip("safetensors.torch")
    tensors = {"0.w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
               "0.b": torch.ones(3, dtype=torch.bfloat16)}
    f = tmp_path / "from_torch.safetensors"
    st_torch.save_file(tensors, str(f))
    like = {"0": {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3, jnp.bfloat16)}}
    back = checkpoint.import_safetensors(f, like=like)
    np.testing.assert_array_equal(np.asarray(back["0"]["w"]), np.arange(6, dtype=np.float32).reshape(2, 3))
    assert back["0"]["b"].dtype == jnp.bfloat16
    assert sorted(checkpoint.import_safetensors(f)) == ["0.b", "0.w"]  # foreign file: flat dict


def test_import_safetensors_without_like_rebuilds_structure(tmp_path):
    tree = {"layers": [{"w": jnp.ones((2, 2))}, None], "pair": (jnp.int32(3), jnp.zeros(0, jnp.uint8))}
    f = tmp_path / "s.safetensors"
    checkpoint.export_safetensors(f, tree)
    back = checkpoint.import_safetensors(f)
    assert jax.tree.structure(back) == jax.tree.structure(tree)
    assert back["layers"][1] is None and isinstance(back["pair"], tuple)
    jax.tree.map(np.testing.assert_array_equal, back, tree)


def test_import_safetensors_like_restores_namedtuples(tmp_path):
    params = _params()
    state = fnn.optimizers.adam(1e-3).init(params)
    f = tmp_path / "opt.safetensors"
    checkpoint.export_safetensors(f, state)
    back = checkpoint.import_safetensors(f, like=jax.eval_shape(lambda: state))
    assert jax.tree.structure(back) == jax.tree.structure(state)
    jax.tree.map(np.testing.assert_array_equal, back, state)


def test_import_safetensors_like_shape_mismatch_names_key(tmp_path):
    f = tmp_path / "p.safetensors"
    checkpoint.export_safetensors(f, _params())
    like = _params()
    like[1]["w"] = jnp.zeros((5, 4))
    with pytest.raises(checkpoint.CheckpointError, match=r"import_safetensors: like must match the "
                       r"file's shapes and dtypes; got float32\[5, 4\] in like but float32\[5, 3\] in the "
                       r"file at '1.w'"):
        checkpoint.import_safetensors(f, like=like)


def test_import_safetensors_like_missing_key_raises(tmp_path):
    f = tmp_path / "p.safetensors"
    checkpoint.export_safetensors(f, _params())
    with pytest.raises(checkpoint.CheckpointError, match=r"like must have the file's keys; got "
                       r"missing in the file \['2.b'\]"):
        checkpoint.import_safetensors(f, like=_params() + [{"b": jnp.zeros(1)}])


@pytest.mark.parametrize("cut", [0, 5, 30, -1])
def test_import_safetensors_truncated_file_raises(tmp_path, cut):
    f = tmp_path / "p.safetensors"
    checkpoint.export_safetensors(f, _params())
    data = f.read_bytes()
    f.write_bytes(data[:cut] if cut >= 0 else data[:-1])
    with pytest.raises(checkpoint.CheckpointError, match=r"import_safetensors: path must be an intact "
                                                         r"safetensors file"):
        checkpoint.import_safetensors(f)


@pytest.mark.parametrize("foreign", ["fnn", "pickle", "npz"])
def test_import_safetensors_foreign_file_raises(tmp_path, foreign):
    f = tmp_path / "foreign"
    if foreign == "fnn":
        checkpoint.save(f, _params())
    elif foreign == "pickle":
        f.write_bytes(pickle.dumps({"w": np.zeros(3)}))
    else:
        with open(f, "wb") as out:
            np.savez(out, w=np.zeros(3))
    with pytest.raises(checkpoint.CheckpointError, match=r"intact safetensors file"):
        checkpoint.import_safetensors(f)


def test_import_safetensors_overlapping_offsets_raise(tmp_path):
    header = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' \
             b'"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    f = tmp_path / "crafted.safetensors"
    f.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    with pytest.raises(checkpoint.CheckpointError, match=r"overlap or leave gaps"):
        checkpoint.import_safetensors(f)


def test_export_safetensors_rejected_params_leave_previous_file(tmp_path):
    f = tmp_path / "p.safetensors"
    checkpoint.export_safetensors(f, _params())
    before = f.read_bytes()
    with pytest.raises(TypeError, match=r"export_safetensors: params must hold arrays of a safetensors "
                                        r"dtype .*; got dtype complex64 at '0.w'"):
        checkpoint.export_safetensors(f, [{"w": jnp.zeros(2, jnp.complex64)}])
    assert f.read_bytes() == before and os.listdir(tmp_path) == ["p.safetensors"]


def test_export_safetensors_colliding_keys_raise(tmp_path):
    with pytest.raises(ValueError, match=r"params must have distinct dotted paths.*; got '0.w' twice"):
        checkpoint.export_safetensors(tmp_path / "c", {"0.w": jnp.zeros(1), "0": {"w": jnp.zeros(1)}})


def test_export_safetensors_non_path_raises():
    with pytest.raises(TypeError, match=r"export_safetensors: path must be a str or os.PathLike"):
        checkpoint.export_safetensors(3, {})
