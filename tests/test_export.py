"""Tests for fnn.export: the StableHLO file reloads in a fresh process that has only jax
and gives the model's predictions for several batch sizes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.export import load

_RELOAD = textwrap.dedent("""
    import sys
    import jax, numpy as np
    with open(sys.argv[1], "rb") as f:
        forward = jax.export.deserialize(bytearray(f.read())).call
    for name in sys.argv[2:]:
        np.save(name + ".out.npy", np.asarray(forward(np.load(name + ".npy"))))
    assert not any(m == "fnn" or m.startswith("fnn.") for m in sys.modules), "fnn was imported"
""")


def _model():
    model = fnn.mlp([16, 8, 3], activation="tanh")
    return model, model.init(jax.random.key(0), (5,))


def test_export_reloads_in_fresh_process_without_fnn(tmp_path):
    model, params = _model()
    f = tmp_path / "mlp.jaxexport"
    fnn.export(model, params, (5,), f)
    names = []
    for batch in (1, 7):
        x = np.asarray(jax.random.normal(jax.random.key(batch), (batch, 5)))
        np.save(tmp_path / f"x{batch}.npy", x)
        names.append(str(tmp_path / f"x{batch}"))
    # -I: isolated mode, so neither the repository folder nor PYTHONPATH is on sys.path.
    subprocess.run([sys.executable, "-I", "-c", _RELOAD, str(f), *names], check=True, cwd=tmp_path,
                   capture_output=True, timeout=120)
    for name in names:
        x = np.load(name + ".npy")
        np.testing.assert_allclose(np.load(name + ".out.npy"), np.asarray(model.apply(params, x)),
                                   rtol=1e-6, atol=1e-6)


def test_export_batch_dimension_is_symbolic():
    model, params = _model()
    exported = fnn.export(model, params, (5,))
    assert not isinstance(exported.in_avals[0].shape[0], int)
    assert exported.in_avals[0].shape[1:] == (5,) and exported.out_avals[0].shape[1:] == (3,)


def test_export_stateful_model_runs_inference_mode(tmp_path):
    model = fnn.layers.serial(fnn.dense(4), fnn.layers.dropout(0.5))
    params, state = model.init(jax.random.key(0), (3,))
    f = tmp_path / "drop.jaxexport"
    fnn.export(model, params, (3,), f, state=state)
    x = jnp.ones((2, 3))
    np.testing.assert_allclose(load(f)(x), model.apply(params, state, x, train=False)[0], rtol=1e-6)


def test_export_stateful_without_state_raises():
    model = fnn.layers.serial(fnn.dense(4), fnn.layers.dropout(0.5))
    params, _ = model.init(jax.random.key(0), (3,))
    with pytest.raises(ValueError, match=r"export: state must be the model's state"):
        fnn.export(model, params, (3,))


def test_export_bad_input_shape_raises():
    model, params = _model()
    with pytest.raises(ValueError, match=r"export: input_shape must be a positive integer; got 0"):
        fnn.export(model, params, (0,))


def test_export_non_callable_model_raises():
    with pytest.raises(TypeError, match=r"export: model must be a Layer, a StatefulLayer or apply"):
        fnn.export(3, None, (2,))
