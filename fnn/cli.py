r"""The ``fnn`` command line: ``fnn train`` and ``fnn evaluate``.

``fnn train`` trains a multi-layer perceptron on a bundled or generated dataset with
:func:`fnn.fit`, shows a progress bar, prints a summary and writes everything needed to
look at and reuse the run into an output folder::

    fnn train                                  # digits, MLP 64-256-10, Adam, 20 epochs
    fnn train --data moons --hidden 16,16 --activation tanh --epochs 50
    fnn train --ensemble 8 --out runs/digits8  # 8 models at once (vmap over init keys)
    fnn evaluate runs/digits                   # re-score the saved checkpoint

The output folder holds ``params.ckpt`` (:func:`fnn.checkpoint.save` of the params),
``config.json`` (the options and results; enough to rebuild the model), ``history.json``
(per-epoch train loss, test loss and accuracy) and, when matplotlib is installed,
``loss.png``, ``accuracy.png``, ``confusion.png`` and, for 2-D data, ``boundary.png``.

One seed drives the run: ``key = jax.random.key(seed)`` is split into the data key
(generation and the train/test split), the init key and the shuffle key, so
``fnn evaluate`` rebuilds exactly the same test split. Bad options print one line
``fnn <command>: error: ...`` and exit with status 2; errors from fnn itself (a bad
checkpoint, a missing extra) print one line and exit with status 1.

Also available as ``python -m fnn``. Call :func:`main` with a list of arguments to run it
in-process; it returns the exit status instead of exiting.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
import warnings
from typing import Any, Sequence

__all__ = ["main", "build_parser"]

DATASETS = ("digits", "breast_cancer", "iris", "moons", "blobs", "spirals", "xor")
OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "prelu", "tanh", "sigmoid")
_CHECKPOINT, _CONFIG, _HISTORY = "params.ckpt", "config.json", "history.json"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``fnn train: error: ... (see 'fnn train --help')``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults, except the empty ones (None, False) whose help says what happens."""

    def _get_help_string(self, action):
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def _positive(kind: type, name: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0 or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a positive {name}; got {text!r}")
        return value
    return parse


def _hidden(text: str) -> list[int]:
    sizes = [part.strip() for part in text.split(",")] if text.strip() else []
    if not all(s.isdigit() and int(s) > 0 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"must be comma-separated positive layer sizes such as 256 or 128,64 ('' for none); got {text!r}")
    return [int(s) for s in sizes]


def build_parser() -> argparse.ArgumentParser:
    """The ``fnn`` argument parser (subcommands ``train`` and ``evaluate``)."""
    parser = _Parser(prog="fnn", formatter_class=_Formatter,
                     description="fnn: a functional neural-network library on JAX.",
                     epilog="Run 'fnn train --help' or 'fnn evaluate --help' for the options.")
    from fnn import __version__
    parser.add_argument("--version", action="version", version=f"fnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{train,evaluate,playground}")
    train = commands.add_parser(
        "train", formatter_class=_Formatter, help="train an MLP and save checkpoint, history and plots",
        description="Train a multi-layer perceptron with fnn.fit (one compiled program), show\n"
                    "progress, print test accuracy, time and steps/s, and write params.ckpt,\n"
                    "config.json, history.json and plots (with matplotlib) into --out.",
        epilog="examples:\n  fnn train\n  fnn train --data spirals --hidden 64,64 --epochs 100\n"
               "  fnn train --optimizer sgd --lr 0.05 --ensemble 4")
    train.add_argument("--data", choices=DATASETS, default="digits",
                       help="dataset: bundled with scikit-learn (digits, breast_cancer, iris; "
                            "the 'data' extra) or generated 2-D points")
    train.add_argument("--samples", type=_positive(int, "integer"), default=None, metavar="N",
                       help="points to generate for moons/blobs/spirals/xor (default 1000)")
    train.add_argument("--hidden", type=_hidden, default="256", metavar="SIZES",
                       help="hidden layer sizes, comma-separated, e.g. 128,64")
    train.add_argument("--activation", choices=ACTIVATIONS, default="relu", help="hidden activation")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="optimizer")
    train.add_argument("--lr", type=_positive(float, "number"), default=2e-3, help="learning rate")
    train.add_argument("--epochs", type=_positive(int, "integer"), default=20, help="epochs")
    train.add_argument("--batch-size", type=_positive(int, "integer"), default=64, help="batch size")
    train.add_argument("--seed", type=int, default=0, help="seed of the split, init and data order")
    train.add_argument("--ensemble", type=_positive(int, "integer"), default=1, metavar="K",
                       help="train K models at once from K init keys; reports the mean and the "
                            "ensemble-averaged test accuracy")
    train.add_argument("--out", default=None, help="output folder (default runs/<data>)")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _cache_option(train)
    train.set_defaults(run=_train)
    evaluate = commands.add_parser(
        "evaluate", formatter_class=_Formatter, help="score a checkpoint written by 'fnn train'",
        description="Rebuild the model and the test split from the config.json beside a\n"
                    "checkpoint written by 'fnn train' and print its test loss and accuracy.",
        epilog="example:\n  fnn evaluate runs/digits")
    evaluate.add_argument("path", help="output folder of 'fnn train', or its params.ckpt")
    _cache_option(evaluate)
    evaluate.set_defaults(run=_evaluate)
    playground = commands.add_parser(
        "playground", formatter_class=_Formatter, help="watch a network learn in the browser",
        description="Serve the fnn playground on 127.0.0.1 and open it in the browser.")
    playground.add_argument("--port", type=int, default=0, help="port (0: a free one)")
    playground.add_argument("--no-browser", action="store_true", help="print the URL only")
    _cache_option(playground)
    playground.set_defaults(run=_playground)
    return parser


