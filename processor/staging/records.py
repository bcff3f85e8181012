"""The careful path's reader: CSV records with their line numbers and raw text (pure, over a text stream).

A record that cannot be parsed (stray quote, unterminated quote, undecodable bytes) is yielded
with an error instead of stopping the file. After a parse error only the record's first
physical line is given up: the lines after it are parsed again, so one broken quote does not
swallow the rows that follow it.
"""

from __future__ import annotations

import csv
import io
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from .files import CsvFormat, csv_reader

_UNDECODABLE = re.compile("[\udc80-\udcff]")


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
            yield from _give_up_first_line(lines, line, f"malformed CSV ({exc}); check the quotes on this line")
            line += 1
            reader = csv_reader(lines, fmt)
            continue
        raw = "".join(lines.taken)
        if _quote_left_open(fields, width, lines, raw, fmt):
            yield from _give_up_first_line(lines, line, "a quote opened on this line is never closed")
            line += 1
            reader = csv_reader(lines, fmt)
            continue
        if _UNDECODABLE.search(raw):
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


def _give_up_first_line(lines: _Lines, line: int, reason: str) -> Iterator[Record]:
    taken = lines.taken or [""]
    lines.replay.extendleft(reversed(taken[1:]))
    yield Record(line, None, printable(taken[0]), reason)


def printable(raw: str) -> str:
    """Raw text for the rejects table: undecodable bytes and NULs shown as \\xNN, line ending dropped."""
    text = raw.rstrip("\r\n").replace("\x00", "\\x00")
    return _UNDECODABLE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)
