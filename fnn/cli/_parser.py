"""The ``fnn`` argument parser: subcommands, option types and their bounds (private)."""

from __future__ import annotations

import argparse
import math

from fnn.cli._evaluate import evaluate
from fnn.cli._options import ACTIVATIONS, DATASETS, LIMITS, OPTIMIZERS, SEEDS
from fnn.cli._train import train

__all__ = ["build_parser"]

class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``fnn train: error: ... (see 'fnn train --help')``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults, except the empty ones (None, False) whose help says what happens."""

    def _get_help_string(self, action):
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def _integer(text: str) -> int | None:
    text = text.strip()
    digits = text[1:] if text[:1] in "+-" else text
    return int(text) if digits.isdigit() and len(digits) <= 30 else None


def _positive(kind: type, name: str, limit: str | None = None):
    bound = LIMITS[limit] if limit else None

    def parse(text: str):
        try:
            value = _integer(text) if kind is int else kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0 or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a positive {name}; got {text!r}")
        if bound is not None and value > bound:
            raise argparse.ArgumentTypeError(f"must be at most {bound:,}; got {text!r}")
        return value
    return parse


def _seed(text: str) -> int:
    value = _integer(text)
    if value is None or not SEEDS[0] <= value <= SEEDS[1]:
        raise argparse.ArgumentTypeError(f"must be an integer from -2**63 to 2**63-1; got {text!r}")
    return value


def _hidden(text: str) -> list[int]:
    sizes = [part.strip() for part in text.split(",")] if text.strip() else []
    if not all(s.isdigit() and int(s) > 0 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"must be comma-separated positive layer sizes such as 256 or 128,64 ('' for none); got {text!r}")
    if any(int(s) > LIMITS["layer"] for s in sizes):
        raise argparse.ArgumentTypeError(f"must be layer sizes of at most {LIMITS['layer']:,}; got {text!r}")
    return [int(s) for s in sizes]


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1); got {text!r}")
    return value


def _cache_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--no-compilation-cache", action="store_true",
        help="do not keep compiled programs on disk (by default they are, in "
             "$FNN_COMPILATION_CACHE or ~/.cache/fnn/xla, so the next run skips compiling; "
             "FNN_COMPILATION_CACHE=off also disables it)")


def _train_parser(commands) -> None:
    train_cmd = commands.add_parser(
        "train", formatter_class=Formatter, help="train an MLP and save checkpoint, history and plots",
        description="Train a multi-layer perceptron with fnn.fit (one compiled program), show\n"
                    "progress, print test accuracy, time and steps/s, and write params.ckpt,\n"
                    "config.json, history.json and plots (with matplotlib) into --out.",
        epilog="examples:\n  fnn train\n  fnn train --data spirals --hidden 64,64 --epochs 100\n"
               "  fnn train --optimizer sgd --lr 0.05 --ensemble 4")
    add = train_cmd.add_argument
    add("--data", choices=DATASETS, default="digits",
        help="dataset: bundled with scikit-learn (digits, breast_cancer, iris; the 'data' extra) "
             "or generated 2-D points")
    add("--samples", type=_positive(int, "integer", "samples"), default=None, metavar="N",
        help="points to generate for moons/blobs/spirals/xor (default 1000)")
    add("--hidden", type=_hidden, default="256", metavar="SIZES",
        help="hidden layer sizes, comma-separated, e.g. 128,64")
    add("--activation", choices=ACTIVATIONS, default="relu", help="hidden activation")
    add("--model", choices=("mlp", "cnn"), default="mlp",
        help="mlp: dense layers --hidden; cnn (image data such as digits): conv layers --channels, "
             "one 2x2 max pool, then dense layers --hidden")
    add("--channels", type=_hidden, default="32,64", metavar="SIZES",
        help="cnn: channels of the conv layers, comma-separated")
    add("--kernel", type=_positive(int, "integer", "layer"), default=3, metavar="K",
        help="cnn: conv window K x K")
    add("--dropout", type=_rate, default=0.0, metavar="RATE",
        help="dropout: probability of dropping each unit before a dense layer (0: none)")
    add("--batch-norm", action="store_true", help="batch normalisation after each hidden (or conv) layer")
    add("--optimizer", choices=OPTIMIZERS, default="adam", help="optimizer")
    add("--lr", type=_positive(float, "number"), default=2e-3, help="learning rate")
    add("--schedule", choices=("constant", "cosine", "warmup-cosine"), default="constant",
        help="learning-rate schedule over the run's steps (optax): constant --lr, cosine decay "
             "from --lr to 0, or a linear warmup over the first 10%% of steps then cosine decay")
    add("--early-stopping", type=_positive(int, "integer", "epochs"), default=None, metavar="PATIENCE",
        help="stop when the test loss has not improved for PATIENCE epochs and keep the best "
             "epoch's params (fnn.training.EarlyStopping)")
    add("--epochs", type=_positive(int, "integer", "epochs"), default=20, help="epochs")
    add("--batch-size", type=_positive(int, "integer", "batch size"), default=64, help="batch size")
    add("--seed", type=_seed, default=0, help="seed of the split, init and data order")
    add("--ensemble", type=_positive(int, "integer", "ensemble"), default=1, metavar="K",
        help="train K models at once from K init keys; reports the mean and the "
             "ensemble-averaged test accuracy")
    add("--out", default=None, help="output folder (default runs/<data>)")
    add("--checkpoint-every", type=_positive(int, "integer", "checkpoint interval"), default=None,
        metavar="E", help="save the training state every E epochs for --resume (default: about "
                          "ten times a run)")
    add("--resume", action="store_true",
        help="continue the interrupted run of --out with the same options")
    add("--no-progress", action="store_true", help="hide the progress bar")
    _cache_option(train_cmd)
    train_cmd.set_defaults(run=train)


def _playground(args: argparse.Namespace, started: float) -> int:
    from fnn import playground

    return playground.serve(args.port, open_browser=not args.no_browser)


def build_parser() -> argparse.ArgumentParser:
    """The ``fnn`` argument parser (subcommands ``train``, ``evaluate`` and ``playground``)."""
    parser = Parser(prog="fnn", formatter_class=Formatter,
                    description="fnn: a functional neural-network library on JAX.",
                    epilog="Run 'fnn train --help' or 'fnn evaluate --help' for the options.")
    from fnn import __version__
    parser.add_argument("--version", action="version", version=f"fnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{train,evaluate,playground}")
    _train_parser(commands)
    evaluate_cmd = commands.add_parser(
        "evaluate", formatter_class=Formatter, help="score a checkpoint written by 'fnn train'",
        description="Rebuild the model and the test split from the config.json beside a\n"
                    "checkpoint written by 'fnn train' and print its test loss and accuracy.",
        epilog="example:\n  fnn evaluate runs/digits")
    evaluate_cmd.add_argument("path", help="output folder of 'fnn train', or its params.ckpt")
    _cache_option(evaluate_cmd)
    evaluate_cmd.set_defaults(run=evaluate)
    playground = commands.add_parser(
        "playground", formatter_class=Formatter, help="watch a network learn in the browser",
        description="Serve the fnn playground on 127.0.0.1 and open it in the browser.")
    playground.add_argument("--port", type=int, default=0, help="port (0: a free one)")
    playground.add_argument("--no-browser", action="store_true", help="print the URL only")
    _cache_option(playground)
    playground.set_defaults(run=_playground)
    return parser
