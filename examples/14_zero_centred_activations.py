r"""14 — Zero-centred activations: the mean and spread of each hidden layer over training.

What it teaches: the notes say tanh "brings the mean close to 0, which makes learning
for the next layer easier", that sigmoid and ReLU are not zero-centred and that ELU's
mean is "close to 0". The same 2-32-32-32-2 MLP is trained on the spirals with sigmoid,
tanh, ReLU and ELU (same init key, same batches, Adam lr 0.01), and after every epoch
``fnn.diagnostics.activation_stats(model, params, x)`` measures, per hidden layer, the
mean and standard deviation of the outputs on the training set; the training loss of
each is drawn next to it.

What the measurement shows (default run): tanh's layer means are the closest to 0
(-0.07 to 0.16); sigmoid's and ReLU's are positive (sigmoid 0.11-0.56, ReLU 0.31-0.84);
ELU's are positive too and grow with depth (0.10 to 0.94): ELU is zero-centred only
next to ReLU, its negative half is bounded by -1. Zero-centred does not mean fastest
here: after 30 epochs ReLU has the lowest loss (0.026), then ELU (0.067) and tanh
(0.071), while sigmoid has barely moved from log 2 (0.63; its gradient vanishes).

Run::

    python examples/14_zero_centred_activations.py          # ~30 s on 2 CPU cores
    python examples/14_zero_centred_activations.py --tiny   # seconds (what the tests run)

Writes ``14_zero_centred_activations.png`` into ``--out`` when matplotlib is installed.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

import fnn

import _shared

ACTIVATIONS = ("sigmoid", "tanh", "relu", "elu")


def mean_loss_and_stats(model, activation, x):
    """What to record after each epoch: the params, the mean loss of its steps, and the
    activation statistics of every hidden layer on ``x``."""
    return lambda params, losses: (params, jnp.mean(losses),
                                   fnn.diagnostics.activation_stats(model, params, x, activation=activation))


def plot(stats, losses, path):
    plt = _shared.pyplot_or_none()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for i, (name, (mean, std)) in enumerate(stats.items()):
        epochs = range(1, mean.shape[0] + 1)
        for layer in range(mean.shape[1]):
            axes[0].plot(epochs, mean[:, layer], color=f"C{i}", alpha=1 - 0.25 * layer,
                         label=name if layer == 0 else None)
            axes[1].plot(epochs, std[:, layer], color=f"C{i}", alpha=1 - 0.25 * layer,
                         label=name if layer == 0 else None)
        axes[2].semilogy(epochs, losses[name], color=f"C{i}", label=name)
    axes[0].axhline(0, color="grey", lw=0.5)
    for ax, title in zip(axes, ("mean of hidden outputs (layers 1-3, fading)",
                                "standard deviation of hidden outputs", "training loss")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize="small")
    _shared.save(fig, path)


def main(argv=None):
    args = _shared.parser(__doc__, tiny="a few epochs, a small net (for tests)",
                          seed="seed of data, init and batch order").parse_args(argv)
    epochs, width, n = (3, 8, 200) if args.tiny else (30, 32, 1000)

    k_data, k_init, k_order = jax.random.split(jax.random.key(args.seed), 3)
    data = fnn.datasets.load("spirals", key=k_data, n=n, noise=0.02, turns=1.5)
    x, y = data.x_train, data.y_train
    print(f"spirals, {x.shape[0]} points; MLP 2-{width}-{width}-{width}-2, Adam lr 0.01, batch 32, "
          f"{epochs} epochs")
    stats, losses, final = {}, {}, {}
    for name in ACTIVATIONS[:3] if args.tiny else ACTIVATIONS:   # --tiny: a quick smoke test
        model = fnn.mlp([width] * 3 + [2], activation=name)
        per_epoch, loss, measured = _shared.train_recording(
            model, model.init(k_init, (2,)), fnn.optimizers.adam(0.01), x, y,
            record=mean_loss_and_stats(model, name, x), epochs=epochs, batch_size=32, key=k_order)
        mean, std = measured.mean, measured.std   # (epochs, layers)
        stats[name], losses[name] = (mean, std), loss
        final[name] = {"mean": [float(v) for v in mean[-1]], "std": [float(v) for v in std[-1]],
                       "loss": float(loss[-1]), "params": jax.tree.map(lambda a: a[-1], per_epoch)}
        print(f"{name:>8}: per-layer mean {[round(v, 3) for v in final[name]['mean']]}, std "
              f"{[round(v, 3) for v in final[name]['std']]}, loss epoch 1 {float(loss[0]):.4f} -> "
              f"{epochs} {float(loss[-1]):.4f}")
    os.makedirs(args.out, exist_ok=True)
    plot(stats, losses, os.path.join(args.out, "14_zero_centred_activations.png"))
    closest = min(final, key=lambda k: max(abs(v) for v in final[k]["mean"]))
    print(f"closest to zero-centred: {closest}; final loss " +
          ", ".join(f"{k} {v['loss']:.4f}" for k, v in final.items()))
    return {"final": final, "x": x, "width": width, "closest": closest}


if __name__ == "__main__":
    main()
