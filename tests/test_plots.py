"""fnn.plots: PNG files when matplotlib is installed, silent no-ops without it, checked inputs."""

from __future__ import annotations

import struct
import sys

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import fnn
from fnn import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk; fails unless the file is a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_MAGIC, head[:8]
    return struct.unpack(">II", head[16:24])


@pytest.fixture
def mpl():
    return pytest.importorskip("matplotlib")


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make ``import matplotlib`` fail, as in an environment without the plot extra."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def _model():
    model = fnn.mlp([8, 3])
    return model, model.init(jax.random.key(1), (2,))


# --- files are written -------------------------------------------------------------------

def test_available_is_true_with_matplotlib(mpl):
    assert plots.available() is True


def test_curves_writes_png(mpl, tmp_path):
    path = plots.curves({"train": [1.0, 0.5, 0.25], "test": np.array([1.2, 0.8, 0.7])},
                        tmp_path / "sub" / "loss.png", ylabel="loss", log_y=True, title="t",
                        dashed=["test"])
    assert path == str(tmp_path / "sub" / "loss.png")
    width, height = _png_size(path)
    assert 300 < width < 1000 and 200 < height < 800


def test_curves_draws_members_and_mean_with_nan_gaps(mpl, tmp_path):
    history = jnp.array([[1.0, 0.5, 0.2], [1.1, jnp.nan, jnp.nan]])  # member 1 frozen
    path = plots.curves({"members": history}, tmp_path / "ens.png", x=[10, 20, 30], log_x=True)
    _png_size(path)


def test_confusion_matrix_writes_png(mpl, tmp_path):
    y = np.arange(30) % 10
    path = plots.confusion_matrix(y, (y + (y == 3)) % 10, tmp_path / "c.png",
                                  class_names=[f"d{i}" for i in range(10)])
    _png_size(path)


def test_decision_boundary_writes_png_and_evaluates_model_on_grid(mpl, tmp_path):
    model, params = _model()
    x, y = fnn.datasets.blobs(jax.random.key(0), 60)
    seen = []

    def apply(p, grid):
        seen.append(grid.shape)
        return model.apply(p, grid)

    path = plots.decision_boundary(apply, params, x, y, tmp_path / "b.png", resolution=16)
    _png_size(path)
    assert seen == [(16 * 16, 2)]


def test_decision_boundary_accepts_one_binary_logit(mpl, tmp_path):
    model = fnn.mlp([4, 1])
    params = model.init(jax.random.key(0), (2,))
    x, y = fnn.datasets.moons(jax.random.key(1), 40)
    _png_size(plots.decision_boundary(model.apply, params, x, y, tmp_path / "b.png", resolution=8))


def test_classes_argmax_for_many_outputs_and_sign_for_one():
    np.testing.assert_array_equal(plots._classes(np.array([[0.1, 2.0], [3.0, -1.0]])), [1, 0])
    np.testing.assert_array_equal(plots._classes(np.array([[0.5], [-0.5], [0.0]])), [1, 0, 1])
    np.testing.assert_array_equal(plots._classes(np.array([-2.0, 2.0])), [0, 1])


# --- without matplotlib: no-ops ------------------------------------------------------------

def test_plots_return_none_and_write_nothing_without_matplotlib(no_matplotlib, tmp_path):
    model, params = _model()
    x, y = fnn.datasets.blobs(jax.random.key(0), 30)
    calls = []
    assert plots.available() is False
    assert plots.curves({"a": [1.0, 2.0]}, tmp_path / "a.png") is None
    assert plots.confusion_matrix([0, 1], [1, 1], tmp_path / "c.png") is None
    assert plots.decision_boundary(lambda p, g: calls.append(1), params, x, y, tmp_path / "b.png") is None
    assert list(tmp_path.iterdir()) == [] and calls == []
    # confusion_counts needs no matplotlib at all
    assert plots.confusion_counts([0, 1], [1, 1]).tolist() == [[0, 1], [0, 1]]


