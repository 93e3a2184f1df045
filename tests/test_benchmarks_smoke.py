"""Every benchmark script runs end to end in its tiny mode (numbers are not checked)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

BENCHMARKS = sorted((pathlib.Path(__file__).parent.parent / "benchmarks").glob("bench_*.py"))


def _load(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_benchmark_runs_tiny(path, tmp_path, capsys):
    module = _load(path)
    rows = module.main(["--tiny", "--repeats", "1", "--out", str(tmp_path / "out.json")])
    printed = capsys.readouterr().out
    assert rows, f"{path.name} produced no result rows"
    assert "\n---" in printed or printed.startswith("---") or "  --" in printed, "no table printed"
