"""Cheap checks on the bytes a bulk load streams past, for constructs its database would read otherwise.

Our reader (Python's csv module) is the rule: a quote opens a quoted field only at the start of a
field, and is a plain character anywhere else (`5" x 7"` keeps its quotes); a blank line is no
row; a backslash is a plain character. Each database's own parser bends some of this:

- PostgreSQL's COPY opens a quoted section at any quote (`5" x 7"` loses its quotes, and
  `a"b,c"d` becomes one field), ends its input at a line that is just `\\.`, and takes a blank
  line of a one-column file for a row holding an empty value.
- MySQL's LOAD DATA reads text after a closing quote (`"ab"c`) as more of the quoted field, up
  to the next quote that a delimiter or line end follows; and reads the cp1252 bytes that have
  no character there (0x81, 0x8D, 0x8F, 0x90, 0x9D) as control characters.

Each writer names the constructs its parser bends (`bends`); a `Watch` raises `Bent` at the
first one, so the load stops there and the careful path reads the file our way. A construct is
found by regular expressions and substring tests that run in C over each chunk: a file without
quotes, backslashes or blank lines costs a few memchr calls per megabyte.
"""

from __future__ import annotations

import codecs
import re

from .files import CsvFormat, Evidence
from .target import DataProblem

STRAY_QUOTE = "a quote inside an unquoted field"
TEXT_AFTER_QUOTE = "text after a closing quote"
OPEN_QUOTE = "a quote that is never closed"
END_MARKER = "a line that is just \\."
BLANK_LINE = "a blank line"
CP1252_UNDEFINED = "a byte that cp1252 leaves undefined"
QUOTES = frozenset({STRAY_QUOTE, TEXT_AFTER_QUOTE, OPEN_QUOTE})

_END_MARKER = re.compile(rb"[\r\n]\\\.")
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
_INNER = re.compile(rb'(?:[^"]++|"")*+')  # the inside of a quoted field, up to its closing quote
_RUN = re.compile(rb'"++')


class Bent(DataProblem):
    """The file holds a construct the database's parser reads differently from ours."""


class Reencode(Exception):
    """The whole file calls for another encoding than its head suggested; load it again in `encoding`."""

    def __init__(self, encoding: str):
        super().__init__(f"the whole file reads as {encoding}, not as its first bytes suggested")
        self.encoding = encoding


class Watch:
    """Checks the bytes of one file (from its first byte, or a range's) as they stream past.

    `feed` raises Bent at the first construct in `bends`, and Reencode as soon as the bytes
    prove an encoding the format only guessed wrong; `finish` does the same for what only the
    end can tell.
    """

    def __init__(self, fmt: CsvFormat, bends: frozenset[str], name: str):
        self._name = name
        self._evidence = None if fmt.encoding_settled else Evidence(fmt.encoding)
        self._transcoder = None if fmt.ascii_compatible else codecs.getincrementaldecoder(fmt.encoding)("replace")
        delimiter = fmt.delimiter.encode("utf-8" if self._transcoder else fmt.encoding, errors="replace")
        self._quotes = QuoteCheck(delimiter, STRAY_QUOTE in bends) if bends & QUOTES else None
        self._end_marker = END_MARKER in bends
        self._blank = fmt.newline.encode() * 2 if BLANK_LINE in bends else None
        self._undefined = CP1252_UNDEFINED in bends and codecs.lookup(fmt.encoding).name == "cp1252"
        self._last = b"\n"  # the bytes before the next chunk: a file starts at a line start
        if len(delimiter) != 1 and self._quotes:
            raise Bent(f"the delimiter {fmt.delimiter!r} is more than one byte, which {name} cannot be checked for")

    @property
    def suspects_encoding(self) -> bool:
        """Whether the encoding is a guess and bytes it may not read have passed."""
        return self._evidence is not None and self._evidence.invalid

    def feed_encoding(self, data: bytes) -> None:
        """Gather what the next bytes say about the encoding; raises Reencode once the guess is disproved."""
        if self._evidence is not None:
            self._evidence.feed(data)
            if self._evidence.disproved:
                raise Reencode(self._evidence.verdict)

    def finish_encoding(self) -> None:
        """After the last byte: raises Reencode when the whole file calls for another encoding."""
        if self._evidence is not None:
            self._evidence.feed(b"", final=True)
            if self._evidence.verdict != self._evidence.guess:
                raise Reencode(self._evidence.verdict)

    def feed(self, data: bytes) -> None:
        """Check the next bytes; raises Bent or Reencode."""
        self.feed_encoding(data)
        if self._transcoder is not None:
            data = self._transcoder.decode(data).encode("utf-8")
        if not data:
            return
        last, self._last = self._last, (self._last + data[-3:])[-3:]
        if self._end_marker and (b"\\" in data or b"\\" in last) and _END_MARKER.search(last + data):
            self._bent(END_MARKER)
        if self._blank is not None and (self._blank in data or self._blank in last + data[:3]):
            self._bent(BLANK_LINE)
        if self._undefined and not data.isascii() and _CP1252_UNDEFINED.search(data):
            self._bent(CP1252_UNDEFINED)
        if self._quotes is not None:
            found = self._quotes.feed(data)
            if found:
                self._bent(found)

    def finish(self) -> None:
        """After the last byte: raises Reencode when the whole file calls for another encoding than
        the guessed one, Bent for a quote never closed."""
        self.finish_encoding()
        if self._quotes is not None and self._quotes.unclosed:
            self._bent(OPEN_QUOTE)

    def _bent(self, construct: str) -> None:
        raise Bent(f"the file holds {construct}, which {self._name} reads differently")


