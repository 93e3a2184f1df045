r"""The fnn checkpoint container (private): bytes in, bytes out, every size bound-checked.

File layout (format version 1, all integers little-endian)::

    8 bytes   magic b"FNNCKPT\0"
    4 bytes   format version (uint32)
    8 bytes   header length H (uint64)
    4 bytes   CRC-32 of the header (uint32)
    H bytes   header: UTF-8 JSON {"format", "version", "tree", "arrays"}
    ...       the raw bytes of every array, C order, little-endian, one after the other

``"arrays"`` lists, per array, its pytree path (informative), dtype name, shape, byte
count and CRC-32. ``"tree"`` is interpreted by :mod:`fnn.checkpoint`. Reading checks the
magic, the version, the header size against the file size, both checksums, every dtype
against an allow-list and every byte count against the shape and the file size, before
any array is allocated; any failure raises :class:`CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import stat
import struct
import sys
import zlib
from typing import Any, NoReturn

import jax.numpy as jnp
import numpy as np

from fnn._checks import fail, message

MAGIC = b"FNNCKPT\x00"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sIQI")  # magic, version, header length, header CRC-32
_MAX_DIM = 2**40
_MAX_ELEMENTS = 2**62  # NumPy indexes with int64: a shape beyond it cannot exist, even empty
_MAX_STEM = 200  # the temp name adds at most 25 characters; NAME_MAX is 255
_MAX_NDIM = 32
DTYPES = {np.dtype(d).name: np.dtype(d) for d in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
    np.uint64, np.float16, np.float32, np.float64, np.complex64, np.complex128,
    jnp.bfloat16, jnp.float8_e4m3fn, jnp.float8_e5m2)}  # the ml_dtypes types, via jax


class CheckpointError(ValueError):
    """A file is not an intact fnn checkpoint, or does not match ``like``."""


CheckpointError.__module__ = "fnn.checkpoint"  # where users import and catch it


def corrupt(path: str, what: str) -> NoReturn:
    """Raise the one error of a bad file."""
    raise CheckpointError(message("checkpoint.load", "path", "be an intact fnn checkpoint", f"{what} ({path!r})"))


def array_bytes(value: Any, path: str) -> tuple:
    """``(dtype name, shape, little-endian uint8 view)`` of an array leaf."""
    arr = np.asarray(value)
    arr = arr if arr.flags.c_contiguous else arr.copy(order="C")  # ascontiguousarray makes 0-d 1-d
    if arr.dtype.name not in DTYPES:
        fail("checkpoint.save", "tree", f"hold arrays of dtypes {sorted(DTYPES)}",
             f"dtype {arr.dtype} at {path}", TypeError)
    if sys.byteorder == "big" and arr.dtype.itemsize > 1:
        arr = arr.byteswap()
    return arr.dtype.name, list(arr.shape), arr.reshape(-1).view(np.uint8)


def pack(tree_spec: dict, blobs: list) -> list:
    """The file's bytes, as chunks: prefix, header, then each array of ``blobs``."""
    arrays = [{"path": p, "dtype": d, "shape": s, "nbytes": int(raw.size), "crc32": zlib.crc32(raw)}
              for p, (d, s, raw) in blobs]
    header = json.dumps({"format": "fnn.checkpoint", "version": FORMAT_VERSION, "tree": tree_spec,
                         "arrays": arrays}, separators=(",", ":")).encode("utf-8")
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header), zlib.crc32(header))
    return [prefix, header] + [raw for _, (_, _, raw) in blobs]


def write_chunks(f, chunks) -> None:
    for chunk in chunks:
        f.write(chunk)


def _temp_stem(name: str) -> str:
    """The target's basename, shortened (with a hash) so that the temp name fits NAME_MAX."""
    if len(name) <= _MAX_STEM:
        return name
    return name[:_MAX_STEM - 9] + "~" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but not ours (EPERM), or cannot tell: keep its file
        return True
    return True


def _remove_stale(folder: str, stem: str, own: str) -> None:
    """Delete temp files of the same target left by killed saves.

    Only names of the temp pattern, regular files (not links), older than our own temp
    file and made by a process that no longer runs: a save in progress is never touched.
    """
    pattern = re.compile(r"\." + re.escape(stem) + r"\.(\d+)-[0-9a-f]{8}\.tmp")
    try:
        mine = os.stat(os.path.join(folder, own)).st_mtime_ns
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or name == own or _alive(int(match.group(1))):
            continue
        stale = os.path.join(folder, name)
        try:
            info = os.lstat(stale)
            if stat.S_ISREG(info.st_mode) and info.st_mtime_ns < mine:
                os.unlink(stale)
        except OSError:
            pass


