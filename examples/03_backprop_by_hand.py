"""03 - Backpropagation by hand: the chain rule of the lecture notes, factor by factor.

What it teaches: the notes' small network x -> o1 -> o2 -> loss, one sigmoid neuron per
layer, weight w1 into o1 and w4 into o2. The backward stage is the chain rule:

    dL/dw4 = dL/do2 * do2/dw4
    dL/dw1 = dL/do2 * do2/do1 * do1/dw1

The script prints every factor, multiplies them, and checks the products against
``jax.grad``; then takes gradient-descent steps ``w_new = w_old - lr * dL/dw``. Finally it
does the same for a whole layer at once with ``fnn.backprop.mlp_grads`` (the deltas
dL/dz of every layer), and lets ``fnn.diagnostics.check_gradients`` verify the
hand-written gradient against finite differences. With matplotlib installed it writes
``backprop_by_hand.png`` into ``--out``: the chain-rule factors as bars, and the gradient
magnitude of each weight and layer, by hand next to ``jax.grad`` (the bars must match).

Run:
    python examples/03_backprop_by_hand.py
    python examples/03_backprop_by_hand.py --tiny     # fewer steps, for tests
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

import fnn
from fnn import backprop, diagnostics, plots

import _shared

sigmoid = fnn.sigmoid


def sigmoid_prime(z):
    s = sigmoid(z)
    return s * (1 - s)  # at most 0.25, at z = 0


def forward(params, x, y):
    """The notes' chain: z1 = w1 x + b1, o1 = s(z1), z2 = w4 o1 + b2, o2 = s(z2), L = (o2 - y)^2."""
    z1 = params["w1"] * x + params["b1"]
    o1 = sigmoid(z1)
    z2 = params["w4"] * o1 + params["b2"]
    o2 = sigmoid(z2)
    return {"z1": z1, "o1": o1, "z2": z2, "o2": o2, "loss": (o2 - y) ** 2}


def loss_fn(params, x, y):
    return forward(params, x, y)["loss"]


def factors(params, x, y):
    """The four local derivatives of the notes' chain, at the current weights."""
    f = forward(params, x, y)
    return {"dL/do2": 2 * (f["o2"] - y),                          # L = (o2 - y)^2
            "do2/dw4": sigmoid_prime(f["z2"]) * f["o1"],          # o2 = s(w4 o1 + b2)
            "do2/do1": sigmoid_prime(f["z2"]) * params["w4"],
            "do1/dw1": sigmoid_prime(f["z1"]) * x}                # o1 = s(w1 x + b1)


def chain_rule(params, x, y, verbose=True):
    """dL/dw4 and dL/dw1 as products of the notes' factors, printed one by one."""
    dL_do2, do2_dw4, do2_do1, do1_dw1 = factors(params, x, y).values()
    dL_dw4 = dL_do2 * do2_dw4
    dL_dw1 = dL_do2 * do2_do1 * do1_dw1
    if verbose:
        print(f"  dL/do2  = 2 (o2 - y)       = {float(dL_do2):+.6f}")
        print(f"  do2/dw4 = s'(z2) o1        = {float(do2_dw4):+.6f}")
        print(f"  do2/do1 = s'(z2) w4        = {float(do2_do1):+.6f}")
        print(f"  do1/dw1 = s'(z1) x         = {float(do1_dw1):+.6f}")
        print(f"  dL/dw4  = dL/do2 * do2/dw4           = {float(dL_dw4):+.6f}")
        print(f"  dL/dw1  = dL/do2 * do2/do1 * do1/dw1 = {float(dL_dw1):+.6f}")
    return {"w4": dL_dw4, "w1": dL_dw1}


def plot(path, chain_factors, hand, auto, layer_hand, layer_auto):
    """Bars: |chain-rule factors| and |dL/dw| by hand vs jax.grad; per-layer norms of the MLP.

    Returns the path written, or None without matplotlib (the example still runs).
    """
    if not plots.available():
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    names = list(chain_factors) + ["dL/dw4", "dL/dw1"]
    left.bar(range(len(chain_factors)), [abs(float(v)) for v in chain_factors.values()],
             color="tab:gray", label="factor")
    for offset, (label, grads) in zip((-0.2, 0.2), (("by hand", hand), ("jax.grad", auto))):
        left.bar([len(chain_factors) + i + offset for i in range(2)],
                 [abs(float(grads["w4"])), abs(float(grads["w1"]))], width=0.4, label=label)
    left.set_xticks(range(len(names)), names, rotation=20)
    left.set_yscale("log")
    left.set_title("chain rule: |factor| and |dL/dw|\n(dL/dw1 carries two factors s' <= 1/4)")
    left.legend()
    layers = range(1, len(layer_hand) + 1)
    right.bar([l - 0.2 for l in layers], layer_hand, width=0.4, label="mlp_grads (by hand)")
    right.bar([l + 0.2 for l in layers], layer_auto, width=0.4, label="jax.grad")
    right.set_xticks(list(layers), [f"layer {l}" for l in layers])
    right.set_ylabel("||dL/dW||")
    right.set_title("2-3-1 sigmoid MLP:\nper-layer gradient norm")
    right.legend()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path


