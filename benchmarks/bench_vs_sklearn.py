r"""Benchmark: fnn against scikit-learn's ``MLPClassifier``, the classic, on the same MLP.

Same problem for both, in one process: the bundled digits (1,797 x 64, 10 classes) and
breast-cancer (569 x 30, 2 classes) data, split 80/20 (stratified, keyed) and
standardised on the training split by ``fnn.datasets.load``; the same arrays go to both
libraries. Same model and training: one hidden layer of 128 ReLU units, a softmax output
(one logistic unit for the two breast-cancer classes, as MLPClassifier does),
cross-entropy, Adam (lr 1e-3, b1 0.9, b2 0.999, eps 1e-8), batch 64, reshuffled every
epoch, no L2 penalty (``alpha=0``), no early stopping: ``MLPClassifier(max_iter=E,
tol=0, n_iter_no_change=E + 1)`` runs exactly E epochs, as ``fnn.fit(epochs=E)`` does.
The ragged last batch is a (smaller) step in both.

Two fnn rows: ``fnn`` with the library's default init (He-normal weights for ReLU,
zero biases) and ``fnn[sklearn init]`` with MLPClassifier's (weights *and* biases
uniform in :math:`\pm\sqrt{6 / (\text{fan\_in} + \text{fan\_out})}`), so the last
difference between the two models is gone. Reported per dataset, epoch count and row:

* ``accuracy`` / ``acc_sd``: test accuracy, mean and standard deviation over ``--seeds``
  seeds (init and batch order; ``random_state`` for scikit-learn).
* ``wall_s``: one complete training run, median. For fnn over ``--repeats`` *cold* runs:
  each builds a new model after ``jax.clear_caches()``, so it pays tracing and XLA
  compilation as a fresh process would (imports excluded for both libraries). The
  ``fnn[disk cache]`` row does the same with JAX's persistent compilation cache warm
  (:mod:`fnn.compilation_cache`, on by default in ``fnn train``): what a later process
  pays for the same run — tracing and loading the programs, not compiling them. For
  scikit-learn over the seeds.
* ``per_epoch_ms``: steady state, median. fnn: the compiled program run again from the
  other seeds' inits (no compilation), over the epochs. scikit-learn has no compile
  step: its wall time over the epochs.
* ``speedup_wall`` / ``speedup_epoch``: scikit-learn's time over fnn's (> 1: fnn faster),
  against the faster of scikit-learn's two rows: its default BLAS/OpenMP thread pools
  (``sklearn``) and one thread (``sklearn[1 thread]``, via ``threadpoolctl``), which for
  matrices this small is usually faster, and much faster on a machine under load.

Run::

    python benchmarks/bench_vs_sklearn.py                 # 30 and 100 epochs, a few minutes
    python benchmarks/bench_vs_sklearn.py --sizes 30 --seeds 5
    python benchmarks/bench_vs_sklearn.py --tiny          # seconds (smoke test)

``--sizes`` are the epoch counts. Needs scikit-learn (``pip install "fnn[data]"``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import warnings

import jax
import numpy as np
from jax.experimental.compilation_cache import compilation_cache

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fnn  # noqa: E402
from _common import add_common_args, device_info, format_table, output_path, write_json  # noqa: E402

HIDDEN, LR, BATCH = 128, 1e-3, 64
DATASETS = ("digits", "breast_cancer")
COLUMNS = ["data", "epochs", "library", "accuracy", "acc_sd", "wall_s", "per_epoch_ms",
           "speedup_wall", "speedup_epoch"]


def sklearn_like_init(key: jax.Array, sizes: list[int]) -> list[dict]:
    """MLPClassifier's init: weights and biases U(-b, b), b = sqrt(6 / (fan_in + fan_out))."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        key, k_w, k_b = jax.random.split(key, 3)
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        params.append({"w": jax.random.uniform(k_w, (fan_in, fan_out), minval=-bound, maxval=bound),
                       "b": jax.random.uniform(k_b, (fan_out,), minval=-bound, maxval=bound)})
    return params


@contextlib.contextmanager
def disk_cache():
    """JAX's persistent compilation cache in a fresh directory, off again afterwards."""
    with tempfile.TemporaryDirectory() as path:
        fnn.compilation_cache.enable(path)
        try:
            yield
        finally:
            jax.config.update("jax_compilation_cache_dir", None)
            compilation_cache.reset_cache()


def fnn_runs(data: fnn.datasets.Dataset, epochs: int, init: str, repeats: int, seeds: int,
             warm_disk_cache: bool = False) -> list[dict]:
    """``repeats`` cold runs (caches cleared: compilation in wall_s), then ``seeds`` runs of
    the compiled program from different inits and batch orders (steady state, accuracy).

    ``warm_disk_cache``: the cold runs find their programs in JAX's persistent cache, as a
    new process does after a first run (``fnn train`` keeps one by default); one more
    cold run before them fills it and is not counted."""
    if warm_disk_cache:
        with disk_cache():
            return fnn_runs(data, epochs, init, repeats + 1, seeds + 1)[1:]
    # Like MLPClassifier: one logistic output unit for two classes, softmax for more.
    binary = data.num_classes == 2
    loss = fnn.losses.binary_cross_entropy if binary else fnn.losses.softmax_cross_entropy
    sizes = [data.x_train.shape[1], HIDDEN, 1 if binary else data.num_classes]
    runs: list[dict] = []
    for seed in range(max(repeats, seeds)):
        k_init, k_order = jax.random.split(jax.random.key(seed))
        cold = seed < repeats
        if cold:
            jax.clear_caches()
            t0 = time.perf_counter()
            model = fnn.mlp(sizes[1:])
            optimizer = fnn.optimizers.adam(LR)
            # One compiled init (as `fnn train` does), not a compile per eager random op.
            start = jax.jit(model.init, static_argnums=1) if init == "fnn" else \
                jax.jit(sklearn_like_init, static_argnums=1)
        else:
            t0 = time.perf_counter()
        params = start(k_init, tuple(sizes[:1]) if init == "fnn" else tuple(sizes))
        result = fnn.fit(model, params, optimizer, data.x_train, data.y_train, loss=loss,
                         epochs=epochs, batch_size=BATCH, key=k_order, progress=False)
        jax.block_until_ready(result.params)
        seconds = time.perf_counter() - t0
        accuracy = float(fnn.evaluate(model, result.params, data.x_test, data.y_test,
                                      loss=loss)["accuracy"])
        runs.append({"wall_s": seconds if cold else None, "epoch_s": None if cold else seconds / epochs,
                     "accuracy": accuracy if seed < seeds else None})
    return runs


