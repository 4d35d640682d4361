"""``python -m elsjax``: the same as the ``elsjax`` console script."""

import sys

from elsjax.cli import main

if __name__ == "__main__":
    sys.exit(main())
