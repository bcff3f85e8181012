"""The careful path's reader: CSV records with their line numbers and raw text (pure, over a text stream).

A record that cannot be parsed (stray quote, unterminated quote, undecodable bytes) is yielded
with an error instead of stopping the file. After a parse error only the record's first
physical line is given up: the lines after it are parsed again, so one broken quote does not
swallow the rows that follow it.

The csv module stops at fields over FIELD_SIZE_LIMIT (16 MiB), which keeps a quote that never
closes from reading a whole file into memory. A record that meets that limit is read on as text
until its quotes balance, up to FIELD_BYTES_LIMIT (1 GiB, the most a PostgreSQL value holds;
the database refuses what it cannot store), and then parsed whole.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from .files import FIELD_SIZE_LIMIT, UNDECODABLE, CsvFormat, csv_reader

FIELD_BYTES_LIMIT = 1 << 30
_FIELD_TOO_LARGE = "field larger than field limit"


@dataclass(frozen=True, slots=True)
class Record:
    """One record: the line it starts on, its fields (None when broken), raw text, and why it is broken."""

    line: int
    fields: list[str] | None
    raw: str
    error: str | None = None


class _Lines:
    """Physical lines of a stream, remembering those of the current record and allowing a replay."""

    def __init__(self, stream: TextIO):
        self._stream = iter(stream)
        self.replay: deque[str] = deque()
        self.taken: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.replay.popleft() if self.replay else next(self._stream)
        self.taken.append(line)
        return line

    def at_end(self) -> bool:
        """Whether no line is left (peeks without taking)."""
        if self.replay:
            return False
        try:
            self.replay.append(next(self._stream))
        except StopIteration:
            return True
        return False


def read_records(stream: TextIO, fmt: CsvFormat, width: int | None = None, first_line: int = 1) -> Iterator[Record]:
    """Every record of the stream from its current position, numbering lines from `first_line`.

    `width` is the expected number of fields: a record of another width that spans several lines
    is most likely an unterminated quote, so only its first line is rejected and the lines after
    it are read again.
    """
    lines = _Lines(stream)
    reader = csv_reader(lines, fmt)
    line = first_line
    while True:
        lines.taken = []
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            fields = _long_record(lines, fmt) if _FIELD_TOO_LARGE in str(exc) else None
            if fields is None:
                reason = _LONG_OR_OPEN if _FIELD_TOO_LARGE in str(exc) else f"malformed CSV ({exc})"
                yield from _give_up_first_line(lines, line, f"{reason}; check the quotes on this line")
                line += 1
                reader = csv_reader(lines, fmt)
                continue
            reader = csv_reader(lines, fmt)
        raw = "".join(lines.taken)
        if _quote_left_open(fields, width, lines, raw, fmt):
            yield from _give_up_first_line(lines, line, "a quote opened on this line is never closed")
            line += 1
            reader = csv_reader(lines, fmt)
            continue
        if UNDECODABLE.search(raw):
            yield Record(
                line,
                None,
                printable(raw),
                f"bytes that are not valid {fmt.encoding}; set SRC_ENCODING to the file's encoding",
            )
        elif fields:
            yield Record(line, fields, raw.rstrip("\r\n"))
        line += len(lines.taken)


def _quote_left_open(fields: list[str], width: int | None, lines: _Lines, raw: str, fmt: CsvFormat) -> bool:
    """An unterminated quote: a row of the wrong width that swallowed several lines, or a last row
    that ends inside quotes."""
    if '"' not in raw:
        return False
    if width is not None and fields and len(fields) != width and len(lines.taken) > 1:
        return True
    if not lines.at_end():
        return False
    try:
        list(csv.reader(io.StringIO(raw, newline=""), delimiter=fmt.delimiter, quotechar='"', strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


_LONG_OR_OPEN = f"a quote that is never closed, or a field over {FIELD_BYTES_LIMIT >> 30} GiB"


def _long_record(lines: _Lines, fmt: CsvFormat) -> list[str] | None:
    """The fields of a record the csv module gave up on as too large (its lines so far in
    `lines.taken`), read on until its quotes balance; None when they never do within the limit."""
    size = sum(map(len, lines.taken))
    quotes = sum(taken.count('"') for taken in lines.taken)
    while quotes % 2:
        line = next(lines, None)
        if line is None or size > FIELD_BYTES_LIMIT:
            return None
        size += len(line)
        quotes += line.count('"')
    text = "".join(lines.taken)
    with _field_limit(len(text)):
        try:
            rows = list(csv_reader(io.StringIO(text, newline=""), fmt))
        except csv.Error:
            return None
    return rows[0] if len(rows) == 1 else None


@contextlib.contextmanager
def _field_limit(size: int) -> Iterator[None]:
    previous = csv.field_size_limit(max(size, FIELD_SIZE_LIMIT))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _give_up_first_line(lines: _Lines, line: int, reason: str) -> Iterator[Record]:
    taken = lines.taken or [""]
    lines.replay.extendleft(reversed(taken[1:]))
    yield Record(line, None, printable(taken[0]), reason)


def printable(raw: str) -> str:
    """Raw text for the rejects table: undecodable bytes and NULs shown as \\xNN, line ending dropped."""
    text = raw.rstrip("\r\n").replace("\x00", "\\x00")
    return UNDECODABLE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)
