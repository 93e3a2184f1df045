r"""09 — Data parallelism: the same training on 8 devices, with the single-device result.

What it teaches: how ``fnn.parallel.fit`` splits every batch across devices. The devices
form a 1-D mesh named ``"data"``; params and the dataset are replicated, each device runs
the forward and backward stage on its ``batch_size / 8`` examples, and because the loss
is a mean over the batch XLA inserts the all-reduce that sums the partial gradients,

.. math:: g = \frac{1}{B} \sum_{d=1}^{8} \sum_{i \in \text{shard}_d} \nabla_\theta \ell_i ,

so every device applies the same update. The result equals single-device ``fnn.fit`` up
to float32 summation order; the script trains both from the same params and batch order
and prints the largest parameter difference.

No GPUs needed: run as a script, this file sets
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` in ``os.environ`` *before importing
jax* (XLA reads it once, when the CPU backend starts), which splits the CPU into 8
simulated devices. The same code runs unchanged on 8 GPUs or a TPU slice. Imported from
a process where jax already started (the tests), it uses whatever devices exist. On a
2-core CPU, 8 simulated devices are *slower* than one — they share the same two cores and
add the collectives — so the timings show the overhead, not a speed-up; on real
accelerators each device brings its own compute.

Run (needs the ``data`` extra, ``pip install "fnn[data]"``)::

    python examples/09_data_parallel.py          # ~20 s on 2 CPU cores
    python examples/09_data_parallel.py --tiny   # seconds (what the tests run)

Writes ``09_data_parallel.png`` (train loss of both runs, on top of each other) into
``--out`` when matplotlib is installed.
"""

from __future__ import annotations

import os

if __name__ == "__main__" and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    # Before `import jax`: XLA reads its flags once, when the backend starts.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=8").strip()

import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import fnn  # noqa: E402
from fnn import plots  # noqa: E402

import _shared  # noqa: E402


def main(argv: list[str] | None = None) -> float:
    args = _shared.parser("Data-parallel fit on 8 simulated devices against the single-device fit.",
                          tiny="small and short (smoke test)",
                          seed="seed of split, init and batch order").parse_args(argv)
    hidden, epochs = (32, 2) if args.tiny else (256, 20)

    devices = jax.devices()
    batch_size = -(-64 // len(devices)) * len(devices)     # a multiple of the device count
    print(f"{len(devices)} devices: {', '.join(str(d) for d in devices[:8])}"
          f"{' ...' if len(devices) > 8 else ''}; batch {batch_size} = {len(devices)} x "
          f"{batch_size // len(devices)} examples per device")

    k_data, k_init, k_order = jax.random.split(jax.random.key(args.seed), 3)
    data = fnn.datasets.load("digits", key=k_data)
    model = fnn.mlp([hidden, data.num_classes])
    params = model.init(k_init, data.x_train.shape[1:])
    kwargs = dict(epochs=epochs, batch_size=batch_size, key=k_order,
                  eval_data=(data.x_test, data.y_test), progress=False)

    runs, seconds = {}, {}
    for name, fit in (("1 device", fnn.fit), (f"{len(devices)} devices", fnn.parallel.fit)):
        t0 = time.perf_counter()
        runs[name] = fit(model, params, fnn.optimizers.adam(2e-3), data.x_train, data.y_train, **kwargs)
        jax.block_until_ready(runs[name].params)
        seconds[name] = time.perf_counter() - t0
        h = runs[name].history
        print(f"{name:10s}: final train loss {float(h['train_loss'][-1]):.6f}  test accuracy "
              f"{float(h['eval_accuracy'][-1]):.4f}  {seconds[name]:.2f} s (compilation included)")

    single, parallel = runs.values()
    diff = max(float(jnp.max(jnp.abs(a - b)))
               for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(parallel.params)))
    sharding = parallel.params[0]["w"].sharding
    print(f"largest |param difference| after {epochs} epochs: {diff:.2e} (float32 summation order); "
          f"result params live on {len(sharding.device_set)} device(s), replicated")

    os.makedirs(args.out, exist_ok=True)
    plots.curves({name: r.history["train_loss"] for name, r in runs.items()},
                 os.path.join(args.out, "09_data_parallel.png"), log_y=True, ylabel="train loss",
                 dashed=[f"{len(devices)} devices"],
                 title=f"digits: 1 device vs {len(devices)} devices (same curve)")
    return diff


if __name__ == "__main__":
    main()
