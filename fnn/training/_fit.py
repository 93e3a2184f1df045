"""``fit``: a whole training run as one compiled program, driven epoch by epoch."""

from __future__ import annotations

import functools
import os
import time
import warnings
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from fnn import _checks
from fnn.losses import binary_cross_entropy, softmax_cross_entropy
from fnn.metrics import accuracy
from fnn.training import _progress
from fnn.training import _rollback
from fnn.training._loop import (LoopConfig, LoopState, build_runner, build_start,
                                history_shapes, init_opt_state, with_arrays)
from fnn.training._step import apply_fn_of, check_loss, check_optimizer

__all__ = ["fit", "train", "FitResult", "NonFiniteReport"]

Params = Any
_CLASSIFICATION_LOSSES = (softmax_cross_entropy, binary_cross_entropy)
# Aim for a progress update about this often (seconds) when the bar is on.
_PROGRESS_INTERVAL_S = 0.25


class NonFiniteReport(NamedTuple):
    """Where training first produced a NaN/inf.

    Attributes:
      epoch: the failing epoch (0-based); params were rolled back to its start.
      step: index within that epoch of the first batch whose loss was non-finite, or -1
        if every loss was finite and a parameter became non-finite in an update.
      leaf: pytree path of the first non-finite params leaf after that epoch, if any.
      member: the ensemble member, or None for a single model.
    """

    epoch: int
    step: int
    leaf: str | None
    member: int | None = None

    def __str__(self) -> str:
        who = "" if self.member is None else f"member {self.member}: "
        where = f"step {self.step} of epoch {self.epoch}" if self.step >= 0 else f"epoch {self.epoch}"
        leaf = f"; first non-finite parameter {self.leaf}" if self.leaf else ""
        return f"{who}non-finite loss or parameter at {where}{leaf}; kept the params from before that epoch"


class FitResult(NamedTuple):
    """What :func:`fit` returns; also the state to resume from (``fit(..., initial=r)``).

    Attributes:
      params: trained params (stacked on axis 0 for ensembles and sweeps).
      opt_state: the optimizer state after the last step.
      history: ``{"train_loss": (epochs,), "eval_loss": ..., "eval_<metric>": ...}``
        as arrays, one value per epoch run; ``(members, epochs)`` for ensembles.
      key: the data-order key; epoch ``e`` visits the examples in the order
        :func:`fnn.training.epoch_order` ``(key, e, n)``.
      epoch: number of epochs run so far.
      nonfinite: a :class:`NonFiniteReport` per model that hit a NaN/inf (empty if none).
    """

    params: Params
    opt_state: Any
    history: dict
    key: jax.Array
    epoch: int
    nonfinite: tuple = ()


def _default_metrics(loss: Callable) -> dict:
    return {"accuracy": accuracy} if loss in _CLASSIFICATION_LOSSES else {}


def _check_data(fn: str, x: Any, y: Any, prefix: str = "") -> tuple[jax.Array, jax.Array]:
    _checks.array_like(fn, prefix + "x", x)
    _checks.array_like(fn, prefix + "y", y)
    x, y = jnp.asarray(x), jnp.asarray(y)
    _checks.ndim_at_least(fn, prefix + "x", x, 1)
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        _checks.fail(fn, prefix + "y", f"have one target per example ({x.shape[0]} for "
                     f"{prefix}x of shape {x.shape})", f"shape {y.shape}")
    if x.shape[0] == 0:
        _checks.fail(fn, prefix + "x", "hold at least one example", f"shape {x.shape}")
    return x, y


