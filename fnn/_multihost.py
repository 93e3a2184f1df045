r"""JAX's multi-controller runtime for fnn: global arrays, agreement checks, one writer.

Under ``jax.distributed.initialize()`` every process runs the same Python program on
its own devices, and a ``jax.Array`` spans the devices of all processes. A process can
only place data on its own devices, so a global array is built from what each process
holds: :func:`replicated` (every process has the whole value) or :func:`rows` (each
process has its block of rows). Every process must make the same compiled calls in the
same order, so the facts that decide them are compared first (:func:`check_agree`).
With one process every function here is the plain single-controller operation.
"""

from __future__ import annotations

import functools
import zlib
from typing import Any, Callable, Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fnn import _checks

__all__ = ["is_multiprocess", "replicated", "rows", "local_view", "check_agree", "once",
           "first_process_decides"]


def is_multiprocess() -> bool:
    """True under ``jax.distributed`` with more than one process."""
    return jax.process_count() > 1


def _is_key(leaf: Any) -> bool:
    return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _global(value: np.ndarray, sharding: NamedSharding) -> jax.Array:
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def replicated(tree: Any, mesh: Mesh) -> Any:
    """Every array leaf of ``tree`` (the same value on every process) replicated over ``mesh``.

    Typed PRNG keys travel as their key data and are wrapped again on the mesh.
    """
    sharding = NamedSharding(mesh, PartitionSpec())

    def put(leaf):
        if isinstance(leaf, jax.Array) and leaf.committed and leaf.sharding.is_equivalent_to(sharding, leaf.ndim):
            return leaf
        if _is_key(leaf):
            data = _global(np.asarray(jax.random.key_data(leaf)), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
        if isinstance(leaf, (jax.Array, np.ndarray)):
            return _global(np.asarray(leaf), sharding)
        return leaf
    return jax.tree.map(put, tree)


def rows(x: Any, mesh: Mesh) -> jax.Array:
    """The global array whose rows ``[p * n, (p + 1) * n)`` are process ``p``'s ``x`` (``n`` rows),
    replicated over ``mesh``.

    The rows are first sharded over ``mesh``'s ``"data"`` axis, whose devices are in
    process order (:func:`fnn.parallel.data_mesh`), so each process's block lies on its
    devices; one all-gather then replicates them (the training program is then the one
    of replicated data).
    """
    local = np.asarray(x)
    shape = (local.shape[0] * jax.process_count(),) + local.shape[1:]
    sharded = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("data")), local, shape)
    return _gather(sharded, NamedSharding(mesh, PartitionSpec()))


@functools.partial(jax.jit, static_argnums=1)
def _gather(x: jax.Array, sharding: NamedSharding) -> jax.Array:
    return jax.lax.with_sharding_constraint(x, sharding)


def local_view(tree: Any) -> Any:
    """``tree`` with each replicated global array replaced by its copy on a local device.

    The result is fully addressable: it can be printed, saved and used on this process
    alone. Arrays already fully addressable are returned as they are.
    """
    def local(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return leaf.addressable_data(0)
        return leaf
    return jax.tree.map(local, tree)


def _fingerprint(value: Any) -> int:
    """A 31-bit digest of ``value``: array bytes, shapes and dtypes, or its ``repr``."""
    digest = 0
    for leaf in jax.tree.leaves(value):
        if _is_key(leaf):
            leaf = jax.random.key_data(leaf)
        if isinstance(leaf, (jax.Array, np.ndarray)):
            data = np.asarray(leaf)
            digest = zlib.crc32(f"{data.shape}{data.dtype}".encode(), digest)
            digest = zlib.crc32(np.ascontiguousarray(data).tobytes(), digest)
        else:
            digest = zlib.crc32(repr(leaf).encode(), digest)
    digest = zlib.crc32(repr(jax.tree.structure(value)).encode(), digest)
    return digest & 0x7FFFFFFF


def check_agree(fn: str, facts: Mapping[str, tuple[Any, str]]) -> None:
    """Raise unless every process passed the same ``facts``: ``{arg: (value, shown)}``.

    One small all-gather of a digest per fact. ``shown`` is how this process describes
    its value in the message (the digests do not say what the others had).
    """
    if not is_multiprocess():
        return
    names = list(facts)
    mine = np.asarray([_fingerprint(facts[k][0]) for k in names], np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine))       # (processes, facts)
    me = jax.process_index()
    for j, name in enumerate(names):
        others = [p for p in range(every.shape[0]) if every[p, j] != mine[j]]
        if others:
            _checks.fail(fn, name, "be the same on every process", f"{facts[name][1]} on process {me}, "
                         f"another value on process{'es' if len(others) > 1 else ''} "
                         f"{', '.join(map(str, others))}")


def once(write: Callable[[], None], name: str) -> None:
    """Run ``write`` (a file write) on process 0 only; every process waits until it is done,
    so a file written here can be read by all of them when this returns."""
    if not is_multiprocess():
        write()
        return
    try:
        if jax.process_index() == 0:
            write()
    finally:
        multihost_utils.sync_global_devices(name)


def first_process_decides(decide: Callable[..., Any]) -> Callable[..., bool]:
    """``decide(*args) is True`` as process 0 answered it, on every process (one broadcast).

    ``decide`` runs on every process (a hook that logs or plots still runs everywhere);
    the processes then agree, since a stop on one alone would leave the others waiting.
    """
    def agreed(*args: Any) -> bool:
        mine = np.bool_(decide(*args) is True)
        if not is_multiprocess():
            return bool(mine)
        return bool(multihost_utils.broadcast_one_to_all(mine))
    return agreed
