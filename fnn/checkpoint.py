r"""Checkpoints: save and load pytrees safely — no pickle, atomic writes.

A checkpoint holds one pytree: parameters, an optimizer state, a step or epoch counter,
a PRNG key, a history — typically all of them in one dict, so a stopped run can resume
bit for bit. Loading never executes code: the file is a small self-describing container
that fnn parses itself.

The container — magic bytes, format version, a JSON header guarded by a CRC-32, then the
raw bytes of every array with their own CRC-32 — is laid out in
``fnn/_checkpoint_format.py``. The header's ``"tree"`` describes the structure with
tagged entries: ``dict`` (str keys, in order), ``list``, ``tuple``, ``namedtuple`` (type
and field names), ``none``, Python ``bool``/``int``/``float``/``str`` stored by value, and
``array``/``key`` referring to an array stored with its pytree path, dtype name
(``"bfloat16"`` included, so bfloat16 round-trips bit for bit) and shape.

Failure behaviour:

* :func:`save` writes a temporary file in the destination folder, flushes and fsyncs it,
  then renames it over ``path`` (and fsyncs the folder). A crash or exception mid-save
  leaves the previous checkpoint intact and removes the temporary file; a temporary file
  left by a killed save (``.<name>.<pid>-<hex>.tmp``, of a process no longer running and
  older than the new one) is deleted by the next save of the same ``path``. The folder
  is ``path``'s as the kernel resolves it (``link/../x.ckpt`` included); a symlink at
  ``path`` is followed: the file it points to is replaced and the link stays. Names up
  to the filesystem's 255 characters work (the temporary name is shortened with a hash).
* :func:`load` raises :class:`CheckpointError` (a ``ValueError``) for every file that is
  not an intact fnn checkpoint — empty, truncated, foreign (pickle, npz, ...), corrupted
  or crafted — and when ``like`` does not match, naming the first differing leaf by its
  pytree path. Sizes in the header are checked against the file size before anything is
  allocated. Filesystem problems (missing file, permissions) raise ``OSError`` as usual.

Conventions that differ from pickle-based tools (``torch.save``, ``flax.serialization``
msgpack): NamedTuples (optax states) are stored with their type and field names but,
since no class is ever imported from a file, load back as plain tuples unless ``like``
provides the type. Dicts load as plain ``dict`` in their saved key order. Arrays load
as ``jax.Array`` on the default device; NumPy scalars load as 0-d arrays. 64-bit arrays
become 32-bit unless ``jax_enable_x64`` is on, as with any ``jnp.asarray`` (float64
rounded to float32), but never silently wrong: an integer outside the 32-bit range, or a
finite float that float32 would turn into inf, raises :class:`CheckpointError` asking for
x64.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn, cast

import jax
import jax.numpy as jnp
import numpy as np

from fnn import _checkpoint_format as _format
from fnn._checkpoint_format import FORMAT_VERSION, MAGIC, CheckpointError
from fnn._checks import describe, fail, message
from fnn._safetensors_io import export_safetensors, import_safetensors  # interop with safetensors

__all__ = ["CheckpointError", "FORMAT_VERSION", "MAGIC", "export_safetensors", "import_safetensors",
           "load", "save"]

_MAX_DEPTH = 200  # deeper than any real pytree; keeps crafted files off the recursion limit
_SCALARS = {"bool": bool, "int": int, "float": float, "str": str}
_NO_LIKE = object()


def _fspath(fn: str, path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        fail(fn, "path", "be a str or os.PathLike", describe(path), TypeError)
    return os.fspath(path)


def _encode(node: Any, path: str, blobs: list, depth: int) -> dict:
    """Describe ``node`` as JSON-safe tagged dicts; append array bytes to ``blobs``."""
    if depth > _MAX_DEPTH:
        fail("checkpoint.save", "tree", f"nest at most {_MAX_DEPTH} containers deep", f"deeper at {path}")
    if isinstance(node, jax.core.Tracer):
        fail("checkpoint.save", "tree", "hold concrete arrays (call save outside jit/grad/vmap)",
             f"a tracer at {path}", TypeError)
    if isinstance(node, jax.Array) and jax.dtypes.issubdtype(node.dtype, jax.dtypes.prng_key):
        impl = str(jax.random.key_impl(node))
        return {"t": "key", "impl": impl, "i": _add(jax.random.key_data(node), path, blobs)}
    if isinstance(node, (jax.Array, np.ndarray, np.generic)):  # np.float64 is a float: test first
        return {"t": "array", "i": _add(node, path, blobs)}
    if node is None:
        return {"t": "none"}
    for tag, kind in _SCALARS.items():
        if type(node) is kind:  # exact types: bool is not an int here, IntEnum is rejected
            if kind is int and not _printable(node):
                # `type(node) is kind` with kind from a dict does not narrow node for mypy.
                fail("checkpoint.save", "tree", f"hold Python ints of at most {sys.get_int_max_str_digits()} "
                     "digits (store bigger numbers as a str)", f"an int of {cast(int, node).bit_length()} bits "
                     f"at {path}",
                     TypeError)
            return {"t": tag, "v": node}
    if isinstance(node, dict):
        bad = [k for k in node if not isinstance(k, str)]
        if bad:
            fail("checkpoint.save", "tree", "use str dict keys", f"key {bad[0]!r} at {path}", TypeError)
        return {"t": "dict", "keys": list(node),
                "items": [_encode(v, f"{path}[{k!r}]", blobs, depth + 1) for k, v in node.items()]}
    if isinstance(node, tuple) and hasattr(type(node), "_fields"):
        fields = cast(Any, node)._fields  # a NamedTuple: mypy does not narrow on hasattr of the type
        return {"t": "namedtuple", "name": type(node).__name__, "fields": list(fields),
                "items": [_encode(v, f"{path}.{f}", blobs, depth + 1) for f, v in zip(fields, node)]}
    if isinstance(node, (list, tuple)):
        return {"t": "list" if isinstance(node, list) else "tuple",
                "items": [_encode(v, f"{path}[{i}]", blobs, depth + 1) for i, v in enumerate(node)]}
    fail("checkpoint.save", "tree", "hold only dicts, lists, tuples, NamedTuples, None, arrays "
         "and Python bool/int/float/str", f"{type(node).__name__} at {path}", TypeError)


def _printable(n: object) -> bool:
    """Whether JSON can write ``n`` (Python limits int-to-str conversion to 4300 digits)."""
    try:
        str(n)
    except ValueError:
        return False
    return True


def _narrowed(arr: np.ndarray, at: str, path: str) -> np.ndarray:
    """``arr`` as ``jnp.asarray`` will hold it; refuse 64-bit values that 32 bits would change."""
    to = jax.dtypes.canonicalize_dtype(arr.dtype)
    if to == arr.dtype:
        return arr
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is what is checked next
        narrow = arr.astype(to)
    if np.issubdtype(arr.dtype, np.integer):
        kept = np.array_equal(narrow.astype(arr.dtype), arr)
    else:  # floats and complex: rounding is the documented rule, overflow to inf is refused
        kept = np.array_equal(np.isfinite(narrow), np.isfinite(arr))
    if not kept:
        raise CheckpointError(message(
            "checkpoint.load", "path", f"hold {arr.dtype} values that fit {to} while jax_enable_x64 is off "
            "(enable it to load them exactly)", f"values out of range at {at} ({path!r})"))
    return narrow


def _add(value: Any, path: str, blobs: list) -> int:
    blobs.append((path, _format.array_bytes(value, path)))
    return len(blobs) - 1


def save(path: str | os.PathLike, tree: Any) -> None:
    r"""Write ``tree`` to ``path`` atomically, in fnn's pickle-free checkpoint format.

    The bytes go to a temporary file in the same folder, which is flushed, fsynced and
    then renamed over ``path``; the folder is fsynced too where the OS allows. So
    ``path`` always holds either the previous checkpoint or the new one, whole.

    Args:
      path: destination file (its folder must exist).
      tree: a pytree of dicts with str keys, lists, tuples, NamedTuples and ``None``,
        whose leaves are arrays (``jax.Array``, NumPy; any bool/int/uint/float/complex
        dtype, bfloat16 included), typed PRNG keys (``jax.random.key``) or Python
        ``bool``/``int``/``float``/``str`` scalars.

    Raises:
      TypeError: a leaf or container of another type, or a Python int too long for JSON
        (over 4300 digits); the message gives its path.
      ValueError: ``path`` names a folder (``""``, ``"."``, ``".."``).
      OSError: the file could not be written; ``path`` is then left as it was.

    Example:
      >>> import os, tempfile, jax.numpy as jnp
      >>> f = os.path.join(tempfile.mkdtemp(), "run.ckpt")
      >>> save(f, {"params": [{"w": jnp.ones((2, 3), jnp.bfloat16)}], "epoch": 7})
      >>> state = load(f)
      >>> state["epoch"], state["params"][0]["w"].dtype
      (7, dtype(bfloat16))
    """
    path = _fspath("checkpoint.save", path)
    blobs: list = []
    tree_spec = _encode(tree, "tree", blobs, 0)
    _format.atomic_write(path, _format.pack(tree_spec, blobs))


def _kind(x: Any) -> str:
    """A short description of a tree node for mismatch messages."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"{x.dtype}{list(x.shape)}"
    if isinstance(x, tuple) and hasattr(type(x), "_fields"):
        return f"{type(x).__name__}{tuple(cast(Any, x)._fields)}"
    if isinstance(x, (list, tuple, dict)):
        return f"{type(x).__name__} of {len(x)}"
    return "None" if x is None else f"a Python {type(x).__name__}"


