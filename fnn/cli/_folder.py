"""The output folder of a run: staged beside ``--out``, swapped in whole (private).

``fnn train`` writes everything into ``.<name>.partial`` next to the output folder — the
training state for ``--resume`` while it trains, then the run's files, each written
atomically and ``config.json`` last — and only then renames it over ``--out`` (the
previous folder is moved aside first and deleted after; Ctrl-C is held off during the
two renames). So ``--out`` is always the previous run or the complete new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading

from fnn._checkpoint_format import atomic_write
from fnn.cli._options import check_config

__all__ = ["CHECKPOINT", "CONFIG", "HISTORY", "STATE", "MODEL_STATE", "OPTIONS", "write_json", "read_json", "stage",
           "swap", "read_run"]

CHECKPOINT, CONFIG, HISTORY = "params.ckpt", "config.json", "history.json"
STATE, OPTIONS = "train_state.ckpt", "options.json"  # only in the staging folder
MODEL_STATE = "model_state.ckpt"  # batch norm's running averages (runs of a StatefulLayer)


def write_json(path: str, value) -> None:
    """``value`` as JSON at ``path``, atomically (temp file, fsync, rename)."""
    atomic_write(path, [json.dumps(value, indent=2).encode("utf-8")], fn="fnn train")


def read_json(path: str):
    """Parsed JSON; invalid JSON is a ValueError that names the file."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"{path} must be valid JSON; got {getattr(e, 'msg', 'undecodable text')} "
                         f"(line {getattr(e, 'lineno', '?')})") from None


def stage(out: str, resume: bool) -> str:
    """Check that ``out`` can be written and return its staging folder (made, or kept to resume)."""
    out = os.path.normpath(out)
    parent, name = os.path.split(out)
    parent = parent or os.curdir
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out must be a folder; got {out!r}, which is a file")
    if os.path.isdir(out) and not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"--out must be a folder you can write; got {out!r}, which is not writable")
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out must be in a folder that can be made; got {out!r} ({e.strerror})") from None
    staging = os.path.join(parent, f".{name}.partial")
    if resume:
        if not os.path.isfile(os.path.join(staging, STATE)):
            raise ValueError(f"--resume needs an interrupted run of {out!r}; got none ({staging!r} "
                             f"holds no {STATE})")
        return staging
    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.mkdir(staging)
        write_json(os.path.join(staging, ".probe"), {})
        os.unlink(os.path.join(staging, ".probe"))
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise ValueError(f"--out must be a folder you can write; got {out!r} ({e.strerror})") from None
    return staging


@contextlib.contextmanager
def _no_interrupt():
    """Hold SIGINT off (delivered right after) so that the two renames happen together."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def swap(staging: str, out: str) -> None:
    """Rename the finished ``staging`` folder over ``out``; the old one is deleted after."""
    out = os.path.normpath(out)
    parent, name = os.path.split(out)
    old = os.path.join(parent or os.curdir, f".{name}.old-{os.getpid()}")
    with _no_interrupt():
        if os.path.isdir(out):
            os.rename(out, old)
        os.rename(staging, out)
        fd = os.open(parent or os.curdir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    shutil.rmtree(old, ignore_errors=True)


def read_run(folder: str) -> dict:
    """The config.json of a finished run in ``folder``, after checking that all its files are there."""
    config_path = os.path.join(folder, CONFIG)
    if not os.path.isfile(config_path):
        raise ValueError(f"path must be an output folder of 'fnn train' (with {CONFIG}); "
                         f"got {folder!r}, which has no {CONFIG}")
    doc = read_json(config_path)
    check_config(doc, config_path)
    files = doc.get("files", [CHECKPOINT, CONFIG, HISTORY])
    if not (isinstance(files, list) and all(isinstance(f, str) and os.sep not in f for f in files)):
        raise ValueError(f"{config_path}: files must be a list of file names; got {files!r:.60}")
    for name in files:
        path = os.path.join(folder, name)
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            raise ValueError(f"path must be a complete run of 'fnn train'; got {folder!r}, whose {name} "
                             f"is {'empty' if os.path.isfile(path) else 'missing'}")
    history = read_json(os.path.join(folder, HISTORY))
    if not (isinstance(history, dict) and all(isinstance(v, list) for v in history.values())):
        raise ValueError(f"{os.path.join(folder, HISTORY)} must map names to per-epoch lists")
    return doc
