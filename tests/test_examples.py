"""examples/: every numbered example runs tiny, in-process, and writes its plot.

Examples are found with a glob, so a new ``NN_<topic>.py`` is tested without touching
this file; a number of the gallery (01-09) whose file is not written yet is skipped.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
GALLERY = range(1, 10)   # the teaching order: 01 activations ... 09 data parallel


def _numbered() -> dict[int, list[str]]:
    found: dict[int, list[str]] = {n: [] for n in GALLERY}
    for path in sorted(glob.glob(os.path.join(EXAMPLES, "[0-9][0-9]_*.py"))):
        found.setdefault(int(os.path.basename(path)[:2]), []).append(path)
    return found


CASES = [pytest.param(n, path, id=os.path.basename(path)[:-3])
         for n, paths in sorted(_numbered().items()) for path in paths]
CASES += [pytest.param(n, None, id=f"{n:02d}_missing") for n, paths in _numbered().items() if not paths]


def _load(path: str):
    if EXAMPLES not in sys.path:   # as `python examples/NN_x.py` has it: they import _shared.py
        sys.path.insert(0, EXAMPLES)
    name = "example_" + re.sub(r"\W", "_", os.path.basename(path)[:-3])
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _has_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _run_as_script(path: str, out) -> str:
    """Run ``python <example> --tiny --out <out>`` in a fresh process; return its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run([sys.executable, path, "--tiny", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("number, path", CASES)
def test_example_runs_tiny_and_writes_its_plot(number, path, tmp_path, capsys):
    if path is None:
        pytest.skip(f"examples/{number:02d}_*.py is not written yet")
    with open(path) as f:
        source = f.read()
    if "xla_force_host_platform_device_count" in source:
        # It sets XLA_FLAGS before importing jax, which only a fresh process honours.
        printed = _run_as_script(path, tmp_path)
        assert printed.startswith("8 devices"), printed
    else:
        module = _load(path)
        assert callable(getattr(module, "main", None)), "needs main(argv=None)"
        module.main(["--tiny", "--out", str(tmp_path)])
        printed = capsys.readouterr().out
    assert '"""' in source[:10] and "--tiny" in source, "a docstring that teaches and says how to run"
    assert printed.strip(), "prints progress and a final metric"
    if _has_matplotlib():
        pngs = [p for p in tmp_path.rglob("*.png")]
        assert pngs, f"{os.path.basename(path)} wrote no plot into --out"
        assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    difference = re.search(r"largest \|param difference\|.*?: ([0-9.e+-]+)", printed)
    if difference:  # 09: the data-parallel result equals the single-device one
        assert float(difference.group(1)) < 1e-4
