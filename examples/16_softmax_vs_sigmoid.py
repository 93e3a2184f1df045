r"""16 — Softmax of two classes is the sigmoid: the identity, and two networks trained.

What it teaches: the notes' "in binary classification, softmax is degraded to sigmoid".
For two scores :math:`z_1, z_2`,

.. math:: \mathrm{softmax}(z)_1 = \frac{e^{z_1}}{e^{z_1} + e^{z_2}} = \sigma(z_1 - z_2)

so a 2-output softmax network is a 1-output sigmoid network whose logit is the
difference of the two. The script checks the identity on a grid, then trains a
2-class softmax MLP and a 1-output sigmoid MLP from *equivalent* inits (the sigmoid
net's output kernel is the difference of the softmax net's two output columns) with
full-batch gradient descent. Both losses give the hidden layers the same gradient, and
the two softmax columns move in opposite directions, so their difference moves twice
as far as one column: the sigmoid net takes rate :math:`\eta` on its hidden layers and
:math:`2\eta` on its output layer, and then the two nets' predicted probabilities stay
equal to float32 rounding at every step.

Run::

    python examples/16_softmax_vs_sigmoid.py          # seconds
    python examples/16_softmax_vs_sigmoid.py --tiny   # what the tests run

Writes ``16_softmax_vs_sigmoid.png`` into ``--out`` when matplotlib is installed.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

import fnn

import _shared


def equivalent_sigmoid_params(softmax_params):
    """The 1-output params whose logit is z_1 - z_2 of the 2-output softmax params."""
    *hidden, out = softmax_params
    return hidden + [{"w": out["w"][:, 1:] - out["w"][:, :1], "b": out["b"][1:] - out["b"][:1]}]


def train(loss_fn, params, rates, steps):
    """Full-batch gradient descent with one learning rate per layer; params after each step."""
    def step(p, _):
        grads = jax.grad(loss_fn)(p)
        p = [jax.tree.map(lambda w, g: w - lr * g, pl, gl) for pl, gl, lr in zip(p, grads, rates)]
        return p, p
    return jax.jit(lambda p: jax.lax.scan(step, p, None, length=steps))(params)[1]


def plot(z, gap_identity, p_softmax, p_sigmoid, path):
    plt = _shared.pyplot_or_none()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.plot(z, fnn.softmax(jnp.stack([z, jnp.zeros_like(z)], -1))[:, 0], lw=4, alpha=0.4,
              label="softmax([z, 0])[0]")
    left.plot(z, fnn.sigmoid(z), "k--", label="sigmoid(z)")
    left.set_xlabel("z = z1 - z2")
    left.set_title(f"Identity; largest gap {gap_identity:.1e}")
    left.legend()
    right.plot(p_softmax, p_sigmoid, ".", ms=3)
    right.plot([0, 1], [0, 1], "k", lw=0.5)
    right.set_xlabel("P(class 1), 2-output softmax net")
    right.set_ylabel("P(class 1), 1-output sigmoid net")
    right.set_title("After training, every training point")
    _shared.save(fig, path)


def main(argv=None):
    args = _shared.parser(__doc__, tiny="few steps (for tests)",
                          seed="seed of data and init").parse_args(argv)
    steps, n = (20, 200) if args.tiny else (500, 1000)

    z = jnp.linspace(-10, 10, 2001)
    two = jnp.stack([z, jnp.zeros_like(z)], -1)
    gap_identity = float(jnp.max(jnp.abs(fnn.softmax(two)[:, 0] - fnn.sigmoid(z))))
    print(f"max |softmax([z, 0])[0] - sigmoid(z)| on [-10, 10]: {gap_identity:.1e}")

    k_data, k_init = jax.random.split(jax.random.key(args.seed))
    data = fnn.datasets.load("moons", key=k_data, n=n, noise=0.1)
    x, y = data.x_train, data.y_train
    soft = fnn.mlp([16, 16, 2], activation="tanh")
    sig = fnn.mlp([16, 16, 1], activation="tanh")
    p_soft = soft.init(k_init, (2,))
    p_sig = equivalent_sigmoid_params(p_soft)
    lr = 0.5
    soft_path = train(lambda p: fnn.losses.softmax_cross_entropy(soft.apply(p, x), y), p_soft,
                      [lr, lr, lr], steps)
    sig_path = train(lambda p: fnn.losses.binary_cross_entropy(sig.apply(p, x)[:, 0], y), p_sig,
                     [lr, lr, 2 * lr], steps)
    prob = jax.jit(jax.vmap(lambda ps, pg: (fnn.softmax(soft.apply(ps, x))[:, 1],
                                            fnn.sigmoid(sig.apply(pg, x)[:, 0]))))
    p1, p2 = prob(soft_path, sig_path)
    gaps = jnp.max(jnp.abs(p1 - p2), axis=1)
    accuracy = float(fnn.metrics.accuracy(soft.apply(jax.tree.map(lambda a: a[-1], soft_path), x), y))
    print(f"moons, {x.shape[0]} points, MLP 2-16-16 tanh, {steps} full-batch steps at lr {lr} "
          f"(sigmoid output layer {2 * lr})")
    for s in sorted({0, steps // 2, steps - 1}):
        print(f"step {s + 1:4d}: max |P_softmax - P_sigmoid| over the points = {float(gaps[s]):.2e}")
    os.makedirs(args.out, exist_ok=True)
    plot(z, gap_identity, p1[-1], p2[-1], os.path.join(args.out, "16_softmax_vs_sigmoid.png"))
    print(f"final: largest gap over all steps {float(jnp.max(gaps)):.2e}; train accuracy {accuracy:.3f}")
    return {"identity_gap": gap_identity, "max_gap": float(jnp.max(gaps)), "accuracy": accuracy,
            "p_softmax": p1[-1], "p_sigmoid": p2[-1]}


if __name__ == "__main__":
    main()
