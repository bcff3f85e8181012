"""`python -m processor [step]`: the same command line as `processor` and `python index.py`."""

import sys

from .cli import main

sys.exit(main(prog="python -m processor"))
