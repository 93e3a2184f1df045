"""The gate of the training entry points: every argument checked once, carried as one tuple.

:class:`FitOptions` holds ``fit``'s keywords exactly as the caller gave them;
:func:`prepare` validates them with the model, data and optimizer and returns a
:class:`Prepared` run (static config, arrays, where to start). A new ``fit`` option is a
field of :class:`FitOptions`, a check here and a use in the loop or the driver.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp

from fnn import _checks
from fnn.losses import softmax_cross_entropy
from fnn.training._early import EarlyStopping
from fnn.training._data_checks import check_data, check_labels, check_metrics
from fnn.training._loop import LoopConfig
from fnn.training._order import METHODS
from fnn.training._resume import ResumePoint, resume_point, restructure
from fnn.training._score import predict
from fnn.training._shapes import abstract, eval_shape
from fnn.training._start import init_opt_state
from fnn.training._step import check_loss, check_optimizer, model_of

__all__ = ["FitOptions", "Prepared", "options_from", "prepare", "check_model_state", "predictions_shape"]

Params = Any


class FitOptions(NamedTuple):
    """The keywords of :func:`fnn.fit` as given (documented there), before any check."""

    loss: Callable = softmax_cross_entropy
    epochs: int = 1
    batch_size: int = 32
    key: Any = None
    shuffle: bool = True
    eval_data: Any = None
    metrics: Any = None
    opt_state: Any = None
    state: Any = None
    initial: Any = None
    progress: Any = None
    donate: bool = False
    nan_guard: bool = True
    checkpoint: Any = None
    checkpoint_every: int = 1
    grad_norms: bool = False
    early_stopping: Any = None
    on_epoch: Any = None
    accumulation_steps: int = 1


class Prepared(NamedTuple):
    """A validated run: what the driver needs, nothing to check again."""

    cfg: LoopConfig
    params: Params
    opt_state: Any            # None: optimizer.init(params) inside the start program
    model_state: Any
    x: jax.Array
    y: jax.Array
    eval_data: tuple | None
    key: jax.Array
    epochs: int
    start: ResumePoint        # epoch and history already run (0 and {} for a fresh run)
    hyper: Any
    progress: bool | None
    donate: bool
    checkpoint: str | None
    checkpoint_every: int
    on_epoch: Callable | None = None
    fn: str = "fit"           # the entry point's name, for errors raised while it runs


def options_from(fn: str, kwargs: Mapping[str, Any]) -> FitOptions:
    """:class:`FitOptions` from the keywords of an entry point that forwards ``**kwargs``."""
    unknown = sorted(set(kwargs) - set(FitOptions._fields))
    if unknown:
        _checks.fail(fn, unknown[0], f"be one of fit's keywords ({', '.join(FitOptions._fields)})",
                     "an unexpected keyword", TypeError)
    return FitOptions(**kwargs)


@functools.lru_cache(maxsize=64)
def _inexact(dtype: Any) -> bool:
    return jnp.issubdtype(dtype, jnp.inexact)


def _check_params(fn: str, params: Params) -> None:
    if all(isinstance(leaf, jax.Array) and _inexact(leaf.dtype) for leaf in jax.tree.leaves(params)):
        return                     # the common case, without the paths of the messages
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if not hasattr(leaf, "shape"):
            _checks.fail(fn, f"params{jax.tree_util.keystr(path)}", "be an array", _checks.describe(leaf))
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            _checks.fail(fn, f"params{jax.tree_util.keystr(path)}", "have a floating dtype",
                         _checks.describe(leaf), TypeError)


def _check_early_stopping(fn: str, rule: Any, has_eval: bool, metrics: Mapping) -> None:
    if rule is None:
        return
    if not isinstance(rule, EarlyStopping):
        _checks.fail(fn, "early_stopping", "be a fnn.training.EarlyStopping or None",
                     _checks.describe(rule), TypeError)
    names = ["train_loss"] + (["eval_loss"] + [f"eval_{k}" for k in metrics] if has_eval else [])
    if rule.monitor not in names:
        why = " (eval_ names need eval_data)" if rule.monitor.startswith("eval_") and not has_eval else ""
        _checks.fail(fn, "early_stopping", f"monitor one of {names}{why}", repr(rule.monitor))


def check_model_state(fn: str, general: bool, state: Any, resumed: bool) -> Any:
    if not general:
        if state is not None and jax.tree.leaves(state):
            _checks.fail(fn, "state", "be None for a pure Layer (it keeps no state)",
                         f"a pytree with {len(jax.tree.leaves(state))} arrays")
        return ()
    if state is None:
        _checks.fail(fn, "state", "be the model state of the StatefulLayer (params, state = "
                     "model.init(key, input_shape))" + (" (the resume point holds none)" if resumed else ""),
                     None)
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if not hasattr(leaf, "shape"):
            _checks.fail(fn, f"state{jax.tree_util.keystr(path)}", "be an array", _checks.describe(leaf))
    return state


def predictions_shape(fn: str, model, params: Params, state: Any, stacked: bool, arg: str, x: jax.Array):
    """One example's prediction shape, traced abstractly; a model/data mismatch names ``arg``."""
    # eval_shape abstracts its arguments itself; dropping the member axis needs a copy.
    p, s = (abstract(params, 1), abstract(state, 1)) if stacked else (params, state)
    try:
        return eval_shape(_predict, model, p, s, jax.ShapeDtypeStruct(x.shape[1:], x.dtype))
    except (ValueError, TypeError) as e:
        raise type(e)(f"{fn}: {arg} does not fit the model: {e}") from None


