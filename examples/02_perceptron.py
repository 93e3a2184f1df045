"""02 - The perceptron learns AND and OR, and cannot learn XOR.

What it teaches: the lecture notes' perceptron (inputs, weights and bias, net sum, step
activation) is a linear binary classifier. Rosenblatt's rule
``w += lr * (y - y_hat) * x``, ``b += lr * (y - y_hat)`` finds a separating line for
AND and for OR in a few epochs, printed one by one; for XOR no line exists and it
never stops making mistakes (example 04 solves XOR with a hidden layer). It also trains
perceptrons for several learning rates at once with ``jax.vmap`` and shows that from
zero weights the learning rate only rescales the line: the epochs are the same
(up to rounding, which it also shows).

Run:
    python examples/02_perceptron.py              # writes runs/examples/02_perceptron.png
    python examples/02_perceptron.py --tiny       # fewer epochs, for tests
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

import fnn

from fnn import perceptron

import _shared

X = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]], jnp.float32)
GATES = {"AND": jnp.array([0, 0, 0, 1]), "OR": jnp.array([0, 1, 1, 1]), "XOR": jnp.array([0, 1, 1, 0])}


def plot_boundaries(results, path):
    plt = _shared.pyplot_or_none()
    if plt is None:
        return
    grid = jnp.stack(jnp.meshgrid(jnp.linspace(-0.5, 1.5, 201), jnp.linspace(-0.5, 1.5, 201)), -1)
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4.2))
    for ax, (name, (params, history, y)) in zip(axes, results.items()):
        region = perceptron.predict(params, grid)
        ax.contourf(grid[..., 0], grid[..., 1], region, levels=[-0.5, 0.5, 1.5],
                    colors=["#f4cccc", "#cfe2f3"])
        w, b = params["w"], float(params["b"])
        if abs(float(w[1])) > 1e-6:  # the line x . w + b = 0
            xs = jnp.array([-0.5, 1.5])
            ax.plot(xs, -(w[0] * xs + b) / w[1], "k-", lw=1)
        elif abs(float(w[0])) > 1e-6:
            ax.axvline(-b / float(w[0]), color="k", lw=1)
        for label, marker in [(0, "o"), (1, "s")]:
            pts = X[y == label]
            ax.scatter(pts[:, 0], pts[:, 1], marker=marker, s=90, edgecolor="k",
                       color="#cc0000" if label == 0 else "#1155cc", label=f"y = {label}")
        state = "converged in" if bool(history.converged) else "no line after"
        ax.set_title(f"{name}: {state} {int(history.epochs)} epochs")
        ax.set_xlim(-0.5, 1.5)
        ax.set_ylim(-0.5, 1.5)
    axes[0].legend(loc="lower left")
    fig.suptitle("Perceptron decision regions (blue: class 1, red: class 0)")
    _shared.save(fig, path)


def main(argv=None):
    parser = _shared.parser(__doc__, tiny="fewer epochs (for tests)")
    parser.add_argument("--max-epochs", type=int, default=None, help="epoch limit (default 20, tiny 10)")
    parser.add_argument("--learning-rate", type=float, default=1.0)
    args = parser.parse_args(argv)
    max_epochs = args.max_epochs or (10 if args.tiny else 20)

    results = {}
    for name, y in GATES.items():
        params, history = perceptron.fit(perceptron.init(2), X, y, learning_rate=args.learning_rate,
                                         max_epochs=max_epochs)
        epochs = int(history.epochs)
        errors = [int(e) for e in history.errors[:epochs]]
        accuracy = float(jnp.mean(perceptron.predict(params, X) == y))
        verdict = (f"converged after {epochs} epochs" if bool(history.converged)
                   else f"not converged after {epochs} epochs")
        print(f"{name:>3}: errors per epoch {errors}")
        print(f"     {verdict}; w = {params['w'].tolist()}, b = {float(params['b'])}, "
              f"accuracy {accuracy:.2f}")
        results[name] = (params, history, y)

    # Many perceptrons at once: vmap fit over learning rates (AND, zero start).
    rates = jnp.array([0.125, 1.0, 8.0, 0.1])
    params, history = jax.vmap(lambda lr: perceptron.fit(perceptron.init(2), X, GATES["AND"],
                                                         learning_rate=lr, max_epochs=max_epochs))(rates)
    print("\nvmap over learning rates, AND:")
    for lr, epochs, w, b in zip(rates.tolist(), history.epochs.tolist(), params["w"].tolist(),
                                params["b"].tolist()):
        print(f"  lr = {lr:<6.4g} epochs {epochs}  w = [{w[0]:.4g}, {w[1]:.4g}]  b = {b:.4g}")
    print("  From zero weights the learning rate only scales (w, b): same line, same epochs,\n"
          "  exactly so when the rate is a power of two.")
    if len(set(history.epochs.tolist())) > 1:
        print("  Not for 0.1, which binary floating point cannot hold exactly: w and b collect\n"
              "  rounding errors (-0.20000002 for -0.2), so a point exactly on the boundary in\n"
              "  exact arithmetic (z = 0: class 1) gets z = -1.5e-08 (class 0), and training\n"
              "  takes another path.")

    os.makedirs(args.out, exist_ok=True)
    plot_boundaries(results, os.path.join(args.out, "02_perceptron.png"))
    summary = {name: int(h.epochs) if bool(h.converged) else None for name, (_, h, _) in results.items()}
    print(f"final: epochs to converge {summary} (None = never)")
    return summary


if __name__ == "__main__":
    main()
