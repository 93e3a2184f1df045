r"""Plots for training runs: loss/accuracy curves, confusion matrices, decision boundaries.

Used by ``fnn train`` and the examples; each function writes one PNG file and returns
its path. matplotlib is optional (the ``plot`` extra, ``pip install "fnn[plot]"``): it
is imported inside each call, and when it is missing every function validates its
arguments, draws nothing and returns ``None``, so a script runs the same with or
without it.

Figures are drawn with matplotlib's object-oriented API on an Agg canvas
(``matplotlib.figure.Figure`` + ``FigureCanvasAgg``), never through ``pyplot``: no
window opens, the global backend of a notebook or GUI session is left untouched, and no
figure is kept alive after the call.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fnn._checks import describe, fail, positive_int

__all__ = ["available", "confusion_counts", "confusion_matrix", "curves", "decision_boundary",
           "save"]

_FIGSIZE = (5.6, 3.8)
_DPI = 100


def _agg_figure(figsize=_FIGSIZE):
    """A fresh Figure on an Agg canvas, or ``None`` when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401  (fails first, and cleanly, when it is missing)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=figsize, dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def available() -> bool:
    """Whether matplotlib can be imported (and so whether the plot functions draw).

    The first call imports matplotlib (about half a second); ``fnn train`` calls it on a
    background thread while XLA compiles, so the import is off the critical path.

    Example:
      >>> isinstance(available(), bool)
      True
    """
    return _agg_figure((1, 1)) is not None


