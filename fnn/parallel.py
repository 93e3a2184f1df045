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
- **Multi-host** (several machines, each with local devices): call
  ``jax.distributed.initialize()`` first on every host (coordinator address, process
  count and id come from the cluster environment or arguments), then call this ``fit``
  with the same arguments on every host. ``jax.devices()`` is then global, the mesh spans
  all hosts, and each host must pass the same full dataset (the data are replicated).

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
from jax.sharding import Mesh

from fnn import _checks
from fnn.training._arguments import options_from
from fnn.training._fit import train
from fnn.training._results import FitResult

__all__ = ["data_mesh", "fit"]


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``"data"`` over ``devices`` (default: all of ``jax.devices()``)."""
    if devices is None:
        devices = jax.devices()
    elif not hasattr(devices, "__iter__") or not all(isinstance(d, jax.Device) for d in devices):
        _checks.fail("data_mesh", "devices", "be a list of jax devices such as jax.devices()",
                     _checks.describe(devices), TypeError)
    devices = list(devices)
    if not devices:
        _checks.fail("data_mesh", "devices", "list at least one device", "an empty list")
    return Mesh(np.asarray(devices), ("data",))


def fit(model: Any, params: Any, optimizer: Any, x: Any, y: Any, *,
        devices: Sequence[jax.Device] | None = None, **kwargs: Any) -> FitResult:
    r"""Data-parallel :func:`fnn.training.fit` over ``devices`` (default all).

    Takes every keyword of :func:`fnn.training.fit`. ``batch_size`` must be a multiple of
    the number of devices so every device gets an equal share of each full batch (the
    ragged last batch, if any, is sharded only when it divides evenly too). Returns the
    same :class:`fnn.training.FitResult` as ``fit``, with replicated arrays. A general
    model's batch statistics (batch norm) are those of the whole global batch, so the
    sharded run equals the single-device one.

    Raises:
      ValueError: if ``batch_size`` is not a multiple of the device count.
    """
    mesh = data_mesh(devices)
    batch_size = _checks.positive_int("parallel.fit", "batch_size", kwargs.get("batch_size", 32))
    if batch_size % mesh.size:
        nearest = max(mesh.size, round(batch_size / mesh.size) * mesh.size)
        _checks.fail("parallel.fit", "batch_size", f"be a multiple of the {mesh.size} devices "
                     f"(e.g. {nearest})", batch_size)
    return train("parallel.fit", model, params, optimizer, x, y, options_from("parallel.fit", kwargs),
                 mesh=mesh)
