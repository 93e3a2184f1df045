"""06 - Vanishing gradients: sigmoid against tanh and ReLU in a 10-layer network.

What it teaches: the lecture notes' vanishing-gradient argument, measured. By the chain
rule the gradient of the first layer is a product with one factor f'(z) per layer above
it; sigmoid' <= 0.25, so in a deep sigmoid network that product collapses and the first
layers barely learn ("w_new ~ w_old"). The script

1. prints the gradient norm |dL/dW| of every layer of a depth-10 MLP for sigmoid, tanh
   and ReLU side by side (``fnn.diagnostics.vanishing_gradient_report``), with the
   first/last ratio and the mean f'(z) per layer;
2. trains each network with the same plain full-batch gradient descent (a jitted
   ``lax.scan`` over the steps) on the same problem (the XOR of the signs of two
   inputs), and reports the loss after N steps, the accuracy, and how far the first
   and last layers' weights moved.

Run:
    python examples/06_vanishing_gradients.py           # writes runs/examples/06_vanishing_gradients.png
    python examples/06_vanishing_gradients.py --tiny    # depth 4, few steps, for tests
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

import fnn
from fnn import diagnostics

import _shared

ACTIVATIONS = ("sigmoid", "tanh", "relu")


def xor_of_signs(key, n):
    """n points in the plane, class 1 where x0 and x1 have the same sign."""
    x = jax.random.normal(key, (n, 2))
    return x, (x[:, 0] * x[:, 1] > 0).astype(jnp.int32)


def train(model, params, x, y, *, learning_rate, steps):
    """Full-batch gradient descent, w <- w - lr dL/dw, as one compiled scan.

    Returns the final params and the loss before each step.
    """
    def loss_fn(p):
        return fnn.losses.binary_cross_entropy(model.apply(p, x), y)

    def step(p, _):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        return jax.tree.map(lambda w, g: w - learning_rate * g, p, grads), loss

    return jax.jit(lambda p: jax.lax.scan(step, p, None, length=steps))(params)


def plot(report, curves, path):
    plt = _shared.pyplot_or_none()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    layers = range(1, report.norms.shape[1] + 1)
    for name, norms in zip(report.activations, report.norms):
        left.semilogy(layers, norms, "o-", label=name)
    left.set_xlabel("layer (1 = input side)")
    left.set_ylabel("|dL/dW| at initialisation")
    left.set_title("Gradient norm per layer")
    left.legend()
    for name, losses in curves.items():
        right.plot(losses, label=name)
    right.set_xlabel("gradient-descent step")
    right.set_ylabel("binary cross-entropy")
    right.set_title("Training loss")
    right.legend()
    _shared.save(fig, path)


def main(argv=None):
    parser = _shared.parser(__doc__, tiny="depth 4, few steps (for tests)", seed="seed of data and init")
    parser.add_argument("--depth", type=int, default=None, help="dense layers (default 10, tiny 4)")
    parser.add_argument("--width", type=int, default=None, help="hidden units (default 32, tiny 8)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 2000, tiny 50)")
    parser.add_argument("--learning-rate", type=float, default=0.1)
    args = parser.parse_args(argv)
    depth = args.depth or (4 if args.tiny else 10)
    width = args.width or (8 if args.tiny else 32)
    steps = args.steps or (50 if args.tiny else 2000)
    n = 128 if args.tiny else 512

    data_key, init_key = jax.random.split(jax.random.key(args.seed))
    x, y = xor_of_signs(data_key, n)
    report = diagnostics.vanishing_gradient_report(init_key, x, y, depth=depth, width=width,
                                                   activations=ACTIVATIONS)
    print(report)
    print(f"sigmoid: layer 1 gets {float(report.ratios[0]):.1e} of the last layer's gradient; "
          f"relu: {float(report.ratios[2]):.1e}.\n")

    # The report inits each network from the second half of init_key; reuse it so the
    # trained networks are the ones measured above.
    _, model_key = jax.random.split(init_key)
    print(f"Full-batch gradient descent, lr = {args.learning_rate}, {steps} steps, {n} points:")
    print(f"{'activation':>10}  {'loss at 0':>9}  {f'loss at {steps}':>12}  {'accuracy':>8}  "
          f"{'|dW1|/|W1|':>10}  {f'|dW{depth}|/|W{depth}|':>12}")
    curves, results = {}, {}
    for name in ACTIVATIONS:
        model = fnn.mlp([width] * (depth - 1) + [1], activation=name)
        params = model.init(model_key, (2,))
        trained, losses = train(model, params, x, y, learning_rate=args.learning_rate, steps=steps)
        final_loss = float(fnn.losses.binary_cross_entropy(model.apply(trained, x), y))
        accuracy = float(fnn.metrics.accuracy(model.apply(trained, x), y))
        moved = [float(jnp.linalg.norm(trained[i]["w"] - params[i]["w"]) / jnp.linalg.norm(params[i]["w"]))
                 for i in (0, -1)]
        print(f"{name:>10}  {float(losses[0]):9.4f}  {final_loss:12.4f}  {accuracy:8.3f}  "
              f"{moved[0]:10.1e}  {moved[1]:12.1e}")
        curves[name] = losses
        results[name] = {"loss": final_loss, "accuracy": accuracy, "first_layer_moved": moved[0]}
    slowest = min(results, key=lambda k: results[k]["first_layer_moved"])
    fastest = max(results, key=lambda k: results[k]["first_layer_moved"])
    print(f"The {slowest} network's first layer moved "
          f"{results[fastest]['first_layer_moved'] / results[slowest]['first_layer_moved']:.0f}x less "
          f"than the {fastest} network's (w_new ~ w_old).\nA network that cannot move its first "
          "layers stays near log 2 = 0.693, the loss of guessing.")

    os.makedirs(args.out, exist_ok=True)
    plot(report, curves, os.path.join(args.out, "06_vanishing_gradients.png"))
    print("final: " + ", ".join(f"{k} loss {v['loss']:.3f} acc {v['accuracy']:.3f}"
                                for k, v in results.items()))
    return {"first_last_ratio": dict(zip(ACTIVATIONS, report.ratios.tolist())), **results}


if __name__ == "__main__":
    main()
