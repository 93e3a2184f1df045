"""Benchmark: training K models at once against K fits one after another.

MLP 64-128-10, batch 64, Adam. For K in ``--members`` (default 1, 8, 32, 128), in one
process with the variants interleaved, it times per model-step:

* ``sequential``: K calls of ``fnn.fit``, one model after another (the reference);
* ``fit_ensemble``: ``fnn.training.fit_ensemble`` on K stacked models sharing the data
  order — the first layer of all members is one wide matmul;
* ``vmap_own_order``: hand-written ``jax.vmap`` of a whole scanned epoch over K models,
  each with its own shuffle (every matmul batched per member): the plain-vmap baseline.

``speedup`` is sequential's time over the variant's (> 1: faster than sequential).

Run::

    python benchmarks/bench_ensembles.py
    python benchmarks/bench_ensembles.py --members 32 --repeats 9
    python benchmarks/bench_ensembles.py --tiny
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _peers  # noqa: E402
from _common import format_table, record, time_interleaved, write_json  # noqa: E402

import fnn  # noqa: E402

PROBLEM = _peers.Problem((64, 128, 10), 64, 16, 2)
SMOKE = _peers.Problem((4, 8, 3), 8, 2, 1)
COLUMNS = ["case", "variant", "per_model_step_us", "speedup", "gflop_per_s", "compile_s"]


def sequential(problem: _peers.Problem, k: int):
    runs = [_peers.fnn_fit(problem) for _ in range(k)]

    def run():
        return [r() for r in runs]

    return run


def ensemble(problem: _peers.Problem, k: int):
    model = fnn.mlp(list(problem.sizes[1:]))
    opt = fnn.optimizers.adam(_peers.LR)
    x, y = problem.data()
    params = fnn.training.init_ensemble(model, jax.random.split(jax.random.key(1), k),
                                        (problem.sizes[0],))
    held = [(params, jax.vmap(opt.init)(params))]

    def run():
        params, opt_state = held[0]
        r = fnn.training.fit_ensemble(model, params, opt, x, y, opt_state=opt_state,
                                      epochs=problem.epochs, batch_size=problem.batch_size,
                                      key=jax.random.key(0), progress=False, donate=True)
        held[0] = (r.params, r.opt_state)
        return r.params

    return run


def vmap_own_order(problem: _peers.Problem, k: int):
    init, apply = _peers.raw_mlp(problem)
    opt = optax.adam(_peers.LR)
    x, y = problem.data()
    bs, steps = problem.batch_size, problem.steps

    def epoch(params, opt_state, key):
        idx = jax.random.permutation(key, problem.n).reshape(steps, bs)

        def body(carry, i):
            params, opt_state = carry
            grads = jax.grad(lambda p: _peers.xent(apply(p, x[i]), y[i]))(params)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        return jax.lax.scan(body, (params, opt_state), idx)[0]

    epochs = jax.jit(jax.vmap(epoch))
    params = jax.vmap(init)(jax.random.split(jax.random.key(1), k))
    held = [(params, jax.vmap(opt.init)(params))]

    def run():
        params, opt_state = held[0]
        for e in range(problem.epochs):
            params, opt_state = epochs(params, opt_state, jax.random.split(jax.random.key(e), k))
        held[0] = (params, opt_state)
        return params

    return run


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="1,8,32,128", help="comma-separated K values")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/ensembles.json")
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run")
    args = parser.parse_args(argv)
    problem = SMOKE if args.tiny else PROBLEM
    members = [2] if args.tiny else [int(k) for k in args.members.split(",")]
    rows = []
    for k in members:
        cases = {"sequential": (sequential(problem, k), ()),
                 "fit_ensemble": (ensemble(problem, k), ()),
                 "vmap_own_order": (vmap_own_order(problem, k), ())}
        timings = time_interleaved(cases, repeats=1 if args.tiny else args.repeats, warmup=1)
        model_steps = k * problem.steps * problem.epochs
        for variant, timing in timings.items():
            row = record(case=f"K={k}", timing=timing, dtype="float32", shapes=list(problem.sizes),
                         flops=problem.flops_per_step() * model_steps, variant=variant,
                         members=k, batch_size=problem.batch_size)
            row["per_model_step_s"] = timing.median_s / model_steps
            row["speedup"] = timings["sequential"].median_s / timing.median_s
            rows.append(row)
        print(format_table([r for r in rows if r["members"] == k], COLUMNS), flush=True)
    if not args.tiny:
        write_json(args.out, rows)
    return rows


if __name__ == "__main__":
    main()
