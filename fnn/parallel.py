r"""Data parallelism: the same :func:`fnn.training.fit`, across every visible device.

The devices form a 1-D mesh with one axis, ``"data"``. Params, optimizer state and the
dataset are replicated; inside the compiled loop every batch gathered from the data is
constrained to be sharded along the batch axis, so device ``d`` computes the forward
and backward stage for its ``batch_size / D`` examples. Gradients are means over the
batch, so XLA inserts the all-reduce that sums the per-device partial gradients; every
device then applies the same update to its replica. This is plain ``jax.jit`` with
``jax.sharding`` (no ``pmap``): the program is the single-device one plus the
collectives, and the result equals the single-device run up to float32 summation order.

Same code on other hardware:

- **GPU / TPU**: nothing changes; ``jax.devices()`` lists the accelerators.
- **Several CPU devices for testing**: start Python with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
- **Multi-host** (several processes, one per host, each with local devices): call
  ``jax.distributed.initialize()`` first in every process, then this ``fit`` with the
  same arguments in every process. ``jax.devices()`` is then global and the mesh spans
  all processes (process 0's devices first). Each process passes the whole dataset, or
  with ``local_data=True`` only its own rows; see :func:`fit` for the global order, the
  checks, checkpoints and what each process gets back.

Example:
  >>> import jax, fnn
  >>> x, y = fnn.datasets.blobs(jax.random.key(0), 256)
  >>> model = fnn.mlp([16, 3])
  >>> params = model.init(jax.random.key(1), (2,))
  >>> r = fnn.parallel.fit(model, params, fnn.optimizers.adam(1e-2), x, y, epochs=3,
  ...                      batch_size=32, key=jax.random.key(2), progress=False)
  >>> r.history["train_loss"].shape
  (3,)
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fnn import _checks
from fnn import _multihost
from fnn.training._arguments import FitOptions, options_from, prepare
from fnn.training._driver import run
from fnn.training._results import FitResult

__all__ = ["data_mesh", "fit"]


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``"data"`` over ``devices`` (default: all of ``jax.devices()``,
    in process order: process 0's devices first)."""
    if devices is None:
        devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    elif not hasattr(devices, "__iter__") or not all(isinstance(d, jax.Device) for d in devices):
        _checks.fail("data_mesh", "devices", "be a list of jax devices such as jax.devices()",
                     _checks.describe(devices), TypeError)
    devices = list(devices)
    if not devices:
        _checks.fail("data_mesh", "devices", "list at least one device", "an empty list")
    return Mesh(np.asarray(devices), ("data",))


def _check_process_order(mesh: Mesh) -> None:
    """Each process's devices form one block of the mesh, in process order, all equal in size."""
    owners = [d.process_index for d in mesh.devices.flat]
    per = len(owners) // jax.process_count()
    if owners != [p for p in range(jax.process_count()) for _ in range(per)]:
        _checks.fail("parallel.fit", "devices", f"hold the same number of devices of each of the "
                     f"{jax.process_count()} processes, process 0's first (the default does)",
                     f"devices of processes {owners}")


def _multiprocess_options(o: FitOptions) -> FitOptions:
    """Every process must make the same compiled calls: a fixed chunking, one stop decision."""
    if o.progress:
        _checks.fail("parallel.fit", "progress", "be False or None on several processes (the bar's "
                     "chunks follow each process's clock; use on_epoch on process 0)", o.progress)
    hook = o.on_epoch if o.on_epoch is None or not callable(o.on_epoch) else (
        _multihost.first_process_decides(o.on_epoch))
    return o._replace(progress=False, on_epoch=hook)


