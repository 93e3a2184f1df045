"""01 - Activation functions and their derivatives.

What it teaches: what each activation of the lecture notes looks like, what its
derivative looks like, and why that matters for training. The derivative is what the
backward stage multiplies by at every layer: sigmoid's never exceeds 0.25 (so a deep
sigmoid network's gradient shrinks, the vanishing-gradient problem of example 06),
tanh's peaks at 1, ReLU's is exactly 1 for every active unit, and the step function's
is 0 everywhere (which is why the perceptron of example 02 needs its own learning rule).

Every derivative is computed twice, by ``jax.grad`` and by the hand-written formula of
``fnn.backprop.derivative`` (sigma (1 - sigma), 1 - tanh^2, ...), and the two are
compared.

Run:
    python examples/01_activations.py            # prints a table, writes runs/examples/01_activations.png
    python examples/01_activations.py --tiny     # a few points, for tests
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

import fnn
from fnn import backprop

import _shared

# (name, function of z, hand-written derivative or None)
GALLERY = [
    ("step", fnn.step, None),
    ("sigmoid", fnn.sigmoid, backprop.derivative("sigmoid")),
    ("tanh", fnn.tanh, backprop.derivative("tanh")),
    ("relu", fnn.relu, backprop.derivative("relu")),
    ("leaky_relu", fnn.leaky_relu, backprop.derivative("leaky_relu")),
    ("prelu (alpha=0.25)", lambda z: fnn.prelu(z, 0.25), None),
    ("elu", fnn.elu, backprop.derivative("elu")),
    ("identity", fnn.identity, backprop.derivative("identity")),
]


def elementwise_grad(f):
    """f'(z) for every element of z: the gradient of sum f(z)."""
    return jax.grad(lambda z: jnp.sum(f(z)))


@jax.jit
def gallery(z):
    """For each activation: f(z), f'(z) by jax.grad, f'(z) by hand (NaN if none), f'(0)."""
    zero = jnp.zeros(1, z.dtype)
    return [(f(z), elementwise_grad(f)(z), hand(z) if hand else jnp.full_like(z, jnp.nan),
             elementwise_grad(f)(zero)[0]) for _, f, hand in GALLERY]


def plot(curves, z, path):
    plt = _shared.pyplot_or_none()
    if plt is None:
        return
    fig, axes = plt.subplots(2, 4, figsize=(14, 6.5), sharex=True)
    for ax, (name, f_z, df_z) in zip(axes.ravel(), curves):
        ax.plot(z, f_z, label="f(z)")
        ax.plot(z, df_z, "--", label="f'(z)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_title(name)
        ax.set_ylim(-1.5, 2.5)
    axes[0, 0].legend(loc="upper left")
    fig.suptitle("Activation functions (solid) and their derivatives (dashed)")
    _shared.save(fig, path)


def main(argv=None):
    args = _shared.parser(__doc__, tiny="a few points only (for tests)").parse_args(argv)

    z = jnp.linspace(-4.0, 4.0, 81 if args.tiny else 1601)  # includes z = 0 exactly
    print(f"{'activation':<20}{'f range on [-4, 4]':>20}{'max f-prime':>13}{'f-prime(0)':>12}"
          f"{'max |hand - jax.grad|':>24}")
    curves, worst = [], 0.0
    for (name, _, hand), (f_z, df_z, hand_z, df_0) in zip(GALLERY, gallery(z)):
        if hand is None:
            gap = "-"
        else:
            worst = max(worst, float(jnp.max(jnp.abs(hand_z - df_z))))
            gap = f"{float(jnp.max(jnp.abs(hand_z - df_z))):.1e}"
        print(f"{name:<20}{f'[{float(f_z.min()):.3f}, {float(f_z.max()):.3f}]':>20}"
              f"{float(df_z.max()):>13.4f}{float(df_0):>12.4f}{gap:>24}")
        curves.append((name, f_z, df_z))

    print("\nAt the kinks the derivative is a convention, the one jax.nn uses: relu'(0) = 0,"
          " leaky_relu'(0) = 1, elu'(0) = alpha = 1.")
    print("\nsigmoid' <= 0.25: ten sigmoid layers multiply the gradient by at most "
          f"0.25^10 = {0.25 ** 10:.1e}; ten ReLU layers by 1 (for active units).")
    print(f"largest gap between hand-written and jax.grad derivatives: {worst:.1e}")

    os.makedirs(args.out, exist_ok=True)
    plot(curves, z, os.path.join(args.out, "01_activations.png"))
    return {"sigmoid_max_derivative": float(curves[1][2].max()), "max_gap": worst}


if __name__ == "__main__":
    main()