def sklearn_runs(data: fnn.datasets.Dataset, epochs: int, seeds: int,
                 threads: int | None = None) -> list[dict]:
    """MLPClassifier over ``seeds`` random states; ``threads`` caps its BLAS/OpenMP pools."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    x_train, y_train = np.asarray(data.x_train), np.asarray(data.y_train)
    runs = []
    for seed in range(seeds):
        clf = MLPClassifier(hidden_layer_sizes=(HIDDEN,), activation="relu", solver="adam",
                            learning_rate_init=LR, batch_size=BATCH, max_iter=epochs, alpha=0.0,
                            tol=0.0, n_iter_no_change=epochs + 1, shuffle=True, random_state=seed)
        with warnings.catch_warnings(), threadpool_limits(threads):
            warnings.simplefilter("ignore", ConvergenceWarning)   # "max_iter reached": intended
            t0 = time.perf_counter()
            clf.fit(x_train, y_train)
            wall = time.perf_counter() - t0
        assert clf.n_iter_ == epochs, (clf.n_iter_, epochs)
        accuracy = float(clf.score(np.asarray(data.x_test), np.asarray(data.y_test)))
        runs.append({"wall_s": wall, "epoch_s": wall / epochs, "accuracy": accuracy})
    return runs


def summarize(name: str, epochs: int, library: str, runs: list[dict], shapes: dict) -> dict:
    pick = lambda field: [r[field] for r in runs if r[field] is not None]  # noqa: E731
    accuracies = pick("accuracy")
    return {"data": name, "epochs": epochs, "library": library, **shapes,
            "accuracy": statistics.mean(accuracies),
            "acc_sd": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "acc_min": min(accuracies), "acc_max": max(accuracies), "seeds": len(accuracies),
            "wall_s": statistics.median(pick("wall_s")), "wall_min_s": min(pick("wall_s")),
            "per_epoch_ms": 1e3 * statistics.median(pick("epoch_s")), **device_info()}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, sizes="30,100", repeats=3, out="benchmarks/results/vs_sklearn.json")
    parser.add_argument("--seeds", type=int, default=12,
                        help="seeds (inits and batch orders) for the accuracy and steady-state timings")
    parser.add_argument("--data", default=",".join(DATASETS),
                        help=f"comma-separated datasets (default {','.join(DATASETS)})")
    args = parser.parse_args(argv)
    epoch_counts = [2] if args.tiny else args.sizes
    repeats, seeds = (1, 2) if args.tiny else (args.repeats, args.seeds)

    rows = []
    for name in args.data.split(","):
        data = fnn.datasets.load(name, key=jax.random.key(0), test_fraction=0.2)
        shapes = {"train": list(data.x_train.shape), "test": list(data.x_test.shape),
                  "model": f"{data.x_train.shape[1]}-{HIDDEN}-{data.num_classes}", "batch": BATCH}
        sklearn_runs(data, 1, 1)   # warm-up: scikit-learn's lazy imports, not its training
        for epochs in epoch_counts:
            # Its default thread pools, and one thread: faster for matrices this small, and
            # far faster on a loaded machine. fnn is compared with the faster of the two.
            sk_rows = [summarize(name, epochs, label, sklearn_runs(data, epochs, seeds, threads), shapes)
                       for label, threads in (("sklearn", None), ("sklearn[1 thread]", 1))]
            sk_row = {"wall_s": min(r["wall_s"] for r in sk_rows),
                      "per_epoch_ms": min(r["per_epoch_ms"] for r in sk_rows)}
            case = []
            for init, label, disk in (("fnn", "fnn", False), ("sklearn", "fnn[sklearn init]", False),
                                      ("fnn", "fnn[disk cache]", True)):
                runs = fnn_runs(data, epochs, init, repeats, seeds, warm_disk_cache=disk)
                row = summarize(name, epochs, label, runs, shapes)
                row["speedup_wall"] = sk_row["wall_s"] / row["wall_s"]
                row["speedup_epoch"] = sk_row["per_epoch_ms"] / row["per_epoch_ms"]
                case.append(row)
            rows += case + sk_rows
            print(format_table(case + sk_rows, COLUMNS), flush=True)
    print("\n" + format_table(rows, COLUMNS))
    print("fnn wall_s: median of cold runs, compilation included (caches cleared; [disk cache]: "
          "programs loaded from JAX's persistent cache, as in a later process); per_epoch_ms: "
          "steady state; accuracy: mean over seeds. "
          f"speedup = sklearn / fnn. {device_info()['device_kind']}, {os.cpu_count()} CPU(s), "
          f"jax {jax.__version__}.")
    write_json(output_path(args), rows, benchmark="bench_vs_sklearn", hidden=HIDDEN,
               learning_rate=LR, batch_size=BATCH, repeats=repeats, seeds=seeds)
    return rows


if __name__ == "__main__":
    main()
