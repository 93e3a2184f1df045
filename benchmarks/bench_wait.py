"""Benchmark: how long fit's driver takes to see a call's result, beyond the result being ready.

``fit`` cannot block inside XLA for its result: that would hold Ctrl-C until the whole
training ends. For programs of 0.3 ms to 300 ms (a chain of 256x256 matmuls), each
dispatched and then waited for, interleaved, medians:

* ``block_until_ready``: the blocking wait (not interruptible): the reference;
* ``fit's wait``: what ``fit`` does: it polls for up to 2 ms when the same program was
  short the last time, then blocks in a daemon thread while the main thread waits on
  an event (which Ctrl-C ends);
* ``poll 2 ms first`` and ``thread at once`` (no polling first): the rule's two halves;
* ``sleeps <= 1 ms`` and ``sleeps <= 20 ms``: polls with sleeps doubling from 0.1 ms up
  to a cap, which wake up to a sleep late (20 ms: fnn's wait before issue 20).

``above_us`` is the median above ``block_until_ready``'s.

Run::

    python benchmarks/bench_wait.py
    python benchmarks/bench_wait.py --tiny      # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import format_table, record, time_interleaved, write_json  # noqa: E402
from fnn.training import _driver  # noqa: E402

DURATIONS_MS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
COLUMNS = ["case", "variant", "median_ms", "above_us", "ratio"]


@jax.jit
def matmul_chain(a: jax.Array, steps: jax.Array) -> jax.Array:
    return jax.lax.fori_loop(0, steps, lambda i, b: jnp.tanh(b @ b), a)


def sleeping_polls(value: jax.Array, cap_s: float) -> jax.Array:
    """Poll, then sleep 0.1 ms, 0.2 ms, ... up to ``cap_s`` between polls."""
    pause = 1e-4
    while not value.is_ready():  # type: ignore[attr-defined]
        time.sleep(pause)
        pause = min(pause * 2, cap_s)
    return value


def variants(steps: int) -> dict:
    a = jnp.eye(256, dtype=jnp.float32) * 0.5
    n = jnp.int32(steps)
    last_wait = [0.0]

    def fits_wait():
        value = matmul_chain(a, n)
        start = time.perf_counter()
        out = _driver._wait(value, _driver._spin_for(last_wait, False))
        last_wait[0] = time.perf_counter() - start
        return out

    return {
        "block_until_ready": lambda: matmul_chain(a, n).block_until_ready(),
        "fit's wait": fits_wait,
        "poll 2 ms first": lambda: _driver._wait(matmul_chain(a, n), _driver.SPIN_S),
        "thread at once": lambda: _driver._wait(matmul_chain(a, n), 0.0),
        "sleeps <= 1 ms": lambda: sleeping_polls(matmul_chain(a, n), 1e-3),
        "sleeps <= 20 ms": lambda: sleeping_polls(matmul_chain(a, n), 2e-2),
    }


def steps_for(ms: float) -> int:
    """Matmuls in the chain for a program of about ``ms`` milliseconds on this machine."""
    a = jnp.eye(256, dtype=jnp.float32)
    matmul_chain(a, jnp.int32(1)).block_until_ready()
    start = time.perf_counter()
    matmul_chain(a, jnp.int32(200)).block_until_ready()
    return max(1, round(ms * 1e-3 / ((time.perf_counter() - start) / 200)))


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31, help="timed repeats (median)")
    parser.add_argument("--out", default="benchmarks/results/wait.json")
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run")
    args = parser.parse_args(argv)
    durations = (0.3, 3.0) if args.tiny else DURATIONS_MS
    rows = []
    for ms in durations:
        steps = steps_for(ms)
        timings = time_interleaved({k: (f, ()) for k, f in variants(steps).items()},
                                   repeats=3 if args.tiny else args.repeats, warmup=2, number=1)
        reference = timings["block_until_ready"]
        for variant, timing in timings.items():
            row = record(case=f"~{ms:g} ms", timing=timing, dtype="float32", shapes=[256, 256],
                         reference=reference, variant=variant, steps=steps)
            row["median_ms"] = timing.median_s * 1e3
            row["above_us"] = (timing.median_s - reference.median_s) * 1e6
            rows.append(row)
        print(format_table([r for r in rows if r["steps"] == steps], COLUMNS), flush=True)
    if not args.tiny:
        write_json(args.out, rows)
    return rows


if __name__ == "__main__":
    main()
