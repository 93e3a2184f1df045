r"""12 — The update rule as the notes draw it: slopes at 'a' and 'b', and three learning rates.

What it teaches: ``w_new = w_old - eta * dL/dw`` on a loss of one weight,
:math:`L(w) = (w - w^*)^2 + 1` with :math:`w^* = 2`. At the notes' point 'a' (left of the
minimum) the tangent points down, the slope is negative and the step *increases* w; at
'b' (right of it) the slope is positive and the step *decreases* w. Then the same rule
from 'a' for several learning rates: too small (crawls), right (a few steps), too large
(overshoots and oscillates around the minimum) and larger still (diverges). For this
loss the distance to the minimum is multiplied by exactly :math:`|1 - 2\eta|` per step,
so the printed distances can be checked by hand.

Run::

    python examples/12_update_rule_slopes.py          # a second
    python examples/12_update_rule_slopes.py --tiny   # what the tests run

Writes ``12_update_rule_slopes.png`` into ``--out`` when matplotlib is installed.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

import fnn

import _shared

W_STAR = 2.0
POINTS = {"a": -1.0, "b": 4.5}
RATES = {"too small": 0.05, "right": 0.4, "too large (oscillates)": 0.9, "diverges": 1.05}


def loss(w):
    return (w - W_STAR) ** 2 + 1.0


slope = jax.grad(loss)


def descend(w, learning_rate, steps):
    """Iterates w_0, w_1, ..., w_steps of gradient descent, as one compiled scan."""
    def step(w, _):
        w_new = w - learning_rate * slope(w)
        return w_new, w_new
    return jnp.concatenate([w[None], jax.lax.scan(step, w, None, length=steps)[1]])


def plot(paths, path):
    plt = _shared.pyplot_or_none()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    w = jnp.linspace(-2.5, 6.5, 200)
    left.plot(w, loss(w), "k", label="L(w)")
    for name, w0 in POINTS.items():
        s, w0 = float(slope(w0)), jnp.float32(w0)
        t = jnp.linspace(w0 - 1.2, w0 + 1.2, 2)
        left.plot(t, loss(w0) + s * (t - w0), "--", label=f"tangent at {name}: slope {s:+.1f}")
        w1 = float(w0 - 0.1 * s)
        left.annotate("", xy=(w1, float(loss(w1))), xytext=(float(w0), float(loss(w0))),
                      arrowprops={"arrowstyle": "->", "color": "red"})
        left.text(float(w0), float(loss(w0)) + 1.5, name, fontsize=12)
    left.set_xlabel("w")
    left.set_ylabel("L(w)")
    left.set_title("Negative slope at a: w grows; positive at b: w shrinks")
    left.set_ylim(0, 25)
    left.legend(fontsize="small")
    for name, ws in paths.items():
        right.plot(ws, "o-", ms=3, label=name)
    right.axhline(W_STAR, color="grey", lw=0.5)
    right.set_ylim(-6, 10)
    right.set_xlabel("step")
    right.set_ylabel("w")
    right.set_title("w_new = w_old - eta dL/dw from a")
    right.legend(fontsize="small")
    _shared.save(fig, path)


def main(argv=None):
    args = _shared.parser(__doc__, tiny="fewer steps (for tests)").parse_args(argv)
    steps = 10 if args.tiny else 30

    moves = {}
    for name, w0 in POINTS.items():
        s = float(slope(jnp.float32(w0)))
        w1 = float(w0 - 0.1 * s)
        moves[name] = {"slope": s, "w_old": w0, "w_new": w1}
        print(f"point {name}: w = {w0:+.2f}, slope dL/dw = {s:+.2f} -> with eta 0.1, w_new = {w1:+.2f} "
              f"({'grows' if w1 > w0 else 'shrinks'})")
    paths, distances = {}, {}
    for name, eta in RATES.items():
        ws = descend(jnp.float32(POINTS["a"]), eta, steps)
        paths[f"eta {eta} ({name})"] = ws
        distances[eta] = float(jnp.abs(ws[-1] - W_STAR))
        print(f"eta {eta:<5} {name:<24}: |w_{steps} - w*| = {distances[eta]:.3e} "
              f"(closed form |1 - 2 eta|^{steps} * 3 = {abs(1 - 2 * eta) ** steps * 3:.3e})")
    os.makedirs(args.out, exist_ok=True)
    plot(paths, os.path.join(args.out, "12_update_rule_slopes.png"))
    print(f"final: distance to the minimum after {steps} steps: "
          + ", ".join(f"eta {k}: {v:.2e}" for k, v in distances.items()))
    return {"moves": moves, "distances": distances, "steps": steps}


if __name__ == "__main__":
    main()
