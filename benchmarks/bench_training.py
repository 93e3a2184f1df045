"""Benchmark: fnn's fit against hand-written JAX and the peers, per training step.

Cases (MLP sizes, batch): tiny 2-16-2/4, small 64-128-10/64, medium 784-512-512-10/256,
large 784-2048-2048-10/1024. For each, in one process with the variants interleaved
(round-robin, in a fresh random order each repeat), it times one unit of training —
``epochs`` passes over ``steps`` batches, Adam, softmax cross-entropy — and reports
per-step medians:

* ``fit``: ``fnn.fit`` (one compiled program, progress off);
* ``fit[optax.adam]``: the same with optax's Adam;
* ``fit[no guard]``: ``fit`` with ``nan_guard=False`` (what the guard costs);
* ``scan``: hand-written JAX, a jitted epoch (permutation + ``lax.scan``): the reference;
* ``gemm``: only the matmuls of forward and backward, scanned: the ceiling;
* ``jit_step``: hand-written jitted step in a Python loop (no donation);
* ``fnn_step``: ``fnn.training.make_train_step`` (donating) in a Python loop;
* the peers' idiomatic Python loops: stax, flax.linen, haiku, equinox, flax.nnx;
* Keras 3 on the JAX backend (``model.fit``, and with ``steps_per_execution`` = the
  steps of an epoch: ``keras-jax[spe]``) and PyTorch on CPU (the standard loop).

The ``regularised`` case is 784-512-512-10 with batch norm and dropout 0.2 in every
hidden layer (``fnn.mlp(..., dropout=0.2, batch_norm=True)``) against a hand-written
``lax.scan`` doing the same computation, flax.linen (``nn.BatchNorm``, ``nn.Dropout``)
and equinox (``nn.BatchNorm`` with ``nn.State``, ``nn.Dropout``).

``ratio`` is each variant's median over ``scan``'s; ``gflop_per_s`` counts the matmul
FLOPs of forward + backward. ``compile_s`` is the first call (trace, compile, one run).
With ``--memory`` the large case also runs fit and the hand-written scan (with donated
buffers) in fresh subprocesses and compares their peak resident memory.

Rows of issue 20 (``--issue20`` runs only these, with ``scan`` and ``fit``):
``fit[shuffle=False]`` and ``fit[shuffle=feistel]`` beside ``fit`` in every case (what
the epoch's order costs); the ``call`` case, one call of 10 steps of the tiny MLP
(``fit (10 steps)``: from params, ``fit[opt_state given]``, ``fit[initial=]`` a resumed
call) against one call of the same compiled program (``fit's program``; ``ratio`` is
over it) and the hand-written scan; with ``--compile`` the first call (trace, compile,
one run) of fit and of the scan, each in a fresh process without the persistent
compilation cache, per case.

Run::

    python benchmarks/bench_training.py                  # all cases, a few minutes
    python benchmarks/bench_training.py --cases tiny,small --repeats 9
    python benchmarks/bench_training.py --tiny           # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import jax
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _peers  # noqa: E402
import fnn  # noqa: E402
import _peers_eager  # noqa: E402
import _peers_regularised  # noqa: E402
from _common import chosen_cases, format_table, record, time_interleaved, write_json  # noqa: E402

CASES = {
    # name: Problem(sizes, batch, steps per epoch, epochs) — units of ~0.05-1 s of fit
    "tiny": _peers.Problem((2, 16, 2), 4, 256, 40),
    "small": _peers.Problem((64, 128, 10), 64, 64, 16),
    "medium": _peers.Problem((784, 512, 512, 10), 256, 8, 2),
    "large": _peers.Problem((784, 2048, 2048, 10), 1024, 2, 1),
    "regularised": _peers.Problem((784, 512, 512, 10), 256, 8, 2),
}
SMOKE = _peers.Problem((2, 16, 2), 4, 8, 2)
COLUMNS = ["case", "variant", "per_step_us", "ratio", "gflop_per_s", "compile_s"]


def regularised_variants(problem: _peers.Problem, python_loops: bool) -> dict:
    out = {"scan": _peers_regularised.hand_scan(problem), "fit": _peers_regularised.fnn_fit(problem)}
    if python_loops:
        out.update(_installed(_peers_regularised.PEERS, problem))
    return out


def _installed(peers: dict, problem: _peers.Problem) -> dict:
    out = {}
    for name, build in peers.items():
        run = build(problem)
        if run is None:
            print(f"  skipped {name}: not installed (pip install -e '.[bench]')")
        else:
            out[name] = run
    return out


def variants(problem: _peers.Problem, python_loops: bool) -> dict:
    out = {
        "scan": _peers.hand_scan(problem),
        "fit": _peers.fnn_fit(problem),
        "fit[optax.adam]": _peers.fnn_fit(problem, optax.adam(_peers.LR)),
        "fit[no guard]": _peers.fnn_fit(problem, nan_guard=False),
        "fit[shuffle=False]": _peers.fnn_fit(problem, shuffle=False),
        "fit[shuffle=feistel]": _peers.fnn_fit(problem, shuffle="feistel"),
        # Loop controls (issue 14): early stopping that never triggers, a hook that never
        # stops (called inside the loop), and accumulation of 4 quarter batches (same examples
        # per update and per epoch as "fit").
        "fit[early stopping]": _peers.fnn_fit(problem, early_stopping=fnn.training.EarlyStopping(
            "train_loss", patience=10**9)),
        "fit[on_epoch]": _peers.fnn_fit(problem, on_epoch=lambda epoch, logs: None),
        "fit[accumulate 4 x batch/4]": _peers.fnn_fit(problem, batch_size=max(1, problem.batch_size // 4),
                                                      accumulation_steps=4),
        "gemm": _peers.gemms_alone(problem),
    }
    if python_loops:
        out["jit_step"] = _peers.hand_jit_step(problem)
        out["fnn_step"] = _peers.fnn_train_step(problem)
        out.update(_installed({**_peers.PEERS, **_peers_eager.PEERS}, problem))
    return out


def bench_case(name: str, problem: _peers.Problem, repeats: int, python_loops: bool,
               only: set | None = None, skip: frozenset = frozenset()) -> list:
    """``only``: the variants to time (with ``scan``, the reference), or None for all;
    ``skip``: variants left out."""
    build = regularised_variants if name == "regularised" else variants
    cases = {k: (run, ()) for k, run in build(problem, python_loops).items()
             if (only is None or k in only or k == "scan") and k not in skip}
    timings = time_interleaved(cases, repeats=repeats, warmup=1, number=1)
    steps = problem.steps * problem.epochs
    flops = problem.flops_per_step()
    rows = []
    for variant, timing in timings.items():
        row = record(case=name, timing=timing, dtype="float32", shapes=list(problem.sizes),
                     reference=timings["scan"], flops=flops * steps, variant=variant,
                     batch_size=problem.batch_size, steps=steps)
        row["per_step_s"] = timing.median_s / steps
        row["steps_per_s"] = steps / timing.median_s
        rows.append(row)
    return rows


CALL = _peers.Problem((2, 16, 2), 4, 10, 1)       # one fit call of 10 steps
ISSUE20 = frozenset({"fit", "fit[shuffle=False]", "fit[shuffle=feistel]"})


def call_variants(problem: _peers.Problem) -> dict:
    """One fit call of ``problem`` against one call of the same compiled program."""
    model = fnn.mlp(list(problem.sizes[1:]))
    optimizer = fnn.optimizers.adam(_peers.LR)
    x, y = problem.data()
    params = model.init(jax.random.key(1), (problem.sizes[0],))
    opt_state = optimizer.init(params)
    kwargs = dict(epochs=problem.epochs, batch_size=problem.batch_size, key=jax.random.key(0),
                  progress=False)
    before = fnn.fit(model, params, optimizer, x, y, **kwargs)
    # fit's own compiled loop, called directly on a prepared state (internals: what a
    # hand-written jitted call of the same program costs).
    from fnn.training import _arguments, _loop, _start
    prepared = _arguments.prepare("fit", model, params, optimizer, x, y,
                                  _arguments.FitOptions(opt_state=opt_state, **kwargs))
    runner = _loop.build_runner(prepared.cfg)
    start = _start.build_start(prepared.cfg, problem.epochs, (("train_loss", ()),), False)
    state = _start.with_arrays(start(params, opt_state, (), None, prepared.key, 0, {}),
                               params, opt_state, (), prepared.key)
    stop = np.int32(problem.epochs)

    def program():
        out = runner(state, None, x, y, None, None, stop)
        return (out if hasattr(out, "params") else out[0]).params   # older: the state only

    return {
        "scan": _peers.hand_scan(problem),
        "fit's program": program,
        "fit (10 steps)": lambda: fnn.fit(model, params, optimizer, x, y, **kwargs).params,
        "fit[opt_state given]": lambda: fnn.fit(model, params, optimizer, x, y, opt_state=opt_state,
                                                **kwargs).params,
        "fit[initial=]": lambda: fnn.fit(model, None, optimizer, x, y, initial=before,
                                         **dict(kwargs, epochs=problem.epochs + 1)).params,
    }


def bench_call(repeats: int) -> list:
    """Per call: fit of 10 steps against the same program called directly."""
    timings = time_interleaved({k: (f, ()) for k, f in call_variants(CALL).items()},
                               repeats=repeats, warmup=2, number=1)
    rows = []
    for variant, timing in timings.items():
        row = record(case="call", timing=timing, dtype="float32", shapes=list(CALL.sizes),
                     reference=timings["fit's program"], flops=CALL.flops_per_step() * CALL.steps,
                     variant=variant, batch_size=CALL.batch_size, steps=CALL.steps)
        row["per_call_us"] = timing.median_s * 1e6
        row["above_program_us"] = (timing.median_s - timings["fit's program"].median_s) * 1e6
        rows.append(row)
    return rows


COMPILE_SCRIPT = """
import sys, time
import jax
jax.config.update("jax_enable_compilation_cache", False)
sys.path.insert(0, {bench!r}); sys.path.insert(0, {root!r})
import _peers
run = getattr(_peers, {which!r})(_peers.Problem(*{problem!r}))
start = time.perf_counter()
jax.block_until_ready(run())
print(time.perf_counter() - start)
"""


def cold_compile(problems: dict, rounds: int = 3) -> dict:
    """First-call seconds (trace, compile, one run) of fit and the scan, each in a fresh
    process, alternating; medians and the fit/scan ratio per case."""
    bench = os.path.dirname(os.path.abspath(__file__))
    out = {}
    for name, problem in problems.items():
        times: dict = {"hand_scan": [], "fnn_fit": []}
        for _ in range(rounds):
            for which, seconds in times.items():
                code = COMPILE_SCRIPT.format(bench=bench, root=os.path.dirname(bench), which=which,
                                             problem=(problem.sizes, problem.batch_size, problem.steps,
                                                      problem.epochs))
                done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True)
                seconds.append(float(done.stdout.strip().splitlines()[-1]))
        medians = {k: float(np.median(v)) for k, v in times.items()}
        out[name] = {**medians, "ratio": medians["fnn_fit"] / medians["hand_scan"]}
        print(f"cold first call (s), {name}: {out[name]}", flush=True)
    return out


# The peak of this process's own memory map (VmHWM, Linux): ru_maxrss would keep the
# parent's resident size at the fork, which a long benchmark run makes the larger.
MEMORY_SCRIPT = """
import resource, sys, jax
sys.path.insert(0, {bench!r}); sys.path.insert(0, {root!r})
import _peers
problem = _peers.Problem((784, 2048, 2048, 10), 1024, 2, 1)
run = getattr(_peers, {which!r})(problem)
jax.block_until_ready(run())
try:
    print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")))
