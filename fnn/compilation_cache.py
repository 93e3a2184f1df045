"""Compiled programs kept on disk, so that a new process skips XLA compilation.

A short training run is mostly compilation: on 2 CPU cores, 100 epochs of a 64-128-10
MLP on the digits data take ~0.1 s to run and ~1 s to trace and compile (model init
included). JAX can keep every compiled executable in a directory and load it in a
later process when the same program (same shapes, dtypes, options, jax version and
device) is compiled again; :func:`enable` turns that on for all programs, however
quickly they compiled. ``fnn train`` and ``fnn evaluate`` enable it by default.

Programs are cached by the hash of their XLA module; a different model, batch size or
jax version is simply a new entry. The directory holds one file per program (tens to
hundreds of KB each on CPU) and can be deleted at any time.
"""

from __future__ import annotations

import os

import jax

from fnn import _checks

__all__ = ["enable", "default_dir", "ENV_VAR", "MAX_BYTES"]

#: Environment variable with the cache directory; ``off`` (or ``0``, ``none``, empty)
#: makes :func:`default_dir` return None, which the ``fnn`` command reads as "disabled".
ENV_VAR = "FNN_COMPILATION_CACHE"

#: Size at which JAX evicts the least recently used entries (its eviction needs the
#: ``filelock`` package, one of fnn's dependencies: every process that shares the
#: directory then keeps the access-time files that eviction reads).
MAX_BYTES = 512 * 2**20

_OFF = {"", "0", "off", "none", "false", "no"}


def default_dir() -> str | None:
    """``$FNN_COMPILATION_CACHE``, else ``$XDG_CACHE_HOME/fnn/xla`` (``~/.cache/fnn/xla``).

    Returns None when the variable says off.

    Example:
      >>> import fnn
      >>> path = fnn.compilation_cache.default_dir()     # e.g. /home/me/.cache/fnn/xla
    """
    value = os.environ.get(ENV_VAR)
    if value is not None:
        return None if value.strip().lower() in _OFF else os.path.abspath(os.path.expanduser(value))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fnn", "xla")


def enable(path: str | os.PathLike | None = None) -> str:
    """Cache every compiled XLA program of this process in ``path`` (made if missing).

    Sets JAX's persistent compilation cache (``jax_compilation_cache_dir``) with no
    minimum compile time (JAX's default caches only programs that took over a second,
    which leaves out most of fnn's) and a :data:`MAX_BYTES` size limit. It is global to
    the process, like any ``jax.config`` setting; call it before the first compilation.

    Args:
      path: the directory; default :func:`default_dir` (``~/.cache/fnn/xla``).

    Returns:
      The absolute path of the cache directory.

    Raises:
      ValueError: ``path`` is None and ``$FNN_COMPILATION_CACHE`` says off.
      TypeError: ``path`` is not a path.
    """
    if path is None:
        path = default_dir()
        if path is None:
            _checks.fail("compilation_cache.enable", "path",
                         f"be given while ${ENV_VAR} disables the default", repr(os.environ[ENV_VAR]))
    elif not isinstance(path, (str, os.PathLike)):
        _checks.fail("compilation_cache.enable", "path", "be a directory path",
                     _checks.describe(path), TypeError)
    path = os.path.abspath(os.fspath(path))
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return path
