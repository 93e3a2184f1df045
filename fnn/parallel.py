r"""Data parallelism: the same :func:`fnn.training.fit` (and :func:`fnn.training.fit_batches`:
:func:`fit_batches`), across every visible device.

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
from fnn.training._arguments import options_from, prepare
from fnn.training._batches import batch_run
from fnn.training._placement import Placement, facts, multiprocess_options
from fnn.training._driver import run
from fnn.training._results import FitResult

__all__ = ["data_mesh", "fit", "fit_batches"]


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


def _check_process_order(fn: str, mesh: Mesh) -> None:
    """Each process's devices form one block of the mesh, in process order, all equal in size."""
    owners = [d.process_index for d in mesh.devices.flat]
    per = len(owners) // jax.process_count()
    if owners != [p for p in range(jax.process_count()) for _ in range(per)]:
        _checks.fail(fn, "devices", f"hold the same number of devices of each of the "
                     f"{jax.process_count()} processes, process 0's first (the default does)",
                     f"devices of processes {owners}")


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
    Placement(mesh).check_batch_size("parallel.fit", "batch_size", batch_size)
    local_data = _checks.boolean("parallel.fit", "local_data", local_data)
    options = options_from("parallel.fit", kwargs)
    if _multihost.is_multiprocess():
        _check_process_order("parallel.fit", mesh)
        options = multiprocess_options("parallel.fit", options)
        _multihost.check_agree("parallel.fit", facts(options, params, x, y, local_data=local_data))
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


def fit_batches(model: Any, params: Any, optimizer: Any, batches: Any, *,
                devices: Sequence[jax.Device] | None = None, **kwargs: Any) -> FitResult:
    r"""Data-parallel :func:`fnn.training.fit_batches` over ``devices`` (default all, of all processes).

    Takes every keyword of :func:`fnn.training.fit_batches`. Each chunk of stacked
    batches ``(k, b, ...)`` is sent to the devices sharded over its batch axis (device
    ``d`` of ``D`` receives only its ``b / D`` examples of every batch); params,
    optimizer and model state are replicated and the gradient means all-reduced, as in
    :func:`fit`. The result equals ``fnn.training.fit_batches`` on one device fed the same
    batches, to float32 rounding. A batch whose size is not a multiple of ``D`` (a short
    last batch) is replicated and computed whole on every device; the first batch's size
    must be a multiple of ``D``.

    On several processes (``jax.distributed.initialize()``) each process feeds its own
    batches: process ``p``'s ``batches`` yield its rows, and global batch ``i`` is the
    ``i``-th batches of all processes concatenated in process order (as
    ``local_data=True`` of :func:`fit`). Every process must yield the same number of
    batches of the same shapes in every epoch; each chunk and each epoch's end are
    compared across processes (one small all-gather per chunk, which waits for the
    chunk training) and a mismatch raises on every process. Checkpoints, the progress
    bar, ``on_epoch`` and the returned arrays are as in :func:`fit` on several processes.

    Args:
      devices: the devices to shard over, process 0's first (default all of them).

    Raises:
      ValueError: if the first (global) batch's size is not a multiple of the device
        count, or when the processes disagree on the batches' number or shapes, on
        ``epochs``, ``steps``, ``steps_per_call``, ``key``, ``params`` or ``initial``.

    Example:
      >>> import jax, numpy as np, fnn
      >>> x, y = fnn.datasets.blobs(jax.random.key(0), 512)
      >>> def batches(epoch):                # NumPy batches of 64, reshuffled per epoch
      ...     order = np.random.default_rng(epoch).permutation(512)
      ...     return [(np.asarray(x)[i], np.asarray(y)[i]) for i in order.reshape(8, 64)]
      >>> model = fnn.mlp([16, 3])
      >>> r = fnn.parallel.fit_batches(model, model.init(jax.random.key(1), (2,)),
      ...                              fnn.optimizers.adam(1e-2), batches, epochs=3,
      ...                              progress=False)
      >>> r.history["train_loss"].shape
      (3,)
    """
    mesh = data_mesh(devices)
    if _multihost.is_multiprocess():
        _check_process_order("parallel.fit_batches", mesh)
    return batch_run("parallel.fit_batches", model, params, optimizer, batches, kwargs, Placement(mesh))