def _predict(model, params, state, x):
    return predict(model.apply, model.general, params, state, x)


def _trained_state(model, params, state, x):
    return model.apply(params, state, x, key=jax.random.key(0), train=True)[1]


def _check_state_kept(fn: str, model, params: Params, state: Any, stacked: bool, x: jax.Array) -> None:
    """A general model's step must return a state shaped like the one it was given."""
    drop = 1 if stacked else 0
    s = abstract(state, drop)
    try:
        out = eval_shape(_trained_state, model, abstract(params, drop), s,
                         jax.ShapeDtypeStruct((2,) + x.shape[1:], x.dtype))
    except (ValueError, TypeError) as e:
        raise type(e)(f"{fn}: state does not fit the model: {e}") from None
    if jax.tree.structure(out) != jax.tree.structure(s) or any(
            (a.shape, a.dtype) != (b.shape, b.dtype) for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(s))):
        _checks.fail(fn, "state", "be this model's state (its apply returns a state of another "
                     "structure or shape)", f"{jax.tree.structure(s)}")


def _call(f: Callable, predictions: Any, targets: Any) -> Any:
    return f(predictions, targets)


def _scalar_of(fn: str, arg: str, f: Callable, predictions: Any, y: jax.Array) -> None:
    """``f(predictions, y)`` must give a floating scalar for a batch of the model's outputs."""
    shapes = (tuple(predictions.shape), predictions.dtype, tuple(y.shape[1:]), y.dtype)
    try:
        hash(f)
    except TypeError:           # an unhashable callable: traced without the cache
        _check_scalar(fn, arg, f, *shapes, cached=False)
    else:
        _scalar_checked(fn, arg, f, *shapes)


@functools.lru_cache(maxsize=256)
def _scalar_checked(fn: str, arg: str, f: Callable, *shapes: Any) -> None:
    """:func:`_check_scalar`, remembered when it passes (a failure raises, uncached)."""
    _check_scalar(fn, arg, f, *shapes)


def _check_scalar(fn: str, arg: str, f: Callable, prediction_shape: tuple, prediction_dtype: Any,
                  target_shape: tuple, target_dtype: Any, cached: bool = True) -> None:
    batch = jax.ShapeDtypeStruct((2,) + prediction_shape, prediction_dtype)
    targets = jax.ShapeDtypeStruct((2,) + target_shape, target_dtype)
    if cached:
        shape_of = lambda *a: eval_shape(_call, f, *a)  # noqa: E731
    else:
        shape_of = lambda *a: jax.eval_shape(_call, f, *a)  # noqa: E731
    try:
        out = shape_of(batch, targets)
    except (ValueError, TypeError) as e:
        # The loss's own message first (it names its argument); then what it was given.
        raise type(e)(f"{e} (in {fn}: {arg} of the model's predictions, per example "
                      f"{prediction_shape}, and y, per example {target_shape})") from None
    if not hasattr(out, "shape") or out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
        _checks.fail(fn, arg, "return a floating scalar (mean-reduced over the batch)",
                     _checks.describe(out) if hasattr(out, "shape") else type(out).__name__,
                     ValueError if hasattr(out, "shape") else TypeError)