def _same_dtype(a: Any, b: Any) -> bool:
    try:  # a PRNG key dtype compared with a NumPy dtype may raise
        return bool(a == b)
    except TypeError:
        return False


def _mismatch(at: str, in_checkpoint: str, in_like: str) -> NoReturn:
    raise CheckpointError(message("checkpoint.load", "like", "match the checkpoint's structure, shapes "
                                  "and dtypes", f"{in_like} in like but {in_checkpoint} in the checkpoint at {at}"))


def _decode(spec: Any, ctx: dict, like: Any, at: str, depth: int) -> Any:
    """Rebuild the tree from its spec, checking against ``like`` when one is given."""
    bad = lambda: _format.corrupt(ctx["path"], f"a malformed tree description at {at}")  # noqa: E731
    if depth > _MAX_DEPTH or not isinstance(spec, dict):
        bad()
    tag, checked = spec.get("t"), like is not _NO_LIKE
    if not isinstance(tag, str):
        bad()
    if tag == "none":
        if checked and like is not None:
            _mismatch(at, "None", _kind(like))
        return None
    if tag in _SCALARS:
        value = spec.get("v")
        if type(value) is not _SCALARS[tag]:
            bad()
        if checked and type(like) is not _SCALARS[tag]:
            _mismatch(at, f"a Python {tag}", _kind(like))
        return value
    if tag in ("array", "key"):
        index = spec.get("i")
        if type(index) is not int or not 0 <= index < len(ctx["arrays"]) or index in ctx["used"]:
            bad()
        ctx["used"].add(index)
        leaf = jnp.asarray(_narrowed(ctx["arrays"][index], at, ctx["path"]))
        if tag == "key":
            if not isinstance(spec.get("impl"), str):
                bad()
            try:
                leaf = jax.random.wrap_key_data(leaf, impl=spec["impl"])
            except (TypeError, ValueError):
                bad()
        stored = ctx["arrays"][index].dtype if tag == "array" else leaf.dtype
        if checked and not (hasattr(like, "shape") and hasattr(like, "dtype") and tuple(like.shape) ==
                            leaf.shape and _same_dtype(like.dtype, stored)):
            _mismatch(at, f"{stored}{list(leaf.shape)}", _kind(like))
        return leaf
    items = spec.get("items")
    if not isinstance(items, list):
        bad()
    if tag == "dict":
        keys = spec.get("keys")
        if not (isinstance(keys, list) and len(keys) == len(items) and all(isinstance(k, str) for k in keys)
                and len(set(keys)) == len(keys)):
            bad()
        if checked and not (isinstance(like, dict) and set(like) == set(keys)):
            _mismatch(at, f"dict with keys {keys}",
                      f"dict with keys {list(like)}" if isinstance(like, dict) else _kind(like))
        return {k: _decode(v, ctx, like[k] if checked else _NO_LIKE, f"{at}[{k!r}]", depth + 1)
                for k, v in zip(keys, items)}
    if tag not in ("list", "tuple", "namedtuple"):
        bad()
    fields = spec.get("fields") if tag == "namedtuple" else None
    if tag == "namedtuple" and not (isinstance(spec.get("name"), str) and isinstance(fields, list)
                                    and len(fields) == len(items) and all(isinstance(f, str) for f in fields)):
        bad()
    described = f"{spec['name']}{tuple(fields)}" if fields is not None else f"{tag} of {len(items)}"
    if checked:
        like_fields = getattr(type(like), "_fields", None) if isinstance(like, tuple) else None
        same_kind = isinstance(like, list) if tag == "list" else isinstance(like, tuple)
        if (not same_kind or len(like) != len(items)
                or (fields is not None and like_fields is not None
                    and (spec["name"], fields) != (type(like).__name__, list(like_fields)))):
            _mismatch(at, described, _kind(like))
        fields = list(like_fields) if like_fields is not None else fields
    children = [_decode(v, ctx, like[i] if checked else _NO_LIKE,
                        f"{at}.{fields[i]}" if fields is not None else f"{at}[{i}]", depth + 1)
                for i, v in enumerate(items)]
    if checked and hasattr(type(like), "_fields"):
        return type(like)(*children)
    return children if tag == "list" else tuple(children)


