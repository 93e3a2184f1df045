r"""Params as safetensors files (private; the public names live in :mod:`fnn.checkpoint`).

`safetensors <https://huggingface.co/docs/safetensors>`_ is the tensor file of the
Hugging Face ecosystem, readable from NumPy, PyTorch, JAX, TensorFlow and Rust: an
8-byte little-endian header length ``N``, ``N`` bytes of UTF-8 JSON
``{key: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``,
then the raw little-endian bytes of every tensor, back to back. Both directions are
written here in plain Python (the ``safetensors`` package is not needed to read or
write), so bfloat16 travels as its 16 bits, bit for bit.

Keys are the pytree paths joined by dots: ``params[0]["w"]`` is ``"0.w"``, a NamedTuple
field by its name. The tree's structure (dicts, lists, tuples, NamedTuples, ``None``)
is kept as JSON in the metadata under ``"fnn.tree"``, so :func:`import_safetensors`
rebuilds it without ``like``; files from elsewhere load as a flat ``{key: array}``.
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Any, NoReturn

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checkpoint_format import CheckpointError, atomic_write
from fnn._checks import describe, fail, message

__all__ = ["export_safetensors", "import_safetensors"]

# safetensors dtype names <-> NumPy dtypes (the ml_dtypes ones through jax.numpy).
DTYPES = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "U16": np.uint16,
          "I32": np.int32, "U32": np.uint32, "I64": np.int64, "U64": np.uint64,
          "F16": np.float16, "BF16": jnp.bfloat16, "F32": np.float32, "F64": np.float64,
          "F8_E4M3": jnp.float8_e4m3fn, "F8_E5M2": jnp.float8_e5m2}
DTYPES = {name: np.dtype(d) for name, d in DTYPES.items()}
_NAMES = {d: name for name, d in DTYPES.items()}
_TREE_KEY = "fnn.tree"
_MAX_HEADER = 100 * 2**20  # the reference implementation's own limit
_MAX_DEPTH = 200


def _describe_tree(node: Any, key: str, leaves: dict, depth: int) -> Any:
    """JSON structure of ``node``; its arrays go to ``leaves`` under their dotted keys."""
    fn = "checkpoint.export_safetensors"
    if depth > _MAX_DEPTH:
        fail(fn, "params", f"nest at most {_MAX_DEPTH} containers deep", f"deeper at {key!r}")
    join = (lambda k: f"{key}.{k}") if key else str
    if node is None:
        return {"t": "none"}
    if isinstance(node, (jax.Array, np.ndarray, np.generic)):
        if isinstance(node, jax.core.Tracer):
            fail(fn, "params", "hold concrete arrays (call it outside jit)", f"a tracer at {key!r}", TypeError)
        arr = np.asarray(node)
        if arr.dtype not in _NAMES:
            fail(fn, "params", f"hold arrays of a safetensors dtype ({', '.join(map(str, _NAMES))})",
                 f"dtype {arr.dtype} at {key!r}", TypeError)
        if key in leaves:
            fail(fn, "params", "have distinct dotted paths (a dict key with a '.' can collide)",
                 f"{key!r} twice")
        leaves[key] = arr
        return {"t": "leaf", "k": key}
    if isinstance(node, dict):
        bad = [k for k in node if not isinstance(k, str)]
        if bad:
            fail(fn, "params", "use str dict keys", f"key {bad[0]!r} at {key!r}", TypeError)
        return {"t": "dict", "keys": list(node),
                "items": [_describe_tree(v, join(k), leaves, depth + 1) for k, v in node.items()]}
    fields = getattr(type(node), "_fields", None) if isinstance(node, tuple) else None
    if fields is not None:
        return {"t": "namedtuple", "name": type(node).__name__, "fields": list(fields),
                "items": [_describe_tree(v, join(f), leaves, depth + 1) for f, v in zip(fields, node)]}
    if isinstance(node, (list, tuple)):
        return {"t": type(node).__name__,
                "items": [_describe_tree(v, join(i), leaves, depth + 1) for i, v in enumerate(node)]}
    fail(fn, "params", "hold only dicts, lists, tuples, NamedTuples, None and arrays",
         f"{describe(node)} at {key!r}", TypeError)


def export_safetensors(path: str | os.PathLike, params: Any) -> None:
    r"""Write ``params`` as a safetensors file, atomically.

    Keys are pytree paths joined by dots (``[{"w": ..., "b": ...}, ...]`` gives ``"0.w"``,
    ``"0.b"``, ...); the bytes are the arrays' own, little-endian, so bfloat16 is kept bit
    for bit. The metadata holds the tree's structure under ``"fnn.tree"`` (JSON). As
    :func:`fnn.checkpoint.save`, the file is written to a temporary file, fsynced and
    renamed over ``path``.

    Args:
      path: destination file (its folder must exist).
      params: a pytree of dicts with str keys, lists, tuples, NamedTuples and ``None``,
        with array leaves of a dtype safetensors knows (bool, (u)int8-64, float16,
        bfloat16, float32, float64, float8_e4m3fn, float8_e5m2).

    Raises:
      TypeError: a leaf or container of another kind (the message gives its key).
      ValueError: two leaves with the same dotted key (a dict key containing ``"."``).
      OSError: the file could not be written; ``path`` is then left as it was.

    Example:
      >>> import os, tempfile, jax, fnn
      >>> params = fnn.mlp([4, 2]).init(jax.random.key(0), (3,))
      >>> f = os.path.join(tempfile.mkdtemp(), "model.safetensors")
      >>> fnn.checkpoint.export_safetensors(f, params)
      >>> back = fnn.checkpoint.import_safetensors(f, like=params)
      >>> jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), params, back))
      True
    """
    if not isinstance(path, (str, os.PathLike)):
        fail("checkpoint.export_safetensors", "path", "be a str or os.PathLike", describe(path), TypeError)
    leaves: dict = {}
    tree = _describe_tree(params, "", leaves, 0)
    header: dict = {"__metadata__": {_TREE_KEY: json.dumps(tree, separators=(",", ":")),
                                     "format": "fnn"}}
    chunks, offset = [], 0
    for key, arr in leaves.items():
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False)
        raw = data.reshape(-1).view(np.uint8)
        header[key] = {"dtype": _NAMES[arr.dtype], "shape": list(arr.shape),
                       "data_offsets": [offset, offset + raw.size]}
        chunks.append(raw.tobytes())
        offset += raw.size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the reference writer pads to 8 bytes with spaces
    atomic_write(os.fspath(path), [struct.pack("<Q", len(text)), text, *chunks])


def _bad(path: str, what: str) -> NoReturn:
    raise CheckpointError(message("checkpoint.import_safetensors", "path", "be an intact safetensors file",
                                  f"{what} ({path!r})"))


def _read(path: str) -> tuple[dict, dict]:
    """``({key: np.ndarray}, metadata)`` of a safetensors file, every size checked first."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if len(head) < 8:
            _bad(path, f"{size} bytes, fewer than the 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if n > min(_MAX_HEADER, size - 8):
            _bad(path, f"a header length of {n} bytes in a file of {size}")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            _bad(path, "a header that is not UTF-8 JSON")
        if not isinstance(header, dict):
            _bad(path, "a header that is not a JSON object")
        metadata = header.pop("__metadata__", {})
        if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
            _bad(path, "metadata that is not a map of strings")
        buffer = size - 8 - n
        entries = []
        for key, entry in header.items():
            if not (isinstance(entry, dict) and entry.get("dtype") in DTYPES
                    and isinstance(entry.get("shape"), list)
                    and all(type(d) is int and d >= 0 for d in entry["shape"])
                    and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
                    and all(type(o) is int for o in entry["data_offsets"])):
                _bad(path, f"a malformed entry for {key!r}")
            begin, end = entry["data_offsets"]
            dtype = DTYPES[entry["dtype"]]
            if not 0 <= begin <= end <= buffer or end - begin != math.prod(entry["shape"]) * dtype.itemsize:
                _bad(path, f"offsets {entry['data_offsets']} for {key!r} that do not fit its shape "
                           f"{entry['shape']} or the {buffer} data bytes")
            entries.append((begin, end, key, dtype, entry["shape"]))
        entries.sort()
        cursor = 0
        for begin, end, key, _, _ in entries:  # the spec: contiguous, no gaps, no overlaps
            if begin != cursor:
                _bad(path, f"tensor data that overlap or leave gaps (at {key!r})")
            cursor = end
        if cursor != buffer:
            _bad(path, f"{buffer - cursor} bytes after the last tensor")
        data = f.read(buffer)
        if len(data) != buffer:
            _bad(path, "fewer bytes than it claims (truncated)")
    arrays = {key: np.frombuffer(data, dtype.newbyteorder("<"), count=math.prod(shape), offset=begin)
              .astype(dtype).reshape(shape) for begin, _, key, dtype, shape in entries}
    return arrays, metadata


def _rebuild(node: Any, arrays: dict, used: set, path: str, depth: int) -> Any:
    """The tree described by the ``"fnn.tree"`` metadata, leaves taken from ``arrays``."""
    if depth > _MAX_DEPTH or not isinstance(node, dict):
        _bad(path, "a malformed fnn.tree description")
    tag, items = node.get("t"), node.get("items")
    if tag == "none":
        return None
    if tag == "leaf":
        if node.get("k") not in arrays or node["k"] in used:
            _bad(path, f"an fnn.tree that names a missing tensor {node.get('k')!r}")
        used.add(node["k"])
        return jnp.asarray(arrays[node["k"]])
    if not isinstance(items, list) or tag not in ("dict", "list", "tuple", "namedtuple"):
        _bad(path, "a malformed fnn.tree description")
    children = [_rebuild(v, arrays, used, path, depth + 1) for v in items]
    if tag == "dict":
        keys = node.get("keys")
        if not (isinstance(keys, list) and len(keys) == len(items) and all(isinstance(k, str) for k in keys)):
            _bad(path, "a malformed fnn.tree description")
        return dict(zip(keys, children))
    return children if tag == "list" else tuple(children)  # NamedTuples come back as tuples


def import_safetensors(path: str | os.PathLike, like: Any = None) -> Any:
    r"""Read params from a safetensors file, optionally checked against ``like``.

    Nothing in the file is executed: the JSON header is parsed and every offset is
    checked against the shapes and the file size before any tensor is read.

    Args:
      path: a safetensors file, from :func:`export_safetensors` or any other writer
        (``safetensors.torch.save_file``, ``safetensors.numpy.save_file``, ...).
      like: optional pytree of the expected params (arrays or ``jax.ShapeDtypeStruct``,
        e.g. ``model.init(key, input_shape)``). The file must hold exactly its dotted
        keys, each with its shape and dtype; the result takes ``like``'s structure
        (NamedTuple types included). Without ``like``, an fnn file rebuilds its saved
        structure (NamedTuples as tuples) and any other file loads as ``{key: array}``.

    Returns:
      The pytree, leaves as ``jax.Array`` on the default device.

    Raises:
      CheckpointError: (a ``ValueError``, as :func:`fnn.checkpoint.load`) the file is
        empty, truncated or not safetensors, or does not match ``like`` (the message
        names the key).
      OSError: the file cannot be opened.

    Example:
      >>> import os, tempfile, jax.numpy as jnp, fnn
      >>> f = os.path.join(tempfile.mkdtemp(), "p.safetensors")
      >>> fnn.checkpoint.export_safetensors(f, {"w": jnp.zeros((2, 3), jnp.bfloat16)})
      >>> fnn.checkpoint.import_safetensors(f)["w"].dtype
      dtype(bfloat16)
    """
    if not isinstance(path, (str, os.PathLike)):
        fail("checkpoint.import_safetensors", "path", "be a str or os.PathLike", describe(path), TypeError)
    path = os.fspath(path)
    arrays, metadata = _read(path)
    if like is None:
        if _TREE_KEY not in metadata:
            return {key: jnp.asarray(a) for key, a in arrays.items()}
        try:
            tree = json.loads(metadata[_TREE_KEY])
        except json.JSONDecodeError:
            _bad(path, "an fnn.tree that is not JSON")
        used: set = set()
        out = _rebuild(tree, arrays, used, path, 0)
        if used != set(arrays):
            _bad(path, "tensors that its fnn.tree does not use")
        return out
    expected: dict = {}
    _describe_tree(jax.tree.map(lambda s: np.empty(s.shape, s.dtype), like), "", expected, 0)
    if set(expected) != set(arrays):
        missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
        raise CheckpointError(message("checkpoint.import_safetensors", "like", "have the file's keys",
                                      f"missing in the file {missing}, not in like {extra}"))
    for key, want in expected.items():
        got = arrays[key]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise CheckpointError(message(
                "checkpoint.import_safetensors", "like", "match the file's shapes and dtypes",
                f"{want.dtype}{list(want.shape)} in like but {got.dtype}{list(got.shape)} in the file at {key!r}"))
    return _fill(like, {k: jnp.asarray(arrays[k]) for k in expected}, "")


def _fill(node: Any, by_key: dict, key: str) -> Any:
    """``like``'s structure with each leaf replaced by the array at its dotted key."""
    join = (lambda k: f"{key}.{k}") if key else str
    if node is None:
        return None
    if isinstance(node, dict):
        return type(node)((k, _fill(v, by_key, join(k))) for k, v in node.items())
    fields = getattr(type(node), "_fields", None) if isinstance(node, tuple) else None
    if fields is not None:
        return type(node)(*(_fill(v, by_key, join(f)) for f, v in zip(fields, node)))
    if isinstance(node, (list, tuple)):
        return type(node)(_fill(v, by_key, join(i)) for i, v in enumerate(node))
    return by_key[key]
