r"""Where the arrays of :func:`fnn.training.fit_batches` live: one device, or a data mesh.

On one device (``Placement()``) every array goes to the default device. On a 1-D mesh
named ``"data"`` (``Placement(mesh)``, :func:`fnn.parallel.fit_batches`) params,
optimizer and model state, keys and ``eval_data`` are replicated and a chunk
``xs (k, b, ...)`` is sharded over its batch axis ``b``: device ``d`` of ``D`` holds
examples ``[d b / D, (d + 1) b / D)`` of every batch, and XLA all-reduces the gradient
means. A batch whose size does not divide ``D`` (a short last batch) is replicated
instead: every device computes it whole, the same result.

Under ``jax.distributed`` each process's batches hold its own rows: the global batch is
the processes' batches concatenated in process order (the mesh's devices are in process
order, so each process's rows already lie on its own devices:
``jax.make_array_from_process_local_data``). Every process must then make the same
compiled calls, so each chunk's number of batches and shapes, and each epoch's end, are
compared across processes before they are used (one small all-gather per chunk).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fnn import _checks
from fnn import _multihost
from fnn.training._arguments import FitOptions

__all__ = ["Placement", "multiprocess_options", "facts"]


class Placement:
    """One device (``mesh=None``) or the devices of ``mesh`` (data parallel); see the module."""

    def __init__(self, mesh: Mesh | None = None):
        self.mesh = mesh
        self.multiprocess = mesh is not None and _multihost.is_multiprocess()
        self.processes = jax.process_count() if self.multiprocess else 1

    def tree(self, tree: Any) -> Any:
        """``tree`` (the same value on every process) where the run keeps it: replicated."""
        return tree if self.mesh is None else _multihost.replicated(tree, self.mesh)

    def chunk(self, a: Any) -> jax.Array:
        """A stacked chunk ``(k, b, ...)`` (this process's rows) on the device(s), sharded over ``b``."""
        if self.mesh is None:
            return jax.device_put(a)
        mesh, local_devices = self.mesh, self.mesh.size // self.processes
        sharded = NamedSharding(mesh, PartitionSpec(None, "data"))
        if not self.multiprocess:
            return jax.device_put(a, sharded if a.shape[1] % mesh.size == 0 else NamedSharding(mesh, PartitionSpec()))
        local = np.asarray(a)
        shape = (local.shape[0], local.shape[1] * self.processes) + local.shape[2:]
        if local.shape[1] % local_devices == 0:
            return jax.make_array_from_process_local_data(sharded, local, shape)
        # A batch that does not split over this process's devices: every process's rows
        # gathered on the host (process order), then replicated.
        every = np.asarray(multihost_utils.process_allgather(local))        # (processes, k, b, ...)
        return _multihost.replicated(np.moveaxis(every, 0, 1).reshape(shape), mesh)

    def agree(self, fn: str, facts: dict) -> None:
        """Raise unless every process has the same ``facts`` ``{arg: (value, shown)}``
        (several processes only: :func:`fnn._multihost.check_agree`)."""
        if self.multiprocess:
            _multihost.check_agree(fn, facts)

    def check_batch_size(self, fn: str, arg: str, batch_size: int) -> None:
        """A (global) batch of ``batch_size`` examples must split evenly over the mesh's devices."""
        size = 1 if self.mesh is None else self.mesh.size
        if batch_size % size:
            nearest = max(size, round(batch_size / size) * size)
            _checks.fail(fn, arg, f"be a multiple of the {size} devices (e.g. {nearest})", batch_size)

    def local(self, tree: Any) -> Any:
        """``tree`` readable on this process alone (its copies of replicated arrays)."""
        return _multihost.local_view(tree) if self.multiprocess else tree

    def write(self, write: Callable[[], None]) -> None:
        """A file write: by process 0 alone on several processes, all waiting for it."""
        _multihost.once(write, "fnn.checkpoint")


def multiprocess_options(fn: str, o: FitOptions) -> FitOptions:
    """Every process must make the same compiled calls: a fixed chunking, one stop decision."""
    if o.progress:
        _checks.fail(fn, "progress", "be False or None on several processes (the bar's "
                     "chunks follow each process's clock; use on_epoch on process 0)", o.progress)
    hook = o.on_epoch if o.on_epoch is None or not callable(o.on_epoch) else (
        _multihost.first_process_decides(o.on_epoch))
    return o._replace(progress=False, on_epoch=hook)


def facts(o: FitOptions, params: Any, x: Any, y: Any, **more: Any) -> dict:
    """What every process must agree on before a run: :func:`fnn._multihost.check_agree`'s facts."""
    shape = lambda a: (np.shape(a), str(getattr(a, "dtype", type(a).__name__)))  # noqa: E731
    described = lambda a: f"shape {np.shape(a)} {getattr(a, 'dtype', type(a).__name__)}"  # noqa: E731
    key = o.key
    return {"x": (shape(x), described(x)), "y": (shape(y), described(y)),
            "batch_size": (o.batch_size, repr(o.batch_size)), "epochs": (o.epochs, repr(o.epochs)),
            "key": (key, "this key" if key is not None else "None"),
            "params": (params, "these params"),
            "eval_data": (jax.tree.map(shape, o.eval_data), "this eval_data"),
            **{name: (getattr(o, name), repr(getattr(o, name)))     # they change the compiled calls
               for name in ("grad_norms", "early_stopping", "accumulation_steps")},
            **{name: (value, repr(value)) for name, value in more.items()},
            "initial": (o.initial if isinstance(o.initial, str) else o.initial is None, "this initial")}
