"""The ``fnn`` command's entry point: it takes Ctrl-C before the library is imported.

Importing :mod:`fnn` imports jax and takes a second or more; an interrupt then would end
in the interpreter's traceback. This module sets the command's interrupt convention (one
line, status 130) first, then hands over to :func:`fnn.cli.main`, which sets its own.
It lives outside the ``fnn`` package because importing anything inside it runs
``fnn/__init__.py`` first.
"""

import os
import signal
import sys


def _interrupted_while_starting(signum, frame):
    words = ["fnn", *sys.argv[1:2]] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else ["fnn"]
    print(f"{' '.join(words)}: interrupted while starting", file=sys.stderr, flush=True)
    os._exit(130)


def main() -> int:
    """Run ``fnn`` with ``sys.argv``; the exit status of :func:`fnn.cli.main`."""
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    from fnn.cli import main as run

    return run()