class QuoteCheck:
    """Whether every quote of a stream sits where our reader and the database agree on it.

    One regular expression walks the stream in C: runs of bytes without quotes, and quoted fields
    that open at a field's start and close before a delimiter or line end (doubled quotes inside).
    Where it stops, the quote there is looked at: an opening quote whose field goes on past the
    chunk is carried over as a state (in quotes, or a quote that may be the first of a pair);
    anything else is the construct. With `stray` false, quotes inside an unquoted field are
    plain characters to the database too, and pass.
    """

    def __init__(self, delimiter: bytes, stray: bool):
        edge = b"[" + re.escape(delimiter) + rb"\r\n]"
        inside_unquoted = b"" if stray else b"|(?<=[^" + re.escape(delimiter) + rb'\r\n])"++'
        self._fields = re.compile(
            rb'(?:[^"]++|(?<=' + edge + rb')"(?:[^"]++|"")*+"(?=' + edge + b")" + inside_unquoted + rb")*+"
        )
        self._edges = frozenset(delimiter + b"\r\n")
        self._stray = stray
        self._carry, self._resume = b"\n", 1  # bytes kept from the last chunk, and where to go on in them
        self.open = False  # inside a quoted field at the end of what was fed

    def feed(self, data: bytes) -> str | None:
        """The construct found in the next bytes, or None."""
        if not self.open and b'"' not in data:
            self._carry, self._resume = data[-1:], 1
            return None
        buffer, position = self._carry + data, self._resume
        while True:
            if self.open:
                position = _INNER.match(buffer, position).end()
                if position >= len(buffer) - 1:  # the field goes on, or its last quote may be half of a pair
                    self._carry, self._resume = (buffer[-1:], 1) if position == len(buffer) else (b'"', 0)
                    return None
                if buffer[position + 1] not in self._edges:
                    return TEXT_AFTER_QUOTE
                position, self.open = position + 1, False
            position = self._fields.match(buffer, position).end()
            if position == len(buffer):
                self._carry, self._resume = buffer[-1:], 1
                return None
            if buffer[position - 1] in self._edges:
                position, self.open = position + 1, True
            elif self._stray:
                return STRAY_QUOTE
            else:  # plain quotes in an unquoted field, where a chunk began
                position = _RUN.match(buffer, position).end()

    @property
    def unclosed(self) -> bool:
        """Whether the bytes fed so far end inside a quoted field (a last quote fed closes it)."""
        return self.open and not (self._carry == b'"' and self._resume == 0)
