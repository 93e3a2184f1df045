"""``fit_batches``: training from batches that need not fit in device memory."""

from __future__ import annotations

import itertools
import os
import warnings
from typing import Any, Callable, Iterator, Mapping, cast

import jax
import numpy as np

from fnn import _checks
from fnn.losses import softmax_cross_entropy
from fnn.training import _progress
from fnn.training._batch_early import BatchEarly
from fnn.training._arguments import FitOptions, Prepared, predictions_shape, prepare
from fnn.training._placement import Placement, facts, multiprocess_options
from fnn.training._chunks import checked_batch, chunk_runner, host_chunks
from fnn.training._data_checks import check_labels
from fnn.training._driver import Interrupted
from fnn.training._epochs import EpochSource, copy_carry, epoch_end, run_epoch, start_carry
from fnn.training._resume import loaded, save_point
from fnn.training._results import FitResult, NonFiniteReport
from fnn.training._rollback import first_nonfinite_leaf

__all__ = ["fit_batches", "batch_run", "KEYWORDS", "auto_steps_per_call", "CHUNK_BYTES", "MAX_AUTO_STEPS"]

# Without steps_per_call, a chunk holds about this many bytes of batches (at most
# MAX_AUTO_STEPS batches, and no more than an epoch's when its length is known): large
# enough that a chunk's dispatch is small against its steps, small enough that the
# three chunks alive at once (one training, one in transfer, one being stacked) stay
# far below device memory.
CHUNK_BYTES = 16 << 20
MAX_AUTO_STEPS = 128


