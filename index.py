"""`python index.py [step]`: the command line from a checkout; the same as the `processor` command.

The code lives in `processor/cli.py`; see its docstring, or `python index.py --help`.
"""

import sys

from processor.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python index.py"))