def _playground(args: argparse.Namespace, started: float) -> int:
    from fnn import playground

    return playground.serve(args.port, open_browser=not args.no_browser)


def _cache_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--no-compilation-cache", action="store_true",
        help="do not keep compiled programs on disk (by default they are, in "
             "$FNN_COMPILATION_CACHE or ~/.cache/fnn/xla, so the next run skips compiling; "
             "FNN_COMPILATION_CACHE=off also disables it)")


def _enable_compilation_cache(args: argparse.Namespace) -> None:
    """Before anything compiles; a cache that cannot be made is not worth failing a run."""
    from fnn import compilation_cache

    path = None if args.no_compilation_cache else compilation_cache.default_dir()
    if path is not None:
        try:
            compilation_cache.enable(path)
        except OSError:
            pass


def _jsonable(value: Any) -> Any:
    """Arrays to nested lists; NaN/inf (epochs a guarded member skipped) to null."""
    import numpy as np
    if hasattr(value, "shape"):
        value = np.asarray(value).tolist()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _setup(config: dict):
    """Data, model and keys of a run, rebuilt identically from its config."""
    import jax
    import fnn

    k_data, k_init, k_shuffle = jax.random.split(jax.random.key(config["seed"]), 3)
    options = {} if config.get("samples") is None else {"n": config["samples"]}
    if options and config["data"] not in ("moons", "blobs", "spirals", "xor"):
        raise ValueError(f"--samples applies to generated data only, not to {config['data']!r}")
    data = fnn.datasets.load(config["data"], key=k_data, **options)
    model = fnn.mlp(list(config["hidden"]) + [data.num_classes], activation=config["activation"])
    return data, model, k_init, k_shuffle


def _init(model, key, input_shape, ensemble: int):
    """Params of one model or a stacked ensemble; jitted: one compile, not one per op."""
    import jax
    import fnn

    def init(k):
        if ensemble == 1:
            return model.init(k, input_shape)
        return fnn.training.init_ensemble(model, jax.random.split(k, ensemble), input_shape)
    return jax.jit(init)(key)


def _score(model, params, data, ensemble: int) -> tuple[dict, Any, Any]:
    """Test metrics (ensemble: of the averaged probabilities), predictions, and the apply."""
    import jax
    import jax.numpy as jnp
    import fnn

    if ensemble == 1:
        apply = model.apply
    else:
        def apply(p, x):  # the ensemble's prediction: log of the members' mean probabilities
            return jnp.log(jnp.mean(jax.nn.softmax(jax.vmap(model.apply, (0, None))(p, x)), axis=0))

    @jax.jit  # one compiled program instead of a dispatch (and a compile) per operation
    def score(p, x, y):
        logits = apply(p, x)
        out = {"test_loss": fnn.losses.softmax_cross_entropy(logits, y),
               "test_accuracy": fnn.metrics.accuracy(logits, y),
               "test_macro_f1": fnn.metrics.f1(logits, y)}
        if ensemble > 1:
            out["member_accuracy"] = jax.vmap(lambda q: fnn.metrics.accuracy(model.apply(q, x), y))(p)
        return out, jnp.argmax(logits, axis=-1)

    values, predicted = score(params, data.x_test, data.y_test)
    result = {k: v.tolist() for k, v in values.items()}
    if ensemble > 1:
        result["member_accuracy_mean"] = sum(result["member_accuracy"]) / ensemble
    return result, predicted, jax.jit(apply)


def _accuracy_text(scores: dict, ensemble: int) -> str:
    members = (f" (ensemble of {ensemble}; members' mean {scores['member_accuracy_mean']:.4f})"
               if ensemble > 1 else "")
    return (f"test accuracy {scores['test_accuracy']:.4f}{members} | macro F1 {scores['test_macro_f1']:.4f} "
            f"| test loss {scores['test_loss']:.4f}")


