r"""13 — Dying ReLU: how many hidden units never fire, per epoch, for ReLU and its fixes.

What it teaches: the notes' "once a negative number entered, ReLU will die" measured.
A hidden unit whose pre-activation :math:`z` is negative for every training example
outputs 0 for all of them and, since relu'(z) = 0 there, receives no gradient.
``fnn.diagnostics.dead_units(model, params, x)`` gives, per hidden layer, the fraction of
such units; this script trains the same 2-32-32-32-2 MLP on the spirals with Adam at a
deliberately high learning rate (0.05, where ReLU units do die) four times, with ReLU,
Leaky ReLU, PReLU and ELU, and prints the fraction of never-active hidden units after
every epoch, and the learned PReLU slopes.

What the measurement shows (default run): ReLU's never-active fraction climbs from
0.39 after epoch 1 to 0.51 after 30 (81% of the second layer) and never comes down:
dead ReLU units stay dead. The same rule counts leaky ReLU and PReLU units too, and a
third of them are "off" (0.34, 0.33) — they are not dead, their gradient is s or alpha
times the upstream one, and their fraction goes up and down from epoch to epoch. ELU
is off least (0.13). The learned PReLU slopes do not stay near 0.25: they go to about
0 and below (-0.13 in layer 1), where the unit is no longer a "leaky" ReLU at all.
The notes are right that ReLU units die; "leaky ReLU solves it" holds only in the
sense that its off units keep a (small) gradient.

Run::

    python examples/13_dying_relu.py          # ~30 s on 2 CPU cores
    python examples/13_dying_relu.py --tiny   # seconds (what the tests run)

Writes ``13_dying_relu.png`` into ``--out`` when matplotlib is installed.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

import fnn

import _shared

ACTIVATIONS = ("relu", "leaky_relu", "prelu", "elu")


def never_active(model, activation, x):
    """What to record after each epoch: the params, and the dead fraction of each hidden layer."""
    return lambda params, losses: (params,
                                   fnn.diagnostics.dead_units(model, params, x, activation=activation))


def plot(dead, alphas, path):
    plt = _shared.pyplot_or_none()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, fractions in dead.items():
        left.plot(range(1, len(fractions) + 1), fractions, "o-", ms=3, label=name)
    left.set_xlabel("epoch")
    left.set_ylabel("fraction of hidden units never active")
    left.set_title("Units with z <= 0 on every training example")
    left.legend()
    for layer, values in enumerate(alphas.T):
        right.plot(range(1, len(values) + 1), values, label=f"layer {layer + 1}")
    right.set_xlabel("epoch")
    right.set_ylabel("PReLU alpha")
    right.set_title("Learned PReLU slopes (start 0.25)")
    right.legend()
    _shared.save(fig, path)


def main(argv=None):
    parser = _shared.parser(__doc__, tiny="a few epochs, a small net (for tests)",
                            seed="seed of data, init and batch order")
    parser.add_argument("--learning-rate", type=float, default=0.05)
    args = parser.parse_args(argv)
    epochs, width, n = (3, 8, 200) if args.tiny else (30, 32, 1000)

    k_data, k_init, k_order = jax.random.split(jax.random.key(args.seed), 3)
    data = fnn.datasets.load("spirals", key=k_data, n=n, noise=0.02, turns=1.5)
    x, y = data.x_train, data.y_train
    print(f"spirals, {x.shape[0]} points; MLP 2-{width}-{width}-{width}-2, Adam lr "
          f"{args.learning_rate}, batch 32, {epochs} epochs, same init key and batch order")
    dead, final, accuracy, alphas, trained = {}, {}, {}, None, {}
    # --tiny: two of them, to stay a quick smoke test (PReLU for its slopes).
    for name in ("relu", "prelu") if args.tiny else ACTIVATIONS:
        model = fnn.mlp([width] * 3 + [2], activation=name)
        per_epoch, fractions = _shared.train_recording(
            model, model.init(k_init, (2,)), fnn.optimizers.adam(args.learning_rate), x, y,
            record=never_active(model, name, x), epochs=epochs, batch_size=32, key=k_order)
        dead[name] = jnp.mean(fractions, axis=1)   # over the 3 hidden layers (equal widths)
        last = jax.tree.map(lambda a: a[-1], per_epoch)
        trained[name] = last
        final[name] = float(dead[name][-1])
        accuracy[name] = float(fnn.metrics.accuracy(model.apply(last, x), y))
        if name == "prelu":
            alphas = jnp.stack([p["alpha"] for p in per_epoch[:-1]], axis=1)
        print(f"{name:>10}: never-active hidden units, epoch 1 {float(dead[name][0]):.3f} -> epoch "
              f"{epochs} {final[name]:.3f} (per layer {[round(float(v), 3) for v in fractions[-1]]}); "
              f"train accuracy {accuracy[name]:.3f}")
    print(f"learned PReLU slopes after {epochs} epochs: {[round(float(a), 3) for a in alphas[-1]]} "
          "(started at 0.25)")
    os.makedirs(args.out, exist_ok=True)
    plot(dead, alphas, os.path.join(args.out, "13_dying_relu.png"))
    print("final never-active fraction: " + ", ".join(f"{k} {v:.3f}" for k, v in final.items()))
    return {"dead": final, "accuracy": accuracy, "prelu_alpha": [float(a) for a in alphas[-1]],
            "params": trained, "x": x, "width": width}


if __name__ == "__main__":
    main()
