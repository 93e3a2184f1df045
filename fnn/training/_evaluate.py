"""``evaluate``: loss and metrics of a trained model on held-out data."""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from fnn import _checks
from fnn.losses import softmax_cross_entropy
from fnn.training._arguments import check_model_state, predictions_shape
from fnn.training._data_checks import check_data, check_labels, check_metrics
from fnn.training._score import score
from fnn.training._step import Model, check_loss, model_of

__all__ = ["evaluate"]


@functools.lru_cache(maxsize=64)
def _compiled(model: Model, loss: Callable, metrics: tuple, batch_size: int | None):
    def run(params, state, x, y):
        score_batch = functools.partial(score, model.apply, model.general, loss, metrics, params, state)
        return _batched(score_batch, batch_size, x, y)

    return jax.jit(run)


def _batched(score_batch: Callable, batch_size: int | None, x: jax.Array, y: jax.Array) -> dict:
    """Scores of ``(x, y)`` in batches of ``batch_size``, combined as a size-weighted mean."""
    n = x.shape[0]
    if batch_size is None or batch_size >= n:
        return score_batch(x, y)
    full, rest = divmod(n, batch_size)

    def body(total, idx):
        part = score_batch(x[idx], y[idx])
        return jax.tree.map(lambda t, v: t + v * batch_size, total, part), None

    zero = jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32),
                        jax.eval_shape(score_batch, x[:1], y[:1]))
    total, _ = jax.lax.scan(body, zero, jnp.arange(full * batch_size).reshape(full, batch_size))
    if rest:
        part = score_batch(x[full * batch_size:], y[full * batch_size:])
        total = jax.tree.map(lambda t, v: t + v * rest, total, part)
    return jax.tree.map(lambda t: t / n, total)


def evaluate(model: Any, params: Any, x: Any, y: Any, *, loss: Callable = softmax_cross_entropy,
             metrics: Mapping[str, Callable] | None = None, batch_size: int | None = None,
             state: Any = None) -> dict[str, jax.Array]:
    r"""Loss and metrics of ``model`` at ``params`` on ``(x, y)``, compiled.

    With ``batch_size`` set, each batch's loss and metrics are combined as a mean
    weighted by batch size. That equals the full-batch value for per-example means (the
    losses, :func:`fnn.metrics.accuracy`, ``top_k_accuracy``), but not for metrics that are
    ratios of counts over the whole set (``precision``, ``recall``, ``f1``,
    macro-averaged ones): evaluate those in one batch (the default) or from
    ``confusion_matrix`` summed over batches.

    Args:
      model: a :class:`fnn.layers.Layer`, a :class:`fnn.layers.StatefulLayer` (run in
        inference mode, ``train=False``: no dropout, batch norm's running averages) or
        ``apply(params, x)``.
      params: the model's params.
      x, y: held-out data, ``(n, ...)``.
      loss: as in :func:`fit`.
      metrics: ``{name: fn(predictions, targets)}``; default accuracy for the
        classification losses.
      batch_size: evaluate in chunks of this many examples (memory); default one batch.
      state: a StatefulLayer's state (``FitResult.state``); None for a pure model.

    Returns:
      ``{"loss": scalar, "accuracy": scalar, ...}``.

    Example:
      >>> import jax, fnn
      >>> x, y = fnn.datasets.blobs(jax.random.key(0), 64)
      >>> model = fnn.mlp([8, 3])
      >>> params = model.init(jax.random.key(1), (2,))
      >>> sorted(fnn.training.evaluate(model, params, x, y))
      ['accuracy', 'loss']
    """
    m = model_of("evaluate", model)
    check_loss("evaluate", loss)
    x, y = check_data("evaluate", x, y)
    if batch_size is not None:
        batch_size = _checks.positive_int("evaluate", "batch_size", batch_size)
    metrics = check_metrics("evaluate", metrics, loss)
    state = check_model_state("evaluate", m.general, state, False)
    check_labels("evaluate", loss, predictions_shape("evaluate", m, params, state, False, "x", x), y, "y")
    return _compiled(m, loss, tuple(metrics.items()), batch_size)(params, state, x, y)
