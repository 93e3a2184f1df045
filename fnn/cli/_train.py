"""``fnn train``: train, checkpoint for ``--resume``, then swap in the complete run folder (private)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import warnings

from fnn.cli import _folder
from fnn.cli._options import LIMITS, Stopped, check_config, interrupts
from fnn.cli._run import (accuracy_text, init, jsonable, parameter_count, score, seconds_since_start, setup,
                          split_state)

__all__ = ["train"]


def _config(args: argparse.Namespace) -> dict:
    return {"data": args.data, "samples": args.samples, "hidden": args.hidden,
            "activation": args.activation, "optimizer": args.optimizer, "learning_rate": args.lr,
            "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
            "ensemble": args.ensemble, "model": args.model, "channels": args.channels, "kernel": args.kernel,
            "dropout": args.dropout, "batch_norm": args.batch_norm}


def _rate(args: argparse.Namespace, steps: int):
    """``--lr`` under ``--schedule`` (an optax schedule over the run's steps)."""
    import optax

    schedule = getattr(args, "schedule", "constant")
    if schedule == "cosine":
        return optax.cosine_decay_schedule(args.lr, decay_steps=steps)
    if schedule == "warmup-cosine":
        return optax.warmup_cosine_decay_schedule(0.0, args.lr, warmup_steps=max(1, steps // 10),
                                                  decay_steps=steps)
    return args.lr


def _early(args: argparse.Namespace):
    """``--early-stopping PATIENCE``: Keras' rule on the test loss, or None."""
    import fnn

    patience = getattr(args, "early_stopping", None)
    return None if patience is None else fnn.training.EarlyStopping("eval_loss", patience=patience)


def _architecture(args: argparse.Namespace, sizes: list) -> str:
    extras = "".join([f" dropout {args.dropout:g}" if args.dropout else "", " batch norm" if args.batch_norm else ""])
    if args.model == "cnn":
        return (f"cnn conv{'-'.join(map(str, args.channels))} {args.kernel}x{args.kernel} pool dense "
                f"{'-'.join(map(str, sizes[1:]))}{extras}")
    return f"mlp {'-'.join(map(str, sizes))}{extras}"


def _resumable(staging: str, config: dict) -> None:
    """``--resume`` continues only the run that was started with these options."""
    path = os.path.join(staging, _folder.OPTIONS)
    saved = check_config(_folder.read_json(path), path)
    differ = [k for k in config if saved[k] != config[k]]
    if differ:
        raise ValueError(f"--resume needs the options of the interrupted run; got other "
                         f"{', '.join('--' + k.replace('_', '-') for k in differ)} "
                         f"(it used {', '.join(f'{k}={saved[k]!r}' for k in differ)})")


def jax_leaves(tree) -> list:
    import jax

    return jax.tree.leaves(tree)


def _write_outputs(out: str, config: dict, result, scores: dict, data, predicted, apply) -> list:
    """Params, history, plots and, last, config.json into ``out``; the file names written."""
    import fnn
    from fnn import plots

    fnn.checkpoint.save(os.path.join(out, _folder.CHECKPOINT), result.params)
    has_state = bool(jax_leaves(result.state))
    if has_state:  # batch norm's running averages, for fnn evaluate
        fnn.checkpoint.save(os.path.join(out, _folder.MODEL_STATE), result.state)
    _folder.write_json(os.path.join(out, _folder.HISTORY), {k: jsonable(v) for k, v in result.history.items()})
    h, name = result.history, config["data"]
    written = [
        plots.curves({"train": h["train_loss"], "test": h["eval_loss"]}, os.path.join(out, "loss.png"),
                     ylabel="cross-entropy loss", log_y=True, title=f"{name}: loss"),
        plots.curves({"test": h["eval_accuracy"]}, os.path.join(out, "accuracy.png"),
                     ylabel="accuracy", title=f"{name}: test accuracy"),
        plots.confusion_matrix(data.y_test, predicted, os.path.join(out, "confusion.png"),
                               num_classes=data.num_classes),
    ]
    if data.x_test.shape[1] == 2:
        written.append(plots.decision_boundary(apply, result.params, data.x_test, data.y_test,
                                               os.path.join(out, "boundary.png"), title=f"{name}: test points"))
    files = [_folder.CHECKPOINT, _folder.CONFIG, _folder.HISTORY] + [os.path.basename(p) for p in written if p]
    files += [_folder.MODEL_STATE] if has_state else []
    _folder.write_json(os.path.join(out, _folder.CONFIG),
                       {"fnn_version": fnn.__version__, "config": config, "checkpoint": _folder.CHECKPOINT,
                        "files": files, "result": scores})
    return files + [None] * (len(written) - sum(map(bool, written)))


def train(args: argparse.Namespace, started: float) -> int:
    import jax
    import fnn
    from fnn import plots

    config = _config(args)
    out = os.path.normpath(args.out or os.path.join("runs", args.data))
    staging = _folder.stage(out, args.resume)  # an unusable --out fails here, before any work
    state_path = os.path.join(staging, _folder.STATE)
    if args.resume:
        _resumable(staging, config)
    else:
        _folder.write_json(os.path.join(staging, _folder.OPTIONS), {"config": config})
    # Import matplotlib on another core while this one loads data and XLA compiles.
    threading.Thread(target=plots.available, daemon=True).start()
    data, model, k_init, k_shuffle = setup(config)
    n, features = data.x_train.shape
    sizes = [features, *args.hidden, data.num_classes]
    if parameter_count(sizes) * args.ensemble > LIMITS["parameters"]:
        raise ValueError(f"--hidden and --ensemble must give at most {LIMITS['parameters']:,} parameters; "
                         f"got {parameter_count(sizes) * args.ensemble:,}")
    params, model_state = split_state(model, init(model, k_init, (features,), args.ensemble))
    print(fnn.summary(model, (features,)), flush=True)
    steps = -(-n // min(args.batch_size, n)) * args.epochs
    optimizer = getattr(fnn.optimizers, args.optimizer)(_rate(args, steps))
    who = f"{args.ensemble} x " if args.ensemble > 1 else ""
    print(f"fnn train: {args.data} ({n} train / {data.x_test.shape[0]} test, {data.num_classes} "
          f"classes) | {who}{_architecture(args, sizes)} {args.activation} | {args.optimizer} lr "
          f"{args.lr:g} | {args.epochs} epochs x batch {args.batch_size} = {steps} steps | seed {args.seed}"
          + (" | resumed" if args.resume else ""), flush=True)
    fit = fnn.fit if args.ensemble == 1 else fnn.training.fit_ensemble
    every = args.checkpoint_every or max(1, args.epochs // 10)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():  # non-finite reports come back in result.nonfinite
            warnings.simplefilter("ignore", RuntimeWarning)
            result = fit(model, params, optimizer, data.x_train, data.y_train, epochs=args.epochs,
                         batch_size=args.batch_size, key=k_shuffle, eval_data=(data.x_test, data.y_test),
                         progress=not args.no_progress, checkpoint=state_path, checkpoint_every=every,
                         initial=state_path if args.resume else None, early_stopping=_early(args),
                         **({} if model_state is None else {"state": model_state}))
        jax.block_until_ready(result.params)
    except (KeyboardInterrupt, Exception) as error:
        if not isinstance(error, KeyboardInterrupt) and not interrupts:
            raise
        kept = (f"; {out!r} is unchanged, and 'fnn train ... --resume' continues from the last saved epoch"
                if os.path.isfile(state_path) else f"; {out!r} is unchanged")
        raise Stopped(kept) from None
    fit_s = time.perf_counter() - t0
    for report in result.nonfinite:
        print(f"fnn train: warning: {report} (try a smaller --lr)", file=sys.stderr)
    scores, predicted, apply = score(model, result.params, data, args.ensemble,
                                     None if model_state is None else result.state)
    scores.update(fit_s=fit_s, steps=steps, steps_per_s=steps / fit_s, epochs_run=result.epoch)
    files = _write_outputs(staging, config, result, scores, data, predicted, apply)
    for name in (_folder.STATE, _folder.OPTIONS):
        os.unlink(os.path.join(staging, name))
    _folder.swap(staging, out)
    print(accuracy_text(scores, args.ensemble))
    elapsed, since = seconds_since_start(started)
    print(f"fit {fit_s:.2f} s for {steps} steps ({steps / fit_s:,.0f} steps/s, compilation included) "
          f"| {elapsed:.2f} s since {since}")
    note = "" if all(files) else " (no plots: matplotlib is not installed)"
    print(f"wrote {out}/{{{', '.join(f for f in files if f)}}}{note}")
    return 0
