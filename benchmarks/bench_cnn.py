"""Benchmark: fnn's CNN training against hand-written JAX, flax, equinox, PyTorch and Keras.

Cases (batch 128, Adam, softmax cross-entropy, 3x3 SAME convs, one 2x2 max pool):

* ``digits``: 8x8x1 images, conv32-conv64-pool-dense10;
* ``mnist``: 28x28x1 synthetic images, conv32-conv64-pool-dense128-dense10.

Variants, timed interleaved (round-robin, in a fresh random order each repeat) in one
process, one unit = one epoch of ``steps`` batches, reported per step:

* ``scan``: hand-written JAX, a jitted epoch (``lax.scan`` over
  ``lax.conv_general_dilated``, optax Adam): the reference (``ratio`` = median / its);
* ``step``: the same hand-written step jitted alone, called per batch from Python
  (``vs_step`` = median / its: the cost of a loop around the step);
* ``fit``: ``fnn.fit`` on ``fnn.cnn`` (one call per epoch, donated buffers);
* ``convs``: forward + backward of the two conv layers alone on one batch (the bulk of
  the FLOPs): the FLOP-rate ceiling;
* the peers, as their docs write them: flax.linen and flax.nnx, equinox
  (``eqx.nn.Conv2d`` channels-first under ``vmap``), PyTorch on CPU (``nn.Conv2d``, the
  standard loop, ``torch.set_num_threads(os.cpu_count())``), Keras 3 on the JAX backend
  (``model.fit``, with ``steps_per_execution`` 1 and = steps per epoch), each skipped
  when not installed (``pip install -e '.[bench]'``).

``gflop_per_s`` is XLA's cost analysis of one compiled step (for ``convs``: of its
program) over the measured time. The default run is short (the machine is shared);
raise ``--repeats`` and ``--steps`` on a quiet machine.

Why the ``scan`` is slow (2.2-2.7 s a step on digits, 47 s on mnist, against ~30 ms and
~0.4-0.6 s for the ``step``): XLA:CPU's ``ConvCanonicalization`` pass, which rewrites
convolutions into the form its fast kernels take, visits the entry computation only,
so inside a while body the backward pass's convolutions (the kernel gradient with batch
and channels swapped, the input gradient with a reversed ``(out, in)`` kernel) run as
naive loop nests (jax-ml/jax#12868). ``fnn.layers.conv`` therefore lowers on CPU to
im2col + one GEMM (``fnn/layers/_patches.py``), which also stays a (batched) GEMM under
``vmap``, as in ``fit_ensemble`` (table and the canonical-convolution alternative in
benchmarks/README.md). ``--no-scan`` leaves the scan out (ratios over the ``step``).

Run::

    python benchmarks/bench_cnn.py                 # both cases, about a minute or two
    python benchmarks/bench_cnn.py --cases mnist --steps 4 --no-scan
    python benchmarks/bench_cnn.py --tiny          # seconds (smoke test)
    python benchmarks/bench_cnn.py --cases digits --steps 4 --repeats 3 --peers flax.linen,keras
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports keras

import jax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _peers  # noqa: E402
import _peers_cnn as peers  # noqa: E402
from _common import chosen_cases, format_table, record, time_interleaved, write_json  # noqa: E402

CASES = {
    "digits": lambda steps: peers.CNNProblem((8, 8, 1), (32, 64), (10,), 128, steps),
    "mnist": lambda steps: peers.CNNProblem((28, 28, 1), (32, 64), (128, 10), 128, steps),
}
SMOKE = peers.CNNProblem((4, 4, 1), (2, 4), (3,), 8, 2)
COLUMNS = ["case", "variant", "per_step_us", "ratio", "vs_step", "gflop_per_s", "compile_s"]


def step_flops(problem: peers.CNNProblem) -> float | None:
    """FLOPs of one hand-written training step (forward, backward, Adam) by XLA's cost analysis."""
    init, apply = peers.raw_cnn(problem)
    import optax

    opt = optax.adam(peers.LR)
    params = init(jax.random.key(1))
    x, y = (a[:problem.batch_size] for a in problem.data())

    def step(params, opt_state, x, y):
        grads = jax.grad(lambda p: _peers.xent(apply(p, x), y))(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return _flops(jax.jit(step), (params, opt.init(params), x, y))


def _flops(fn, args) -> float | None:
    cost = fn.lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) if cost and "flops" in cost else None


def variants(problem: peers.CNNProblem, with_peers: bool, with_scan: bool = True) -> dict:
    convs, conv_args = peers.convs_alone(problem)
    out = {"scan": (peers.hand_scan(problem), ())} if with_scan else {}
    out |= {"step": (peers.hand_step(problem), ()), "fit": (peers.fnn_fit(problem), ()), "convs": (convs, conv_args)}
    if with_peers:
        for name, build in peers.PEERS.items():
            if with_peers is not True and name not in with_peers:
                continue
            run = build(problem)
            if run is None:
                print(f"  skipped {name}: not installed (pip install -e '.[bench]')")
            else:
                out[name] = (run, ())
    return out


def bench_case(name: str, problem: peers.CNNProblem, repeats: int, with_peers: bool, with_scan: bool = True) -> list:
    cases = variants(problem, with_peers, with_scan)
    timings = time_interleaved(cases, repeats=repeats, warmup=1, number=1)
    reference = timings["scan" if with_scan else "step"]
    flops = step_flops(problem)
    conv_flops = _flops(*cases["convs"])
    rows = []
    for variant, timing in timings.items():
        steps = 1 if variant == "convs" else problem.steps
        row = record(case=name, timing=timing, dtype="float32", shapes=[list(problem.image), list(problem.channels),
                                                                        list(problem.dense)],
                     reference=reference, variant=variant, batch_size=problem.batch_size, steps=steps,
                     flops=(conv_flops if variant == "convs" else (flops or 0) * steps) or None)
        row["per_step_s"] = timing.median_s / steps
        row["ratio"] = row["per_step_s"] / (reference.median_s / problem.steps)
        row["vs_step"] = row["per_step_s"] / (timings["step"].median_s / problem.steps)
        rows.append(row)
    return rows


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--steps", type=int, default=8, help="batches per epoch (one timed unit)")
    parser.add_argument("--no-peers", action="store_true", help="only fnn, the scan, the step and the convs")
    parser.add_argument("--peers", default=None, help=f"comma-separated subset of {','.join(peers.PEERS)}")
    parser.add_argument("--out", default="benchmarks/results/cnn.json")
    parser.add_argument("--no-scan", action="store_true", help="leave out the (slow) scan; ratios then over the step")
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run (no peers)")
    args = parser.parse_args(argv)
    problems = chosen_cases(parser, args.cases, CASES, SMOKE, tiny=args.tiny,
                            make=lambda case: case(args.steps))
    rows = []
    for name, problem in problems.items():
        print(f"case {name}: image {problem.image}, conv {problem.channels}, dense {problem.dense}, "
              f"batch {problem.batch_size}, {problem.steps} steps per unit", flush=True)
        with_peers = not (args.tiny or args.no_peers) and (set(args.peers.split(",")) if args.peers else True)
        rows += bench_case(name, problem, 1 if args.tiny else args.repeats, with_peers, not args.no_scan)
        print(format_table([r for r in rows if r["case"] == name], COLUMNS), flush=True)
    write_json(args.out, rows, load_note="timed on a machine shared with other jobs")
    return rows


if __name__ == "__main__":
    main()
