"""fnn.parallel.fit and fit_batches on JAX's multi-controller runtime: 2 processes x 2 CPU devices.

Two worker processes (``jax.distributed`` over 127.0.0.1, gloo collectives) run every
scenario once and write their results to JSON; a third process with 4 CPU devices runs
the single-process reference. Run as a script, this file is the worker:
``python tests/test_multihost.py <role> <out_dir> [<port> <process_id>]``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

TIMEOUT_S = 240            # per launch; a hung collective must not hang the suite
EPOCHS, BATCH, N = 4, 64, 300


def _problem() -> dict:
    import jax
    import fnn
    x = np.random.default_rng(0).normal(size=(N, 6)).astype(np.float32)   # NumPy: no compile
    y = np.argmax(x[:, :3], axis=1)
    mlp = fnn.mlp([32, 3])
    # SGD for the batch-norm model: the dense bias before batch norm has a zero gradient
    # up to rounding, which Adam's normalisation would blow up to steps of learning_rate.
    # (It trains without eval_data: a smaller program to compile; the MLP runs have it.)
    bn = fnn.mlp([16, 3], batch_norm=True)
    bn_params, bn_state = bn.init(jax.random.key(1), (6,))
    return dict(x=x, y=y, mlp=mlp, params=mlp.init(jax.random.key(1), (6,)),
                adam=fnn.optimizers.adam(1e-2), bn=bn, bn_params=bn_params, bn_state=bn_state,
                sgd=fnn.optimizers.sgd(0.1),
                kw=dict(epochs=EPOCHS, batch_size=BATCH, key=jax.random.key(2),
                        eval_data=(x[:64], y[:64]), progress=False))


# fit_batches: global batches of rows [s, s + n); the last (42) splits into 21 rows per
# process, which do not split over a process's 2 devices (the gathered, replicated path).
STARTS, SIZES = (0, 64, 128, 192, 256), (64, 64, 64, 64, 42)


def _batches(x, y, part=slice(None)) -> list:
    """The global batches, or with ``part=(p, 2)`` process ``p``'s half of each one."""
    if isinstance(part, tuple):
        p, count = part
        return [(x[s + p * n // count:s + (p + 1) * n // count], y[s + p * n // count:s + (p + 1) * n // count])
                for s, n in zip(STARTS, SIZES)]
    return [(x[s:s + n], y[s:s + n]) for s, n in zip(STARTS, SIZES)]


def _batch_kw(kw: dict) -> dict:
    return dict(epochs=EPOCHS, steps_per_call=4, eval_data=kw["eval_data"], progress=False)


def _record(r) -> dict:
    import jax
    leaves = jax.tree.leaves((r.params, r.state))
    return {"leaves": [np.asarray(a).tolist() for a in leaves],
            "history_on_host": all(isinstance(v, np.ndarray) for v in r.history.values()),
            "history": {k: np.asarray(v).tolist() for k, v in r.history.items()},
            "epoch": int(r.epoch),
            "addressable": all(a.is_fully_addressable for a in jax.tree.leaves(r) if isinstance(a, jax.Array))}


def _reference(out_dir: str) -> None:
    import fnn.parallel
    t = _problem()
    x, y, kw = t["x"], t["y"], t["kw"]
    out = {"mlp": _record(fnn.parallel.fit(t["mlp"], t["params"], t["adam"], x, y, **kw)),
           "bn": _record(fnn.parallel.fit(t["bn"], t["bn_params"], t["sgd"], x, y, state=t["bn_state"],
                                          **dict(kw, eval_data=None))),
           "batches": _record(fnn.parallel.fit_batches(t["mlp"], t["params"], t["adam"], _batches(x, y),
                                                       **_batch_kw(kw)))}
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(out, f)


class _Crash(Exception):
    pass


def _worker(out_dir: str, port: int, pid: int) -> None:
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    import fnn.parallel
    t = _problem()
    x, y, kw, mlp, params, adam = t["x"], t["y"], t["kw"], t["mlp"], t["params"], t["adam"]
    fit = fnn.parallel.fit
    out = {"devices": [jax.device_count(), jax.local_device_count()]}

    def scenario(name, *args, **kwargs):
        out[name] = _record(fit(*args, **dict(kw, **kwargs)))

    scenario("replicated", mlp, params, adam, x, y)
    rows = slice(pid * N // 2, (pid + 1) * N // 2)          # process p's rows of the global data
    scenario("local", mlp, params, adam, x[rows], y[rows], local_data=True)
    scenario("bn", t["bn"], t["bn_params"], t["sgd"], x, y, state=t["bn_state"], eval_data=None)
    path = os.path.join(out_dir, "run.ckpt")

    def crash(epoch, logs):
        if epoch == 1:                     # after the checkpoint of epoch 2 was written
            raise _Crash

    try:
        fit(mlp, params, adam, x, y, checkpoint=path, on_epoch=crash, **kw)
    except _Crash:
        pass
    scenario("resumed", mlp, None, adam, x, y, initial=path)
    mine, path = _batches(x, y, (pid, 2)), os.path.join(out_dir, "batches.ckpt")
    out["batches"] = _record(fnn.parallel.fit_batches(mlp, params, adam, mine, **_batch_kw(kw)))
    try:
        fnn.parallel.fit_batches(mlp, params, adam, mine, checkpoint=path, on_epoch=crash, **_batch_kw(kw))
    except _Crash:
        pass
    out["batches_resumed"] = _record(fnn.parallel.fit_batches(mlp, None, adam, mine, initial=path,
                                                              **_batch_kw(kw)))
    try:                                   # process 1 has one batch less
        fnn.parallel.fit_batches(mlp, params, adam, mine[:len(mine) - pid], **_batch_kw(kw))
    except ValueError as e:
        out["mismatch_batches"] = str(e)
    for name, n, change in [("batch_size", N, dict(batch_size=BATCH // 2 * (1 + pid))),
                            ("key", N, dict(key=jax.random.key(pid))), ("x", N - 4 * pid, {})]:
        try:
            fit(mlp, params, adam, x[:n], y[:n], **dict(kw, **change))
        except ValueError as e:
            out[f"mismatch_{name}"] = str(e)
    for name, change in [("progress", dict(progress=True)), ("devices", dict(devices=jax.devices()[::-1]))]:
        try:
            fit(mlp, params, adam, x, y, **dict(kw, **change))
        except ValueError as e:
            out[f"{name}_error"] = str(e)
    with open(os.path.join(out_dir, f"process{pid}.json"), "w") as f:
        json.dump(out, f)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args: list, devices: int) -> subprocess.Popen:
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    return subprocess.Popen([sys.executable, __file__, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("multihost")
    port = _free_port()
    procs = [_launch(["reference", out], 4)] + [_launch(["worker", out, port, i], 2) for i in range(2)]
    try:
        logs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    finally:
        for p in procs:                    # a hung or failed run leaves no process behind
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-4000:]
    return {name: json.loads((out / f"{name}.json").read_text())
            for name in ("reference", "process0", "process1")}


def _assert_same(a: dict, b: dict) -> None:
    for u, v in zip(a["leaves"], b["leaves"], strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
    assert a["history"].keys() == b["history"].keys()
    for k in a["history"]:
        np.testing.assert_allclose(a["history"][k], b["history"][k], rtol=1e-5, atol=1e-6)


def test_multihost_runs_on_2_processes_of_2_devices(runs):
    assert runs["process0"]["devices"] == runs["process1"]["devices"] == [4, 2]


@pytest.mark.parametrize("scenario", ["replicated", "local", "bn", "resumed", "batches", "batches_resumed"])
def test_multihost_fit_equals_on_every_process(runs, scenario):
    a, b = runs["process0"][scenario], runs["process1"][scenario]
    assert a == b                          # bit-identical: one program, replicated results


@pytest.mark.parametrize("scenario,reference", [("replicated", "mlp"), ("local", "mlp"), ("bn", "bn"),
                                                ("resumed", "mlp"), ("batches", "batches"),
                                                ("batches_resumed", "batches")])
def test_multihost_fit_equals_single_process_4_devices(runs, scenario, reference):
    got = runs["process0"][scenario]
    assert got["epoch"] == EPOCHS
    _assert_same(got, runs["reference"][reference])


def test_multihost_fit_returns_fully_addressable_results(runs):
    assert all(runs[f"process{i}"][s]["addressable"] and runs[f"process{i}"][s]["history_on_host"]
               for i in range(2) for s in ("replicated", "local", "bn", "resumed", "batches", "batches_resumed"))


@pytest.mark.parametrize("arg", ["batch_size", "key", "x"])
def test_multihost_fit_rejects_processes_that_disagree(runs, arg):
    for i in range(2):
        message = runs[f"process{i}"].get(f"mismatch_{arg}", "")
        assert message.startswith(f"parallel.fit: {arg} must be the same on every process; got "), message


def test_multihost_fit_batches_rejects_processes_with_other_numbers_of_batches(runs):
    # process 0 has a last chunk where process 1's epoch has ended: both raise, neither hangs
    for i in range(2):
        message = runs[f"process{i}"].get("mismatch_batches", "")
        assert message.startswith("parallel.fit_batches: the number and shapes of batches (epoch 0, chunk 1) "
                                  "must be the same on every process; got "), message


def test_multihost_fit_refuses_the_progress_bar(runs):
    # The bar's chunks follow each process's clock: the processes' calls would diverge.
    assert runs["process0"]["progress_error"].startswith("parallel.fit: progress must be False or None")


def test_multihost_fit_refuses_devices_out_of_process_order(runs):
    # process p's rows must lie on process p's devices: one block per process, in order
    assert runs["process1"]["devices_error"].startswith("parallel.fit: devices must hold the same number "
                                                        "of devices of each of the 2 processes")


if __name__ == "__main__":
    role, directory = sys.argv[1], sys.argv[2]
    if role == "reference":
        _reference(directory)
    else:
        _worker(directory, int(sys.argv[3]), int(sys.argv[4]))
