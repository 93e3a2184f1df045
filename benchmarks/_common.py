"""Helpers shared by the benchmarks: timing, device facts, tables, JSON.

How a benchmark uses them::

    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser, sizes="1000000", repeats=21, out="benchmarks/results/x.json")
    args = parser.parse_args(argv)
    timings = time_interleaved({"fnn": (jax.jit(f), (x,)), "optax": (jax.jit(g), (x,))},
                               repeats=args.repeats)
    rows = [record(case="adam/fnn", timing=timings["fnn"], dtype="float32",
                   shapes=tree_shapes(x), reference=timings["optax"])]
    print(format_table(rows, DEFAULT_COLUMNS))
    write_json(output_path(args), rows)

Timing rules (STYLE.md): the first call (trace + compile + one run) is reported apart
as ``compile_s``; then warm-up calls; every timed result goes through
``jax.block_until_ready``; each repeat times ``number`` back-to-back calls (default 1)
and reports the mean per call; the summary is the median and min over repeats. Peers
are timed interleaved (round-robin, in a fresh seeded random order every repeat) in
one process, so drifts in clock speed or background load hit all of them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import statistics
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np


@dataclasses.dataclass
class Timing:
    """Seconds per call of one case: ``compile_s`` for the first call, then repeats."""

    compile_s: float
    times: list[float]  # seconds per call, one entry per repeat
    number: int  # calls per repeat

    @property
    def median_s(self) -> float:
        return statistics.median(self.times)

    @property
    def min_s(self) -> float:
        return min(self.times)


def device_info() -> dict[str, Any]:
    """Backend, device kind and versions: what a result must be read next to."""
    device = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def first_call_s(fn: Callable, args: Sequence[Any]) -> float:
    """Wall time of the first call: tracing, compilation and one blocked run."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def per_call_s(fn: Callable, args: Sequence[Any], number: int) -> float:
    """Mean wall time per call over ``number`` calls, each result blocked on."""
    start = time.perf_counter()
    for _ in range(number):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) / number


def calibrate_number(fn: Callable, args: Sequence[Any], target_s: float = 0.02,
                     max_number: int = 10_000) -> int:
    """Calls per repeat so that one repeat lasts about ``target_s`` (at least 1)."""
    once = per_call_s(fn, args, 3)
    return int(max(1, min(max_number, round(target_s / max(once, 1e-9)))))


def time_interleaved(cases: dict[str, tuple[Callable, Sequence[Any]]], *, repeats: int,
                     warmup: int = 3, number: int | None = 1,
                     target_s: float = 0.002) -> dict[str, Timing]:
    """Time each ``name -> (fn, args)`` case round-robin; fns should be jitted.

    Each repeat times ``number`` calls of one case, then moves to the next case, in a
    fresh (seeded) random order every repeat: a rotated order would keep each case's
    predecessor fixed, and what one case leaves behind (caches, memory, clock) can
    move the next one's time by several percent. The default, one call per repeat and
    many repeats, interleaves peers at the finest grain, so that on a shared or throttling machine
    they meet the same load and the median discards the preempted calls. ``number=None``
    calibrates one count for all cases from the slowest, so that a repeat lasts
    ``target_s`` (for calls too short for one clock reading).
    """
    compile_s = {name: first_call_s(fn, args) for name, (fn, args) in cases.items()}
    for fn, args in cases.values():
        for _ in range(warmup):
            jax.block_until_ready(fn(*args))
    if number is None:
        number = min(calibrate_number(fn, args, target_s) for fn, args in cases.values())
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    order = random.Random(0)
    for _ in range(repeats):
        for name in order.sample(names, len(names)):
            fn, args = cases[name]
            times[name].append(per_call_s(fn, args, number))
    return {name: Timing(compile_s[name], times[name], number) for name in names}


def tree_shapes(tree: Any) -> list[list[int]]:
    """The leaf shapes of a pytree (JSON-friendly)."""
    return [list(np.shape(x)) for x in jax.tree.leaves(tree)]


