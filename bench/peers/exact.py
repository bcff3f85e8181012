"""Did a value come back as the file wrote it? A verdict per value, and a count per table.

A value is *kept* when the database gives back the field's text (written the plain way: `str`
for integers, text and decimals, `isoformat` for dates and times, `repr` for floats); an empty
field may come back as NULL or as an empty string. It is *reformatted* when it is the same value
written another way: the same number without its trailing zeros (`10.50` → `10.5`, `3` → `3.0`),
the same instant with another offset, a date as a midnight timestamp. Anything else is *changed*:
another number (`9007199254740993` → `9007199254740992`), a code without its leading zeros
(`007` → `7`), an offset dropped from a timestamp, NULL for a non-empty field, a value for an
empty field (`0`, `0000-00-00`), text that differs in any character.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

KEPT, REFORMATTED, CHANGED = "kept", "reformatted", "changed"
_PLAIN_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?\Z")


def written(value: object) -> str:
    """How a value read back is written for comparison with the file's text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def _number_verdict(text: str, value: object) -> str:
    if not _PLAIN_NUMBER.match(text):
        return CHANGED  # 007, +7, 1e3: the text itself carries more than the number
    try:
        same = Decimal(text) == Decimal(written(value).strip())
    except InvalidOperation:
        return CHANGED
    return REFORMATTED if same else CHANGED


def _parse_moment(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _moment_verdict(text: str, value: datetime) -> str:
    moment = _parse_moment(text)
    if moment is None:
        return CHANGED
    if len(text) == 10:  # a date read back as a timestamp: kept only at midnight
        return (
            REFORMATTED
            if value.replace(tzinfo=None) == moment and value.utcoffset() in (None, timedelta(0))
            else CHANGED
        )
    if (moment.tzinfo is None) == (value.tzinfo is None):
        if value != moment:
            return CHANGED
        return KEPT if value.isoformat(sep=text[10]) == text else REFORMATTED
    if value.tzinfo is not None:  # the file had no offset: kept if stored as that wall clock in UTC
        return (
            REFORMATTED if value.utcoffset().total_seconds() == 0 and value.replace(tzinfo=None) == moment else CHANGED
        )
    # the file had an offset and the value has none: only the same instant written in UTC keeps it
    return REFORMATTED if value == moment.astimezone(UTC).replace(tzinfo=None) else CHANGED


def _text_verdict(text: str, value: str) -> str:
    """Text back for a field: the same string, or at best the same number or moment written
    another way (SQLite keeps dates and numbers as text in some tools' hands)."""
    if value == text:
        return KEPT
    moment = _parse_moment(value) if len(value) >= 10 and value[4:5] == "-" else None
    if moment is not None:
        result = _moment_verdict(text, moment)
    elif _PLAIN_NUMBER.match(text):
        result = _number_verdict(text, value)
    else:
        return CHANGED
    return REFORMATTED if result == KEPT else result


def verdict(text: str, value: object) -> str:
    """KEPT, REFORMATTED or CHANGED for one field's text and the value read back for it."""
    if text == "":
        return KEPT if value is None or value in ("", b"") else CHANGED
    if value is None:
        return CHANGED
    if isinstance(value, bool):
        truth = {"1", "true", "t", "yes", "y"} if value else {"0", "false", "f", "no", "n"}
        return REFORMATTED if text.lower() in truth else CHANGED
    if isinstance(value, str | bytes):
        return _text_verdict(text, written(value))
    if isinstance(value, int | float | Decimal):
        return KEPT if written(value) == text else _number_verdict(text, value)
    if isinstance(value, datetime):
        return _moment_verdict(text, value)
    if isinstance(value, date):
        return KEPT if value.isoformat() == text else CHANGED
    return KEPT if written(value) == text else CHANGED


@dataclass
class Check:
    """What one table gave back for one file."""

    rows_in_file: int = 0
    rows_back: int = 0
    counts: Counter = field(default_factory=Counter)  # verdict -> values
    changed_by_column: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)  # verdict -> (column, text, what came back)
    column_examples: dict = field(default_factory=dict)  # column -> (text, what came back), first change
    error: str | None = None  # the load failed: why

    def note(self, column: str, text: str, result: str, back: str) -> None:
        self.counts[result] += 1
        if result == CHANGED:
            self.changed_by_column[column] += 1
            self.column_examples.setdefault(column, (text, back))
        if result != KEPT and result not in self.examples:
            self.examples[result] = (column, text, back)


def read_file(path: Path) -> tuple[list[str], list[list[str]]]:
    """The file's header and rows, as Python's csv module reads them (the truth)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, list(reader)


def _key(value: object) -> str:
    if isinstance(value, float | Decimal) and value == int(value):
        return str(int(value))
    return written(value)


def compare(header: list[str], rows: list[list[str]], columns: list[str], table_rows: list[tuple]) -> Check:
    """Compare the file's rows with the table's, matched by the first column (`id`); a missing
    row or column counts each of its values as changed."""
    check = Check(rows_in_file=len(rows), rows_back=len(table_rows))
    position = {name.lower(): i for i, name in enumerate(columns)}
    key_at = position.get(header[0])
    back = {} if key_at is None else {_key(row[key_at]): row for row in table_rows}
    for row in rows:
        found = back.get(row[0])
        for name, text in zip(header[1:], row[1:], strict=True):
            at = position.get(name)
            if found is None or at is None:
                check.note(name, text, CHANGED, "(row missing)" if found is None else "(column missing)")
                continue
            value = found[at]
            result = KEPT if type(value) is str and value == text else verdict(text, value)
            check.note(name, text, result, "NULL" if value is None else written(value))
    return check
