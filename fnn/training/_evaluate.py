"""``evaluate``: loss and metrics of a trained model on held-out data."""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from fnn import _checks
from fnn.losses import softmax_cross_entropy

__all__ = ["evaluate", "score"]


def score(apply: Callable, loss: Callable, metrics: tuple, params: Any, x: jax.Array,
          y: jax.Array) -> dict:
    """``{"loss": ..., name: metric, ...}`` of one full batch (traceable)."""
    predictions = apply(params, x)
    out = {"loss": loss(predictions, y)}
    for name, fn in metrics:
        out[name] = fn(predictions, y)
    return out


@functools.lru_cache(maxsize=64)
def _compiled(apply: Callable, loss: Callable, metrics: tuple, batch_size: int | None):
    score_batch = functools.partial(score, apply, loss, metrics)

    def run(params, x, y):
        n = x.shape[0]
        if batch_size is None or batch_size >= n:
            return score_batch(params, x, y)
        full, rest = divmod(n, batch_size)

        def body(total, idx):
            part = score_batch(params, x[idx], y[idx])
            return jax.tree.map(lambda t, v: t + v * batch_size, total, part), None

        zero = jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32),
                            jax.eval_shape(score_batch, params, x[:1], y[:1]))
        total, _ = jax.lax.scan(body, zero, jnp.arange(full * batch_size).reshape(full, batch_size))
        if rest:
            part = score_batch(params, x[full * batch_size:], y[full * batch_size:])
            total = jax.tree.map(lambda t, v: t + v * rest, total, part)
        return jax.tree.map(lambda t: t / n, total)

    return jax.jit(run)


def evaluate(model: Any, params: Any, x: Any, y: Any, *, loss: Callable = softmax_cross_entropy,
             metrics: Mapping[str, Callable] | None = None,
             batch_size: int | None = None) -> dict[str, jax.Array]:
    r"""Loss and metrics of ``model`` at ``params`` on ``(x, y)``, compiled.

    Every metric is a per-batch mean, so with ``batch_size`` set the batches are
    combined as a mean weighted by batch size — equal to the full-batch value.

    Args:
      model: a :class:`fnn.layers.Layer` or ``apply(params, x)``.
      params: the model's params.
      x, y: held-out data, ``(n, ...)``.
      loss: as in :func:`fit`.
      metrics: ``{name: fn(predictions, targets)}``; default accuracy for the
        classification losses.
      batch_size: evaluate in chunks of this many examples (memory); default one batch.

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
    from fnn.training._fit import _check_data, _check_labels, _output_shape, check_metrics
    from fnn.training._step import apply_fn_of, check_loss

    apply = apply_fn_of("evaluate", model)
    check_loss("evaluate", loss)
    x, y = _check_data("evaluate", x, y)
    if batch_size is not None:
        batch_size = _checks.positive_int("evaluate", "batch_size", batch_size)
    metrics = check_metrics("evaluate", metrics, loss)
    _check_labels("evaluate", loss, _output_shape(apply, params, False, x), y, "y")
    return _compiled(apply, loss, tuple(metrics.items()), batch_size)(params, x, y)
