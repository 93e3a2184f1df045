"""Tests for fnn.checkpoint: round trips, like-checks, atomic writes, hostile files."""

import doctest
import json
import os
import pickle
import struct
import subprocess
import sys
import zlib
from typing import NamedTuple

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn import _checkpoint_format, checkpoint
from fnn.checkpoint import CheckpointError, load, save


@pytest.fixture
def ckpt(tmp_path):
    return str(tmp_path / "model.ckpt")


def _tree():
    """A small resumable-training state: params, adam state, counters, keys, history."""
    params = [{"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.zeros(3)},
              {"w": jnp.ones((3, 1), jnp.bfloat16), "b": jnp.zeros(1, jnp.bfloat16)}]
    return {"params": params, "opt_state": optax.adam(1e-3).init(params), "epoch": 3,
            "key": jax.random.key(7), "history": {"loss": jnp.array([0.9, 0.5, 0.25])}}


def _bits(x):
    return np.asarray(x).tobytes(), np.asarray(x).dtype, np.shape(x)


def _craft(path, header, data=b"", version=1):
    """Write a file with a valid prefix and header CRC around an arbitrary header."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<8sIQI", checkpoint.MAGIC, version, len(raw), zlib.crc32(raw)) + raw + data)


def _header(tree, arrays):
    return {"format": "fnn.checkpoint", "version": 1, "tree": tree, "arrays": arrays}


# ------------------------------------------------------------------------ round trips

def test_load_roundtrips_nested_containers_and_scalars(ckpt):
    tree = {"a": [1, 2.5, True, None, "relu"], "b": (jnp.ones(2), {"c": (), "d": [], "e": {}}),
            "big": 2**70, "tiny": 0.1, "neg": -3}
    save(ckpt, tree)
    out = load(ckpt)
    assert jax.tree.structure(out) == jax.tree.structure(tree)
    chex.assert_trees_all_equal(out, tree)
    assert [type(v) for v in out["a"]] == [int, float, bool, type(None), str]
    assert out["big"] == 2**70 and out["tiny"] == 0.1


def test_load_keeps_dict_key_order(ckpt):
    save(ckpt, {"z": 1, "a": 2, "m": 3})
    assert list(load(ckpt)) == ["z", "a", "m"]


def test_load_roundtrips_nonfinite_python_floats(ckpt):
    save(ckpt, [float("inf"), float("-inf"), float("nan"), -0.0])
    out = load(ckpt)
    assert out[0] == float("inf") and out[1] == float("-inf") and np.isnan(out[2])
    assert str(out[3]) == "-0.0"


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16, jnp.int32, jnp.bool_,
                                   jnp.uint8, jnp.int8, jnp.complex64, jnp.float8_e4m3fn])
def test_load_roundtrips_dtypes_bit_exactly(ckpt, dtype):
    raw = jax.random.normal(jax.random.key(0), (4, 5)) * 100
    raw = raw.at[0, :4].set(jnp.array([jnp.inf, -jnp.inf, jnp.nan, -0.0]))
    x = raw > 0 if dtype == jnp.bool_ else raw.astype(dtype)
    save(ckpt, {"x": x})
    y = load(ckpt)["x"]
    assert isinstance(y, jax.Array)
    chex.assert_shape(y, (4, 5))
    assert _bits(y) == _bits(x)


def test_load_roundtrips_bfloat16_every_bit_pattern(ckpt):
    x = np.arange(2**16, dtype=np.uint16).view(jnp.bfloat16)  # NaN payloads included
    save(ckpt, x)
    assert np.asarray(load(ckpt)).view(np.uint16).tolist() == list(range(2**16))


def test_load_roundtrips_float64_and_int64_under_x64(ckpt):
    with jax.enable_x64(True):
        tree = {"f": jnp.array([1 / 3, 1e-300], jnp.float64), "i": jnp.array([2**40], jnp.int64)}
        save(ckpt, tree)
        out = load(ckpt, like=tree)
        assert out["f"].dtype == jnp.float64 and out["i"].dtype == jnp.int64
        assert _bits(out["f"]) == _bits(tree["f"]) and _bits(out["i"]) == _bits(tree["i"])


def test_load_roundtrips_numpy_arrays_and_scalars(ckpt):
    tree = {"a": np.arange(5, dtype=np.int16)[::2], "s": np.float32(2.5), "z": np.zeros((0, 3))}
    save(ckpt, tree)
    out = load(ckpt)
    assert _bits(out["a"]) == _bits(tree["a"]) and out["a"].dtype == np.int16
    chex.assert_shape([out["s"], out["z"]], [(), (0, 3)])
    assert out["s"] == 2.5 and out["s"].dtype == np.float32


def test_load_roundtrips_raw_and_typed_prng_keys(ckpt):
    tree = {"raw": jax.random.PRNGKey(5), "typed": jax.random.key(5),
            "rbg": jax.random.key(5, impl="rbg"), "batch": jax.random.split(jax.random.key(1), 3)}
    save(ckpt, tree)
    out = load(ckpt)
    assert out["raw"].dtype == jnp.uint32 and _bits(out["raw"]) == _bits(tree["raw"])
    for name in ("typed", "rbg", "batch"):
        assert out[name].dtype == tree[name].dtype and out[name].shape == tree[name].shape
        assert jax.random.key_impl(out[name]) == jax.random.key_impl(tree[name])
        assert _bits(jax.random.key_data(out[name])) == _bits(jax.random.key_data(tree[name]))
    draw = lambda k: jax.random.normal(k, (3,))  # noqa: E731
    chex.assert_trees_all_equal(draw(out["typed"]), draw(tree["typed"]))


def test_load_like_rebuilds_optax_adam_state(ckpt):
    tree = _tree()
    opt = optax.adam(1e-2)
    grads = jax.tree.map(jnp.ones_like, tree["params"])
    _, tree["opt_state"] = opt.update(grads, tree["opt_state"], tree["params"])
    save(ckpt, tree)
    fresh = _tree()
    out = load(ckpt, like=fresh)
    assert jax.tree.structure(out) == jax.tree.structure(tree)
    assert type(out["opt_state"][0]) is optax.ScaleByAdamState
    chex.assert_trees_all_equal(out["opt_state"], tree["opt_state"])
    chex.assert_trees_all_equal(jax.random.key_data(out["key"]), jax.random.key_data(tree["key"]))
    updates, _ = opt.update(grads, out["opt_state"], out["params"])  # the state resumes
    expected, _ = opt.update(grads, tree["opt_state"], tree["params"])
    chex.assert_trees_all_equal(updates, expected)


def test_load_without_like_gives_namedtuples_as_tuples(ckpt):
    tree = _tree()
    save(ckpt, tree)
    state = load(ckpt)["opt_state"]
    assert type(state[0]) is tuple and len(state[0]) == 3
    chex.assert_trees_all_equal(state[0][1], tree["opt_state"][0].mu)


def test_load_like_accepts_eval_shape_and_resaved_tuples(ckpt):
    tree = _tree()
    save(ckpt, tree)
    save(ckpt, load(ckpt))  # NamedTuples became tuples; like restores them
    like = jax.eval_shape(lambda: tree)
    like["epoch"], like["key"] = 0, tree["key"]
    out = load(ckpt, like=like)
    assert type(out["opt_state"][0]) is optax.ScaleByAdamState
    chex.assert_trees_all_equal(out["params"], tree["params"])


class Pair(NamedTuple):
    a: jax.Array
    b: jax.Array


class Other(NamedTuple):
    a: jax.Array
    b: jax.Array


_BASE = {"params": [{"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}], "step": 4, "pair": Pair(jnp.ones(1), None)}


@pytest.mark.parametrize("change, expected", [
    (lambda t: t["params"][0].update(w=jnp.zeros((2, 4))), r"float32\[2, 4\] in like but float32\[2, 3\] in the "
                                                           r"checkpoint at tree\['params'\]\[0\]\['w'\]"),
    (lambda t: t["params"][0].update(b=jnp.zeros(3, jnp.bfloat16)), r"bfloat16\[3\] in like.*\['b'\]"),
    (lambda t: t["params"][0].update(c=jnp.zeros(3)), r"keys \['b', 'w', 'c'\] in like.*tree\['params'\]\[0\]"),
    (lambda t: t["params"].append({}), r"list of 2 in like but list of 1 .* at tree\['params'\]"),
    (lambda t: t.update(params=tuple(t["params"])), r"tuple of 1 in like but list of 1"),
    (lambda t: t.update(step=4.0), r"a Python float in like but a Python int .* at tree\['step'\]"),
    (lambda t: t.update(step=jnp.array(4)), r"int32\[\] in like but a Python int"),
    (lambda t: t.update(pair=Other(jnp.ones(1), None)), r"Other\('a', 'b'\) in like but Pair\('a', 'b'\)"),
    (lambda t: t.update(pair=Pair(jnp.ones(1), jnp.ones(1))), r"float32\[1\] in like but None .* tree\['pair'\]\.b"),
    (lambda t: t.update(pair=Pair(jax.random.key(0), None)), r"key<fry>\[\] in like but float32\[1\] .*\.a"),
])
def test_load_like_mismatch_names_the_leaf(ckpt, change, expected):
    save(ckpt, _BASE)
    like = jax.tree.map(lambda x: x, _BASE)
    like["params"] = [dict(p) for p in like["params"]]
    change(like)
    with pytest.raises(CheckpointError, match=r"checkpoint\.load: like must match .*" + expected):
        load(ckpt, like=like)


def test_load_like_mismatch_on_key_impl(ckpt):
    save(ckpt, {"key": jax.random.key(0)})
    with pytest.raises(CheckpointError, match=r"like must .*key<rbg>\[\] in like but key<fry>\[\]"):
        load(ckpt, like={"key": jax.random.key(0, impl="rbg")})


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)
    assert CheckpointError.__module__ == "fnn.checkpoint"


# ------------------------------------------------------------------------ save errors

@pytest.mark.parametrize("tree, expected", [
    ({"f": lambda x: x}, r"tree must hold only dicts.*function at tree\['f'\]"),
    ([object()], r"tree must hold only.*; got object at tree\[0\]"),
    ({1: jnp.ones(1)}, r"tree must use str dict keys; got key 1 at tree"),
    ({"a": np.array(["x"], dtype=object)}, r"tree must hold arrays of dtypes .*object at tree\['a'\]"),
    ({"c": 1 + 2j}, r"tree must hold only.*; got complex at tree\['c'\]"),
])
def test_save_rejects_unsupported_trees(ckpt, tree, expected):
    with pytest.raises(TypeError, match=r"checkpoint\.save: " + expected):
        save(ckpt, tree)
    assert not os.path.exists(ckpt)


def test_save_rejects_tracers(ckpt):
    with pytest.raises(TypeError, match=r"tree must hold concrete arrays.*tracer at tree\['w'\]"):
        jax.jit(lambda w: save(ckpt, {"w": w}))(jnp.ones(2))


def test_save_rejects_cyclic_trees(ckpt):
    cyclic = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match=r"tree must nest at most 200"):
        save(ckpt, cyclic)


@pytest.mark.parametrize("fn", [save, load])
def test_path_must_be_a_path(fn):
    with pytest.raises(TypeError, match=r"path must be a str or os.PathLike; got int"):
        fn(3, {}) if fn is save else fn(3)


def test_load_missing_file_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.ckpt")


# ------------------------------------------------------------------------ atomicity

def test_save_crash_mid_write_keeps_previous_checkpoint(ckpt, monkeypatch):
    save(ckpt, {"w": jnp.ones(1000), "epoch": 1})

    def half_then_crash(f, chunks):
        data = b"".join(bytes(c) for c in chunks)
        f.write(data[: len(data) // 2])
        f.flush()
        raise OSError("disk full")

    monkeypatch.setattr(_checkpoint_format, "write_chunks", half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        save(ckpt, {"w": jnp.zeros(1000), "epoch": 2})
    out = load(ckpt)
    assert out["epoch"] == 1 and float(out["w"].sum()) == 1000.0
    assert os.listdir(os.path.dirname(ckpt)) == ["model.ckpt"]  # no temp file left behind


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_save_interrupted_before_rename_keeps_previous_checkpoint(ckpt, monkeypatch, where):
    save(ckpt, {"epoch": 1})

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, where, interrupt)
    with pytest.raises(KeyboardInterrupt):
        save(ckpt, {"epoch": 2})
    monkeypatch.undo()
    assert load(ckpt) == {"epoch": 1}
    assert os.listdir(os.path.dirname(ckpt)) == ["model.ckpt"]


def test_save_fsyncs_file_and_folder_then_renames(ckpt, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    save(ckpt, {"epoch": 1})
    assert calls == ["fsync", "replace", "fsync"]


def test_save_overwrites_and_keeps_file_mode(ckpt):
    save(ckpt, {"epoch": 1})
    os.chmod(ckpt, 0o600)
    save(ckpt, {"epoch": 2})
    assert load(ckpt) == {"epoch": 2}
    assert os.stat(ckpt).st_mode & 0o777 == 0o600


def test_save_missing_folder_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        save(tmp_path / "no" / "such.ckpt", {"epoch": 1})


# ------------------------------------------------------------------------ hostile files

def _load_error(path):
    with pytest.raises(CheckpointError, match=r"checkpoint\.load: path must be an intact fnn checkpoint") as e:
        load(path)
    return str(e.value)


def test_load_empty_file(ckpt):
    open(ckpt, "wb").close()
    assert "an empty file" in _load_error(ckpt)


def test_load_truncated_at_every_few_bytes(ckpt, tmp_path):
    save(ckpt, _tree())
    data = open(ckpt, "rb").read()
    cut = str(tmp_path / "cut.ckpt")
    for n in sorted(set(range(1, 64)) | set(range(64, len(data), 7))):
        with open(cut, "wb") as f:
            f.write(data[:n])
        assert "truncated" in _load_error(cut), n


def test_load_random_bytes(ckpt):
    with open(ckpt, "wb") as f:
        f.write(np.random.default_rng(0).bytes(4096))
    assert "without fnn's magic bytes" in _load_error(ckpt)


def test_load_never_unpickles(ckpt, tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(ckpt, "wb") as f:
        pickle.dump({"w": Exploit()}, f)
    assert "a pickle file (fnn never unpickles)" in _load_error(ckpt)
    assert not marker.exists()


@pytest.mark.parametrize("writer, expected", [
    (lambda f: np.savez(f, w=np.ones(3)), "a zip/npz file"),
    (lambda f: np.save(f, np.ones(3)), "a .npy file"),
])
def test_load_foreign_numpy_files(ckpt, writer, expected):
    with open(ckpt, "wb") as f:
        writer(f)
    assert expected in _load_error(ckpt)


def test_load_header_claiming_huge_size(ckpt):
    with open(ckpt, "wb") as f:
        f.write(struct.pack("<8sIQI", checkpoint.MAGIC, 1, 2**63, 0) + b"{}")
    assert "the header claims 9223372036854775808 bytes, 2 follow" in _load_error(ckpt)


@pytest.mark.parametrize("shape", [[2**20, 2**20], [2**40, 2**40, 2**40], [2**70]])
def test_load_array_claiming_huge_size(ckpt, shape):
    nbytes = int(np.prod(shape, dtype=object)) * 4
    _craft(ckpt, _header({"t": "array", "i": 0},
                         [{"path": "tree", "dtype": "float32", "shape": shape, "nbytes": nbytes, "crc32": 0}]))
    message = _load_error(ckpt)
    assert "malformed array entry" in message or "truncated" in message


@pytest.mark.parametrize("header, data, expected", [
    (b"not json", b"", "not valid JSON"),
    (b"\xff\xfe", b"", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, b"", "not valid JSON"),
    ({"format": "other"}, b"", "without the fnn.checkpoint fields"),
    (_header({"t": "array", "i": 0}, [{"dtype": "object", "shape": [1], "nbytes": 8, "crc32": 0}]), b"\0" * 8,
     "malformed array entry"),
    (_header({"t": "array", "i": 0}, [{"dtype": "float32", "shape": [3], "nbytes": 8, "crc32": 0}]), b"\0" * 8,
     "malformed array entry"),
    (_header({"t": "array", "i": 0}, [{"dtype": "float32", "shape": [-1], "nbytes": -4, "crc32": 0}]), b"",
     "malformed array entry"),
    (_header({"t": "array", "i": 0}, [{"dtype": "float32", "shape": [2], "nbytes": 8, "crc32": 1}]), b"\0" * 8,
     "corrupted data in array 0"),
    (_header({"t": "array", "i": 0}, [{"dtype": "bool", "shape": [1], "nbytes": 1,
                                       "crc32": zlib.crc32(b"\x07")}]), b"\x07", "invalid bool values"),
    (_header({"t": "none"}, []), b"extra", "5 unexpected bytes after the arrays"),
    (_header({"t": "array", "i": 3}, []), b"", "malformed tree description at tree"),
    (_header({"t": "list", "items": [{"t": "array", "i": 0}] * 2},
             [{"dtype": "uint8", "shape": [], "nbytes": 1, "crc32": zlib.crc32(b"\0")}]), b"\0",
     r"malformed tree description at tree[1]"),
    (_header({"t": "none"}, [{"dtype": "uint8", "shape": [], "nbytes": 1, "crc32": zlib.crc32(b"\0")}]), b"\0",
     "arrays that the tree does not use"),
    (_header({"t": "key", "impl": "os.system", "i": 0},
             [{"dtype": "uint32", "shape": [2], "nbytes": 8, "crc32": zlib.crc32(b"\0" * 8)}]), b"\0" * 8,
     "malformed tree description"),
    (_header({"t": "key", "impl": "threefry2x32", "i": 0},
             [{"dtype": "uint32", "shape": [3], "nbytes": 12, "crc32": zlib.crc32(b"\0" * 12)}]), b"\0" * 12,
     "malformed tree description"),
    (_header({"t": "dict", "keys": ["a", "a"], "items": [{"t": "none"}] * 2}, []), b"", "malformed tree"),
    (_header({"t": "namedtuple", "name": "X", "fields": ["a"], "items": []}, []), b"", "malformed tree"),
    (_header({"t": "int", "v": 1.5}, []), b"", "malformed tree"),
    (_header({"t": "eval", "v": "__import__('os')"}, []), b"", "malformed tree"),
    (_header(json.loads('{"t": "list", "items": [' * 300 + "]}" * 300), []), b"", "malformed tree"),
])
def test_load_crafted_headers(ckpt, header, data, expected):
    _craft(ckpt, header, data)
    assert expected in _load_error(ckpt)


@pytest.mark.parametrize("shape", [[2**32, 2**32, 0], [0, 2**40, 2**40, 2**40]])
def test_load_empty_array_of_impossible_shape_is_a_checkpoint_error(ckpt, shape):
    _craft(ckpt, _header({"t": "array", "i": 0},
                         [{"path": "tree", "dtype": "float32", "shape": shape, "nbytes": 0, "crc32": 0}]))
    assert "malformed array entry" in _load_error(ckpt)


def test_load_header_with_a_huge_int_is_a_checkpoint_error(ckpt):
    _craft(ckpt, b'{"format": "fnn.checkpoint", "version": 1, "tree": {"t": "int", "v": ' + b"9" * 5000
           + b'}, "arrays": []}')
    assert "not valid JSON" in _load_error(ckpt)


def test_save_int_beyond_json_digit_limit_raises_type_error(ckpt):
    with pytest.raises(TypeError, match=r"checkpoint.save: tree must hold Python ints of at most 4300 digits"
                                        r".*at tree\['n'\]"):
        save(ckpt, {"n": 10**5000})
    assert not os.listdir(os.path.dirname(ckpt))
    save(ckpt, {"n": 10**4299})
    assert load(ckpt)["n"] == 10**4299


@pytest.mark.parametrize("value", [np.array([2**40], np.int64), np.array([1e300]), np.array([-2**31 - 1]),
                                   np.array([1e300 + 1j])])
def test_load_64_bit_values_out_of_32_bit_range_without_x64_refused(ckpt, value):
    save(ckpt, {"a": value})
    with pytest.raises(CheckpointError, match=r"checkpoint.load: path must hold .* values that fit .* while "
                                              r"jax_enable_x64 is off.*at tree\['a'\]"):
        load(ckpt)


def test_load_64_bit_values_in_32_bit_range_without_x64_narrowed(ckpt):
    save(ckpt, {"i": np.array([-2**31, 2**31 - 1], np.int64), "f": np.array([0.1, np.inf, np.nan])})
    tree = load(ckpt)
    assert tree["i"].dtype == jnp.int32 and tree["i"].tolist() == [-2**31, 2**31 - 1]
    np.testing.assert_array_equal(tree["f"], np.array([0.1, np.inf, np.nan], np.float32))


def test_load_64_bit_values_out_of_32_bit_range_with_x64_exact(ckpt, x64):
    save(ckpt, {"a": np.array([2**40], np.int64)})
    assert load(ckpt)["a"].tolist() == [2**40]


@pytest.mark.parametrize("length", [238, 246, 255])
def test_save_basename_up_to_name_max(tmp_path, length):
    path = tmp_path / ("n" * (length - 5) + ".ckpt")
    save(path, {"w": jnp.ones(2)})
    assert load(path)["w"].tolist() == [1.0, 1.0]
    assert os.listdir(tmp_path) == [path.name]


def test_save_through_link_dotdot_uses_the_kernels_folder(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    os.symlink(tmp_path / "a" / "b", tmp_path / "link")
    save(str(tmp_path / "link" / ".." / "x.ckpt"), {"w": jnp.ones(1)})  # link/.. is a/, not tmp_path
    assert sorted(os.listdir(tmp_path / "a")) == ["b", "x.ckpt"]
    assert not (tmp_path / "x.ckpt").exists()


def test_save_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real.ckpt").write_bytes(b"old")
    os.symlink("real.ckpt", tmp_path / "latest.ckpt")
    save(tmp_path / "latest.ckpt", {"w": jnp.ones(1)})
    assert os.readlink(tmp_path / "latest.ckpt") == "real.ckpt"
    assert load(tmp_path / "real.ckpt")["w"].tolist() == [1.0]


@pytest.mark.parametrize("path", ["", ".", "..", "folder/"])
def test_save_path_naming_a_folder_raises(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="checkpoint.save: path must name a file"):
        save(path, {"w": jnp.ones(1)})


def test_save_removes_only_stale_temp_files_of_its_target(tmp_path):
    path = tmp_path / "m.ckpt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    names = {"stale": f".m.ckpt.{dead}-0123abcd.tmp", "live": f".m.ckpt.{os.getpid()}-0123abcd.tmp",
             "other": f".n.ckpt.{dead}-0123abcd.tmp", "foreign": f".m.ckpt.{dead}-xyz.tmp",
             "newer": f".m.ckpt.{dead}-fedcba98.tmp"}
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"x")
        if key != "newer":
            os.utime(tmp_path / name, ns=(0, 0))
        else:
            os.utime(tmp_path / name, ns=(2**62, 2**62))
    os.symlink("m.ckpt", tmp_path / f".m.ckpt.{dead}-aaaaaaaa.tmp")
    save(path, {"w": jnp.ones(1)})
    left = set(os.listdir(tmp_path))
    assert names["stale"] not in left
    assert {names[k] for k in ("live", "other", "foreign", "newer")} <= left
    assert f".m.ckpt.{dead}-aaaaaaaa.tmp" in left


def test_load_future_format_version(ckpt):
    _craft(ckpt, _header({"t": "none"}, []), version=2)
    assert "format version 2; this fnn reads version 1" in _load_error(ckpt)


def test_load_flipped_data_bit_is_detected(ckpt):
    save(ckpt, {"w": jnp.ones(16)})
    data = bytearray(open(ckpt, "rb").read())
    data[-3] ^= 0x10
    open(ckpt, "wb").write(bytes(data))
    assert "corrupted data in array 0" in _load_error(ckpt)


_REAL = []


def _real_checkpoint(tmp_path_factory):
    if not _REAL:
        path = str(tmp_path_factory.mktemp("real") / "real.ckpt")
        save(path, _tree())
        _REAL.append(open(path, "rb").read())
    return _REAL[0]


def _load_only_checkpoint_errors(path, data):
    with open(path, "wb") as f:
        f.write(data)
    try:
        load(path)
    except CheckpointError:
        pass


@hypothesis.settings(max_examples=200, deadline=None,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(data=st.one_of(st.binary(max_size=600), st.binary(max_size=600).map(lambda b: checkpoint.MAGIC + b)))
def test_load_fuzz_random_bytes_raise_only_checkpoint_error(tmp_path, data):
    _load_only_checkpoint_errors(str(tmp_path / "fuzz.ckpt"), data)


@hypothesis.settings(max_examples=200, deadline=None,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
                  cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_load_fuzz_mutated_checkpoint_raises_only_checkpoint_error(tmp_path, tmp_path_factory, edits, cut):
    data = bytearray(_real_checkpoint(tmp_path_factory))
    for position, value in edits:
        data[position % len(data)] = value
    data = bytes(data if cut is None else data[: cut % len(data)])
    _load_only_checkpoint_errors(str(tmp_path / "fuzz.ckpt"), data)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2**70) | st.floats() | st.sampled_from(
        ["none", "int", "float", "str", "bool", "array", "key", "dict", "list", "tuple", "namedtuple",
         "threefry2x32", "rbg", "float32", "bfloat16", "bool"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["t", "i", "v", "items", "keys", "name", "fields", "impl"]), inner, max_size=5),
    max_leaves=20)
_ARRAY = st.fixed_dictionaries({"dtype": st.sampled_from(["float32", "bfloat16", "uint32", "bool", "int8"]),
                                "shape": st.lists(st.integers(0, 3), max_size=3),
                                "nbytes": st.integers(0, 40), "crc32": st.integers(0, 2**32)})


@hypothesis.settings(max_examples=200, deadline=None,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(tree=_JSON, arrays=st.lists(_ARRAY, max_size=3), data=st.binary(max_size=64))
def test_load_fuzz_crafted_headers_raise_only_checkpoint_error(tmp_path, tree, arrays, data):
    path = str(tmp_path / "fuzz.ckpt")
    _craft(path, _header(tree, arrays), data)
    try:
        load(path)
    except CheckpointError:
        pass


def test_module_docstring_examples_run():
    assert doctest.testmod(checkpoint, optionflags=doctest.ELLIPSIS).failed == 0
