"""`--help`: the steps, where configuration comes from, the exit codes and every variable, wrapped to
the terminal (at most 100 columns) (pure)."""

from __future__ import annotations

import shutil
import textwrap

from .config import OPTIONS, Option
from .container import CONTAINER_ENV
from .errors import EXIT_CODES

MAX_WIDTH = 100
SUMMARY = "CSV files -> SQL staging tables -> a deals view -> Pipedrive."
STEPS: tuple[tuple[str, str], ...] = (
    (
        "(none), all",
        "load; then transform, when the three tables it reads exist (CUSTOMERS_TABLE, ORDERS_TABLE, "
        "PAYMENTS_TABLE); then sync, when PIPEDRIVE_API_KEY is set. A step it skips is named in the summary.",
    ),
    ("load", "only stage the CSV files"),
    ("transform", "only (re)build the deals view (exit 5 when a table it reads is missing)"),
    ("sync", "only make Pipedrive match the deals view"),
    ("status", "what the ledger says (files in, rows, rejects, what is not in) and the last run; loads nothing"),
)
CONFIGURATION = (
    "Everything is set by environment variables, and by a .env file in the working directory (one VAR=value "
    "a line; real environment variables win). A variable that starts like one of ours but is not one "
    "(SRC_DATA_FOLDR) is an error, as is a value wrapped in quotes. The first log lines name the source and "
    "the destination; the summary ends the run, on stdout (and in SUMMARY_JSON)."
)


def width() -> int:
    """The terminal's width, at most MAX_WIDTH (80 when it cannot be told)."""
    return max(40, min(shutil.get_terminal_size((80, 24)).columns - 1, MAX_WIDTH))


def _entries(rows: list[tuple[str, str]], columns: int, name_width: int) -> list[str]:
    """Two columns, the second wrapped under itself; a name too long for its column gets its own line."""
    out = []
    indent = " " * (name_width + 4)
    for name, text in rows:
        if len(name) > name_width:
            out.append(f"  {name}")
            out += textwrap.wrap(text, columns, initial_indent=indent, subsequent_indent=indent)
            continue
        first = f"  {name:<{name_width}}  "
        out += textwrap.wrap(text, columns, initial_indent=first, subsequent_indent=indent)
    return out


def _option_text(option: Option) -> str:
    default = option.shown_default
    if default is None:
        default = "(hidden)" if option.secret else str(option.default)
    return f"{option.help} [default: {default}]"


_CONTAINER = (
    CONTAINER_ENV,
    "1: the command runs in a container, so a SQLite file outside any volume draws a warning that it is "
    "lost with the container [default: unset; 1 in the image]",
)


def epilog(columns: int | None = None) -> str:
    """Everything after the usage line and the options."""
    columns = columns or width()
    sections = [
        ["steps:", *_entries(list(STEPS), columns, 11)],
        ["configuration:", *textwrap.wrap(CONFIGURATION, columns, initial_indent="  ", subsequent_indent="  ")],
        ["exit codes:", *_entries([(str(code), text) for code, text in EXIT_CODES], columns, 3)],
        ["environment variables:", *_entries([*((o.env, _option_text(o)) for o in OPTIONS), _CONTAINER], columns, 26)],
    ]
    return "\n\n".join("\n".join(section) for section in sections)