def _check_labels(fn: str, loss: Callable, predictions: jax.ShapeDtypeStruct, y: jax.Array,
                  arg: str) -> None:
    """Label range mistakes caught on the host, once, before anything compiles."""
    if loss is softmax_cross_entropy:
        k = predictions.shape[-1]
        lo, hi = (int(v) for v in _value_range(y))
        if lo < 0 or hi >= k:
            _checks.fail(fn, arg, f"be class indices in [0, {k}) for a model with {k} outputs",
                         f"values in [{lo}, {hi}]")
    elif loss is binary_cross_entropy:
        lo, hi = (float(v) for v in _value_range(y))
        if lo < 0 or hi > 1:
            _checks.fail(fn, arg, "be in {0, 1}", f"values in [{lo}, {hi}]")


def _value_range(y: jax.Array) -> tuple[np.generic, np.generic]:
    """``(min, max)`` on the host: a view on CPU, one small copy from an accelerator, and
    no program to compile (a jitted min/max cost ~50 ms of compile per fit)."""
    values = np.asarray(jax.device_get(y))
    return values.min(), values.max()


def _reports(bad_epoch: np.ndarray, bad_step: np.ndarray, good: _rollback.LastGood | None,
             members: int | None) -> tuple:
    leaves = {} if good is None else good.leaves
    if members is None:
        if bad_epoch < 0:
            return ()
        return (NonFiniteReport(int(bad_epoch), int(bad_step), leaves.get(None)),)
    return tuple(NonFiniteReport(int(bad_epoch[k]), int(bad_step[k]), leaves.get(k), k)
                 for k in range(members) if bad_epoch[k] >= 0)


def _first_epochs(history: Mapping, member_axes: int, count: int) -> dict:
    """The first ``count`` epochs of each history entry (the epoch axis follows members)."""
    return {k: v[(slice(None),) * member_axes + (slice(0, count),)] for k, v in history.items()}


def _save_state(path: str, state: LoopState, epoch: int) -> None:
    """Atomically write what :func:`fit` needs to resume (``initial=fnn.checkpoint.load(path)``)."""
    from fnn import checkpoint as _checkpoint

    _checkpoint.save(path, {"params": state.params, "opt_state": state.opt_state,
                            "history": _first_epochs(state.history, state.alive.ndim, epoch),
                            "key": state.key, "epoch": epoch})


