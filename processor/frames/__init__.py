"""pandas in and out: `load_frame` stages a DataFrame as a file is staged; `read_frame` and
`read_deals` read tables, views and queries back with exact types. Needs the `pandas` extra."""

from .load import load_frame
from .read import read_deals, read_frame

__all__ = ["load_frame", "read_deals", "read_frame"]
