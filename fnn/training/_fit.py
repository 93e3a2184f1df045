"""``fit``: a whole training run as one compiled program, driven epoch by epoch."""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import jax
from jax.sharding import NamedSharding, PartitionSpec

from fnn.losses import softmax_cross_entropy
from fnn.training._arguments import FitOptions, prepare
from fnn.training._driver import run
from fnn.training._results import FitResult

__all__ = ["fit", "train"]

Params = Any


def fit(model: Any, params: Params, optimizer: Any, x: Any, y: Any, *,
        loss: Callable = softmax_cross_entropy, epochs: int = 1, batch_size: int = 32,
        key: jax.Array | None = None, shuffle: bool | str = True, eval_data: tuple | None = None,
        metrics: Mapping[str, Callable] | None = None, opt_state: Any = None, state: Any = None,
        initial: Any = None, progress: bool | None = None, donate: bool = False,
        nan_guard: bool = True, checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1, grad_norms: bool = False, early_stopping: Any = None,
        on_epoch: Callable | None = None, accumulation_steps: int = 1) -> FitResult:
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
      model: a :class:`fnn.layers.Layer`, a :class:`fnn.layers.StatefulLayer` (dropout,
        batch norm: trained with ``train=True`` and the key :func:`step_key` of every
        step, evaluated with ``train=False``) or a function ``apply(params, x)``.
      params: initial params pytree.
      optimizer: any optax-compatible ``(init, update)``: ``fnn.optimizers.adam(1e-3)``,
        ``optax.adam(1e-3)``, ``optax.chain(...)``.
      x: inputs ``(n, ...)``.
      y: targets ``(n, ...)`` (integer labels for the default loss).
      loss: ``loss(predictions, targets) -> scalar``, mean-reduced over the batch.
        Default :func:`fnn.losses.softmax_cross_entropy`.
      epochs: total number of epochs (counting those of ``initial``).
      batch_size: examples per step; clipped to ``n``.
      key: a ``jax.random`` key: the data order (:func:`epoch_order`) and a general
        model's per-step keys (:func:`step_key`); required when ``shuffle`` or when the
        model is a StatefulLayer.
      shuffle: reshuffle every epoch (default) or keep the given order (False).
        ``True`` is ``"sort"``, :func:`epoch_order`'s default method; ``"feistel"``
        draws each epoch's order elementwise instead of by sorting (several times
        cheaper on CPU from a few thousand examples on; another order, so other results).
      eval_data: optional ``(x_eval, y_eval)`` scored after every epoch (full batch).
      metrics: ``{name: fn(predictions, targets)}`` for ``eval_data``; default accuracy
        for the classification losses.
      opt_state: initial optimizer state (default ``optimizer.init(params)``).
      state: a StatefulLayer's initial state (``params, state = model.init(...)``);
        None for a pure model.
      initial: where to resume from: a previous :class:`FitResult`, or the path of a
        checkpoint written by ``checkpoint=`` (or a dict loaded from one). Its params,
        optimizer state, model state, key, epoch and history continue (``params`` is
        then ignored and may be None); the result is bit-identical to an uninterrupted
        run. An optimizer state saved by another optimizer is refused.
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
        over training: one norm per parameterised layer (an entry of the params list),
        for any model; a general model's in inference mode.
      early_stopping: a :class:`fnn.training.EarlyStopping` (Keras' rule, decided inside
        the compiled loop: no host round trip). The result's ``stopped_epoch`` and
        ``best_epoch`` say where it stopped and which epoch's params it returns; the
        history holds the epochs run. Ensembles and sweeps stop per member: a stopped
        member is frozen (NaN history from then on), the loop ends when all stopped.
        Its state (best value, patience counter, best params) is in checkpoints and
        results, so a resumed run stops where the uninterrupted one would.
      on_epoch: ``on_epoch(epoch, logs)`` called on the host after each epoch, in
        order, with ``logs = {name: value}`` of that epoch's history (floats for a
        single model; NumPy arrays ``(members,)`` for ensembles, ``(layers,)`` for
        ``grad_norms``); returning ``True`` stops training after that epoch. Its
        exceptions propagate (a checkpoint written before stays intact). It is called
        from inside the compiled loop (an ordered ``io_callback`` at each epoch's end,
        its answer in the loop's condition): training stays one call, and a hook costs
        one device-to-host transfer of the epoch's values and one Python call per epoch
        (0.05-0.9 ms measured on a loaded 2-core CPU: noticeable only for epochs of a
        few milliseconds). On several processes (:func:`fnn.parallel.fit`) the processes agree on each stop,
        so there it costs one call of the compiled loop per epoch.
        Adapters, for example::

            bar = tqdm.tqdm(total=epochs)                          # tqdm
            def on_epoch(epoch, logs):
                bar.update(1)
                bar.set_postfix(logs)

            progress = rich.progress.Progress()                    # rich, in `with progress:`
            task = progress.add_task("fit", total=epochs)
            def on_epoch(epoch, logs):
                progress.update(task, advance=1, description=f"loss {logs['train_loss']:.4f}")

            writer = csv.writer(open("log.csv", "w", newline=""))  # a CSV logger
            def on_epoch(epoch, logs):
                writer.writerow([epoch, *logs.values()])

      accumulation_steps: each optimizer update uses the mean gradient of this many
        consecutive batches (accumulated inside the scan, one gradient buffer): equal,
        to float32 rounding, to one step on their concatenation for a model without
        batch statistics. The batches left at the end of an epoch (fewer than
        ``accumulation_steps``, the ragged one included) make one last update with
        their example-weighted mean gradient. A general model's state and keys advance
        per batch.

    Optimizers that are optax ``GradientTransformationExtraArgs`` (``optax.chain``
    builds one) get ``value=`` (the batch loss; with accumulation, the mean over the
    accumulated batches), as ``optax.contrib.reduce_on_plateau`` needs, and ``grad=``
    and ``value_fn=`` (that loss as a function of params, a general model run with
    ``train=True`` and the step's key), as ``optax.lbfgs()`` needs: with
    ``batch_size=n`` that is full-batch L-BFGS.

    Returns:
      :class:`FitResult` ``(params, opt_state, history, key, epoch, nonfinite, state)``.
      After the non-finite guard stopped a single model at epoch ``e``, ``epoch == e``
      and params, optimizer and model state and history are those from before ``e``.

    Raises:
      ValueError: for mismatched ``x``/``y``, labels out of range or not finite, bad
        epochs/batch size, a missing key, or a state that does not fit the model;
        TypeError for a model/optimizer/loss of the wrong kind.
      Interrupted: on Ctrl-C (a ``KeyboardInterrupt``), promptly; its ``result`` is the
        last consistent state (the last finished chunk, or the start of the run).

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
    given = locals()
    return train("fit", model, params, optimizer, x, y,
                 FitOptions(**{name: given[name] for name in FitOptions._fields}))


def train(fn: str, model: Any, params: Params, optimizer: Any, x: Any, y: Any, options: FitOptions, *,
          mesh: Any = None, members: int | None = None, sweep: bool = False,
          hyper: Any = None) -> FitResult:
    """The one implementation behind fit, ensembles, sweeps and data parallel.

    ``mesh``: None for one device, or a 1-D ``"data"`` mesh to shard every batch over
    (data, params and optimizer state replicated).
    """
    sharding = None if mesh is None else NamedSharding(mesh, PartitionSpec("data"))
    p = prepare(fn, model, params, optimizer, x, y, options, members=members, sweep=sweep,
                hyper=hyper, batch_sharding=sharding)
    if mesh is not None:
        params, opt_state, model_state, x, y, eval_data, key = jax.device_put(
            (p.params, p.opt_state, p.model_state, p.x, p.y, p.eval_data, p.key),
            NamedSharding(mesh, PartitionSpec()))
        p = p._replace(params=params, opt_state=opt_state, model_state=model_state, x=x, y=y,
                       eval_data=eval_data, key=key)
    return run(p)
