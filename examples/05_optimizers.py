r"""05 — Optimizers compared on the same problem: SGD, momentum, AdaGrad, RMSProp, Adam.

What it teaches: how the update rule changes training, everything else held fixed. The
same MLP starts from the same initial params and sees the same batches in the same order
(same data key) under five optimizers from ``fnn.optimizers``, each at its best learning
rate from the grid 0.001, 0.003, ..., 0.3, 1 (all seven rates train at once with
``fnn.training.fit_sweep``; the lowest mean train loss over the run wins):

* SGD:      :math:`\theta \leftarrow \theta - \eta g`
* momentum: :math:`m \leftarrow \beta m + g,\ \theta \leftarrow \theta - \eta m`
* AdaGrad:  :math:`s \leftarrow s + g^2,\ \theta \leftarrow \theta - \eta g / \sqrt{s + \epsilon}`
* RMSProp:  :math:`s \leftarrow \rho s + (1 - \rho) g^2,\ \theta \leftarrow \theta - \eta g / \sqrt{s + \epsilon}`
* Adam:     bias-corrected moving averages of :math:`g` and :math:`g^2`,
  :math:`\theta \leftarrow \theta - \eta \hat m / (\sqrt{\hat v} + \epsilon)`

The problem is two interleaved spirals: the curved boundary needs hidden layers, and the
loss landscape has the long flat stretches where plain SGD crawls and momentum and the
adaptive methods pull ahead. The train loss of each is drawn on one log-scale plot.

Run::

    python examples/05_optimizers.py          # ~20 s on 2 CPU cores
    python examples/05_optimizers.py --tiny   # seconds (what the tests run)

Writes ``05_optimizers.png`` into ``--out`` when matplotlib is installed.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

import fnn
from fnn import plots

import _shared

# Each rule as a function of its learning rate, so fit_sweep can train a grid of rates at once.
OPTIMIZERS = {
    "SGD": fnn.optimizers.sgd,
    "momentum": lambda lr: fnn.optimizers.momentum(lr, beta=0.9),
    "AdaGrad": fnn.optimizers.adagrad,
    "RMSProp": fnn.optimizers.rmsprop,
    "Adam": fnn.optimizers.adam,
}
RATES = jnp.array([1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0])


def main(argv: list[str] | None = None) -> dict:
    parser = _shared.parser("SGD, momentum, AdaGrad, RMSProp and Adam on the same problem, same init, "
                            "same batches.", tiny="a few epochs (smoke test)",
                            seed="seed of data, init and batch order")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 100, tiny 3)")
    args = parser.parse_args(argv)
    epochs = args.epochs or (3 if args.tiny else 100)

    k_data, k_init, k_order = jax.random.split(jax.random.key(args.seed), 3)
    data = fnn.datasets.load("spirals", key=k_data, n=320 if args.tiny else 1000, noise=0.02, turns=1.5)
    model = fnn.mlp([32, 32, 2], activation="tanh")
    params = model.init(k_init, (2,))   # one start for all five
    print(f"spirals: {data.x_train.shape[0]} train points, MLP 2-32-32-2 tanh, "
          f"{epochs} epochs of batch 32, same init and batch order for every optimizer")

    losses, accuracies = {}, {}
    chosen = {k: OPTIMIZERS[k] for k in ("SGD", "Adam")} if args.tiny else OPTIMIZERS
    for name, make in chosen.items():   # --tiny: two of them, to stay a quick smoke test
        # Seven learning rates in one compiled run (vmap). The best has the lowest mean
        # train loss over the run (area under the curve): fast and stable, not lucky at the end.
        r = fnn.training.fit_sweep(model, params, make, RATES, data.x_train, data.y_train,
                                   epochs=epochs, batch_size=32, key=k_order,
                                   eval_data=(data.x_test, data.y_test), progress=False)
        area = jnp.nan_to_num(jnp.mean(r.history["train_loss"], axis=1), nan=jnp.inf)
        best = int(jnp.argmin(area))
        label = f"{name} (lr {float(RATES[best]):g})"
        losses[label] = r.history["train_loss"][best]
        accuracies[name] = float(r.history["eval_accuracy"][best, -1])
        print(f"{label:22s} train loss: epoch 1 {float(losses[label][0]):.4f} -> epoch {epochs} "
              f"{float(losses[label][-1]):.4f}   test accuracy {accuracies[name]:.3f}")

    os.makedirs(args.out, exist_ok=True)
    plots.curves(losses, os.path.join(args.out, "05_optimizers.png"), log_y=True,
                 ylabel="train loss (cross-entropy)", title="Same MLP, same batches, each at its best rate")
    fastest = min(losses, key=lambda k: float(jnp.mean(losses[k])))
    print(f"lowest mean train loss over the run: {fastest}")
    return accuracies


if __name__ == "__main__":
    main()
