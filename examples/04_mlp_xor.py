r"""04 — An MLP learns XOR; a network without a hidden layer cannot.

What it teaches: why multi-layer perceptrons exist. XOR puts each class on two
opposite corners of a square, so no straight line separates them: a model with no hidden
layer (one dense layer + softmax, a smooth perceptron) can at best get three corners
right. One hidden layer of a few tanh units bends the boundary and solves it. The same
``fnn.fit`` call trains both; only ``fnn.mlp``'s ``features`` differ:

* linear: ``fnn.mlp([2])``       — logits :math:`z = x W + b`
* MLP:    ``fnn.mlp([8, 2], activation="tanh")`` — :math:`z = \tanh(x W_1 + b_1) W_2 + b_2`

Run::

    python examples/04_mlp_xor.py            # ~10 s on 2 CPU cores
    python examples/04_mlp_xor.py --tiny     # seconds (what the tests run)

Writes ``04_xor_loss.png`` and the decision boundaries ``04_xor_linear.png`` and
``04_xor_mlp.png`` into ``--out`` when matplotlib is installed.
"""

from __future__ import annotations

import os

import jax

import fnn
from fnn import plots

import _shared


def train(model, data, *, epochs: int, key: jax.Array) -> fnn.training.FitResult:
    k_init, k_data = jax.random.split(key)
    params = model.init(k_init, (2,))
    return fnn.fit(model, params, fnn.optimizers.adam(0.03), data.x_train, data.y_train,
                   epochs=epochs, batch_size=32, key=k_data,
                   eval_data=(data.x_test, data.y_test), progress=False)


def main(argv: list[str] | None = None) -> dict:
    parser = _shared.parser("An MLP learns XOR; a linear model cannot.", tiny="a few epochs (smoke test)",
                            out="folder for the plots", seed="seed of data and init")
    parser.add_argument("--hidden", type=int, default=8, help="hidden tanh units of the MLP")
    args = parser.parse_args(argv)
    epochs = 5 if args.tiny else 100

    k_data, k_linear, k_mlp = jax.random.split(jax.random.key(args.seed), 3)
    data = fnn.datasets.load("xor", key=k_data, n=200 if args.tiny else 800, noise=0.15)
    models = {"linear": fnn.mlp([2]), "mlp": fnn.mlp([args.hidden, 2], activation="tanh")}
    results = {name: train(model, data, epochs=epochs, key=k)
               for (name, model), k in zip(models.items(), (k_linear, k_mlp))}

    for name, r in results.items():
        h = r.history
        for e in sorted({0, epochs // 4, epochs // 2, epochs - 1}):
            print(f"{name:6s} epoch {e + 1:3d}: train loss {float(h['train_loss'][e]):.4f}  "
                  f"test accuracy {float(h['eval_accuracy'][e]):.3f}")

    os.makedirs(args.out, exist_ok=True)
    plots.curves({f"{name} train": r.history["train_loss"] for name, r in results.items()},
                 os.path.join(args.out, "04_xor_loss.png"), ylabel="cross-entropy loss",
                 title="XOR: no hidden layer vs one hidden layer")
    for name, r in results.items():
        accuracy = float(r.history["eval_accuracy"][-1])
        plots.decision_boundary(jax.jit(models[name].apply), r.params, data.x_test, data.y_test,
                                os.path.join(args.out, f"04_xor_{name}.png"),
                                title=f"XOR, {name}: test accuracy {accuracy:.2f}")
    final = {name: float(r.history["eval_accuracy"][-1]) for name, r in results.items()}
    print(f"test accuracy: linear {final['linear']:.3f}, MLP {final['mlp']:.3f} "
          f"(XOR needs the hidden layer)")
    return final


if __name__ == "__main__":
    main()