def tree_bytes(tree: Any) -> int:
    """Bytes held by a pytree of arrays or ``jax.ShapeDtypeStruct`` (from ``eval_shape``)."""
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def record(*, case: str, timing: Timing, dtype: str, shapes: Any,
           reference: Timing | None = None, flops: float | None = None,
           bytes_moved: float | None = None, **extra: Any) -> dict[str, Any]:
    """One JSON/table row with the fields STYLE.md asks of every benchmark result.

    ``flops`` and ``bytes_moved`` are per call; the rates derived from them use the
    median. ``ratio`` is this case's median over ``reference``'s (> 1: slower).
    """
    median = timing.median_s
    row = {"case": case, **device_info(), "dtype": dtype, "shapes": shapes,
           "compile_s": timing.compile_s, "median_s": median, "min_s": timing.min_s,
           "repeats": len(timing.times), "number": timing.number,
           "steps_per_s": 1.0 / median if median > 0 else None,
           "gflop_per_s": flops / median / 1e9 if flops else None,
           "gbyte_per_s": bytes_moved / median / 1e9 if bytes_moved else None,
           "ratio": median / reference.median_s if reference is not None else None}
    row.update(extra)
    return row


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table of ``columns`` (times in microseconds where the name ends _us)."""
    cells = []
    for row in rows:
        line = []
        for col in columns:
            if col.endswith("_us") and col[:-3] + "_s" in row:
                value = row[col[:-3] + "_s"]
                line.append(_fmt(value * 1e6 if value is not None else None))
            else:
                line.append(_fmt(row.get(col)))
        cells.append(line)
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(line, widths)))
            for line in cells]
    return "\n".join(out)


def write_json(path: str | None, rows: Sequence[dict[str, Any]], **meta: Any) -> None:
    """Write ``{"meta": device facts + meta, "results": rows}`` to ``path`` atomically."""
    if not path:
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    payload = {"meta": {**device_info(), **meta}, "results": list(rows)}
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1, default=str)
    os.replace(tmp, path)


def add_common_args(parser: argparse.ArgumentParser, *, sizes: str, repeats: int,
                    out: str) -> None:
    """``--sizes`` (comma-separated ints), ``--repeats``, ``--out`` and ``--tiny``.

    ``--out`` defaults to None, meaning ``out`` for a full run and no file for ``--tiny``
    (see :func:`output_path`).
    """
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes(sizes),
                        help=f"comma-separated problem sizes (default {sizes})")
    parser.add_argument("--repeats", type=int, default=repeats,
                        help=f"timed repeats per case; the median is reported (default {repeats})")
    parser.add_argument("--out", default=None,
                        help=f"JSON output path, '' for none (default {out}; none with --tiny)")
    parser.set_defaults(default_out=out)
    parser.add_argument("--tiny", action="store_true",
                        help="a seconds-long run on tiny problems (smoke tests)")


def chosen_cases(parser: argparse.ArgumentParser, names: str, cases: dict[str, Any], smoke: Any, *,
                 tiny: bool, make: Callable[[Any], Any] = lambda case: case) -> dict[str, Any]:
    """``{"smoke": smoke}`` for ``--tiny``, else ``make(cases[k])`` for each name of the
    comma-separated ``--cases`` value ``names`` (an unknown name is a usage error)."""
    if tiny:
        return {"smoke": smoke}
    chosen = names.split(",")
    unknown = set(chosen) - set(cases)
    if unknown:
        parser.error(f"--cases: unknown {sorted(unknown)}; choose from {list(cases)}")
    return {k: make(cases[k]) for k in chosen}


def output_path(args: argparse.Namespace) -> str | None:
    """Where to write JSON: ``--out`` if given, else the default unless ``--tiny``."""
    if args.out is not None:
        return args.out or None
    return None if args.tiny else args.default_out


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(s)) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes must be comma-separated integers; got {text!r}")
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"--sizes must be positive integers; got {text!r}")
    return sizes
