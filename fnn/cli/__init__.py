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
It is written whole or not at all: the run is staged in ``.<name>.partial`` beside it and
swapped in at the end; while training, the staging folder holds
the training state every ``--checkpoint-every`` epochs, so ``fnn train ... --resume``
continues an interrupted run. ``fnn evaluate`` checks that the folder is complete and its
``config.json`` well-formed before scoring.

One seed drives the run: ``key = jax.random.key(seed)`` is split into the data key
(generation and the train/test split), the init key and the shuffle key, so
``fnn evaluate`` rebuilds exactly the same test split. Bad options print one line
``fnn <command>: error: ...`` and exit with status 2; errors from fnn itself (a bad
checkpoint, a missing extra) print one line and exit with status 1. Ctrl-C at any moment
after start-up prints one line and exits with status 130 (the process exits at once,
without the interpreter's teardown, which could crash while XLA compiles).

Also available as ``python -m fnn``. Call :func:`main` with a list of arguments to run it
in-process; it returns the exit status instead of exiting.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Sequence

from fnn.cli._options import Stopped, interrupts
from fnn.cli._parser import build_parser

__all__ = ["main", "build_parser"]


def _enable_compilation_cache(off: bool) -> None:
    """Before anything compiles; a cache that cannot be made is not worth failing a run."""
    from fnn import compilation_cache

    path = None if off else compilation_cache.default_dir()
    if path is not None:
        try:
            compilation_cache.enable(path)
        except OSError:
            pass


def _interrupted(command: str, error: KeyboardInterrupt) -> int:
    note = str(error) if isinstance(error, Stopped) else ""
    print(f"fnn {command}: interrupted{note}", file=sys.stderr, flush=True)
    return 130


def _run(argv: Sequence[str] | None, started: float, hit: list) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors (already printed)
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    try:
        _enable_compilation_cache(args.no_compilation_cache)
        code = args.run(args, started)
    except (ValueError, ImportError, OSError, MemoryError) as e:  # fnn's own messages name the argument
        text = " ".join(str(e).split()) or type(e).__name__
        print(f"fnn {args.command}: error: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        return _interrupted(args.command, e)
    return _interrupted(args.command, KeyboardInterrupt()) if hit and code == 0 else code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fnn`` command with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Called without ``argv`` (the ``fnn`` command itself), an interrupt ends the process
    with status 130 at once; called with a list, ``main`` returns 130.

    Example:
      >>> main(["train", "--epochs", "0"])
      2
    """
    started = time.perf_counter()
    hit = interrupts  # an interrupt that something below swallowed still ends as 130
    hit.clear()

    def on_interrupt(signum, frame):
        hit.append(signum)
        raise KeyboardInterrupt

    handle = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if handle else None
    try:
        code = _run(argv, started, hit)
    except KeyboardInterrupt as e:  # between the handlers above, e.g. while printing
        code = _interrupted(argv[0] if argv else "train", e)
    finally:
        if handle:
            signal.signal(signal.SIGINT, signal.SIG_IGN if argv is None else previous)
    if argv is None and code == 130:
        sys.stdout.flush()
        os._exit(130)  # skip the teardown: XLA threads still compiling can crash it
    return code
