"""Benchmark: do XLA's CPU options close the GEMM gap to PyTorch? (issue 20, item 4)

fnn never sets process-global XLA flags; this script only measures what a user could
choose with ``XLA_FLAGS``. Each flag set runs in a fresh process (flags are read once,
at backend start-up); the processes are launched round-robin, the order rotated every
round, and each reports, timed interleaved inside it:

* ``matmul``: one jitted float32 matmul of the large case's hidden layer, (1024, 2048) @
  (2048, 2048), as GFLOP/s;
* ``scan`` and ``fit``: the large MLP case of ``bench_training.py`` (784-2048-2048-10,
  batch 1024, Adam), per step;
* the final loss of ``fit``, so a flag that changes results shows up (``loss_rel_diff``,
  relative to the default flags in the same round).

``ratio`` is each flag set's median over the default's (below 1: faster). PyTorch's
``torch.mm`` rate on the same shapes, same threads, is printed for reference when torch
is installed.

Run::

    python benchmarks/bench_xla_flags.py                 # ~4 minutes
    python benchmarks/bench_xla_flags.py --rounds 5 --sets default,fast-math
    python benchmarks/bench_xla_flags.py --tiny          # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from _common import format_table, write_json  # noqa: E402

FLAG_SETS = {
    "default": "",
    "fast-math": "--xla_cpu_enable_fast_math=true",
    "onednn": "--xla_cpu_use_onednn=true",
    "onednn-custom-call": "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
    "vector-width-512": "--xla_cpu_prefer_vector_width=512",
    "no-thunk-runtime": "--xla_cpu_use_thunk_runtime=false",
}
COLUMNS = ["flags", "variant", "median", "ratio", "gflop_per_s", "loss_rel_diff", "runs"]


def child(tiny: bool, repeats: int) -> dict:
    """Measure in this process (its XLA_FLAGS already set); returns seconds per call."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import _peers
    from _common import time_interleaved

    problem = _peers.Problem((8, 32, 32, 4), 16, 2, 1) if tiny else _peers.Problem((784, 2048, 2048, 10), 1024, 2, 1)
    m, k = problem.batch_size, problem.sizes[1]
    a = jax.random.normal(jax.random.key(0), (m, k), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (k, problem.sizes[2]), jnp.float32)
    fit = _peers.fnn_fit(problem)
    timings = time_interleaved({"matmul": (jax.jit(jnp.matmul), (a, b)), "scan": (_peers.hand_scan(problem), ()),
                                "fit": (fit, ())}, repeats=repeats, warmup=1)
    loss = float(np.asarray(fit()[1])[-1])
    steps = problem.steps * problem.epochs
    return {"matmul": timings["matmul"].median_s, "scan": timings["scan"].median_s / steps,
            "fit": timings["fit"].median_s / steps, "loss": loss,
            "matmul_flops": 2.0 * m * k * problem.sizes[2], "step_flops": problem.flops_per_step()}


def torch_rate(tiny: bool, repeats: int) -> float | None:
    """GFLOP/s of torch.mm on the matmul shape, torch's threads = cores; None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    m, k, n = (16, 32, 32) if tiny else (1024, 2048, 2048)
    a, b = torch.randn(m, k), torch.randn(k, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2.0 * m * k * n / statistics.median(times) / 1e9


def launch(name: str, tiny: bool, repeats: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=" ".join(filter(None, [os.environ.get("XLA_FLAGS", ""), FLAG_SETS[name]])),
               JAX_COMPILATION_CACHE_DIR="", JAX_ENABLE_COMPILATION_CACHE="false")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--repeats", str(repeats)] + (["--tiny"] if tiny else [])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(results: dict[str, list[dict]]) -> list[dict]:
    base = results["default"]
    rows = []
    for name, runs in results.items():
        ok = [(run, ref) for run, ref in zip(runs, base) if "error" not in run and "error" not in ref]
        if not ok:
            errors = sorted({run.get("error", "") for run in runs})
            rows.append({"flags": name, "variant": "(failed)", "median": None, "ratio": None,
                         "gflop_per_s": None, "loss_rel_diff": None, "runs": 0, "error": "; ".join(errors)})
            continue
        for variant in ("matmul", "scan", "fit"):
            values = [run[variant] for run, _ in ok]
            ratios = [run[variant] / ref[variant] for run, ref in ok]
            flops = ok[0][0]["matmul_flops" if variant == "matmul" else "step_flops"]
            diff = max(abs(run["loss"] - ref["loss"]) / max(abs(ref["loss"]), 1e-30) for run, ref in ok)
            rows.append({"flags": name, "variant": variant, "median": statistics.median(values),
                         "ratio": statistics.median(ratios), "gflop_per_s": flops / statistics.median(values) / 1e9,
                         "loss_rel_diff": diff if variant == "fit" else None, "runs": len(ok),
                         "xla_flags": FLAG_SETS[name]})
    return rows


def main(argv: list[str] | None = None) -> list[dict] | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="launches per flag set (default 3)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats inside a launch (default 5)")
    parser.add_argument("--sets", default=",".join(FLAG_SETS), help=f"flag sets, from {list(FLAG_SETS)}")
    parser.add_argument("--out", default="benchmarks/results/xla_flags.json", help="JSON path ('' for none)")
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.tiny, args.repeats)))
        return None
    names = ["default"] + [n for n in args.sets.split(",") if n != "default"]
    unknown = set(names) - set(FLAG_SETS)
    if unknown:
        parser.error(f"--sets: unknown {sorted(unknown)}; choose from {list(FLAG_SETS)}")
    if args.tiny:
        names, args.rounds, args.repeats = names[:1], 1, 2
    results: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            results[name].append(launch(name, args.tiny, args.repeats))
            print(f"  round {r + 1}/{args.rounds} {name}: {results[name][-1]}", flush=True)
    rows = summarise(results)
    print(format_table(rows, COLUMNS))
    rate = torch_rate(args.tiny, max(args.repeats, 5))
    if rate is not None:
        print(f"torch.mm on the matmul shape: {rate:.1f} GFLOP/s")
    write_json(None if args.tiny else (args.out or None), rows, torch_mm_gflop_per_s=rate)
    return rows


if __name__ == "__main__":
    main()