def target(fn: str, path: str) -> tuple:
    """``(folder, basename)`` to write ``path`` into, resolved as the kernel will.

    The folder is ``dirname(path)`` as given (``link/..`` is resolved by the kernel, not
    lexically); a symlink at ``path`` is followed, so its target is replaced, not the link.
    """
    if os.path.islink(path):
        path = os.path.realpath(path)
    folder, name = os.path.split(path)
    if name in ("", ".", ".."):
        fail(fn, "path", "name a file", repr(path))
    return folder or os.curdir, name


def atomic_write(path: str, chunks, fn: str = "checkpoint.save") -> None:
    """Write ``chunks`` to a temp file beside ``path``, fsync, rename over ``path``."""
    folder, name = target(fn, path)
    path, stem = os.path.join(folder, name), _temp_stem(name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        own = f".{stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        tmp = os.path.join(folder, own)
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for a plain open()
            break
        except FileExistsError:
            continue
    try:
        _remove_stale(folder, stem, own)
        with os.fdopen(fd, "wb") as f:
            write_chunks(f, chunks)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable; not possible on every OS (Windows)
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _foreign(head: bytes) -> str:
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle file (fnn never unpickles)"
    if head.startswith(b"PK\x03\x04"):
        return "a zip/npz file"
    if head.startswith(b"\x93NUMPY"):
        return "a .npy file"
    return "a file without fnn's magic bytes"


def _array_entry(entry: Any, path: str) -> tuple:
    entry = entry if isinstance(entry, dict) else {}
    dtype = DTYPES.get(entry.get("dtype")) if isinstance(entry.get("dtype"), str) else None
    shape, nbytes, crc = entry.get("shape"), entry.get("nbytes"), entry.get("crc32")
    if (dtype is None or not isinstance(shape, list) or len(shape) > _MAX_NDIM
            or not all(type(d) is int and 0 <= d <= _MAX_DIM for d in shape)
            or math.prod(max(d, 1) for d in shape) > _MAX_ELEMENTS
            or type(nbytes) is not int or type(crc) is not int
            or nbytes != math.prod(shape) * dtype.itemsize):
        corrupt(path, "a malformed array entry in the header")
    return dtype, tuple(shape), nbytes, crc


def read(f, size: int, path: str) -> tuple:
    """Parse and bound-check the header, then read every array; return (tree spec, arrays)."""
    raw = f.read(_PREFIX.size)
    if not raw:
        corrupt(path, "an empty file")
    n = min(len(raw), len(MAGIC))
    if raw[:n] != MAGIC[:n]:
        corrupt(path, _foreign(raw))
    if len(raw) < _PREFIX.size:
        corrupt(path, f"a truncated file ({size} bytes)")
    _, version, header_len, header_crc = _PREFIX.unpack(raw)
    if version != FORMAT_VERSION:
        corrupt(path, f"format version {version}; this fnn reads version {FORMAT_VERSION}")
    if header_len > size - _PREFIX.size:
        corrupt(path, f"a truncated file: the header claims {header_len} bytes, {size - _PREFIX.size} follow")
    header_bytes = f.read(header_len)
    if len(header_bytes) != header_len or zlib.crc32(header_bytes) != header_crc:
        corrupt(path, "a corrupted header (CRC-32 mismatch)")
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        corrupt(path, "a header that is not valid JSON")
    if (not isinstance(header, dict) or header.get("format") != "fnn.checkpoint"
            or header.get("version") != FORMAT_VERSION or not isinstance(header.get("arrays"), list)):
        corrupt(path, "a header without the fnn.checkpoint fields")
    entries = [_array_entry(e, path) for e in header["arrays"]]
    data_size, needed = size - _PREFIX.size - header_len, sum(e[2] for e in entries)
    if needed != data_size:  # checked before any array is allocated
        corrupt(path, f"a truncated file: the arrays need {needed} bytes, {data_size} follow the header"
                 if needed > data_size else f"{data_size - needed} unexpected bytes after the arrays")
    arrays = []
    for i, (dtype, shape, nbytes, crc) in enumerate(entries):
        data = f.read(nbytes)
        if len(data) != nbytes or zlib.crc32(data) != crc:
            corrupt(path, f"corrupted data in array {i} (CRC-32 mismatch)")
        arr = np.frombuffer(data, dtype).reshape(shape)
        if dtype == np.bool_ and nbytes and np.frombuffer(data, np.uint8).max() > 1:
            corrupt(path, f"invalid bool values in array {i}")
        arrays.append(arr.byteswap() if sys.byteorder == "big" and dtype.itemsize > 1 else arr)
    return header.get("tree"), arrays
