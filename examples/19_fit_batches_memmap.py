r"""19 — Data larger than the device: training from a memory-mapped file.

What it teaches: :func:`fnn.training.fit_batches`, for data that do not fit in device
memory. The example writes a dataset to a NumPy memory-mapped file in a temporary folder,
piece by piece (never all of it in memory), sized to 1.5 times a *device budget*
(``--budget-mib``): more than the device may hold. Training then reads batches from the
file: each epoch visits the contiguous batches in a new random order (a block shuffle:
random reads of single rows from a disk would be slow), ``steps_per_call`` batches are
stacked into one chunk, sent to the device while the previous chunk trains, and trained
by one compiled ``lax.scan``. At most three chunks are on the device at once, far below
the budget; the data as a whole never is.

The data: 10 classes, 64 features, each class a Gaussian blob around its own centre
(``fnn.datasets``-style synthetic data, generated, nothing downloads); a held-out part
is kept in memory and scored after every epoch (``eval_data``).

Run::

    python examples/19_fit_batches_memmap.py                   # 96 MiB of data, ~15 s on 2 idle cores
    python examples/19_fit_batches_memmap.py --budget-mib 512  # 768 MiB of data
    python examples/19_fit_batches_memmap.py --tiny            # seconds (what the tests run)

Writes ``19_fit_batches_memmap.png`` (loss and accuracy per epoch) into ``--out`` when
matplotlib is installed.
"""

from __future__ import annotations

import os
import tempfile

import jax
import numpy as np

import fnn

import _shared

FEATURES, CLASSES = 64, 10


def write_memmap(folder: str, n: int, seed: int, piece: int = 65536) -> tuple[np.memmap, np.memmap]:
    """``(x, y)`` memory-mapped files of ``n`` examples, written ``piece`` rows at a time."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (CLASSES, FEATURES)).astype(np.float32)
    x = np.lib.format.open_memmap(os.path.join(folder, "x.npy"), "w+", np.float32, (n, FEATURES))
    y = np.lib.format.open_memmap(os.path.join(folder, "y.npy"), "w+", np.int32, (n,))
    for start in range(0, n, piece):
        stop = min(start + piece, n)
        labels = rng.integers(0, CLASSES, stop - start).astype(np.int32)
        x[start:stop] = centres[labels] + rng.normal(0.0, 2.0, (stop - start, FEATURES)).astype(np.float32)
        y[start:stop] = labels
    x.flush(), y.flush()
    return (np.load(os.path.join(folder, "x.npy"), mmap_mode="r"),
            np.load(os.path.join(folder, "y.npy"), mmap_mode="r"))


def block_shuffled(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """``batches(epoch)``: the file's contiguous batches in a new random order each epoch
    (the last, short batch included), read from the file when the chunk is stacked."""
    starts = np.arange(0, x.shape[0], batch_size)

    def batches(epoch: int):
        order = np.random.default_rng([seed, epoch]).permutation(starts)
        return ((x[s:s + batch_size], y[s:s + batch_size]) for s in order)
    return batches


def main(argv: list[str] | None = None) -> dict:
    p = _shared.parser(__doc__, tiny="a 1 MiB budget, 2 epochs (smoke test)", out="folder for the plot",
                       seed="seed of data, init and batch order")
    p.add_argument("--budget-mib", type=float, default=64.0,
                   help="the device budget in MiB; the file holds 1.5 times as much (default 64)")
    args = p.parse_args(argv)
    budget = int((1.0 if args.tiny else args.budget_mib) * 2**20)
    epochs, batch_size = (2, 64) if args.tiny else (3, 256)
    example_bytes = FEATURES * 4 + 4
    n = int(1.5 * budget) // example_bytes
    batch_bytes = batch_size * example_bytes
    # A chunk is an eighth of the budget: three alive at once stay well inside it.
    steps_per_call = max(1, budget // (8 * batch_bytes))

    with tempfile.TemporaryDirectory() as folder:
        x, y = write_memmap(folder, n, args.seed)
        size = os.path.getsize(os.path.join(folder, "x.npy")) + os.path.getsize(os.path.join(folder, "y.npy"))
        print(f"data: {n:,} examples in {folder}, {size / 2**20:.1f} MiB on disk; device budget "
              f"{budget / 2**20:.1f} MiB; chunks of {steps_per_call} batches "
              f"({steps_per_call * batch_bytes / 2**20:.2f} MiB)")
        held_out = 2000 if not args.tiny else 500
        x_eval, y_eval = np.asarray(x[:held_out]), np.asarray(y[:held_out])
        x_train, y_train = x[held_out:], y[held_out:]

        key_init, _ = jax.random.split(jax.random.key(args.seed))
        model = fnn.mlp([128, CLASSES])
        params = model.init(key_init, (FEATURES,))
        result = fnn.training.fit_batches(
            model, params, fnn.optimizers.adam(1e-3), block_shuffled(x_train, y_train, batch_size, args.seed),
            epochs=epochs, steps_per_call=steps_per_call, eval_data=(x_eval, y_eval), progress=False,
            on_epoch=lambda epoch, logs: print(f"epoch {epoch + 1}: train loss {logs['train_loss']:.4f}  "
                                               f"held-out accuracy {logs['eval_accuracy']:.4f}"))
    h = result.history
    accuracy = float(h["eval_accuracy"][-1])
    print(f"final held-out accuracy {accuracy:.4f} after {result.epoch} epochs")
    fnn.plots.curves({"train loss": h["train_loss"], "held-out loss": h["eval_loss"],
                      "held-out accuracy": h["eval_accuracy"]},
                     os.path.join(args.out, "19_fit_batches_memmap.png"),
                     title=f"fit_batches from a {size / 2**20:.0f} MiB memory-mapped file")
    return {"examples": n, "bytes": size, "budget": budget, "accuracy": accuracy,
            "history": {k: np.asarray(v) for k, v in h.items()}}


if __name__ == "__main__":
    main()
