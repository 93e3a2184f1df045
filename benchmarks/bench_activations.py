"""Benchmark: the cost of each activation and its gradient, alone and inside a training step.

The notes: "ReLU is less computationally expensive than sigmoid and tanh", sigmoid's
"power operations are relatively time consuming", ELU is "slightly more computationally
intensive". Measured two ways, every variant interleaved in one process, medians:

* ``elementwise``: ``jax.jit(f)(x)`` and ``jax.jit(grad(sum f))(x)`` on a float32 array
  of ``--sizes`` elements (default 4 million): memory-bound streams where the
  arithmetic of exp/tanh may or may not show;
* ``train_step``: one jitted SGD step (forward, backward, update) of a 784-512-512-10
  MLP on a batch of 128 with each hidden activation: what the ratio becomes next to
  the matrix products.

``ratio`` is each case's median over ReLU's in the same group.

Run::

    python benchmarks/bench_activations.py                      # full run, about a minute
    python benchmarks/bench_activations.py --tiny --repeats 1   # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import add_common_args, format_table, output_path, record, time_interleaved, write_json  # noqa: E402

import fnn  # noqa: E402

ACTIVATIONS = {
    "relu": fnn.relu,
    "leaky_relu": fnn.leaky_relu,
    "prelu": lambda z: fnn.prelu(z, 0.25),
    "elu": fnn.elu,
    "sigmoid": fnn.sigmoid,
    "tanh": fnn.tanh,
}
COLUMNS = ["case", "group", "shapes", "compile_s", "median_us", "min_us", "gbyte_per_s", "ratio"]


def elementwise_rows(n: int, names: list[str], *, repeats: int) -> list[dict]:
    x = jax.random.normal(jax.random.key(0), (n,), jnp.float32)
    rows = []
    for kind in ("forward", "gradient"):
        cases = {}
        for name in names:
            f = ACTIVATIONS[name]
            fn = f if kind == "forward" else jax.grad(lambda z, f=f: jnp.sum(f(z)))
            cases[name] = (jax.jit(fn), (x,))
        timings = time_interleaved(cases, repeats=repeats)
        for name in cases:
            rows.append(record(case=f"{name}/{kind}", timing=timings[name], dtype="float32",
                               shapes=[n], reference=timings["relu"], bytes_moved=2 * 4 * n,
                               group=f"elementwise {kind} n={n}", activation=name))
    return rows


def train_step_rows(width: int, batch: int, names: list[str], *, repeats: int) -> list[dict]:
    k_x, k_init = jax.random.split(jax.random.key(1))
    x = jax.random.normal(k_x, (batch, 784), jnp.float32)
    y = jnp.arange(batch) % 10
    cases = {}
    for name in names:
        model = fnn.mlp([width, width, 10], activation=name)
        params = model.init(k_init, (784,))

        def step(p, x, y, model=model):
            grads = jax.grad(lambda p: fnn.losses.softmax_cross_entropy(model.apply(p, x), y))(p)
            return jax.tree.map(lambda w, g: w - 0.01 * g, p, grads)

        cases[name] = (jax.jit(step), (params, x, y))
    timings = time_interleaved(cases, repeats=repeats)
    return [record(case=f"{name}/train_step", timing=timings[name], dtype="float32",
                   shapes=[batch, 784, width, width, 10], reference=timings["relu"],
                   group=f"train step 784-{width}-{width}-10 batch {batch}", activation=name)
            for name in cases]


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, sizes="4000000", repeats=51, out="benchmarks/results/activations.json")
    parser.add_argument("--width", type=int, default=512, help="hidden width of the train-step MLP")
    parser.add_argument("--batch", type=int, default=128, help="batch of the train step")
    parser.add_argument("--activations", default=",".join(ACTIVATIONS),
                        help=f"comma-separated subset of {','.join(ACTIVATIONS)} (relu is always "
                             "timed; --tiny alone times relu and prelu)")
    args = parser.parse_args(argv)
    chosen = "prelu" if args.tiny and args.activations == ",".join(ACTIVATIONS) else args.activations
    names = ["relu"] + [n for n in chosen.split(",") if n and n != "relu"]
    unknown = sorted(set(names) - set(ACTIVATIONS))
    if unknown:
        parser.error(f"--activations: unknown {unknown}; choose from {list(ACTIVATIONS)}")
    sizes = [10_000] if args.tiny else args.sizes
    width, batch = (32, 16) if args.tiny else (args.width, args.batch)

    rows = []
    for n in sizes:
        rows += elementwise_rows(n, names, repeats=args.repeats)
    rows += train_step_rows(width, batch, names, repeats=args.repeats)
    print(format_table(rows, COLUMNS))
    for group in dict.fromkeys(r["group"] for r in rows):
        ratios = {r["activation"]: r["ratio"] for r in rows if r["group"] == group}
        print(f"{group}: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    print(f"backend {rows[0]['backend']} ({rows[0]['device_kind']}), jax {rows[0]['jax_version']}")
    write_json(output_path(args), rows, benchmark="activations", argv=argv)
    return rows


if __name__ == "__main__":
    main()
