"""fnn.cli: `fnn train` / `fnn evaluate` run in-process on tiny settings."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.cli import build_parser, main
from fnn.cli._options import interrupts

pytest.importorskip("sklearn")  # digits is bundled with scikit-learn (the data extra)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """`fnn train` on digits with a small MLP for 3 epochs, progress bar on."""
    out = tmp_path_factory.mktemp("digits")
    code, stdout, stderr = _run(["train", "--hidden", "32", "--epochs", "3", "--seed", "3",
                                 "--out", str(out)])
    with open(out / "config.json") as f:
        config = json.load(f)
    return out, code, stdout, stderr, config


def _reference(config):
    """The run rebuilt by hand from the documented seed flow: split(key(seed), 3)."""
    c = config["config"]
    k_data, k_init, k_order = jax.random.split(jax.random.key(c["seed"]), 3)
    options = {} if c["samples"] is None else {"n": c["samples"]}
    data = fnn.datasets.load(c["data"], key=k_data, **options)
    model = fnn.mlp(c["hidden"] + [data.num_classes], activation=c["activation"])
    return data, model, k_init, k_order


def test_train_exits_zero_and_writes_checkpoint_config_history(digits_run):
    out, code, _, _, config = digits_run
    assert code == 0
    assert {"params.ckpt", "config.json", "history.json"} <= set(os.listdir(out))
    assert config["config"] == {"data": "digits", "samples": None, "hidden": [32],
                                "activation": "relu", "optimizer": "adam", "learning_rate": 2e-3,
                                "epochs": 3, "batch_size": 64, "seed": 3, "ensemble": 1,
                                "model": "mlp", "channels": [32, 64], "kernel": 3, "dropout": 0.0,
                                "batch_norm": False}
    with open(out / "history.json") as f:
        history = json.load(f)
    assert sorted(history) == ["eval_accuracy", "eval_loss", "train_loss"]
    assert all(len(v) == 3 for v in history.values())
    assert history["eval_accuracy"][-1] == pytest.approx(config["result"]["test_accuracy"])
    assert 0.85 < config["result"]["test_accuracy"] <= 1.0


def test_train_equals_fit_with_the_documented_keys(digits_run):
    out, _, _, _, config = digits_run
    data, model, k_init, k_order = _reference(config)
    ref = fnn.fit(model, model.init(k_init, (64,)), fnn.optimizers.adam(2e-3), data.x_train,
                  data.y_train, epochs=3, batch_size=64, key=k_order,
                  eval_data=(data.x_test, data.y_test), progress=False)
    with open(out / "history.json") as f:
        history = json.load(f)
    np.testing.assert_allclose(history["train_loss"], ref.history["train_loss"], rtol=1e-6)
    saved = fnn.checkpoint.load(out / "params.ckpt", like=ref.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), saved, ref.params)


def test_train_shows_progress_and_prints_summary(digits_run):
    _, _, stdout, stderr, _ = digits_run
    assert "epoch 3/3" in stderr and "eval_accuracy" in stderr
    assert "test accuracy" in stdout and "steps/s" in stdout and " s since " in stdout


def test_train_writes_plots(digits_run):
    pytest.importorskip("matplotlib")
    out = digits_run[0]
    for name in ("loss.png", "accuracy.png", "confusion.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
    assert not (out / "boundary.png").exists()  # 64 features: no 2-D boundary


@pytest.mark.parametrize("target", ["folder", "checkpoint"])
def test_evaluate_reproduces_the_train_accuracy(digits_run, target):
    out, _, _, _, config = digits_run
    path = out if target == "folder" else out / "params.ckpt"
    code, stdout, _ = _run(["evaluate", str(path)])
    assert code == 0
    assert f"test accuracy {config['result']['test_accuracy']:.4f}" in stdout
    assert f"test loss {config['result']['test_loss']:.4f}" in stdout
    assert f"macro F1 {config['result']['test_macro_f1']:.4f}" in stdout


def test_train_ensemble_reports_mean_and_averaged_accuracy(tmp_path):
    out = tmp_path / "moons"
    code, stdout, stderr = _run(["train", "--data", "moons", "--samples", "200", "--hidden", "8",
                                 "--epochs", "4", "--ensemble", "3", "--lr", "0.02",
                                 "--no-progress", "--out", str(out)])
    assert code == 0 and "epoch" not in stderr
    result = json.load(open(out / "config.json"))["result"]
    assert len(result["member_accuracy"]) == 3
    assert result["member_accuracy_mean"] == pytest.approx(np.mean(result["member_accuracy"]))
    # Reference: the members' mean softmax, from the checkpoint.
    data, model, k_init, _ = _reference(json.load(open(out / "config.json")))
    like = fnn.training.init_ensemble(model, jax.random.split(k_init, 3), (2,))
    params = fnn.checkpoint.load(out / "params.ckpt", like=like)
    probs = jnp.mean(jax.nn.softmax(jax.vmap(model.apply, (0, None))(params, data.x_test)), 0)
    expected = float(jnp.mean(jnp.argmax(probs, -1) == data.y_test))
    assert result["test_accuracy"] == pytest.approx(expected)
    assert f"ensemble of 3; members' mean {result['member_accuracy_mean']:.4f}" in stdout
    code, stdout, _ = _run(["evaluate", str(out)])
    assert code == 0 and f"test accuracy {result['test_accuracy']:.4f}" in stdout
    if os.environ.get("FNN_SKIP_PLOTS") is None and _has_matplotlib():
        assert (out / "boundary.png").read_bytes()[:8] == PNG_MAGIC


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("argv, names", [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--epochs", "ten"], "--epochs"),
    (["train", "--batch-size", "-4"], "--batch-size"),
    (["train", "--lr", "-0.1"], "--lr"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--hidden", "128,x"], "--hidden"),
    (["train", "--hidden", "0"], "--hidden"),
    (["train", "--data", "mnist"], "--data"),
    (["train", "--optimizer", "lbfgs"], "--optimizer"),
    (["train", "--activation", "softmax"], "--activation"),
    (["train", "--ensemble", "0"], "--ensemble"),
    (["train", "--unknown"], "--unknown"),
    (["train", "--hidden", "99999999999999999999"], "at most 65,536"),
    (["train", "--hidden", "2147483648"], "at most 65,536"),
    (["train", "--epochs", "1000000000"], "at most 1,000,000"),
    (["train", "--ensemble", "1000000"], "at most 1,024"),
    (["train", "--seed", "1180591620717411303424"], "2**63-1"),
    (["train", "--samples", "9" * 5000], "--samples"),
    (["train", "--checkpoint-every", "0"], "--checkpoint-every"),
    (["evaluate"], "path"),
    (["frobnicate"], "frobnicate"),
])
def test_bad_options_exit_2_with_one_line(argv, names):
    code, stdout, stderr = _run(argv)
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.endswith("\n"), stderr
    assert names in stderr and "error:" in stderr and "Traceback" not in stderr


def test_fnn_errors_exit_1_with_one_line(digits_run, tmp_path, monkeypatch):
    broken = tmp_path / "broken"
    shutil.copytree(digits_run[0], broken)
    with open(broken / "params.ckpt", "r+b") as f:
        f.truncate(100)
    (tmp_path / "empty").mkdir()
    cases = [
        (["evaluate", str(broken)], "params.ckpt"),                   # truncated checkpoint
        (["evaluate", str(tmp_path / "empty")], "config.json"),       # not a run folder
        (["evaluate", str(tmp_path / "missing" / "params.ckpt")], "does not exist"),
        (["train", "--samples", "10", "--out", str(tmp_path / "s")], "--samples"),
    ]
    for argv, name in cases:
        code, _, stderr = _run(argv)
        assert code == 1, argv
        assert stderr.count("\n") == 1 and name in stderr and f"fnn {argv[0]}: error:" in stderr, stderr
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as without the data extra
    code, _, stderr = _run(["train", "--out", str(tmp_path / "d")])
    assert code == 1 and stderr.count("\n") == 1 and 'fnn[data]' in stderr, stderr


def test_help_is_complete_for_each_subcommand():
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(subcommands) == {"train", "evaluate", "playground"}
    code, top, _ = _run(["--help"])
    assert code == 0 and "train" in top and "evaluate" in top
    for name, sub in subcommands.items():
        code, text, _ = _run([name, "--help"])
        assert code == 0
        for action in sub._actions:
            for option in action.option_strings or [action.dest]:
                assert option in text, (name, option)
            assert action.help is None or action.help.split()[0] in text
    text = _run(["train", "--help"])[1]
    assert "(default: digits)" in text and "(default: 256)" in text and "(default: None)" not in text


def test_no_command_prints_help_and_exits_2():
    code, stdout, _ = _run([])
    assert code == 2 and "usage: fnn" in stdout


def test_python_dash_m_fnn_runs_the_same_command():
    done = subprocess.run([sys.executable, "-m", "fnn", "train", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--ensemble" in done.stdout and "usage: fnn train" in done.stdout


def _cli_subprocess(args, cache):
    env = dict(os.environ, FNN_COMPILATION_CACHE=str(cache), JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-m", "fnn", *args], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def _cache_entries(cache):
    return sorted(p.name for p in cache.iterdir() if p.name.endswith("-cache")) if cache.exists() else []


def test_train_keeps_compiled_programs_on_disk_and_reuses_them(tmp_path):
    """In a fresh process: the first run writes the programs it compiled, each with the
    access-time file that JAX's size-bounded eviction reads (filelock is a dependency), a
    second identical run finds every one of them (it adds no entry); the flag turns it off."""
    cache = tmp_path / "xla"
    args = ["train", "--data", "xor", "--hidden", "8", "--epochs", "2", "--no-progress",
            "--out", str(tmp_path / "run")]
    _cli_subprocess(args, cache)
    first = _cache_entries(cache)
    assert first
    assert all((cache / (name[:-len("cache")] + "atime")).exists() for name in first)
    _cli_subprocess(args, cache)
    assert _cache_entries(cache) == first
    _cli_subprocess(["evaluate", str(tmp_path / "run")], cache)
    off = tmp_path / "unused"
    _cli_subprocess([*args, "--no-compilation-cache"], off)
    assert not off.exists()


def test_train_bounds_the_parameter_count_with_one_line(tmp_path):
    code, stdout, stderr = _run(["train", "--hidden", "65536,65536", "--out", str(tmp_path / "r")])
    assert code == 1 and stderr.count("\n") == 1 and "at most 100,000,000 parameters" in stderr, stderr
    assert stdout == ""


def _edited(digits_run, tmp_path, text):
    folder = tmp_path / "edited"
    shutil.copytree(digits_run[0], folder)
    (folder / "config.json").write_text(text)
    return folder


def _config_with(digits_run, **changes):
    doc = json.loads((digits_run[0] / "config.json").read_text())
    doc["config"].update(changes)
    return json.dumps({k: v for k, v in doc.items()})


@pytest.mark.parametrize("edit, expected", [
    (lambda run: "[1, 2]", "must hold a JSON object with a 'config' object; got list"),
    (lambda run: '{"config": 3}', "must hold a JSON object with a 'config' object"),
    (lambda run: "{not json", "must be valid JSON"),
    (lambda run: json.dumps({"config": {"data": "digits"}}), "must give config.samples"),
    (lambda run: _config_with(run, hidden="32"), "config.hidden must be a list of layer sizes"),
    (lambda run: _config_with(run, seed=1.5), "config.seed must be an integer"),
    (lambda run: _config_with(run, ensemble=10**9), "config.ensemble must be an integer from 1 to 1024"),
    (lambda run: _config_with(run, data=["digits"]), "config.data must be one of"),
])
def test_evaluate_hand_edited_config_exits_1_naming_the_file(digits_run, tmp_path, edit, expected):
    folder = _edited(digits_run, tmp_path, edit(digits_run))
    code, _, stderr = _run(["evaluate", str(folder)])
    assert code == 1 and stderr.count("\n") == 1, stderr
    assert str(folder / "config.json") in stderr and expected in stderr, stderr


@pytest.mark.parametrize("damage", ["missing_plot", "empty_history", "bad_history"])
def test_evaluate_refuses_an_incomplete_run_folder(digits_run, tmp_path, damage):
    folder = tmp_path / "incomplete"
    shutil.copytree(digits_run[0], folder)
    if damage == "missing_plot":
        os.unlink(folder / "loss.png")
    else:
        (folder / "history.json").write_text("" if damage == "empty_history" else "[")
    code, _, stderr = _run(["evaluate", str(folder)])
    assert code == 1 and stderr.count("\n") == 1, stderr
    assert ("loss.png is missing" if damage == "missing_plot" else "history.json") in stderr, stderr


def test_train_records_every_file_in_the_config(digits_run):
    out, _, _, _, config = digits_run
    assert sorted(config["files"]) == sorted(os.listdir(out))


def test_train_replaces_the_previous_folder_whole(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "stale.png").write_bytes(b"old")
    code, _, _ = _run(["train", "--data", "xor", "--hidden", "4", "--epochs", "2", "--out", str(out)])
    assert code == 0
    assert "stale.png" not in os.listdir(out) and sorted(os.listdir(tmp_path)) == ["run"]


@pytest.mark.parametrize("make", ["file", "under_a_file"])
def test_train_unusable_out_fails_before_training(tmp_path, make):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" if make == "file" else tmp_path / "f" / "run"
    code, stdout, stderr = _run(["train", "--data", "xor", "--epochs", "2", "--out", str(out)])
    assert code == 1 and stderr.count("\n") == 1 and "--out must be" in stderr, stderr
    assert stdout == ""  # nothing loaded or trained


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_train_read_only_out_fails_before_training(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, stdout, stderr = _run(["train", "--data", "xor", "--epochs", "2", "--out", str(out)])
    finally:
        out.chmod(0o755)
    assert code == 1 and "--out must be a folder you can write" in stderr and stdout == "", stderr


def test_train_resume_without_an_interrupted_run_exits_1(tmp_path):
    code, _, stderr = _run(["train", "--data", "xor", "--resume", "--out", str(tmp_path / "r")])
    assert code == 1 and "--resume needs an interrupted run" in stderr, stderr


def _fit_failing(after_interrupt):
    def fit(*args, **kwargs):
        if after_interrupt:
            interrupts.append(2)  # as the SIGINT handler records one
        raise RuntimeError("an XLA error raised while handling the interrupt")
    return fit


def test_train_interrupt_turned_into_another_error_still_exits_130(tmp_path, monkeypatch):
    monkeypatch.setattr(fnn, "fit", _fit_failing(True))
    code, _, stderr = _run(["train", "--data", "moons", "--samples", "100", "--epochs", "2",
                            "--out", str(tmp_path / "run")])
    assert code == 130 and stderr.startswith("fnn train: interrupted") and "is unchanged" in stderr, stderr
    assert not (tmp_path / "run").exists()


def test_train_error_without_an_interrupt_propagates(tmp_path, monkeypatch):
    monkeypatch.setattr(fnn, "fit", _fit_failing(False))
    with pytest.raises(RuntimeError, match="XLA error"):
        main(["train", "--data", "moons", "--samples", "100", "--epochs", "2", "--out", str(tmp_path / "run")])
