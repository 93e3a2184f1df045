"""``python -m fnn``: the same command line as ``fnn`` (see :mod:`fnn.cli`)."""

import sys

from fnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
