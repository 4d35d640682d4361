"""``python -m elsjax``: the same as the ``elsjax`` console script."""

import sys

from elsjax.cli import main

sys.exit(main())