def main(argv=None):
    parser = _shared.parser(__doc__, tiny="fewer steps (for tests)", out="folder for backprop_by_hand.png")
    parser.add_argument("--steps", type=int, default=None, help="gradient steps (default 50, tiny 5)")
    parser.add_argument("--learning-rate", type=float, default=2.0)
    args = parser.parse_args(argv)
    steps = args.steps or (5 if args.tiny else 50)

    params = {"w1": jnp.array(0.8), "b1": jnp.array(0.1), "w4": jnp.array(-0.5), "b2": jnp.array(0.2)}
    x, y = jnp.array(1.5), jnp.array(1.0)
    start = params
    f = forward(params, x, y)
    print("Forward stage (x = 1.5, target y = 1):")
    print("  " + ", ".join(f"{k} = {float(v):.6f}" for k, v in f.items()))
    print("Backward stage, the chain rule factor by factor:")
    hand = chain_rule(params, x, y)
    gradient = jax.jit(jax.grad(loss_fn))
    auto = gradient(params, x, y)
    gap = max(abs(float(hand[k] - auto[k])) for k in hand)
    print(f"  jax.grad: dL/dw4 = {float(auto['w4']):+.6f}, dL/dw1 = {float(auto['w1']):+.6f}; "
          f"max |hand - jax.grad| = {gap:.1e}")
    print(f"  |dL/dw1| is {float(abs(hand['w4'] / hand['w1'])):.1f}x smaller than |dL/dw4|: it carries "
          "two factors s' <= 1/4 (s'(z2) and s'(z1)),\n  dL/dw4 only one. Stack ten such layers and "
          "the first one hardly learns (the vanishing gradient, example 06).")

    print(f"\nGradient descent, w_new = w_old - lr * dL/dw (lr = {args.learning_rate}, {steps} steps):")
    for step in range(steps):
        grads = gradient(params, x, y)
        params = jax.tree.map(lambda w, g: w - args.learning_rate * g, params, grads)
        if step in (0, steps - 1) or (step + 1) % max(1, steps // 5) == 0:
            print(f"  step {step + 1:3d}: loss {float(loss_fn(params, x, y)):.6f}, "
                  f"o2 = {float(forward(params, x, y)['o2']):.4f}")

    print("\nThe same chain rule for whole layers: fnn.backprop.mlp_grads on a 2-3-1 sigmoid MLP")
    model = fnn.mlp([3, 1], activation="sigmoid")
    mlp_params = model.init(jax.random.key(0), (2,))
    xs = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    ys = jnp.array([0, 1, 1, 0])
    def hand_grads(p, xs, ys):
        return backprop.mlp_grads(p, xs, ys, activation="sigmoid", loss="binary_cross_entropy")

    grads, deltas = jax.jit(hand_grads)(mlp_params, xs, ys)
    for l, delta in enumerate(deltas):
        print(f"  layer {l + 1}: delta = dL/dz has shape {delta.shape}, |delta| = "
              f"{float(jnp.linalg.norm(delta)):.4f}")
    def bce(p, xs, ys):
        return fnn.losses.binary_cross_entropy(model.apply(p, xs), ys)

    reference = jax.jit(jax.grad(bce))(mlp_params, xs, ys)
    mlp_gap = max(float(jnp.max(jnp.abs(a - b))) for a, b in
                  zip(jax.tree.leaves(grads), jax.tree.leaves(reference)))
    print(f"  max |mlp_grads - jax.grad| = {mlp_gap:.1e}")
    report = diagnostics.check_gradients(bce, mlp_params, xs, ys,
                                         grad_fn=lambda p, xs, ys: hand_grads(p, xs, ys).grads)
    print(report)
    written = plot(os.path.join(args.out, "backprop_by_hand.png"), factors(start, x, y), hand, auto,
                   diagnostics.layer_grad_norms(grads).tolist(),
                   diagnostics.layer_grad_norms(reference).tolist())
    if written:
        print(f"wrote {written}")
    print(f"final: hand vs jax.grad {gap:.1e}, mlp_grads vs jax.grad {mlp_gap:.1e}, "
          f"finite differences {'passed' if report.passed else 'FAILED'}")
    return {"chain_rule_gap": gap, "mlp_grads_gap": mlp_gap, "check_passed": report.passed}


if __name__ == "__main__":
    main()
