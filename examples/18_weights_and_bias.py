r"""18 — Weights and bias: how w and b move one neuron's output curve.

What it teaches: the notes' "weights show the strength of the particular node" and "a
bias value allows you to shift the activation function curve". One neuron computes
:math:`a = \sigma(w x + b)`. Its curve crosses 0.5 where :math:`w x + b = 0`, at
:math:`x = -b / w`, with slope :math:`w / 4` there: the weight sets how steep the
switch is (and its direction), the bias moves it *left and right* along x — the notes
say "up or down", which is what the bias does to the net sum :math:`w x + b`, not to a
sigmoid's output, whose range stays (0, 1). The script draws the curve for several w
and several b and prints the measured crossing point and slope beside the formulas.

Run::

    python examples/18_weights_and_bias.py          # a second
    python examples/18_weights_and_bias.py --tiny   # what the tests run

Writes ``18_weights_and_bias.png`` into ``--out`` when matplotlib is installed.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

import fnn

import _shared

WEIGHTS = (0.5, 1.0, 3.0, -2.0)
BIASES = (-3.0, 0.0, 3.0)


def neuron(w, b, x):
    return fnn.sigmoid(w * x + b)


def crossing(w, b, x):
    """Where the sampled curve crosses 0.5 (linear interpolation) and the slope there."""
    a = neuron(w, b, x)
    i = jnp.argmin(jnp.abs(a - 0.5))
    x0 = x[i] + (0.5 - a[i]) / (w * a[i] * (1 - a[i]))   # one Newton step from the nearest point
    return float(x0), float(jax.grad(lambda t: neuron(w, b, t))(x0))


def plot(x, path):
    plt = _shared.pyplot_or_none()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for w in WEIGHTS:
        left.plot(x, neuron(w, 0.0, x), label=f"w = {w}, b = 0")
    left.set_title("The weight sets steepness and direction")
    for b in BIASES:
        right.plot(x, neuron(1.0, b, x), label=f"w = 1, b = {b}")
        right.axvline(-b, color="grey", lw=0.5)
    right.set_title("The bias shifts the curve along x (to x = -b / w)")
    for ax in (left, right):
        ax.set_xlabel("input x")
        ax.set_ylabel("sigmoid(w x + b)")
        ax.legend(fontsize="small")
    _shared.save(fig, path)


def main(argv=None):
    args = _shared.parser(__doc__, tiny="a coarse grid (for tests)").parse_args(argv)
    x = jnp.linspace(-8.0, 8.0, 161 if args.tiny else 1601)

    print(f"{'w':>6}{'b':>6}{'crossing x':>12}{'-b/w':>8}{'slope there':>13}{'w/4':>8}")
    rows = []
    for w, b in [(w, 0.0) for w in WEIGHTS] + [(1.0, b) for b in BIASES] + [(2.0, 3.0)]:
        x0, s = crossing(w, b, x)
        rows.append({"w": w, "b": b, "crossing": x0, "slope": s})
        print(f"{w:6.1f}{b:6.1f}{x0:12.4f}{-b / w:8.3f}{s:13.4f}{w / 4:8.3f}")
    os.makedirs(args.out, exist_ok=True)
    plot(x, os.path.join(args.out, "18_weights_and_bias.png"))
    worst = max(max(abs(r["crossing"] + r["b"] / r["w"]), abs(r["slope"] - r["w"] / 4)) for r in rows)
    print(f"final: largest gap between measured and -b/w, w/4: {worst:.1e}")
    return {"rows": rows, "worst": worst}


if __name__ == "__main__":
    main()
