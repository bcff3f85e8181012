"""The careful path's reader: CSV records with their line numbers and raw text (pure, over a text stream).

A record that cannot be parsed (stray quote, unterminated quote, undecodable bytes) is yielded
with an error instead of stopping the file. After a parse error only the record's first
physical line is given up: the lines after it are parsed again, so one broken quote does not
swallow the rows that follow it.
"""

from __future__ import annotations

import csv
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


def read_records(stream: TextIO, fmt: CsvFormat, encoding_hint: str = "") -> Iterator[Record]:
    """Every record of the stream from its current position; line numbers start at 1."""
    lines = _Lines(stream)
    reader = csv_reader(lines, fmt)
    line = 1
    while True:
        lines.taken = []
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            taken = lines.taken or [""]
            yield Record(line, None, _printable(taken[0]), f"malformed CSV ({exc}); check the quotes on this line")
            lines.replay.extendleft(reversed(taken[1:]))
            line += 1
            reader = csv_reader(lines, fmt)
            continue
        raw = "".join(lines.taken)
        if _UNDECODABLE.search(raw):
            yield Record(
                line,
                None,
                _printable(raw),
                f"bytes that are not valid {encoding_hint or fmt.encoding}; set SRC_ENCODING to the file's encoding",
            )
        elif fields:
            yield Record(line, fields, raw.rstrip("\r\n"))
        line += len(lines.taken)


def _printable(raw: str) -> str:
    """Raw text for the rejects table: undecodable bytes shown as \\xNN, line ending dropped."""
    text = raw.rstrip("\r\n")
    return _UNDECODABLE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)