def test_plots_still_validate_without_matplotlib(no_matplotlib, tmp_path):
    with pytest.raises(ValueError, match="series"):
        plots.curves({"a": np.zeros((2, 2, 2))}, tmp_path / "a.png")


# --- confusion counts against a reference ---------------------------------------------------

@pytest.mark.filterwarnings("ignore:A single label:UserWarning")
@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6).flatmap(lambda k: st.tuples(
    st.just(k), st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=40))))
def test_confusion_counts_matches_sklearn(case):
    metrics = pytest.importorskip("sklearn.metrics")
    k, pairs = case
    y, p = np.array(pairs).T
    expected = metrics.confusion_matrix(y, p, labels=list(range(k)))
    np.testing.assert_array_equal(plots.confusion_counts(y, p, num_classes=k), expected)


def test_confusion_counts_trace_over_n_is_accuracy():
    y = jnp.array([0, 1, 2, 2, 1, 0, 2])
    logits = jax.random.normal(jax.random.key(0), (7, 3))
    counts = plots.confusion_counts(y, jnp.argmax(logits, -1), 3)
    assert np.trace(counts) / 7 == pytest.approx(float(fnn.metrics.accuracy(logits, y)))
    assert counts.sum() == 7 and counts.dtype == np.int64


def test_confusion_counts_default_size_from_largest_index():
    assert plots.confusion_counts([0, 4], [4, 4]).shape == (5, 5)


# --- every raise names its argument ------------------------------------------------------------

@pytest.mark.parametrize("call, exc, match", [
    (lambda p: plots.curves({}, p), TypeError, "series"),
    (lambda p: plots.curves([1.0, 2.0], p), TypeError, "series"),
    (lambda p: plots.curves({"a": []}, p), ValueError, r"series\['a'\]"),
    (lambda p: plots.curves({"a": np.zeros((2, 2, 2))}, p), ValueError, r"series\['a'\]"),
    (lambda p: plots.curves({"a": [1.0, 2.0]}, p, x=[1, 2, 3]), ValueError, "x must"),
    (lambda p: plots.curves({"a": [1.0]}, 3), TypeError, "path"),
    (lambda p: plots.confusion_counts([[0, 1]], [0, 1]), ValueError, "labels"),
    (lambda p: plots.confusion_counts([0, 1], [[0, 1]]), ValueError, "predictions"),
    (lambda p: plots.confusion_counts([0.5, 1.0], [0, 1]), TypeError, "labels"),
    (lambda p: plots.confusion_counts([0, 1], [0, 1, 1]), ValueError, "predictions"),
    (lambda p: plots.confusion_counts([0, 3], [0, 1], num_classes=3), ValueError, "labels"),
    (lambda p: plots.confusion_counts([-1, 0], [0, 0]), ValueError, "labels"),
    (lambda p: plots.confusion_counts([0, 1], [0, 1], num_classes=0), ValueError, "num_classes"),
    (lambda p: plots.confusion_matrix([0, 1], [0, 1], p, class_names=["a"]), ValueError, "class_names"),
    (lambda p: plots.confusion_matrix([0, 1], [0, 1], None), TypeError, "path"),
    (lambda p: plots.decision_boundary("f", None, np.zeros((3, 2)), np.zeros(3, int), p), TypeError, "apply"),
    (lambda p: plots.decision_boundary(abs, None, np.zeros((3, 3)), np.zeros(3, int), p), ValueError, "x must"),
    (lambda p: plots.decision_boundary(abs, None, np.zeros((3, 2)), np.zeros(4, int), p), ValueError, "y must"),
    (lambda p: plots.decision_boundary(abs, None, np.zeros((3, 2)), np.zeros(3, int), p, resolution=1),
     ValueError, "resolution"),
])
def test_plots_reject_bad_arguments_naming_them(call, exc, match, tmp_path):
    with pytest.raises(exc, match=match):
        call(tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
