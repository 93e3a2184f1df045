"""Benchmark: fnn.parallel.fit and fit_batches on 2 processes x 2 CPU devices against 1 process x 4.

MLP 64-128-10, batch 64, Adam, 4,096 examples, 2 epochs (128 steps) per call. Both runs are the same global program on
4 devices; the 2-process one is ``jax.distributed`` over 127.0.0.1 with gloo
collectives (the setup of ``tests/test_multihost.py``), so every step's gradient
all-reduce crosses a process boundary over loopback TCP. Each launch compiles once,
then times ``--repeats`` calls of ``fit`` and of ``fit_batches`` (interleaved; NumPy
batches of ``BATCH`` global examples, chunks of ``STEPS_PER_CALL``; on 2 processes each
feeds its half of every batch and the processes compare every chunk, one all-gather
per chunk); the launches alternate (pair, single, pair,
single, ... for ``--rounds``) so drifts in machine load hit both. ``ratio`` is the
2-process median per step over the single process's with the same trainer (> 1: slower). Report, not a target:
CPU collectives over loopback are slow.

``--tiny`` times the same worker in this process on its own devices (no launch): a
smoke run of the timing and the table, the launches being what tests/test_multihost.py
runs.

Run::

    python benchmarks/bench_multihost.py
    python benchmarks/bench_multihost.py --rounds 3 --repeats 9
    python benchmarks/bench_multihost.py --tiny
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import Timing, format_table, record, write_json  # noqa: E402

SIZES, BATCH, N, EPOCHS = (64, 128, 10), 64, 4096, 2
STEPS_PER_CALL = 32
SMOKE = (4, 8, 3), 8, 32, 1
COLUMNS = ["case", "variant", "per_step_us", "ratio", "compile_s", "repeats"]
TIMEOUT_S = 600


def measure(sizes, batch, n, epochs, repeats) -> dict:
    """Compile, then time ``repeats`` calls of ``fnn.parallel.fit`` and ``fit_batches`` on every
    device: ``{trainer: {compile_s, times, steps, devices, processes}}``."""
    import jax
    import fnn
    import fnn.parallel
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], n)
    model = fnn.mlp(list(sizes[1:]))
    params = model.init(jax.random.key(1), (sizes[0],))
    opt = fnn.optimizers.adam(1e-3)

    p, count = jax.process_index(), jax.process_count()
    half = batch // count                      # this process's rows of every global batch
    mine = [(x[s + p * half:s + (p + 1) * half], y[s + p * half:s + (p + 1) * half])
            for s in range(0, n - batch + 1, batch)]

    def fit():
        return fnn.parallel.fit(model, params, opt, x, y, epochs=epochs, batch_size=batch,
                                key=jax.random.key(2), progress=False)

    def fit_batches():
        return fnn.parallel.fit_batches(model, params, opt, mine, epochs=epochs,
                                        steps_per_call=STEPS_PER_CALL, progress=False)

    calls = {"fit": fit, "fit_batches": fit_batches}
    out = {}
    for name, call in calls.items():
        t0 = time.perf_counter()
        jax.block_until_ready(call().params)
        out[name] = {"compile_s": time.perf_counter() - t0, "times": [], "devices": jax.device_count(),
                     "processes": count, "steps": epochs * (n // batch if name == "fit_batches" else -(-n // batch))}
    for _ in range(repeats):
        for name, call in calls.items():
            t0 = time.perf_counter()
            jax.block_until_ready(call().params)
            out[name]["times"].append(time.perf_counter() - t0)
    return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(out: str, devices: int, repeats: int, port: int = 0, pid: int = -1) -> subprocess.Popen:
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    return subprocess.Popen([sys.executable, __file__, "--worker", out, str(repeats), str(port), str(pid)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run(procs: list) -> None:
    try:
        logs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs):
        if p.returncode:
            raise RuntimeError(f"benchmark worker failed:\n{log[-3000:]}")


def _worker(out: str, repeats: int, port: int, pid: int) -> None:
    import jax
    if pid >= 0:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    result = measure(SIZES, BATCH, N, EPOCHS, repeats)
    if pid <= 0:
        with open(out, "w") as f:
            json.dump(result, f)


def _launched(rounds: int, repeats: int) -> dict:
    """``{variant: [result of each round]}``, the launches alternating."""
    got: dict = {"2 processes x 2 devices": [], "1 process x 4 devices": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            out = os.path.join(tmp, f"{r}.json")
            port = _free_port()
            _run([_launch(out, 2, repeats, port, pid) for pid in range(2)])
            with open(out) as f:
                got["2 processes x 2 devices"].append(json.load(f))
            _run([_launch(out, 4, repeats)])
            with open(out) as f:
                got["1 process x 4 devices"].append(json.load(f))
    return got


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="launches of each variant, alternating")
    parser.add_argument("--repeats", type=int, default=7, help="timed fit calls per launch")
    parser.add_argument("--out", default="benchmarks/results/multihost.json")
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run, in this process")
    args = parser.parse_args(argv)
    if args.tiny:
        import jax
        got = {f"{jax.process_count()} process x {jax.device_count()} devices (in process)":
               [measure(*SMOKE, args.repeats)]}
        sizes = SMOKE[0]
    else:
        got = _launched(args.rounds, args.repeats)
        sizes = SIZES
    rows = []
    for trainer in ("fit", "fit_batches"):
        timings = {}
        for variant, results in got.items():
            steps = results[0][trainer]["steps"]
            times = [t / steps for res in results for t in res[trainer]["times"]]     # seconds per step
            timings[variant] = Timing(statistics.median(res[trainer]["compile_s"] for res in results), times, 1)
        reference = timings.get("1 process x 4 devices")
        for variant, timing in timings.items():
            row = record(case=f"{trainer} mlp {'-'.join(map(str, sizes))}", timing=timing, dtype="float32",
                         shapes=list(sizes), reference=reference, variant=variant,
                         batch_size=BATCH if not args.tiny else SMOKE[1])
            row["per_step_s"] = timing.median_s
            rows.append(row)
    print(format_table(rows, COLUMNS), flush=True)
    if not args.tiny:
        write_json(args.out, rows)
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