def auto_steps_per_call(x: Any, y: Any, length: int | None) -> int:
    """The default ``steps_per_call`` for batches like ``(x, y)``, ``length`` per epoch if known."""
    batch = x.size * x.dtype.itemsize + y.size * y.dtype.itemsize
    k = max(1, min(MAX_AUTO_STEPS, CHUNK_BYTES // max(batch, 1)))
    return k if length is None else max(1, min(k, length))


def _resume_epoch(initial: Any) -> int:
    """The epoch a resume point starts at (0 when it has none: ``prepare`` then complains)."""
    epoch = getattr(initial, "epoch", None) if isinstance(initial, FitResult) else (
        initial.get("epoch") if isinstance(initial, Mapping) else None)
    try:
        return max(0, int(epoch)) if epoch is not None else 0
    except (TypeError, ValueError):
        return 0


def fit_batches(model: Any, params: Any, optimizer: Any, batches: Any, *, epochs: int = 1,
                steps: int | None = None, steps_per_call: int | None = None,
                loss: Callable = softmax_cross_entropy, key: jax.Array | None = None,
                eval_data: tuple | None = None, metrics: Mapping[str, Callable] | None = None,
                opt_state: Any = None, state: Any = None, initial: Any = None,
                progress: bool | None = None, nan_guard: bool = True,
                checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 1,
                on_epoch: Callable | None = None, grad_norms: bool = False,
                early_stopping: Any = None) -> FitResult:
    r"""Train ``model`` from a stream of ``(x, y)`` batches that need not fit on the device.

    For data too large for device memory (a memory-mapped file, a Grain or tf.data
    loader, a generator): the batches stay on the host until they are needed.
    ``steps_per_call`` consecutive batches are stacked on the host into one chunk, sent
    to the device in one transfer and trained by one compiled ``lax.scan`` of the step
    :func:`fnn.fit` runs; the next chunk is stacked and its transfer enqueued while the
    current one trains (JAX's asynchronous dispatch), so at most three chunks are alive
    at once. Fed the batches of ``fit``'s own order (:func:`epoch_order`), it gives
    ``fit``'s params, state and history to float32 rounding (the same steps; sums in
    another order). History, checkpoints, ``initial=`` resume, the non-finite guard,
    ``on_epoch``, a general model's state and keys (step ``t`` of the run draws with
    :func:`step_key` ``(key, t)``, ``t`` counting the run's batches) and the
    :class:`FitResult` are those of :func:`fnn.fit`.

    What compiles: one program per batch shape for full chunks, one more for a short
    chunk of the first batch's shape (padded with skipped steps, whatever its length),
    and one for a batch of another shape (the short last batch of an epoch: its own
    step, as in ``fit``) per distinct shape and run of such batches. Each is made once
    and reused by later epochs and later calls.

    Args:
      model: as for :func:`fnn.fit`.
      params: initial params pytree.
      optimizer: any optax-compatible ``(init, update)``.
      batches: the batches ``(x, y)`` (NumPy or jax arrays, ``(batch, ...)`` each, the
        same example shape and dtype throughout), as one of: a function
        ``batches(epoch)`` returning the iterable of that (0-based) epoch (the way to
        reshuffle per epoch and to resume exactly); a re-iterable (a list, a Grain
        ``DataLoader``: ``iter(batches)`` once per epoch); or a one-shot iterator (a
        generator), consumed across epochs, which with ``steps`` may be endless; when it
        runs out, training ends there (with a ``RuntimeWarning``).
      epochs: total number of epochs (counting those of ``initial``).
      steps: batches per epoch (Keras' ``steps_per_epoch``); None: each epoch is a
        full pass over ``batches``.
      steps_per_call: batches per chunk; default: about ``CHUNK_BYTES`` (16 MiB) of
        batches, at most ``MAX_AUTO_STEPS`` (128), at most one epoch's when known.
      key: needed for a general model only (there is no on-device shuffle: the order
        is the stream's). To resume a general model, the step count at the resume point
        is ``epoch * steps``: give ``steps`` or batches with ``len()``.

    The other keywords (``loss``, ``eval_data``, ``metrics``, ``opt_state``, ``state``,
    ``initial``, ``progress``, ``nan_guard``, ``checkpoint``, ``checkpoint_every``,
    ``on_epoch``, ``grad_norms``, ``early_stopping``) are :func:`fnn.fit`'s: ``eval_data``
    is scored in one full batch after every epoch, ``grad_norms`` are taken on each
    epoch's first batch at the epoch's final params, the early-stopping rule is decided
    on the host after each epoch (the same decisions, result fields and resume as
    ``fit``), and a checkpoint is ``fit``'s.

    Returns:
      :class:`FitResult`, as :func:`fnn.fit`.

    Raises:
      ValueError, TypeError: as :func:`fnn.fit` (the first batch stands for ``x`` and
        ``y``), and for a batch that is not a pair of arrays of the first batch's
        example shape and dtype, or an epoch without batches.
      Interrupted: on Ctrl-C, after the chunk that is training; its ``result`` is the
        state after the last finished epoch (None without ``nan_guard`` when the
        interrupt comes inside an epoch: the guard keeps a copy of its start).

    Notes:
      One device; :func:`fnn.parallel.fit_batches` runs this over several devices and
      hosts (each process feeding its own batches). Ensembles and ``accumulation_steps``
      are ``fit``'s only (stack ``k`` batches into one of ``k`` times the size instead:
      the same mean gradient for a model without batch statistics).

    Example:
      >>> import jax, numpy as np, fnn
      >>> x, y = (np.asarray(a) for a in fnn.datasets.blobs(jax.random.key(0), 256))
      >>> model = fnn.mlp([16, 3])
      >>> params = model.init(jax.random.key(1), (2,))
      >>> batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]
      >>> result = fnn.training.fit_batches(model, params, fnn.optimizers.adam(1e-2), batches,
      ...                                   epochs=5, steps_per_call=4, progress=False)
      >>> result.history["train_loss"].shape
      (5,)
      >>> bool(result.history["train_loss"][-1] < result.history["train_loss"][0])
      True
    """
    given = locals()
    return batch_run("fit_batches", model, params, optimizer, batches, {k: given[k] for k in KEYWORDS},
                     Placement())


# fit_batches' keywords, which fnn.parallel.fit_batches forwards.
KEYWORDS = ("epochs", "steps", "steps_per_call", "loss", "key", "eval_data", "metrics", "opt_state", "state",
            "initial", "progress", "nan_guard", "checkpoint", "checkpoint_every", "on_epoch", "grad_norms",
            "early_stopping")


def batch_run(fn: str, model: Any, params: Any, optimizer: Any, batches: Any, keywords: Mapping[str, Any],
              place: Placement) -> FitResult:
    """:func:`fit_batches` with ``keywords`` (a subset of :data:`KEYWORDS`), its arrays placed by ``place``."""
    unknown = sorted(set(keywords) - set(KEYWORDS))
    if unknown:
        _checks.fail(fn, unknown[0], f"be one of fit_batches' keywords ({', '.join(KEYWORDS)})",
                     "an unexpected keyword", TypeError)
    kw = dict(keywords)
    steps, steps_per_call = kw.pop("steps", None), kw.pop("steps_per_call", None)
    source = EpochSource(fn, batches, None if steps is None else _checks.positive_int(fn, "steps", steps))
    if steps_per_call is not None:
        steps_per_call = _checks.positive_int(fn, "steps_per_call", steps_per_call)
    if kw.get("initial") is not None:
        kw["initial"] = loaded(kw["initial"])
    first_epoch = _resume_epoch(kw.get("initial"))
    stream, length = source.epoch(first_epoch)
    first = next(stream, None)
    if first is None:
        source.empty(first_epoch)
    x0, y0 = checked_batch(fn, 0, first, None)
    options = FitOptions(**kw, batch_size=x0.shape[0] * place.processes, shuffle=False)
    k = steps_per_call or auto_steps_per_call(x0, y0, length)
    if place.multiprocess:
        options = multiprocess_options(fn, options)
        place.agree(fn, facts(options, params, x0, y0, steps=steps, steps_per_call=k))
    place.check_batch_size(fn, "batches[0] x's batch size" + (" (all processes' rows)" if place.multiprocess
                                                              else ""), options.batch_size)
    p = prepare(fn, model, params, optimizer, x0, y0, options)
    steps_done = 0
    if p.start.epoch:
        if length is None and p.cfg.model.general:
            _checks.fail(fn, "steps", "be given to resume a general model from batches without len() "
                         "(its step keys count the batches run)", None)
        steps_done = p.start.epoch * (length or 0)
    return _drive(p, source, itertools.chain([first], stream), k, steps_done, (x0, y0), place)


def _checker(p: Prepared, first: tuple) -> Callable[[int, Any], tuple]:
    """``check(i, batch)``: the batch's shapes, and NumPy labels as ``fit`` checks them."""
    predictions = predictions_shape("fit_batches", p.cfg.model, p.params, p.model_state, False, "x",
                                    cast(jax.Array, first[0]))

    def check(i: int, batch: Any) -> tuple:
        x, y = checked_batch("fit_batches", i, batch, first)
        if i and isinstance(y, np.ndarray):
            check_labels("fit_batches", p.cfg.loss, predictions, cast(jax.Array, y), f"batches[{i}] y")
        return x, y
    return check


def _drive(p: Prepared, source: EpochSource, stream: Iterator, k: int, steps_done: int,
           first: tuple, place: Placement) -> FitResult:
    cfg = p.cfg
    runners = {padded: chunk_runner(cfg.model, cfg.optimizer, cfg.loss, padded) for padded in (False, True)}
    check = _checker(p, first)
    shape = (first[0].shape, first[1].shape)
    carry = start_carry(cfg)(*place.tree((p.params, p.opt_state, p.model_state)))
    key = place.tree(p.key)
    history = {name: list(np.asarray(values)) for name, values in p.start.history.items()}
    early = BatchEarly(cfg.early_stopping, carry, p.start.early)
    x_eval, y_eval = place.tree(p.eval_data) if p.eval_data is not None else (None, None)
    show = _progress.default_enabled() if p.progress is None else p.progress
    bar = _progress.ProgressBar(p.epochs, steps_per_epoch=0) if show else None
    epoch, snapshot = p.start.epoch, None
    # A state no chunk will donate, and its epoch: what Ctrl-C returns.
    safe: tuple | None = (carry, epoch)
    reports: tuple = ()

    def result(c: tuple, done: int, final: bool = False) -> FitResult:
        hist = {name: np.asarray(v[:done], np.float32) for name, v in history.items()}
        if not place.multiprocess:          # several processes: NumPy, as fnn.parallel.fit
            hist = jax.device_put(hist)
        c, fields = early.fields(c, place.local, final)
        return place.local(FitResult(c[0], c[1], hist, key, done, reports, c[2], **fields))

    try:
        while epoch < p.epochs:
            if epoch > p.start.epoch:
                stream, _ = source.epoch(epoch)
            snapshot = copy_carry(carry) if cfg.nan_guard else None
            safe = None if snapshot is None else (snapshot, epoch)
            chunks = host_chunks(stream, k, check, shape)
            carry, total, count, examples, losses, head = run_epoch(runners, carry, chunks, key, steps_done,
                                                                    place, epoch)
            if count == 0:
                if source.one_shot:
                    warnings.warn(f"fit_batches: batches ran out after {epoch} epochs; stopped there",
                                  RuntimeWarning, stacklevel=2)
                    carry = snapshot if snapshot is not None else carry
                    break
                source.empty(epoch)
            train_loss, finite, scores = jax.device_get(place.local(
                epoch_end(cfg, x_eval is not None)(carry, total, examples, x_eval, y_eval,
                                                     head if cfg.grad_norms else None)))
            if cfg.nan_guard and not finite:
                reports = (_report(epoch, *place.local((losses, carry[0]))),)
                warnings.warn(str(reports[0]), RuntimeWarning, stacklevel=2)
                carry = snapshot
                break
            steps_done += count
            logs: dict[str, Any] = {"train_loss": float(train_loss)}
            logs.update({f"eval_{name}": float(v) for name, v in scores.items() if name != "grad_norms"})
            if cfg.grad_norms:
                logs["grad_norms"] = np.asarray(scores["grad_norms"])
            for name, value in logs.items():
                history.setdefault(name, []).append(value)
            epoch += 1
            stop = early.stops(epoch - 1, logs, carry, place.local)
            safe = (carry, epoch)
            if p.checkpoint is not None and (epoch % p.checkpoint_every == 0 or epoch == p.epochs):
                place.write(lambda: save_point(cast(str, p.checkpoint), result(carry, epoch)))
            if bar is not None:
                bar.steps_per_epoch = count
                bar.update(epoch, {n: v for n, v in logs.items() if n != "grad_norms"})
            if p.on_epoch is not None and p.on_epoch(epoch - 1, logs) is True or stop:
                break
    except KeyboardInterrupt:
        raise Interrupted(None if safe is None else result(*safe)) from None
    if bar is not None:
        bar.close()
    return result(carry, epoch, final=True)


def _report(epoch: int, losses: list, params: Any) -> NonFiniteReport:
    """Where epoch ``epoch`` first went non-finite: its first non-finite batch loss, if any."""
    values = np.concatenate([np.asarray(v)[:n] for v, n in losses]) if losses else np.zeros(0)
    bad = np.flatnonzero(~np.isfinite(values))
    return NonFiniteReport(epoch, int(bad[0]) if bad.size else -1, first_nonfinite_leaf(params))

