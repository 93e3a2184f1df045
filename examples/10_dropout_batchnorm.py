r"""10 — Dropout and batch norm: the general layer form on the digits.

What it teaches: two layers that are not pure functions of ``(params, x)``, and why
fnn passes their extra inputs explicitly.

1. **Dropout** against overfitting: a wide MLP (64-1024-1024-10) trained on a small
   part of the digits fits its training data almost perfectly while its test loss
   climbs; the same net with ``fnn.mlp(..., dropout=0.5)`` drops every hidden unit with
   probability 0.5 in each step (a fresh mask from the step's key,
   :func:`fnn.training.step_key`) and overfits less. Dropout needs a key: it is a
   :class:`fnn.layers.StatefulLayer`, ``apply(params, state, x, *, key, train)``.
2. **Batch norm** in the same net (``batch_norm=True``): each hidden pre-activation is
   standardised with the batch's mean and variance in training and with running
   averages (the layer's *state*, returned by ``fit`` as ``result.state``) at test time.
3. **The vanishing gradient, a second remedy**: a 10-layer sigmoid net barely learns
   (the notes: each layer multiplies the gradient by :math:`\sigma' \le 1/4`); with
   batch norm the pre-activations stay near 0, where :math:`\sigma'` is largest, and
   the same net learns — a remedy beside switching to ReLU.

Run (needs the ``data`` extra)::

    python examples/10_dropout_batchnorm.py          # ~1 minute on 2 CPU cores
    python examples/10_dropout_batchnorm.py --tiny   # seconds (what the tests run)

Writes ``10_overfitting.png`` and ``10_deep_sigmoid.png`` into ``--out`` when matplotlib
is installed.
"""

from __future__ import annotations

import os

import jax

import fnn
from fnn import plots

import _shared


def _train(model, key, data, x, y, epochs: int, learning_rate: float, batch_size: int):
    k_init, k_fit = jax.random.split(key)
    init = model.init(k_init, x.shape[1:])
    params, state = init if isinstance(model, fnn.layers.StatefulLayer) else (init, None)
    result = fnn.fit(model, params, fnn.optimizers.adam(learning_rate), x, y, state=state,
                     epochs=epochs, batch_size=batch_size, key=k_fit,
                     eval_data=(data.x_test, data.y_test), progress=False)
    return result


def main(argv: list[str] | None = None) -> dict:
    args = _shared.parser("Dropout and batch norm on the digits.", tiny="small nets, few epochs (smoke test)",
                          out="folder for the plots",
                          seed="seed of split, init and batch order").parse_args(argv)
    width, epochs, train_size = (16, 2, 100) if args.tiny else (1024, 60, 300)
    deep_epochs, depth = (2, 3) if args.tiny else (40, 10)

    k_data, k_wide, k_deep = jax.random.split(jax.random.key(args.seed), 3)
    data = fnn.datasets.load("digits", key=k_data)
    x, y = data.x_train[:train_size], data.y_train[:train_size]
    print(f"digits: {train_size} training examples (of {data.x_train.shape[0]}), "
          f"test {data.x_test.shape[0]}")

    results = {}
    for name, model in (("plain", fnn.mlp([width, width, 10])),
                        ("dropout 0.5", fnn.mlp([width, width, 10], dropout=0.5)),
                        ("batch norm", fnn.mlp([width, width, 10], batch_norm=True))):
        r = _train(model, k_wide, data, x, y, epochs, 1e-3, 32)
        h = r.history
        best = int(h["eval_loss"].argmin())
        results[name] = {"train_loss": float(h["train_loss"][-1]), "test_loss": float(h["eval_loss"][-1]),
                         "best_test_loss": float(h["eval_loss"][best]),
                         "test_accuracy": float(h["eval_accuracy"][-1])}
        print(f"{name:12s} final train loss {results[name]['train_loss']:.4f}  test loss "
              f"{results[name]['test_loss']:.4f} (best {results[name]['best_test_loss']:.4f} at epoch "
              f"{best + 1})  test accuracy {results[name]['test_accuracy']:.4f}")
        results[name]["history"] = h
    plots.curves({**{f"{k} train": v["history"]["train_loss"] for k, v in results.items()},
                  **{f"{k} test": v["history"]["eval_loss"] for k, v in results.items()}},
                 os.path.join(args.out, "10_overfitting.png"), log_y=True,
                 dashed=[f"{k} train" for k in results],
                 title=f"64-{width}-{width}-10 on {train_size} digits: train (dashed) and test loss")

    deep = [32] * depth + [10]
    curves = {}
    for name, model in (("sigmoid", fnn.mlp(deep, activation="sigmoid")),
                        ("sigmoid + batch norm", fnn.mlp(deep, activation="sigmoid", batch_norm=True))):
        r = _train(model, k_deep, data, data.x_train, data.y_train, deep_epochs, 1e-3, 64)
        curves[f"{name}: train loss"] = r.history["train_loss"]
        results[name] = {"test_accuracy": float(r.history["eval_accuracy"][-1]),
                         "train_loss": float(r.history["train_loss"][-1])}
        print(f"{depth} sigmoid layers, {name:22s}: final train loss {results[name]['train_loss']:.4f}  "
              f"test accuracy {results[name]['test_accuracy']:.4f}")
    plots.curves(curves, os.path.join(args.out, "10_deep_sigmoid.png"), log_y=True,
                 title=f"{depth} hidden sigmoid layers of 32: batch norm keeps the gradient alive")
    return results


if __name__ == "__main__":
    main()