def load(path: str | os.PathLike, like: Any = None) -> Any:
    r"""Read a pytree written by :func:`save`, optionally checking it against ``like``.

    Nothing in the file is executed or imported: the header is JSON parsed into a fixed set
    of container kinds, and every size it claims is checked against the file size (and a
    CRC-32 against the bytes) before arrays are read.

    Args:
      path: a file written by :func:`save`.
      like: optional pytree of the expected structure — e.g. freshly initialised params and
        ``optimizer.init(params)``, or ``jax.eval_shape`` of them. Its containers, dict
        keys, Python scalar types, and every array's shape and dtype must match; its
        NamedTuple types (optax states) and list/tuple kinds are used to rebuild the tree.

    Returns:
      The tree, arrays as ``jax.Array`` on the default device, typed PRNG keys as typed
      keys, Python scalars as themselves. Without ``like``, NamedTuples come back as
      plain tuples.

    Raises:
      CheckpointError: (a ``ValueError``) the file is empty, truncated, foreign,
        corrupted or crafted, or it does not match ``like``; the message names the file
        or the first differing leaf's path (e.g. ``tree['params'][0]['w']``).
      OSError: the file cannot be opened.

    Example:
      >>> import os, tempfile, jax.numpy as jnp
      >>> f = os.path.join(tempfile.mkdtemp(), "p.ckpt")
      >>> save(f, {"w": jnp.zeros((2, 3))})
      >>> load(f, like={"w": jnp.zeros((2, 4))})
      Traceback (most recent call last):
      ...
      fnn.checkpoint.CheckpointError: checkpoint.load: like must match the checkpoint's structure, shapes and dtypes; got float32[2, 4] in like but float32[2, 3] in the checkpoint at tree['w']
    """
    path = _fspath("checkpoint.load", path)
    with open(path, "rb") as f:
        spec, arrays = _format.read(f, os.fstat(f.fileno()).st_size, path)
    ctx = {"path": path, "arrays": arrays, "used": set()}
    tree = _decode(spec, ctx, _NO_LIKE if like is None else like, "tree", 0)
    if len(ctx["used"]) != len(arrays):
        _format.corrupt(path, "arrays that the tree does not use")
    return tree
