"""Benchmark: fnn against scikit-learn's ``MLPClassifier``, the classic, on the same MLP.

Same problem for both, in one process: the bundled digits (1,797 x 64, 10 classes) and
breast-cancer (569 x 30, 2 classes) data, split 80/20 (stratified, keyed) and
standardised on the training split by ``fnn.datasets.load``; the same arrays go to both
libraries. Same model and training: one hidden layer of 128 ReLU units, softmax output,
cross-entropy, Adam (lr 1e-3, b1 0.9, b2 0.999, eps 1e-8), batch 64, reshuffled every
epoch, no L2 penalty (``alpha=0``), no early stopping: ``MLPClassifier(max_iter=E,
tol=0, n_iter_no_change=E + 1)`` runs exactly E epochs, as ``fnn.fit(epochs=E)`` does.
The ragged last batch is a (smaller) step in both.

Reported per dataset, epoch count and library (median over ``--repeats`` runs with
different seeds; accuracy is the mean, with its min and max):

* ``wall_s``: one complete training run. For fnn this *includes compilation*: every
  run builds a new model and calls ``jax.clear_caches()`` first, so it pays tracing and
  XLA compilation as a fresh process would (imports excluded for both libraries).
* ``per_epoch_ms``: steady state. fnn: the same compiled program run again (no
  compilation), divided by the epochs. scikit-learn has no compile step, so its
  per-epoch time is its wall time over the epochs.
* ``speedup``: scikit-learn's time over fnn's (> 1: fnn faster).

Run::

    python benchmarks/bench_vs_sklearn.py                 # 30 and 100 epochs, a few minutes
    python benchmarks/bench_vs_sklearn.py --sizes 30 --repeats 3
    python benchmarks/bench_vs_sklearn.py --tiny          # seconds (smoke test)

``--sizes`` are the epoch counts. Needs scikit-learn (``pip install "fnn[data]"``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fnn  # noqa: E402
from _common import add_common_args, device_info, format_table, output_path, write_json  # noqa: E402

HIDDEN, LR, BATCH = 128, 1e-3, 64
DATASETS = ("digits", "breast_cancer")
COLUMNS = ["data", "epochs", "library", "accuracy", "acc_min", "acc_max", "wall_s",
           "per_epoch_ms", "speedup_wall", "speedup_epoch"]


def run_fnn(data: fnn.datasets.Dataset, epochs: int, seed: int) -> dict:
    """One cold run (caches cleared: compilation included) and one steady-state run."""
    jax.clear_caches()
    k_init, k_order = jax.random.split(jax.random.key(seed))
    t0 = time.perf_counter()
    model = fnn.mlp([HIDDEN, data.num_classes])
    # One compiled init (as `fnn train` does) rather than a compile per eager random op.
    params = jax.jit(model.init, static_argnums=1)(k_init, data.x_train.shape[1:])
    optimizer = fnn.optimizers.adam(LR)
    result = fnn.fit(model, params, optimizer, data.x_train, data.y_train, epochs=epochs,
                     batch_size=BATCH, key=k_order, progress=False)
    jax.block_until_ready(result.params)
    wall = time.perf_counter() - t0
    t0 = time.perf_counter()   # the same program again: no tracing, no compilation
    again = fnn.fit(model, params, optimizer, data.x_train, data.y_train, epochs=epochs,
                    batch_size=BATCH, key=k_order, progress=False)
    jax.block_until_ready(again.params)
    steady = time.perf_counter() - t0
    accuracy = float(fnn.evaluate(model, result.params, data.x_test, data.y_test)["accuracy"])
    return {"wall_s": wall, "epoch_s": steady / epochs, "accuracy": accuracy}


def run_sklearn(data: fnn.datasets.Dataset, epochs: int, seed: int) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x_train, y_train = np.asarray(data.x_train), np.asarray(data.y_train)
    clf = MLPClassifier(hidden_layer_sizes=(HIDDEN,), activation="relu", solver="adam",
                        learning_rate_init=LR, batch_size=BATCH, max_iter=epochs, alpha=0.0,
                        tol=0.0, n_iter_no_change=epochs + 1, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # "max_iter reached": intended
        t0 = time.perf_counter()
        clf.fit(x_train, y_train)
        wall = time.perf_counter() - t0
    assert clf.n_iter_ == epochs, (clf.n_iter_, epochs)
    accuracy = float(clf.score(np.asarray(data.x_test), np.asarray(data.y_test)))
    return {"wall_s": wall, "epoch_s": wall / epochs, "accuracy": accuracy}


def summarize(name: str, epochs: int, library: str, runs: list[dict], shapes: dict) -> dict:
    accuracies = [r["accuracy"] for r in runs]
    return {"data": name, "epochs": epochs, "library": library, **shapes,
            "accuracy": statistics.mean(accuracies), "acc_min": min(accuracies),
            "acc_max": max(accuracies), "wall_s": statistics.median(r["wall_s"] for r in runs),
            "wall_min_s": min(r["wall_s"] for r in runs),
            "per_epoch_ms": 1e3 * statistics.median(r["epoch_s"] for r in runs),
            "repeats": len(runs), **device_info()}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, sizes="30,100", repeats=5, out="benchmarks/results/vs_sklearn.json")
    parser.add_argument("--data", default=",".join(DATASETS),
                        help=f"comma-separated datasets (default {','.join(DATASETS)})")
    args = parser.parse_args(argv)
    epoch_counts = [2] if args.tiny else args.sizes
    repeats = 1 if args.tiny else args.repeats

    rows = []
    for name in args.data.split(","):
        data = fnn.datasets.load(name, key=jax.random.key(0), test_fraction=0.2)
        shapes = {"train": list(data.x_train.shape), "test": list(data.x_test.shape),
                  "model": f"{data.x_train.shape[1]}-{HIDDEN}-{data.num_classes}", "batch": BATCH}
        run_sklearn(data, 1, 0)   # warm-up: scikit-learn's lazy imports, not its training
        for epochs in epoch_counts:
            runs = {"fnn": [], "sklearn": []}
            for seed in range(repeats):   # interleaved, so load drifts hit both alike
                runs["fnn"].append(run_fnn(data, epochs, seed))
                runs["sklearn"].append(run_sklearn(data, epochs, seed))
            fnn_row, sk_row = (summarize(name, epochs, lib, runs[lib], shapes) for lib in ("fnn", "sklearn"))
            fnn_row["speedup_wall"] = sk_row["wall_s"] / fnn_row["wall_s"]
            fnn_row["speedup_epoch"] = sk_row["per_epoch_ms"] / fnn_row["per_epoch_ms"]
            rows += [fnn_row, sk_row]
            print(format_table([fnn_row, sk_row], COLUMNS), flush=True)
    print("\n" + format_table(rows, COLUMNS))
    print("fnn wall_s includes compilation (caches cleared per run); per_epoch_ms is steady state. "
          f"speedup = sklearn / fnn. {device_info()['device_kind']}, {os.cpu_count()} CPU(s), "
          f"jax {jax.__version__}.")
    write_json(output_path(args), rows, benchmark="bench_vs_sklearn", hidden=HIDDEN,
               learning_rate=LR, batch_size=BATCH, repeats=repeats)
    return rows


if __name__ == "__main__":
    main()
