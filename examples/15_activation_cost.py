r"""15 — The cost of activations: alone on a big array, and inside a training step.

What it teaches: the notes say "ReLU is less computationally expensive than sigmoid and
tanh", sigmoid's "power operations are relatively time consuming" and ELU is "slightly
more computationally intensive". This script runs ``benchmarks/bench_activations.py``
(every activation and its gradient, jitted, timed interleaved, medians as ratios to
ReLU; then one SGD step of a 784-512-512-10 MLP with each) and draws the ratios.

What the measurement shows (on CPU): alone, exp-based activations do cost more than
ReLU — the gradients of sigmoid and ELU most — but inside a training step the
activations are a few percent of the work next to the matrix products, and the ratios
fall to about 1: the notes' claim is true of the function and nearly irrelevant to the
training time of a dense network.

Run::

    python examples/15_activation_cost.py          # ~40 s on 2 CPU cores
    python examples/15_activation_cost.py --tiny   # seconds (what the tests run)

Writes ``15_activation_cost.png`` into ``--out`` when matplotlib is installed.
"""

from __future__ import annotations

import importlib.util
import os

import fnn

import _shared

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                     "bench_activations.py")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_activations", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plot(ratios, path):
    plt = _shared.pyplot_or_none()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(10, 4.5))
    groups = list(ratios)
    names = list(ratios[groups[0]])
    width = 0.8 / len(groups)
    for i, group in enumerate(groups):
        ax.bar([j + i * width for j in range(len(names))], [ratios[group][n] for n in names],
               width, label=group)
    ax.axhline(1, color="black", lw=0.5)
    ax.set_xticks([j + width * (len(groups) - 1) / 2 for j in range(len(names))], names)
    ax.set_ylabel("median time / ReLU's")
    ax.set_title("Activation cost relative to ReLU (jitted, interleaved, medians)")
    ax.legend(fontsize="small")
    _shared.save(fig, path)


def main(argv=None):
    args = _shared.parser(__doc__, tiny="tiny sizes, few repeats (for tests)").parse_args(argv)
    bench_args = ["--tiny", "--repeats", "3", "--activations", "relu,sigmoid"] if args.tiny else ["--sizes", "2000000", "--repeats", "21"]
    rows = load_benchmark().main(bench_args + ["--out", ""])
    ratios: dict = {}
    for r in rows:
        ratios.setdefault(r["group"], {})[r["activation"]] = r["ratio"]
    os.makedirs(args.out, exist_ok=True)
    plot(ratios, os.path.join(args.out, "15_activation_cost.png"))
    step = next(g for g in ratios if g.startswith("train step"))
    spread = max(ratios[step].values()) / min(ratios[step].values())
    print(f"final: in a whole training step the slowest activation costs {spread:.2f}x the fastest")
    return {"ratios": ratios, "rows": rows}


if __name__ == "__main__":
    main()
