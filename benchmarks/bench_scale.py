"""Benchmark: fnn.training.fit_batches from host NumPy batches against fit with the data resident.

Cases (MLP sizes, batch): small 64-128-10/64 and medium 784-512-512-10/256 (the issue's
targets: fit_batches within 1.15x and 1.05x of fit). For each, in one process with the
variants interleaved (round-robin, in a fresh random order each repeat), it times one
call training ``steps`` batches (one epoch, Adam, softmax cross-entropy, the same
batches in the same order) and reports per-step medians:

* ``fit``: ``fnn.fit`` with the data on the device, ``shuffle=False`` (no gather: the
  strictest reference; the reference of ``ratio``);
* ``fit_batches``: ``fnn.training.fit_batches`` from a list of NumPy batches (views of
  one host array): each chunk of ``steps_per_call`` batches is stacked on the host,
  transferred while the previous one trains, then trained by one compiled scan;
* ``fit_batches[device batches]``: the same from batches already on the device (the
  chunking without the transfer: what the host-to-device copy itself costs is the gap
  to ``fit_batches``).

With several devices visible (``XLA_FLAGS=--xla_force_host_platform_device_count=4``
on CPU, or ``--devices N`` of them), two more variants run over ``N`` devices, each
chunk sharded over the batch axis:

* ``parallel.fit``: :func:`fnn.parallel.fit` with the data resident (replicated);
* ``parallel.fit_batches``: :func:`fnn.parallel.fit_batches` from the same NumPy
  batches; its ``ratio`` is to ``parallel.fit`` in the same run (``reference``).

A ``transfer`` row per case gives the measured host-to-device rate (``jax.device_put``
of one chunk, blocked) and the transfer time per step against ``fit``'s compute per
step: the transfer can hide behind compute only where it is the shorter.

Run::

    python benchmarks/bench_scale.py                 # both cases, a minute or two
    python benchmarks/bench_scale.py --cases small --repeats 9
    python benchmarks/bench_scale.py --tiny          # seconds (smoke test)
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python benchmarks/bench_scale.py --cases small
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _peers  # noqa: E402
import fnn  # noqa: E402
import fnn.parallel  # noqa: E402
from _common import chosen_cases, format_table, record, time_interleaved, write_json  # noqa: E402
from fnn.training._batches import auto_steps_per_call  # noqa: E402

CASES = {
    # name: Problem(sizes, batch, steps per call, 1 epoch)
    "small": _peers.Problem((64, 128, 10), 64, 1024),
    "medium": _peers.Problem((784, 512, 512, 10), 256, 48),
}
SMOKE = _peers.Problem((8, 16, 3), 16, 8)
COLUMNS = ["case", "variant", "per_step_us", "ratio", "reference", "steps_per_call", "gbyte_per_s", "compile_s"]
# Each variant's reference for ``ratio`` (the others: fit).
REFERENCES = {"parallel.fit_batches": "parallel.fit"}


def variants(problem: _peers.Problem, steps_per_call: int | None, devices: int) -> dict:
    model = fnn.mlp(list(problem.sizes[1:]))
    optimizer = fnn.optimizers.adam(_peers.LR)
    params = model.init(jax.random.key(1), (problem.sizes[0],))
    x, y = problem.data()
    host = [(np.asarray(xb), np.asarray(yb)) for xb, yb in problem.batches()]
    device = problem.batches()

    def fit():
        r = fnn.fit(model, params, optimizer, x, y, epochs=1, batch_size=problem.batch_size, shuffle=False,
                    progress=False)
        return r.params

    def from_batches(batches, train=fnn.training.fit_batches, **kw):
        def run():
            r = train(model, params, optimizer, batches, steps_per_call=steps_per_call, progress=False, **kw)
            return r.params
        return run

    out = {"fit": fit, "fit_batches": from_batches(host), "fit_batches[device batches]": from_batches(device)}
    if devices > 1:
        mesh = jax.devices()[:devices]

        def parallel_fit():
            r = fnn.parallel.fit(model, params, optimizer, x, y, epochs=1, batch_size=problem.batch_size,
                                 shuffle=False, progress=False, devices=mesh)
            return r.params
        out.update({"parallel.fit": parallel_fit,
                    "parallel.fit_batches": from_batches(host, fnn.parallel.fit_batches, devices=mesh)})
    return out


def transfer_rate(problem: _peers.Problem, k: int, repeats: int) -> tuple[float, int]:
    """Median seconds to put one chunk of ``k`` host batches on the device, and its bytes."""
    x, y = (np.asarray(a) for a in problem.data())
    b = problem.batch_size
    xs, ys = x[:k * b].reshape((k, b) + x.shape[1:]), y[:k * b].reshape(k, b)
    times = []
    for _ in range(max(3, repeats)):
        xs, ys = xs.copy(), ys.copy()          # a fresh host buffer each time, as a new chunk is
        start = time.perf_counter()
        jax.block_until_ready(jax.device_put((xs, ys)))
        times.append(time.perf_counter() - start)
    return float(np.median(times)), xs.nbytes + ys.nbytes


def chunk_steps(problem: _peers.Problem, steps_per_call: int | None) -> int:
    """The chunk length fit_batches uses for ``problem`` (its default when None)."""
    if steps_per_call is not None:
        return steps_per_call
    xb, yb = problem.batches()[0]
    return auto_steps_per_call(np.asarray(xb), np.asarray(yb), problem.steps)


def bench_case(name: str, problem: _peers.Problem, repeats: int, steps_per_call: int | None,
               devices: int) -> list:
    cases = {k: (run, ()) for k, run in variants(problem, steps_per_call, devices).items()}
    timings = time_interleaved(cases, repeats=repeats, warmup=1, number=1)
    k = chunk_steps(problem, steps_per_call)
    rows = []
    for variant, timing in timings.items():
        reference = REFERENCES.get(variant, "fit")
        row = record(case=name, timing=timing, dtype="float32", shapes=list(problem.sizes),
                     reference=timings[reference], variant=variant, batch_size=problem.batch_size,
                     steps=problem.steps, steps_per_call=None if variant.endswith("fit") else k,
                     devices=devices if variant.startswith("parallel") else 1)
        row["reference"] = reference
        row["per_step_s"] = timing.median_s / problem.steps
        row["steps_per_s"] = problem.steps / timing.median_s
        rows.append(row)
    seconds, nbytes = transfer_rate(problem, k, repeats)
    compute = timings["fit"].median_s / problem.steps
    rows.append({"case": name, "variant": "transfer", "steps_per_call": k, "chunk_bytes": nbytes,
                 "gbyte_per_s": nbytes / seconds / 1e9, "per_step_s": seconds / k,
                 "ratio": seconds / k / compute, "median_s": seconds, "compile_s": None,
                 "shapes": list(problem.sizes), "batch_size": problem.batch_size,
                 "note": "ratio: transfer per step over fit's compute per step (< 1: can hide)"})
    return rows


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (median)")
    parser.add_argument("--steps-per-call", type=int, default=None,
                        help="fit_batches' steps_per_call (default: its own)")
    parser.add_argument("--out", default="benchmarks/results/scale.json")
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--devices", type=int, default=jax.device_count(),
                        help="devices of the parallel variants (default all; 1: none of them)")
    args = parser.parse_args(argv)
    if not 1 <= args.devices <= jax.device_count():
        parser.error(f"--devices must be in [1, {jax.device_count()}]; got {args.devices}")
    problems = chosen_cases(parser, args.cases, CASES, SMOKE, tiny=args.tiny)
    rows = []
    for name, problem in problems.items():
        print(f"case {name}: sizes {problem.sizes}, batch {problem.batch_size}, {problem.steps} steps per call",
              flush=True)
        rows += bench_case(name, problem, 1 if args.tiny else args.repeats, args.steps_per_call, args.devices)
        print(format_table([r for r in rows if r["case"] == name], COLUMNS), flush=True)
    if not args.tiny:
        write_json(args.out, rows)
    return rows


if __name__ == "__main__":
    main()
