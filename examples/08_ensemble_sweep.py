r"""08 — Many models in one run: an ensemble over init keys and a learning-rate sweep.

What it teaches: ``jax.vmap`` turns "train K models" into one compiled program.

* **Ensemble** (``fnn.training.init_ensemble`` + ``fit_ensemble``): K copies of one MLP
  that differ only in their random initial weights, trained together on the same
  batches. Averaging their predicted probabilities,
  :math:`\bar p(y \mid x) = \frac1K \sum_k \operatorname{softmax}(f_{\theta_k}(x))`,
  usually beats the average member: their errors are partly independent.
* **Sweep** (``fnn.training.fit_sweep``): one model per learning rate, all from the same
  init, so the only difference is :math:`\eta`. Too small crawls, too large overshoots
  (a member whose loss turns NaN is frozen by the non-finite guard and reported), the
  middle wins.

Because the members share each batch, the first layer of all K models runs as one wide
matrix product; the K models cost far less than K separate runs. The script times one
model against the ensemble (both after compilation).

Run (needs the ``data`` extra, ``pip install "fnn[data]"``)::

    python examples/08_ensemble_sweep.py          # ~30 s on 2 CPU cores
    python examples/08_ensemble_sweep.py --tiny   # seconds (what the tests run)

Writes ``08_ensemble.png`` (test accuracy of each member and their mean) and
``08_lr_sweep.png`` (train loss per learning rate) into ``--out`` when matplotlib is
installed.
"""

from __future__ import annotations

import functools
import os
import time
import warnings

import jax
import jax.numpy as jnp

import fnn
from fnn import plots

import _shared


@functools.partial(jax.jit, static_argnums=0)
def ensemble_accuracy(model, params, x, y) -> jax.Array:
    """Accuracy of the members' mean predicted probabilities."""
    logits = jax.vmap(model.apply, in_axes=(0, None))(params, x)       # (K, n, classes)
    mean_probabilities = jnp.mean(jax.nn.softmax(logits), axis=0)
    return jnp.mean(jnp.argmax(mean_probabilities, axis=-1) == y)


def main(argv: list[str] | None = None) -> dict:
    parser = _shared.parser("An ensemble and a learning-rate sweep with vmap.",
                            tiny="small and short (smoke test)", out="folder for the plots",
                            seed="seed of split, inits and batch order")
    parser.add_argument("--members", type=int, default=8, help="ensemble size K")
    args = parser.parse_args(argv)
    hidden, epochs, members = (16, 2, 3) if args.tiny else (64, 15, args.members)

    k_data, k_init, k_order = jax.random.split(jax.random.key(args.seed), 3)
    data = fnn.datasets.load("digits", key=k_data)
    model = fnn.mlp([hidden, data.num_classes])
    features = data.x_train.shape[1:]
    common = dict(epochs=epochs, batch_size=64, key=k_order, eval_data=(data.x_test, data.y_test),
                  progress=False)

    optimizer = fnn.optimizers.adam(2e-3)
    params = fnn.training.init_ensemble(model, jax.random.split(k_init, members), features)

    def timed(fit, start):
        fit(model, start, optimizer, data.x_train, data.y_train, **common)   # compiles
        t0 = time.perf_counter()
        result = fit(model, start, optimizer, data.x_train, data.y_train, **common)
        jax.block_until_ready(result.params)
        return result, time.perf_counter() - t0

    ens, ensemble_s = timed(fnn.training.fit_ensemble, params)
    member_acc = ens.history["eval_accuracy"][:, -1]
    averaged = float(ensemble_accuracy(model, ens.params, data.x_test, data.y_test))
    print(f"ensemble of {members}: member test accuracy {float(member_acc.min()):.4f} .. "
          f"{float(member_acc.max()):.4f} (mean {float(member_acc.mean()):.4f}); "
          f"averaged probabilities {averaged:.4f}")
    if not args.tiny:   # (skipped by the smoke test: one more compiled program)
        _, single_s = timed(fnn.fit, model.init(k_init, features))
        print(f"time after compilation: 1 model {single_s:.2f} s, {members} models at once "
              f"{ensemble_s:.2f} s ({ensemble_s / single_s:.1f}x the time for {members}x the models)")

    rates = jnp.logspace(-4, 0, 4 if args.tiny else 9)
    with warnings.catch_warnings():   # the largest rates may diverge; reported below
        warnings.simplefilter("ignore", RuntimeWarning)
        sweep = fnn.training.fit_sweep(model, model.init(k_init, features), fnn.optimizers.adam,
                                       rates, data.x_train, data.y_train, **common)
    diverged = {r.member for r in sweep.nonfinite}
    for k, lr in enumerate(rates.tolist()):
        h = sweep.history
        status = "  diverged: frozen at its last finite params" if k in diverged else ""
        print(f"lr {lr:8.5f}: final train loss {float(jnp.nan_to_num(h['train_loss'][k, -1], nan=jnp.inf)):8.4f}"
              f"  test accuracy {float(jnp.nan_to_num(h['eval_accuracy'][k, -1])):.4f}{status}")

    os.makedirs(args.out, exist_ok=True)
    plots.curves({"member": ens.history["eval_accuracy"]}, os.path.join(args.out, "08_ensemble.png"),
                 ylabel="test accuracy", title=f"{members} inits of one MLP (averaged: {averaged:.4f})")
    plots.curves({f"lr {lr:.2g}": sweep.history["train_loss"][k] for k, lr in enumerate(rates.tolist())},
                 os.path.join(args.out, "08_lr_sweep.png"), log_y=True, ylabel="train loss",
                 title="Adam learning-rate sweep, one compiled run")
    best = int(jnp.argmax(jnp.nan_to_num(sweep.history["eval_accuracy"][:, -1])))
    print(f"best learning rate {float(rates[best]):.5f}; ensemble-averaged accuracy {averaged:.4f}")
    return {"ensemble_accuracy": averaged, "member_accuracy_mean": float(member_acc.mean()),
            "best_learning_rate": float(rates[best])}


if __name__ == "__main__":
    main()
