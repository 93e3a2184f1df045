"""Benchmark: one jitted optimizer update, fnn against optax, in the same process.

For every optimizer (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw) it times
``jax.jit(opt.update)(grads, state, params)`` for fnn and for its optax counterpart,
interleaved, on two kinds of pytree:

* ``mlp``: the params of a dense MLP 784 -> h -> h -> 10 with ``h`` chosen so the total
  is close to each ``--sizes`` entry (default one million parameters): few, large
  leaves, so the time is memory traffic;
* ``leaves``: ``--leaves`` small leaves (default 200; 16x16 kernels and 16-biases), so
  the time is per-leaf overhead (dispatch, argument handling, one kernel per leaf).

``ratio`` is fnn's median over optax's (the target is <= 1.05). ``gbyte_per_s`` counts
the bytes of gradients, state (and params for AdamW) read and of updates and state
written, per median update.

Run::

    python benchmarks/bench_optimizers.py                      # full run, minutes
    python benchmarks/bench_optimizers.py --tiny --repeats 1   # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import (add_common_args, format_table, output_path, record,  # noqa: E402
                     time_interleaved, tree_bytes, tree_shapes, write_json)

from fnn import optimizers as fo  # noqa: E402

LR = 1e-3
OPTIMIZERS = {
    "sgd": (lambda: fo.sgd(LR), lambda: optax.sgd(LR)),
    "momentum": (lambda: fo.momentum(LR, 0.9), lambda: optax.sgd(LR, momentum=0.9)),
    "nesterov": (lambda: fo.momentum(LR, 0.9, nesterov=True),
                 lambda: optax.sgd(LR, momentum=0.9, nesterov=True)),
    "adagrad": (lambda: fo.adagrad(LR), lambda: optax.adagrad(LR)),
    "rmsprop": (lambda: fo.rmsprop(LR), lambda: optax.rmsprop(LR)),
    "adam": (lambda: fo.adam(LR), lambda: optax.adam(LR)),
    "adamw": (lambda: fo.adamw(LR), lambda: optax.adamw(LR)),
}
COLUMNS = ["case", "tree", "params", "leaves", "compile_s", "median_us", "min_us",
           "gbyte_per_s", "ratio"]


def mlp_tree(n_params: int, key: jax.Array, dtype) -> dict:
    """Params of a 784 -> h -> h -> 10 MLP with about ``n_params`` parameters."""
    # h^2 + (784 + 1 + 1 + 10) h + 10 = n  ->  the positive root.
    h = max(1, round((-796 + math.sqrt(796 ** 2 + 4 * max(n_params - 10, 1))) / 2))
    widths = [784, h, h, 10]
    keys = jax.random.split(key, len(widths) - 1)
    return {"layers": [{"w": jax.random.normal(k, (a, b), dtype) / math.sqrt(a),
                        "b": jnp.zeros((b,), dtype)}
                       for k, a, b in zip(keys, widths[:-1], widths[1:])]}


def many_leaf_tree(n_leaves: int, key: jax.Array, dtype) -> dict:
    """``n_leaves`` small leaves: alternating 16x16 kernels and 16-biases."""
    keys = jax.random.split(key, n_leaves)
    shapes = [(16, 16) if i % 2 == 0 else (16,) for i in range(n_leaves)]
    return {f"p{i:03d}": jax.random.normal(k, s, dtype)
            for i, (k, s) in enumerate(zip(keys, shapes))}


def bench_tree(tree_name: str, params, names, *, repeats: int, tiny: bool) -> list[dict]:
    key = jax.random.PRNGKey(1)
    grads = jax.tree.map(lambda p: 1e-2 * jax.random.normal(key, p.shape, p.dtype), params)
    n_params = sum(x.size for x in jax.tree.leaves(params))
    n_leaves = len(jax.tree.leaves(params))
    rows = []
    for name in names:
        make_fnn, make_optax = OPTIMIZERS[name]
        cases = {}
        for lib, opt in (("fnn", make_fnn()), ("optax", make_optax())):
            args = (grads, opt.init(params), params)
            cases[lib] = (jax.jit(opt.update), args)
        timings = time_interleaved(cases, repeats=repeats, warmup=1 if tiny else 20)
        for lib, (fn, args) in cases.items():
            out = jax.eval_shape(fn, *args)
            moved = tree_bytes(args[:2]) + tree_bytes(out)
            moved += tree_bytes(params) if name == "adamw" else 0
            rows.append(record(case=f"{name}/{lib}", timing=timings[lib],
                               dtype=str(jax.tree.leaves(params)[0].dtype),
                               shapes=tree_shapes(params) if n_leaves <= 8 else
                               f"{n_leaves} leaves, e.g. {tree_shapes(params)[:2]}",
                               reference=timings["optax"], bytes_moved=moved,
                               tree=tree_name, params=n_params, leaves=n_leaves,
                               optimizer=name, library=lib))
    return rows


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, sizes="1000000", repeats=501,
                    out="benchmarks/results/optimizers.json")
    parser.add_argument("--leaves", default="200",
                        help="comma-separated leaf counts for the many-leaf tree (default 200)")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                        help=f"comma-separated subset of {','.join(OPTIMIZERS)}")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args(argv)
    names = [n for n in args.optimizers.split(",") if n]
    unknown = sorted(set(names) - set(OPTIMIZERS))
    if unknown:
        parser.error(f"--optimizers: unknown {unknown}; choose from {list(OPTIMIZERS)}")
    sizes = [10_000] if args.tiny else args.sizes
    leaves = [20] if args.tiny else [int(n) for n in args.leaves.split(",") if n]
    dtype = jnp.dtype(args.dtype)

    key = jax.random.PRNGKey(0)
    rows = []
    for n in sizes:
        rows += bench_tree("mlp", mlp_tree(n, key, dtype), names, repeats=args.repeats,
                           tiny=args.tiny)
    for n in leaves:
        rows += bench_tree("leaves", many_leaf_tree(n, key, dtype), names, repeats=args.repeats,
                           tiny=args.tiny)
    print(format_table(rows, COLUMNS))
    worst = max((r for r in rows if r["library"] == "fnn"), key=lambda r: r["ratio"])
    print(f"\nworst fnn/optax ratio: {worst['ratio']:.3f} ({worst['case']}, {worst['tree']}); "
          f"backend {rows[0]['backend']} ({rows[0]['device_kind']}), jax {rows[0]['jax_version']}")
    write_json(output_path(args), rows, benchmark="optimizers", argv=argv)
    return rows


if __name__ == "__main__":
    main()