def prepare(fn: str, model: Any, params: Params, optimizer: Any, x: Any, y: Any, options: FitOptions, *,
            members: int | None = None, sweep: bool = False, hyper: Any = None,
            batch_sharding: Any = None) -> Prepared:
    """Validate the arguments of a fit-like entry point; build the static config."""
    o = options
    m = model_of(fn, model)
    if not sweep:
        check_optimizer(fn, optimizer)
    check_loss(fn, o.loss)
    epochs = _checks.positive_int(fn, "epochs", o.epochs)
    batch_size = _checks.positive_int(fn, "batch_size", o.batch_size)
    x, y = check_data(fn, x, y)
    eval_data = o.eval_data
    if eval_data is not None:
        if not isinstance(eval_data, (tuple, list)) or len(eval_data) != 2:
            _checks.fail(fn, "eval_data", "be a pair (x_eval, y_eval)", type(eval_data).__name__, TypeError)
        eval_data = check_data(fn, eval_data[0], eval_data[1], prefix="eval_data ")
    metrics = check_metrics(fn, o.metrics, o.loss)
    if isinstance(o.shuffle, str):      # an epoch_order method
        if o.shuffle not in METHODS:
            _checks.fail(fn, "shuffle", f"be True, False or an epoch_order method {METHODS}",
                         repr(o.shuffle))
        shuffle, order = True, o.shuffle
    else:
        shuffle, order = _checks.boolean(fn, "shuffle", o.shuffle), "sort"
    nan_guard = _checks.boolean(fn, "nan_guard", o.nan_guard)
    grad_norms = _checks.boolean(fn, "grad_norms", o.grad_norms)
    donate = _checks.boolean(fn, "donate", o.donate)
    progress = None if o.progress is None else _checks.boolean(fn, "progress", o.progress)
    checkpoint = o.checkpoint
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            _checks.fail(fn, "checkpoint", "be a file path", _checks.describe(checkpoint), TypeError)
        checkpoint = os.fspath(checkpoint)
    checkpoint_every = _checks.positive_int(fn, "checkpoint_every", o.checkpoint_every)
    accumulation_steps = _checks.positive_int(fn, "accumulation_steps", o.accumulation_steps)
    if o.on_epoch is not None and not callable(o.on_epoch):
        _checks.fail(fn, "on_epoch", "be a function on_epoch(epoch, logs) or None",
                     _checks.describe(o.on_epoch), TypeError)
    _check_early_stopping(fn, o.early_stopping, eval_data is not None, metrics)
    params, opt_state, state, key = params, o.opt_state, o.state, o.key
    start = ResumePoint(0, {}, None)
    if o.initial is not None:
        start, params, opt_state, state, key = resume_point(fn, o.initial, epochs, members)
    if key is None:
        if shuffle:
            _checks.fail(fn, "key", "be a jax.random key (it shuffles the data every epoch; "
                         "pass shuffle=False for a fixed order)", None)
        if m.general:
            _checks.fail(fn, "key", "be a jax.random key (a StatefulLayer draws with the key of "
                         "every step)", None)
        key = jax.random.key(0)
    _checks.prng_key(fn, "key", key)
    if params is None:
        _checks.fail(fn, "params", "be the model's params (or pass initial= to resume)", None, TypeError)
    _check_params(fn, params)
    state = check_model_state(fn, m.general, state, o.initial is not None)
    stacked = members is not None
    predictions = predictions_shape(fn, m, params, state, stacked, "x", x)
    if m.general:
        _check_state_kept(fn, m, params, state, stacked, x)
    check_labels(fn, o.loss, predictions, y, "y")
    _scalar_of(fn, "loss", o.loss, predictions, y)
    for name, metric in metrics.items():
        _scalar_of(fn, f"metrics[{name!r}]", metric, predictions, y)
    if eval_data is not None:
        predictions_shape(fn, m, params, state, stacked, "eval_data x", eval_data[0])
        check_labels(fn, o.loss, predictions, eval_data[1], "eval_data y")
    cfg = LoopConfig(model=m, loss=o.loss, optimizer=optimizer, batch_size=batch_size, shuffle=shuffle,
                     metrics=tuple(metrics.items()), nan_guard=nan_guard, members=members, sweep=sweep,
                     batch_sharding=batch_sharding, grad_norms=grad_norms,
                     early_stopping=o.early_stopping, accumulation_steps=accumulation_steps,
                     order=order)
    if opt_state is not None:
        template = eval_shape(init_opt_state, cfg, params, hyper)
        opt_state = restructure(fn, opt_state, template, start.opt_state_structure)
        saved = start.early
        if o.early_stopping is not None and o.early_stopping.restore_best and saved is not None and (
                jax.tree.leaves(saved.get("params"))):
            best = restructure(fn, saved["opt_state"], template, None)
            start = start._replace(early=dict(saved, opt_state=best))
    return Prepared(cfg, params, opt_state, state, x, y, eval_data, key, epochs, start, hyper,
                    progress, donate, checkpoint, checkpoint_every, o.on_epoch, fn)
