r"""20 — Training from a Grain ``DataLoader``.

What it teaches: :func:`fnn.training.fit_batches` takes any iterable of ``(x, y)``
batches, here the batches of a `Grain <https://google-grain.readthedocs.io>`_
``DataLoader``: Grain reads records from a random-access source, shuffles them anew
every epoch (its ``IndexSampler`` with a seed: deterministic), batches them and can read
with worker processes (``--workers``), while fnn trains compiled chunks of
``steps_per_call`` batches on the device. The loader's iterator runs over all epochs at
once, so it is handed over as one stream and ``steps`` says how many batches make an
epoch (``n // batch_size``: Grain's ``drop_remainder=True`` keeps every batch full, so
one program serves the whole run).

The data are the digits (8x8 images as 64 features, 10 classes; the ``data`` extra),
the model 64-128-10, scored on the test split after every epoch.

Run (needs the ``grain`` and ``data`` extras: ``pip install 'fnn[grain,data]'``)::

    python examples/20_fit_batches_grain.py               # ~20 s on 2 idle cores
    python examples/20_fit_batches_grain.py --workers 2   # Grain reads in 2 processes
    python examples/20_fit_batches_grain.py --tiny        # seconds (what the tests run)

Writes ``20_fit_batches_grain.png`` (loss and accuracy per epoch) into ``--out`` when
matplotlib is installed.
"""

from __future__ import annotations

import os

import jax
import numpy as np

import fnn

import _shared


class Records:
    """A Grain random-access source: ``len`` and one record ``{"x", "y"}`` per index."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index: int) -> dict:
        return {"x": self.x[index], "y": self.y[index]}


def main(argv: list[str] | None = None) -> dict:
    p = _shared.parser(__doc__, tiny="3 epochs (smoke test)", out="folder for the plot",
                       seed="seed of the split, init and Grain's shuffle")
    p.add_argument("--workers", type=int, default=0, help="Grain worker processes (default 0: in process)")
    args = p.parse_args(argv)
    try:
        import grain.python as grain
    except ImportError:
        raise SystemExit("this example needs Grain: pip install 'fnn[grain]'") from None
    epochs, batch_size = (3, 64) if args.tiny else (30, 64)

    data = fnn.datasets.load("digits", key=jax.random.key(args.seed))
    x, y = np.asarray(data.x_train, np.float32), np.asarray(data.y_train, np.int32)
    n = x.shape[0]
    loader = grain.DataLoader(
        data_source=Records(x, y),
        sampler=grain.IndexSampler(n, shuffle=True, seed=args.seed, num_epochs=epochs,
                                   shard_options=grain.NoSharding()),
        operations=[grain.Batch(batch_size, drop_remainder=True)], worker_count=args.workers)
    steps = n // batch_size
    print(f"digits: {n} training examples through a Grain DataLoader, {steps} batches of {batch_size} "
          f"an epoch, {args.workers} workers")

    def report(epoch: int, logs: dict) -> None:      # a few progress lines
        if (epoch + 1) % max(1, epochs // 5) == 0:
            print(f"epoch {epoch + 1}: train loss {logs['train_loss']:.4f}  "
                  f"test accuracy {logs['eval_accuracy']:.4f}")

    model = fnn.mlp([128, 10])
    params = model.init(jax.random.key(args.seed + 1), (x.shape[1],))
    result = fnn.training.fit_batches(
        model, params, fnn.optimizers.adam(1e-3), ((b["x"], b["y"]) for b in loader),
        epochs=epochs, steps=steps, steps_per_call=8, eval_data=(data.x_test, data.y_test), progress=False,
        on_epoch=report)
    h = result.history
    accuracy = float(h["eval_accuracy"][-1])
    print(f"final test accuracy {accuracy:.4f} after {result.epoch} epochs")
    fnn.plots.curves({"train loss": h["train_loss"], "test loss": h["eval_loss"],
                      "test accuracy": h["eval_accuracy"]},
                     os.path.join(args.out, "20_fit_batches_grain.png"),
                     title="fit_batches from a Grain DataLoader: digits, 64-128-10")
    return {"accuracy": accuracy, "history": {k: np.asarray(v) for k, v in h.items()}}


if __name__ == "__main__":
    main()
