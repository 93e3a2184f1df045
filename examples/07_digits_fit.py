r"""07 — Real data with ``fnn.fit``: handwritten digits, end to end.

What it teaches: the whole supervised-learning loop of the notes on a real dataset, in
the library's own calls —

1. data: ``fnn.datasets.load("digits", key=...)`` — 1,797 8x8 images bundled with
   scikit-learn (no download), a stratified 80/20 train/test split and standardisation
   fitted on the training split only;
2. model: ``fnn.mlp([256, 10])`` — 64 inputs, one ReLU hidden layer, 10 logits;
3. training: ``fnn.fit`` with Adam and softmax cross-entropy; every epoch shuffles on
   the device and the whole run is one compiled program;
4. evaluation: ``fnn.evaluate`` on the held-out split, the confusion matrix, and a
   checkpoint round trip (``fnn.checkpoint.save``/``load``) that scores the same.

The same run is ``fnn train`` on the command line.

Run (needs the ``data`` extra, ``pip install "fnn[data]"``)::

    python examples/07_digits_fit.py          # ~5 s of training on 2 CPU cores
    python examples/07_digits_fit.py --tiny   # seconds (what the tests run)

Writes ``07_digits_curves.png`` and ``07_digits_confusion.png`` into ``--out`` when
matplotlib is installed.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp

import fnn
from fnn import plots

import _shared


def main(argv: list[str] | None = None) -> float:
    args = _shared.parser("An MLP on the digits data with fnn.fit.",
                          tiny="small model, 2 epochs (smoke test)", out="folder for plots and checkpoint",
                          seed="seed of split, init and batch order").parse_args(argv)
    hidden, epochs = (32, 2) if args.tiny else (256, 20)

    k_data, k_init, k_order = jax.random.split(jax.random.key(args.seed), 3)
    data = fnn.datasets.load("digits", key=k_data)
    print(f"digits: train {data.x_train.shape}, test {data.x_test.shape}, {data.num_classes} classes")
    model = fnn.mlp([hidden, data.num_classes])
    params = model.init(k_init, data.x_train.shape[1:])

    t0 = time.perf_counter()
    result = fnn.fit(model, params, fnn.optimizers.adam(2e-3), data.x_train, data.y_train,
                     epochs=epochs, batch_size=64, key=k_order,
                     eval_data=(data.x_test, data.y_test), progress=False)
    seconds = time.perf_counter() - t0
    h = result.history
    for e in sorted({0, epochs // 2, epochs - 1}):
        print(f"epoch {e + 1:2d}: train loss {float(h['train_loss'][e]):.4f}  test loss "
              f"{float(h['eval_loss'][e]):.4f}  test accuracy {float(h['eval_accuracy'][e]):.4f}")
    print(f"{epochs} epochs in {seconds:.2f} s (compilation included)")

    scores = fnn.evaluate(model, result.params, data.x_test, data.y_test)
    os.makedirs(args.out, exist_ok=True)
    checkpoint = os.path.join(args.out, "07_digits_params.ckpt")
    fnn.checkpoint.save(checkpoint, result.params)
    restored = fnn.checkpoint.load(checkpoint, like=result.params)
    again = fnn.evaluate(model, restored, data.x_test, data.y_test)

    predicted = jnp.argmax(model.apply(result.params, data.x_test), axis=-1)
    plots.curves({"train loss": h["train_loss"], "test loss": h["eval_loss"],
                  "test error (1 - accuracy)": 1 - h["eval_accuracy"]},
                 os.path.join(args.out, "07_digits_curves.png"), log_y=True,
                 title="digits: MLP 64-256-10, Adam 2e-3" if not args.tiny else "digits (tiny)")
    plots.confusion_matrix(data.y_test, predicted, os.path.join(args.out, "07_digits_confusion.png"),
                           num_classes=data.num_classes)
    accuracy = float(scores["accuracy"])
    print(f"test accuracy {accuracy:.4f}, test loss {float(scores['loss']):.4f}; after the "
          f"checkpoint round trip ({checkpoint}): {float(again['accuracy']):.4f}")
    return accuracy


if __name__ == "__main__":
    main()