def run_loop(cfg: LoopConfig, params: Params, opt_state: Any, hyper: Any, x: jax.Array,
             y: jax.Array, eval_data: tuple | None, key: jax.Array, epochs: int, *,
             start_epoch: int = 0, history: Mapping | None = None, progress: bool | None = None,
             donate: bool = False, checkpoint: str | None = None,
             checkpoint_every: int = 1) -> FitResult:
    """Drive the compiled loop (shared by fit, ensembles, sweeps and data parallel)."""
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            _checks.fail("fit", "checkpoint", "be a file path", _checks.describe(checkpoint),
                         TypeError)
        checkpoint = os.fspath(checkpoint)
        checkpoint_every = _checks.positive_int("fit", "checkpoint_every", checkpoint_every)
    runner = build_runner(cfg)
    members = cfg.members
    batch_shape = () if members is None else (members,)
    shapes = history_shapes(cfg, params, eval_data is not None)
    names = [k for k, shape in shapes.items() if shape == ()]      # shown by the progress bar
    history = {k: v for k, v in (history or {}).items() if k in shapes}
    start = build_start(cfg, epochs, tuple(shapes.items()), bool(donate))
    state = with_arrays(start(params, opt_state, hyper, key, start_epoch, history),
                        params, opt_state, key)
    x_eval, y_eval = eval_data if eval_data is not None else (None, None)
    good = None                    # the guard's last good state of failed models

    def advance(state: LoopState, stop: int) -> LoopState:
        nonlocal good
        after = runner(state, hyper, x, y, x_eval, y_eval, jnp.int32(stop))
        if cfg.nan_guard:          # the runner did not donate `state`: rerun from it
            good = _rollback.update(
                lambda s, e: runner(s, hyper, x, y, x_eval, y_eval, jnp.int32(e)),
                state, after, good)
        return after

    show = _progress.default_enabled() if progress is None else bool(progress)
    if not show and checkpoint is None:
        state = advance(state, epochs)
    else:
        n = x.shape[0]
        bar = (_progress.ProgressBar(epochs, steps_per_epoch=-(-n // min(cfg.batch_size, n)))
               if show else None)
        epoch, chunk = start_epoch, 1
        while epoch < epochs:
            stop = min(epoch + chunk, epochs) if show else epochs
            if checkpoint is not None:
                stop = min(stop, (epoch // checkpoint_every + 1) * checkpoint_every)
            t0 = time.perf_counter()
            state = advance(state, stop)
            done = int(state.epoch)        # waits for the chunk to finish
            elapsed = time.perf_counter() - t0
            if bar is not None and done > epoch:
                bar.update(done, {k: float(jnp.nanmean(state.history[k][..., done - 1]))
                                  for k in names})
            if done < stop:                # the non-finite guard stopped the loop
                break
            if checkpoint is not None:
                _save_state(checkpoint, _rollback.apply(state, good), done)
            if epoch > start_epoch:        # the first chunk included compilation
                chunk = max(1, int(_PROGRESS_INTERVAL_S * chunk / max(elapsed, 1e-9)))
            epoch = done
        if bar is not None:
            bar.close()
    state = _rollback.apply(state, good)
    completed, bad_epoch, bad_step = jax.device_get((state.epoch, state.bad_epoch, state.bad_step))
    completed = int(completed)
    reports = _reports(bad_epoch, bad_step, good, members)
    for report in reports:
        warnings.warn(str(report), RuntimeWarning, stacklevel=3)
    history_out = state.history
    if completed < epochs:          # stopped early by the non-finite guard
        history_out = _first_epochs(state.history, len(batch_shape), completed)
    return FitResult(state.params, state.opt_state, history_out, state.key, completed, reports)


def fit(model: Any, params: Params, optimizer: Any, x: Any, y: Any, *,
        loss: Callable = softmax_cross_entropy, epochs: int = 1, batch_size: int = 32,
        key: jax.Array | None = None, shuffle: bool = True, eval_data: tuple | None = None,
        metrics: Mapping[str, Callable] | None = None, opt_state: Any = None,
        initial: Any = None, progress: bool | None = None, donate: bool = False,
        nan_guard: bool = True, checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1, grad_norms: bool = False) -> FitResult:
    r"""Train ``model`` on ``(x, y)``: the whole run is one compiled XLA program.

    Each epoch shuffles the examples on the device (:func:`epoch_order`), runs a
    ``lax.scan`` of :func:`train_step` over the full batches and one more step over the
    ragged last batch (``n % batch_size`` examples: a smaller batch, never dropped),
    then evaluates on ``eval_data``. Data go to the device once; params and optimizer
    state are updated in place inside the compiled loop. When a batch is at most 32 KiB
    and the data at most 256 MiB (``x`` and ``y`` together), the data are put in the
    epoch's order with one gather per epoch and cut into contiguous batches, which holds
    one more copy of them on the device; otherwise each batch is gathered on its own
    (``WHOLE_GATHER_MAX_BATCH_BYTES`` and ``WHOLE_GATHER_MAX_BYTES`` in
    ``fnn.training._loop`` say why).
    With the progress bar off the whole run is a single call; with it on, epochs run in
    chunks of about a quarter second of work so the bar moves, compiled once.

    Args:
      model: a :class:`fnn.layers.Layer` or a function ``apply(params, x)``.
      params: initial params pytree.
      optimizer: any optax-compatible ``(init, update)``: ``fnn.optimizers.adam(1e-3)``,
        ``optax.adam(1e-3)``, ``optax.chain(...)``.
      x: inputs ``(n, ...)``.
      y: targets ``(n, ...)`` (integer labels for the default loss).
      loss: ``loss(predictions, targets) -> scalar``, mean-reduced over the batch.
        Default :func:`fnn.losses.softmax_cross_entropy`.
      epochs: total number of epochs (counting those of ``initial``).
      batch_size: examples per step; clipped to ``n``.
      key: a ``jax.random`` key for the data order; required when ``shuffle``.
      shuffle: reshuffle every epoch (default) or keep the given order.
      eval_data: optional ``(x_eval, y_eval)`` scored after every epoch (full batch).
      metrics: ``{name: fn(predictions, targets)}`` for ``eval_data``; default accuracy
        for the classification losses.
      opt_state: initial optimizer state (default ``optimizer.init(params)``).
      initial: where to resume from: a previous :class:`FitResult`, or the path of a
        checkpoint written by ``checkpoint=`` (or a dict loaded from one). Its params,
        optimizer state, key, epoch and history continue (``params`` is then ignored
        and may be None); the result is bit-identical to an uninterrupted run.
      progress: show a progress bar on stderr; default on when stderr is a terminal.
      donate: let XLA reuse the buffers of the ``params``/``opt_state`` you pass (they
        become invalid); default False copies them once instead.
      nan_guard: stop at the first epoch with a non-finite loss or parameter, keep the
        params from before it and report where (:class:`NonFiniteReport`, also issued as
        a ``RuntimeWarning``). Costs one pass over the params per epoch, and
        one copy of params and optimizer state per call of the compiled loop (one call,
        or one per progress/checkpoint chunk): it keeps the state it started from and,
        only after a failure, runs again from it up to the failing epoch.
      checkpoint: a file path; every ``checkpoint_every`` epochs the full training
        state (params, optimizer state, key, epoch, history) is saved there atomically
        with :func:`fnn.checkpoint.save`, so a crash loses at most that many epochs.
        Resume with ``fit(..., initial=path)``.
      checkpoint_every: epochs between checkpoints.
      grad_norms: also record ``history["grad_norms"]``, shape ``(epochs, layers)``:
        the per-layer gradient norms (:func:`fnn.diagnostics.layer_grad_norms`) on the
        first batch of each epoch, after its updates — the vanishing-gradient picture
        over training. For :func:`fnn.models.mlp`-shaped params.

    Returns:
      :class:`FitResult` ``(params, opt_state, history, key, epoch, nonfinite)``.

    Raises:
      ValueError: for mismatched ``x``/``y``, labels out of range, bad epochs/batch
        size, or a missing key; TypeError for a model/optimizer/loss of the wrong kind.

    Example:
      >>> import jax, fnn
      >>> x, y = fnn.datasets.blobs(jax.random.key(0), 256)
      >>> model = fnn.mlp([16, 3])
      >>> params = model.init(jax.random.key(1), (2,))
      >>> result = fnn.fit(model, params, fnn.optimizers.adam(1e-2), x, y, epochs=20,
      ...                  batch_size=32, key=jax.random.key(2), progress=False)
      >>> result.history["train_loss"].shape
      (20,)
      >>> bool(result.history["train_loss"][-1] < result.history["train_loss"][0])
      True
    """
    return train("fit", model, params, optimizer, x, y, loss=loss, epochs=epochs,
                 batch_size=batch_size, key=key, shuffle=shuffle, eval_data=eval_data,
                 metrics=metrics, opt_state=opt_state, initial=initial, progress=progress,
                 donate=donate, nan_guard=nan_guard, checkpoint=checkpoint,
                 checkpoint_every=checkpoint_every, grad_norms=grad_norms)


def train(fn: str, model: Any, params: Params, optimizer: Any, x: Any, y: Any, *,
          mesh: Any = None, progress: bool | None = None, donate: bool = False,
          checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 1,
          **options: Any) -> FitResult:
    """The one implementation behind fit, ensembles, sweeps and data parallel.

    ``mesh``: None for one device, or a 1-D ``"data"`` mesh to shard every batch over
    (data, params and optimizer state replicated). ``options`` go to :func:`prepare`.
    """
    if mesh is not None:
        options["batch_sharding"] = NamedSharding(mesh, PartitionSpec("data"))
    cfg, params, opt_state, x, y, eval_data, key, start, history = prepare(
        fn, model, params, optimizer, x, y, **options)
    if mesh is not None:
        params, opt_state, x, y, eval_data, key = jax.device_put(
            (params, opt_state, x, y, eval_data, key), NamedSharding(mesh, PartitionSpec()))
    return run_loop(cfg, params, opt_state, options.get("hyper"), x, y, eval_data, key,
                    options.get("epochs", 1), start_epoch=start, history=history,
                    progress=progress, donate=donate, checkpoint=checkpoint,
                    checkpoint_every=checkpoint_every)


def _output_shape(apply: Callable, params: Params, stacked: bool, x: jax.Array):
    """Shape of one example's prediction, traced abstractly (cached: fit is called often)."""
    leaves, treedef = jax.tree.flatten(params)
    start = 1 if stacked else 0
    key = (apply, treedef, tuple((a.shape[start:], a.dtype) for a in leaves), x.shape[1:], x.dtype)
    if key not in _OUTPUT_SHAPES:
        if len(_OUTPUT_SHAPES) > 256:
            _OUTPUT_SHAPES.clear()
        single = jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(s, d) for s, d in key[2]])
        _OUTPUT_SHAPES[key] = jax.eval_shape(apply, single, jax.ShapeDtypeStruct(key[3], key[4]))
    return _OUTPUT_SHAPES[key]


def check_metrics(fn: str, metrics: Any, loss: Callable) -> dict:
    """``{name: fn(predictions, targets)}``; default accuracy for classification losses."""
    if metrics is None:
        return _default_metrics(loss)
    if not isinstance(metrics, Mapping) or not all(
            isinstance(k, str) and callable(v) for k, v in metrics.items()):
        _checks.fail(fn, "metrics", "be a dict {name: fn(predictions, targets)}",
                     _checks.describe(metrics), TypeError)
    return dict(metrics)


_OUTPUT_SHAPES: dict = {}


def _opt_state_template(cfg: LoopConfig, params: Params, hyper: Any) -> Any:
    """``eval_shape`` of the optimizer state for these params (cached like _output_shape)."""
    leaves, treedef = jax.tree.flatten((params, hyper))
    key = (cfg, treedef, tuple((jnp.shape(a), jnp.result_type(a)) for a in leaves))
    if key not in _OPT_STATE_TEMPLATES:
        if len(_OPT_STATE_TEMPLATES) > 256:
            _OPT_STATE_TEMPLATES.clear()
        _OPT_STATE_TEMPLATES[key] = jax.eval_shape(functools.partial(init_opt_state, cfg),
                                                   params, hyper)
    return _OPT_STATE_TEMPLATES[key]


_OPT_STATE_TEMPLATES: dict = {}


def _as_result(fn: str, initial: Any) -> FitResult:
    """A FitResult from a FitResult, a dict of its fields, or a checkpoint path."""
    if isinstance(initial, (str, os.PathLike)):
        from fnn import checkpoint as _checkpoint

        initial = _checkpoint.load(initial)
    if isinstance(initial, FitResult):
        return initial
    needed = ("params", "opt_state", "history", "key", "epoch")
    if not isinstance(initial, Mapping) or any(k not in initial for k in needed):
        _checks.fail(fn, "initial", f"be a FitResult, a checkpoint path or a dict with {needed}",
                     type(initial).__name__, TypeError)
    return FitResult(**{k: initial[k] for k in needed})


def _restructure(fn: str, opt_state: Any, template: Any) -> Any:
    """Give a loaded optimizer state (NamedTuples come back as tuples) its real types."""
    if jax.tree.structure(opt_state) == jax.tree.structure(template):
        return opt_state
    leaves, want = jax.tree.leaves(opt_state), jax.tree.leaves(template)
    if len(leaves) != len(want) or any(jnp.shape(a) != b.shape for a, b in zip(leaves, want)):
        _checks.fail(fn, "opt_state", f"match optimizer.init(params): {len(want)} leaves "
                     f"{[b.shape for b in want]}", f"{len(leaves)} leaves "
                     f"{[jnp.shape(a) for a in leaves]}")
    return jax.tree.unflatten(jax.tree.structure(template), leaves)


def prepare(fn: str, model: Any, params: Params, optimizer: Any, x: Any, y: Any, *,
            loss: Callable = softmax_cross_entropy, epochs: int = 1, batch_size: int = 32,
            key: Any = None, shuffle: bool = True, eval_data: Any = None,
            metrics: Mapping | None = None, opt_state: Any = None, initial: Any = None,
            nan_guard: bool = True, grad_norms: bool = False, members: int | None = None,
            sweep: bool = False, hyper: Any = None, batch_sharding: Any = None):
    """Validate the arguments of fit-like entry points; build the static config."""
    apply = apply_fn_of(fn, model)
    if not sweep:
        check_optimizer(fn, optimizer)
    check_loss(fn, loss)
    epochs = _checks.positive_int(fn, "epochs", epochs)
    batch_size = _checks.positive_int(fn, "batch_size", batch_size)
    x, y = _check_data(fn, x, y)
    if eval_data is not None:
        if not isinstance(eval_data, (tuple, list)) or len(eval_data) != 2:
            _checks.fail(fn, "eval_data", "be a pair (x_eval, y_eval)", type(eval_data).__name__,
                         TypeError)
        eval_data = _check_data(fn, *eval_data, prefix="eval_data ")
    metrics = check_metrics(fn, metrics, loss)
    shuffle = _checks.boolean(fn, "shuffle", shuffle)
    nan_guard = _checks.boolean(fn, "nan_guard", nan_guard)
    grad_norms = _checks.boolean(fn, "grad_norms", grad_norms)
    start, history = 0, None
    if initial is not None:
        initial = _as_result(fn, initial)
        params, opt_state, key = initial.params, initial.opt_state, initial.key
        start, history = int(initial.epoch), initial.history
        if start > epochs:
            _checks.fail(fn, "epochs", f"be at least the epochs already run by initial ({start})",
                         epochs)
    if key is None:
        if shuffle:
            _checks.fail(fn, "key", "be a jax.random key (it shuffles the data every epoch; "
                         "pass shuffle=False for a fixed order)", None)
        key = jax.random.key(0)
    _checks.prng_key(fn, "key", key)
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if not hasattr(leaf, "shape"):
            _checks.fail(fn, f"params{jax.tree_util.keystr(path)}", "be an array",
                         _checks.describe(leaf))
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            _checks.fail(fn, f"params{jax.tree_util.keystr(path)}", "have a floating dtype",
                         _checks.describe(leaf), TypeError)
    def fits(arg: str, data: jax.Array) -> Any:
        try:
            return _output_shape(apply, params, members is not None, data)
        except ValueError as e:
            raise ValueError(f"{fn}: {arg} does not fit the model: {e}") from None

    predictions = fits("x", x)
    _check_labels(fn, loss, predictions, y, "y")
    if eval_data is not None:
        fits("eval_data x", eval_data[0])
        _check_labels(fn, loss, predictions, eval_data[1], "eval_data y")
    cfg = LoopConfig(apply=apply, loss=loss, optimizer=optimizer, batch_size=batch_size,
                     shuffle=shuffle, metrics=tuple(metrics.items()), nan_guard=nan_guard,
                     members=members, sweep=sweep, batch_sharding=batch_sharding,
                     grad_norms=grad_norms)
    if opt_state is not None:
        opt_state = _restructure(fn, opt_state, _opt_state_template(cfg, params, hyper))
    return cfg, params, opt_state, x, y, eval_data, key, start, history