def _seconds_since_start(fallback: float) -> tuple[float, str]:
    """Seconds since the process started (Linux ``/proc``), else since ``main`` began."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = float(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK"), "process start"
    except (OSError, ValueError, IndexError, AttributeError):
        return time.perf_counter() - fallback, "start"


def _write_outputs(out: str, config: dict, result, scores: dict, data, predicted, apply) -> list[str | None]:
    """Checkpoint, config, history and plots into ``out``; returns the file names written."""
    import fnn
    from fnn import plots

    os.makedirs(out, exist_ok=True)
    fnn.checkpoint.save(os.path.join(out, _CHECKPOINT), result.params)
    with open(os.path.join(out, _CONFIG), "w") as f:
        json.dump({"fnn_version": fnn.__version__, "config": config, "checkpoint": _CHECKPOINT,
                   "result": scores}, f, indent=2)
    with open(os.path.join(out, _HISTORY), "w") as f:
        json.dump({k: _jsonable(v) for k, v in result.history.items()}, f)
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
                                               os.path.join(out, "boundary.png"),
                                               title=f"{name}: test points"))
    return [_CHECKPOINT, _CONFIG, _HISTORY] + [os.path.basename(p) if p else None for p in written]


def _train(args: argparse.Namespace, started: float) -> int:
    import jax
    import fnn
    from fnn import plots

    config = {"data": args.data, "samples": args.samples, "hidden": args.hidden,
              "activation": args.activation, "optimizer": args.optimizer, "learning_rate": args.lr,
              "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
              "ensemble": args.ensemble}
    out = args.out or os.path.join("runs", args.data)
    # Import matplotlib on another core while this one loads data and XLA compiles.
    threading.Thread(target=plots.available, daemon=True).start()
    data, model, k_init, k_shuffle = _setup(config)
    n, features = data.x_train.shape
    params = _init(model, k_init, (features,), args.ensemble)
    optimizer = getattr(fnn.optimizers, args.optimizer)(args.lr)
    steps = -(-n // min(args.batch_size, n)) * args.epochs
    layers = "-".join(map(str, [features, *args.hidden, data.num_classes]))
    who = f"{args.ensemble} x " if args.ensemble > 1 else ""
    print(f"fnn train: {args.data} ({n} train / {data.x_test.shape[0]} test, {data.num_classes} "
          f"classes) | {who}mlp {layers} {args.activation} | {args.optimizer} lr {args.lr:g} | "
          f"{args.epochs} epochs x batch {args.batch_size} = {steps} steps | seed {args.seed}", flush=True)
    fit = fnn.fit if args.ensemble == 1 else fnn.training.fit_ensemble
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # non-finite reports come back in result.nonfinite
        warnings.simplefilter("ignore", RuntimeWarning)
        result = fit(model, params, optimizer, data.x_train, data.y_train, epochs=args.epochs,
                     batch_size=args.batch_size, key=k_shuffle, eval_data=(data.x_test, data.y_test),
                     progress=not args.no_progress)
    jax.block_until_ready(result.params)
    fit_s = time.perf_counter() - t0
    for report in result.nonfinite:
        print(f"fnn train: warning: {report} (try a smaller --lr)", file=sys.stderr)
    scores, predicted, apply = _score(model, result.params, data, args.ensemble)
    scores.update(fit_s=fit_s, steps=steps, steps_per_s=steps / fit_s, epochs_run=result.epoch)
    files = _write_outputs(out, config, result, scores, data, predicted, apply)
    print(_accuracy_text(scores, args.ensemble))
    elapsed, since = _seconds_since_start(started)
    print(f"fit {fit_s:.2f} s for {steps} steps ({steps / fit_s:,.0f} steps/s, compilation included) "
          f"| {elapsed:.2f} s since {since}")
    note = "" if all(files) else " (no plots: matplotlib is not installed)"
    print(f"wrote {out}/{{{', '.join(f for f in files if f)}}}{note}")
    return 0


def _evaluate(args: argparse.Namespace, started: float) -> int:
    import jax
    import fnn

    if os.path.isdir(args.path):
        folder, checkpoint = args.path, os.path.join(args.path, _CHECKPOINT)
    elif os.path.isfile(args.path):
        folder, checkpoint = os.path.dirname(args.path) or ".", args.path
    else:
        raise ValueError(f"path must be an output folder of 'fnn train' or its {_CHECKPOINT}; "
                         f"got {args.path!r}, which does not exist")
    config_path = os.path.join(folder, _CONFIG)
    if not os.path.isfile(config_path):
        raise ValueError(f"path must be an output folder of 'fnn train' (with {_CONFIG}); "
                         f"got {folder!r}, which has no {_CONFIG}")
    with open(config_path) as f:
        config = json.load(f)["config"]
    data, model, _, _ = _setup(config)
    like = jax.eval_shape(lambda k: _init(model, k, data.x_train.shape[1:], config["ensemble"]),
                          jax.random.key(0))
    params = fnn.checkpoint.load(checkpoint, like=like)
    scores, _, _ = _score(model, params, data, config["ensemble"])
    print(f"{checkpoint}: {config['data']} {_accuracy_text(scores, config['ensemble'])} | "
          f"{data.x_test.shape[0]} examples")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fnn`` command with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Example:
      >>> main(["train", "--epochs", "0"])
      2
    """
    started = time.perf_counter()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors (already printed)
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    try:
        _enable_compilation_cache(args)
        return args.run(args, started)
    except (ValueError, ImportError, OSError) as e:  # fnn's own messages name the argument
        text = " ".join(str(e).split()) or type(e).__name__
        print(f"fnn {args.command}: error: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fnn {args.command}: interrupted", file=sys.stderr)
        return 130