def _path(fn: str, path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        fail(fn, "path", "be a str or os.PathLike", describe(path), TypeError)
    return os.fspath(path)


def save(fig, path: str | os.PathLike) -> str | None:
    """Write a matplotlib figure to ``path`` (folders created), release it, return the path.

    Used by the plot functions here and by the examples for their own figures; a figure
    made with ``matplotlib.pyplot`` is closed so that loops of plots do not leak.

    ``fig`` may be None (what the figure helpers give without matplotlib): nothing is
    written and None is returned.

    Example:
      >>> import tempfile, os
      >>> path = save(_agg_figure(), os.path.join(tempfile.mkdtemp(), "a", "empty.png"))
      >>> path is None or path.endswith("empty.png")
      True
    """
    path = _path("save", path)
    if fig is None:
        return None
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(fig)
    return path


def curves(series: Mapping[str, Any], path: str | os.PathLike, *, x: Any = None,
           title: str | None = None, xlabel: str = "epoch", ylabel: str | None = None,
           log_x: bool = False, log_y: bool = False, dashed: Sequence[str] = ()) -> str | None:
    r"""Line plot of named per-epoch series (loss curves, accuracy curves) to a PNG.

    A 1-D series ``(epochs,)`` is one line. A 2-D series ``(members, epochs)`` — the
    history of an ensemble or sweep — is drawn as one thin line per member plus their
    mean, labelled ``"<name> (mean of K)"``. NaN entries (epochs a guarded member did not
    run) are left as gaps.

    Args:
      series: ``{label: values}``, values of shape ``(epochs,)`` or ``(members, epochs)``.
      path: the PNG file to write (missing folders are created).
      x: x-coordinates ``(epochs,)``; default ``1, 2, ..., epochs``.
      title, xlabel, ylabel: axis texts. log_x, log_y: logarithmic axes.
      dashed: labels drawn dashed, so a curve lying on top of another stays visible.

    Returns:
      ``path`` as a string, or ``None`` when matplotlib is not installed.

    Raises:
      TypeError: ``series`` is not a non-empty mapping, or ``path`` not a path.
      ValueError: a series is not 1-D or 2-D, or does not match ``x``.

    Example:
      >>> import os, tempfile
      >>> out = os.path.join(tempfile.mkdtemp(), "loss.png")
      >>> written = curves({"train": [1.0, 0.5, 0.3], "test": [1.1, 0.7, 0.6]}, out, ylabel="loss")
      >>> written is None or os.path.getsize(written) > 0
      True
    """
    path = _path("curves", path)
    if not isinstance(series, Mapping) or not series:
        fail("curves", "series", "be a non-empty mapping {label: values}", describe(series), TypeError)
    arrays = {}
    for label, values in series.items():
        a = np.asarray(values, dtype=np.float64)
        if a.ndim not in (1, 2) or a.shape[-1] == 0:
            fail("curves", f"series[{label!r}]", "have shape (epochs,) or (members, epochs)",
                 f"shape {a.shape}")
        arrays[str(label)] = a
    xs = None if x is None else np.asarray(x, dtype=np.float64)
    for label, a in arrays.items():
        if xs is not None and xs.shape != a.shape[-1:]:
            fail("curves", "x", f"have shape {a.shape[-1:]} like series[{label!r}]", f"shape {xs.shape}")
    fig = _agg_figure()
    if fig is None:
        return None
    ax = fig.add_subplot()
    colors = [f"C{i % 10}" for i in range(len(arrays))]
    for (label, a), color in zip(arrays.items(), colors):
        steps = xs if xs is not None else np.arange(1, a.shape[-1] + 1)
        if a.ndim == 2:
            for member in a:
                ax.plot(steps, member, color=color, alpha=0.25, linewidth=0.8)
            with np.errstate(all="ignore"):
                mean = np.nanmean(np.where(np.isfinite(a), a, np.nan), axis=0)
            ax.plot(steps, mean, color=color, linewidth=2.0, label=f"{label} (mean of {a.shape[0]})")
        else:
            ax.plot(steps, a, color=color, linewidth=1.8, label=label,
                    linestyle="--" if label in dashed else "-")
    ax.set_xscale("log" if log_x else "linear")
    ax.set_yscale("log" if log_y else "linear")
    if xs is None and not log_x:  # epochs: whole numbers on the axis (after set_xscale)
        from matplotlib.ticker import MaxNLocator
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if len(arrays) > 5:  # a long legend goes beside the axes, not over the curves
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        ax.legend(fontsize="small")
    return save(fig, path)


def confusion_counts(labels: Any, predictions: Any, num_classes: int | None = None) -> np.ndarray:
    r"""Confusion matrix as counts: ``C[i, j]`` = examples of true class ``i`` predicted ``j``.

    .. math:: C_{ij} = \sum_n [y_n = i][\hat y_n = j]

    Same orientation as ``sklearn.metrics.confusion_matrix`` (rows true, columns
    predicted). Needs no matplotlib.

    Args:
      labels: true class indices ``(n,)``, integers.
      predictions: predicted class indices ``(n,)``, integers.
      num_classes: ``K``; default one more than the largest index seen.

    Returns:
      int64 NumPy array ``(K, K)``; its trace over ``n`` is the accuracy.

    Raises:
      ValueError: shapes differ or are not 1-D, or an index is outside ``[0, K)``.
      TypeError: non-integer labels or predictions.

    Example:
      >>> confusion_counts([0, 1, 1, 2], [0, 2, 1, 2]).tolist()
      [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    """
    y, p = np.asarray(labels), np.asarray(predictions)
    for arg, a in (("labels", y), ("predictions", p)):
        if a.ndim != 1:
            fail("confusion_counts", arg, "be 1-D class indices (n,)", f"shape {a.shape}")
        if a.size and not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
            fail("confusion_counts", arg, "have an integer dtype (class indices)", describe(a), TypeError)
    if y.shape != p.shape:
        fail("confusion_counts", "predictions", f"have the shape of labels {y.shape}", f"shape {p.shape}")
    y, p = y.astype(np.int64), p.astype(np.int64)
    seen = int(max(y.max(initial=-1), p.max(initial=-1))) + 1
    k = seen if num_classes is None else positive_int("confusion_counts", "num_classes", num_classes)
    low = int(min(y.min(initial=0), p.min(initial=0)))
    if low < 0 or seen > k:
        fail("confusion_counts", "labels", f"hold class indices in [0, {k}) (also predictions)",
             f"values in [{low}, {seen - 1}]")
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (y, p), 1)
    return counts