def _facts(o: FitOptions, params: Any, x: Any, y: Any, local_data: bool) -> dict:
    shape = lambda a: (np.shape(a), str(getattr(a, "dtype", type(a).__name__)))  # noqa: E731
    described = lambda a: f"shape {np.shape(a)} {getattr(a, 'dtype', type(a).__name__)}"  # noqa: E731
    key = o.key
    return {"x": (shape(x), described(x)), "y": (shape(y), described(y)),
            "batch_size": (o.batch_size, repr(o.batch_size)), "epochs": (o.epochs, repr(o.epochs)),
            "key": (key, "this key" if key is not None else "None"),
            "params": (params, "these params"),
            "eval_data": (jax.tree.map(shape, o.eval_data), "this eval_data"),
            "local_data": (local_data, repr(local_data)),
            "initial": (o.initial if isinstance(o.initial, str) else o.initial is None, "this initial")}


def fit(model: Any, params: Any, optimizer: Any, x: Any, y: Any, *,
        devices: Sequence[jax.Device] | None = None, local_data: bool = False,
        **kwargs: Any) -> FitResult:
    r"""Data-parallel :func:`fnn.training.fit` over ``devices`` (default all, of all processes).

    Takes every keyword of :func:`fnn.training.fit`. ``batch_size`` must be a multiple of
    the number of devices so every device gets an equal share of each full batch (the
    ragged last batch, if any, is sharded only when it divides evenly too). Returns the
    same :class:`fnn.training.FitResult` as ``fit``, with replicated arrays. A general
    model's batch statistics (batch norm) are those of the whole global batch, so the
    sharded run equals the single-device one.

    On several processes (``jax.distributed.initialize()``) every process calls this
    with the same arguments; the result is the same on each, and equal to the run of one
    process on as many devices. ``x`` and ``y`` are either the whole dataset on every
    process (``local_data=False``) or, with ``local_data=True``, process ``p``'s own
    ``n`` rows: the global dataset is then the processes' rows in process order, global
    example ``i`` being row ``i - p n`` of process ``p = i // n`` (every process passes
    the same ``n``), and the data order, shuffles included, is over that global index.
    ``eval_data`` is always whole on every process. The result's arrays are this
    process's copies (fully addressable; the history as NumPy arrays); checkpoints are written by process 0 alone,
    atomically, and every process returns only once they are on disk (a ``checkpoint``
    path on storage all processes read, for ``initial=path``). The progress bar is off;
    ``on_epoch`` runs on every process and process 0's return value decides the stop.

    Args:
      devices: the devices to shard over, process 0's first (default all of them).
      local_data: ``x`` and ``y`` are this process's rows of the global dataset.

    Raises:
      ValueError: if ``batch_size`` is not a multiple of the device count, or when the
        processes disagree on the data's shapes, ``batch_size``, ``epochs``, ``key``,
        ``params`` or ``initial``.
    """
    mesh = data_mesh(devices)
    batch_size = _checks.positive_int("parallel.fit", "batch_size", kwargs.get("batch_size", 32))
    if batch_size % mesh.size:
        nearest = max(mesh.size, round(batch_size / mesh.size) * mesh.size)
        _checks.fail("parallel.fit", "batch_size", f"be a multiple of the {mesh.size} devices "
                     f"(e.g. {nearest})", batch_size)
    local_data = _checks.boolean("parallel.fit", "local_data", local_data)
    options = options_from("parallel.fit", kwargs)
    if _multihost.is_multiprocess():
        _check_process_order(mesh)
        options = _multiprocess_options(options)
        _multihost.check_agree("parallel.fit", _facts(options, params, x, y, local_data))
    p = prepare("parallel.fit", model, params, optimizer, x, y, options,
                batch_sharding=NamedSharding(mesh, PartitionSpec("data")))
    params, opt_state, model_state, eval_data, key = _multihost.replicated(
        (p.params, p.opt_state, p.model_state, p.eval_data, p.key), mesh)
    x, y = ((_multihost.rows(p.x, mesh), _multihost.rows(p.y, mesh)) if local_data
            else _multihost.replicated((p.x, p.y), mesh))
    result = run(p._replace(params=params, opt_state=opt_state, model_state=model_state, x=x, y=y,
                            eval_data=eval_data, key=key))
    if not _multihost.is_multiprocess():
        return result
    result = _multihost.local_view(result)
    return result._replace(history={k: np.asarray(v) for k, v in result.history.items()})