except OSError:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory() -> dict:
    """Peak RSS (KiB) of a fresh process training the large case once, fit vs scan."""
    bench = os.path.dirname(os.path.abspath(__file__))
    out = {}
    for which in ("hand_scan", "fnn_fit"):
        code = MEMORY_SCRIPT.format(bench=bench, root=os.path.dirname(bench), which=which)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True)
        out[which] = int(done.stdout.strip().splitlines()[-1])
    out["ratio"] = out["fnn_fit"] / out["hand_scan"]
    return out


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--no-python-loops", action="store_true",
                        help="skip the per-step Python-loop variants (peers included)")
    parser.add_argument("--memory", action="store_true", help="also measure peak memory")
    parser.add_argument("--compile", action="store_true",
                        help="also time the cold first call of fit and the scan (subprocesses)")
    parser.add_argument("--issue20", action="store_true",
                        help="only issue 20's rows: the fit call and shuffle on/off per case")
    parser.add_argument("--out", default="benchmarks/results/training.json")
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--only", default=None,
                        help="comma-separated variants to time (scan, the reference, always runs), "
                             "e.g. 'fit,fit[early stopping],fit[on_epoch],fit[accumulate 4 x batch/4]'")
    args = parser.parse_args(argv)
    only = None if args.only is None else set(args.only.split(","))
    if args.issue20:
        only = ISSUE20 if only is None else only | ISSUE20
    problems = chosen_cases(parser, args.cases, CASES, SMOKE, tiny=args.tiny)
    rows = []
    # The smoke run (--tiny) keeps its size; --tiny --issue20 smoke-tests issue 20's rows.
    skip = ISSUE20 - {"fit"} if args.tiny and not args.issue20 else frozenset()
    if args.issue20:
        rows += bench_call(3 if args.tiny else max(args.repeats, 50))
        print(format_table(rows, COLUMNS + ["per_call_us", "above_program_us"]), flush=True)
    for name, problem in problems.items():
        print(f"case {name}: sizes {problem.sizes}, batch {problem.batch_size}, "
              f"{problem.steps * problem.epochs} steps per unit", flush=True)
        rows += bench_case(name, problem, 1 if args.tiny else args.repeats,
                           not args.no_python_loops and not args.issue20, only, skip)
        print(format_table([r for r in rows if r["case"] == name], COLUMNS), flush=True)
    meta = {}
    if args.compile and not args.tiny:
        meta["cold_first_call_s"] = cold_compile(problems)
    if args.memory and not args.tiny:
        meta["peak_rss_kib"] = peak_memory()
        print("peak RSS (KiB), large case:", meta["peak_rss_kib"])
    if not args.tiny:
        write_json(args.out, rows, **meta)
    return rows


if __name__ == "__main__":
    main()