def confusion_matrix(labels: Any, predictions: Any, path: str | os.PathLike, *,
                     num_classes: int | None = None, class_names: Any = None,
                     title: str | None = None) -> str | None:
    r"""Heat map of :func:`confusion_counts` (rows true class, columns predicted) to a PNG.

    Each cell shows its count (for up to 20 classes); the title gives the accuracy
    :math:`\operatorname{tr} C / n` unless ``title`` replaces it.

    Args:
      labels, predictions, num_classes: as in :func:`confusion_counts`.
      path: the PNG file to write.
      class_names: optional ``K`` tick labels (default ``0 .. K-1``).
      title: figure title.

    Returns:
      ``path`` as a string, or ``None`` when matplotlib is not installed.

    Raises:
      ValueError, TypeError: as :func:`confusion_counts`; ``class_names`` not of length K.

    Example:
      >>> import os, tempfile
      >>> out = os.path.join(tempfile.mkdtemp(), "confusion.png")
      >>> written = confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], out)
      >>> written is None or written.endswith("confusion.png")
      True
    """
    path = _path("confusion_matrix", path)
    counts = confusion_counts(labels, predictions, num_classes)
    k = counts.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(names) != k:
        fail("confusion_matrix", "class_names", f"have one name per class ({k})", f"{len(names)} names")
    fig = _agg_figure((4.2 + 0.15 * k, 3.8 + 0.12 * k))
    if fig is None:
        return None
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if k <= 20:
        threshold = counts.max() / 2 if counts.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if counts[i, j] > threshold else "black")
    ax.set_xticks(range(k), names, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    n = max(int(counts.sum()), 1)
    ax.set_title(title or f"accuracy {np.trace(counts) / n:.4f} on {n} examples")
    return save(fig, path)


def _classes(outputs: np.ndarray) -> np.ndarray:
    """Class per grid point: argmax for K outputs, ``z >= 0`` for one binary logit."""
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        return np.argmax(outputs, axis=1)
    return (outputs.reshape(outputs.shape[0]) >= 0).astype(np.int64)


def decision_boundary(apply: Callable, params: Any, x: Any, y: Any, path: str | os.PathLike, *,
                      resolution: int = 200, title: str | None = None,
                      max_points: int = 2000) -> str | None:
    r"""The classes a 2-D classifier predicts over the plane, with the data on top, to a PNG.

    The model is evaluated on a ``resolution x resolution`` grid covering the data with
    a 10% margin; each grid point is coloured by its predicted class (argmax of the
    outputs, or :math:`z \ge 0` for a single binary logit) and the examples are drawn
    in their true class's colour, so misclassified points stand out.

    Args:
      apply: ``apply(params, x) -> outputs`` (``(m, K)`` logits or ``(m,)``/``(m, 1)``).
      params: the model's params.
      x: inputs ``(n, 2)``. y: class indices ``(n,)``.
      path: the PNG file to write.
      resolution: grid points per axis. title: figure title.
      max_points: at most this many examples are scattered (the first ones).

    Returns:
      ``path`` as a string, or ``None`` when matplotlib is not installed (the model is
      then not evaluated).

    Raises:
      ValueError: ``x`` is not ``(n, 2)``, ``y`` not ``(n,)``, or ``resolution < 2``.

    Example:
      >>> import os, tempfile, jax, fnn
      >>> x, y = fnn.datasets.blobs(jax.random.key(0), 60, centers=2)
      >>> model = fnn.mlp([8, 2])
      >>> params = model.init(jax.random.key(1), (2,))
      >>> out = os.path.join(tempfile.mkdtemp(), "boundary.png")
      >>> written = decision_boundary(model.apply, params, x, y, out, resolution=20)
      >>> written is None or written.endswith("boundary.png")
      True
    """
    path = _path("decision_boundary", path)
    if not callable(apply):
        fail("decision_boundary", "apply", "be a function apply(params, x)", describe(apply), TypeError)
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 2:
        fail("decision_boundary", "x", "have shape (n, 2): a 2-D problem", f"shape {x.shape}")
    if y.shape != x.shape[:1]:
        fail("decision_boundary", "y", f"have shape {x.shape[:1]} (one class per example)", f"shape {y.shape}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        fail("decision_boundary", "resolution", "be an integer >= 2", repr(resolution))
    fig = _agg_figure((4.8, 4.2))
    if fig is None:
        return None
    low, high = x.min(axis=0), x.max(axis=0)
    pad = 0.1 * np.maximum(high - low, 1e-6)
    g0, g1 = np.meshgrid(np.linspace(low[0] - pad[0], high[0] + pad[0], resolution),
                         np.linspace(low[1] - pad[1], high[1] + pad[1], resolution))
    grid = np.stack([g0.ravel(), g1.ravel()], axis=1).astype(np.float32)
    predicted = _classes(np.asarray(apply(params, grid))).reshape(g0.shape)
    k = int(max(predicted.max(), y.max(initial=0))) + 1
    ax = fig.add_subplot()
    ax.contourf(g0, g1, predicted, levels=np.arange(k + 1) - 0.5, cmap="tab10", vmin=-0.5,
                vmax=9.5, alpha=0.3)
    shown = slice(0, max_points)
    ax.scatter(x[shown, 0], x[shown, 1], c=y[shown], cmap="tab10", vmin=-0.5, vmax=9.5, s=10,
               edgecolors="black", linewidths=0.3)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    return save(fig, path)
