"""Crash tests: real SIGINT to `fnn train` and SIGKILL during `checkpoint.save`, in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fnn
from fnn.cli import main

pytest.importorskip("sklearn")
ENV = dict(os.environ, FNN_COMPILATION_CACHE="off", JAX_PLATFORMS="cpu")
SMALL = ["--data", "moons", "--samples", "200", "--hidden", "8", "--batch-size", "64"]


def _start(argv):
    return subprocess.Popen([sys.executable, "-m", "fnn", "train", *argv], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc, timeout=120.0):
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def _banner(proc):
    """Read stdout up to the line printed right before fit compiles."""
    for line in proc.stdout:
        if line.startswith("fnn train:"):
            return
    raise AssertionError(proc.communicate())


def _previous(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "marker").write_text("previous run")
    return out


def _one_interrupt_line(proc):
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert stderr.startswith("fnn train: interrupted") and stderr.count("\n") == 1, stderr
    return stderr


def test_train_sigint_while_compiling_exits_130_and_keeps_previous_folder(tmp_path):
    out = _previous(tmp_path)
    proc = _start([*SMALL, "--epochs", "5", "--out", str(out)])
    _banner(proc)
    proc.send_signal(signal.SIGINT)
    _one_interrupt_line(proc)
    assert sorted(os.listdir(out)) == ["marker"]
    assert sorted(os.listdir(tmp_path)) == [".run.partial", "run"]


def test_train_sigint_without_progress_then_resume_equals_uninterrupted(tmp_path):
    out = tmp_path / "run"
    argv = [*SMALL, "--epochs", "3000", "--checkpoint-every", "20", "--no-progress", "--out", str(out)]
    proc = _start(argv)
    state = tmp_path / ".run.partial" / "train_state.ckpt"
    _wait_for(state.exists, proc)
    proc.send_signal(signal.SIGINT)
    assert "--resume" in _one_interrupt_line(proc)
    assert not out.exists()
    saved = fnn.checkpoint.load(state)
    assert 0 < saved["epoch"] < 3000
    assert main(["train", *argv, "--resume"]) == 0
    ref = tmp_path / "ref"
    assert main(["train", *argv[:-1], str(ref)]) == 0
    resumed = fnn.checkpoint.load(out / "params.ckpt")
    np.testing.assert_array_equal(resumed[0]["w"], fnn.checkpoint.load(ref / "params.ckpt")[0]["w"])
    assert (out / "history.json").read_text() == (ref / "history.json").read_text()
    assert not (tmp_path / ".run.partial").exists()


@pytest.mark.parametrize("delay", [0.5, 2.0])
def test_train_sigint_at_any_moment_leaves_previous_or_complete_folder(tmp_path, delay):
    out = _previous(tmp_path)
    proc = _start([*SMALL, "--epochs", "30", "--out", str(out)])
    _banner(proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode in (0, 130), (proc.returncode, stderr)  # never a crash (-11)
    assert "Traceback" not in stderr and "Segmentation" not in stderr, stderr
    if proc.returncode == 130:  # progress lines (stderr is a pipe, so one per update), then one interrupt line
        *progress, last = stderr.splitlines()
        assert all(line.startswith("epoch ") for line in progress), stderr
        assert last.startswith("fnn train: interrupted") and sorted(os.listdir(out)) == ["marker"], stderr
    else:
        assert "marker" not in os.listdir(out)
        assert main(["evaluate", str(out)]) == 0
    assert not [n for n in os.listdir(tmp_path) if ".old-" in n]


_WRITER = """
import sys, numpy as np
from fnn import checkpoint
big = np.zeros(2**23, np.float32)
while True:
    checkpoint.save(sys.argv[1], {"w": big})
"""


def test_save_removes_temp_files_left_by_a_killed_save(tmp_path):
    path = tmp_path / "big.ckpt"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=ENV)
    temps = lambda: [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]  # noqa: E731
    _wait_for(lambda: path.exists() and temps(), proc)
    proc.kill()
    proc.wait()
    left = temps()
    assert left and all(n.startswith(".big.ckpt.") for n in left)
    os.utime(tmp_path / left[0], ns=(0, 0))  # older than the next save's temp, whatever the clock
    fnn.checkpoint.save(path, {"w": np.ones(3, np.float32)})
    assert temps() == [] and sorted(os.listdir(tmp_path)) == ["big.ckpt"]
    np.testing.assert_array_equal(fnn.checkpoint.load(path)["w"], np.ones(3))


_INTERRUPT_DURING_IMPORT = """
import os, signal, sys
import _fnn_command

class InterruptWhenJaxIsImported:  # a real SIGINT, delivered inside `import fnn`
    def find_spec(self, name, path=None, target=None):
        if name == "jax":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.argv = ["fnn", "train"]
sys.meta_path.insert(0, InterruptWhenJaxIsImported())
sys.exit(_fnn_command.main())
"""


def test_fnn_command_interrupted_while_importing_fnn_exits_130_with_one_line():
    proc = subprocess.run([sys.executable, "-c", _INTERRUPT_DURING_IMPORT], env=ENV, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout == "" and "Traceback" not in proc.stderr, proc.stderr
    assert (proc.returncode, proc.stderr) == (130, "fnn train: interrupted while starting\n")


def test_fnn_command_entry_point_is_the_launcher_that_handles_interrupts_first():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "fnn"]
    assert script.value == "_fnn_command:main"
