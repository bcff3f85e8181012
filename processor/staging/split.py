"""Cut one big file into byte ranges at true row boundaries, so several workers can load it.

One sequential pass counts quotes: in CSV a line break ends a row exactly when an even number of
quote characters came before it (a doubled quote inside a quoted field adds two). That holds
while every quote belongs to a quoted field; a quote inside an unquoted field (`5" x 7"`), which
our reader keeps as a plain character, would throw the count off, so a file holding one is not
cut. Each cut is the first row boundary after its target offset. The same pass hashes the bytes
(on a thread beside it), counts line breaks, and settles the encoding a file's head left open (files.Evidence), so every
range knows the line its first row is on and the ledger gets the file's fingerprint without a
second read.
"""

from __future__ import annotations

import hashlib
import io
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from ..find.streams import open_location
from .files import Evidence
from .scan import QuoteCheck
from .steady import Stamp

CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ByteRange:
    """Bytes [start, end) of a file holding whole rows; `first_line` is the line its first row starts on."""

    start: int
    end: int
    first_line: int


@dataclass(frozen=True)
class SplitPlan:
    fingerprint: str
    ranges: tuple[ByteRange, ...]
    encoding: str = "utf-8"  # what the whole file's bytes call for, when its head left it open
    stamp: Stamp | None = None  # the file as this pass found it: every range must find it the same


def plan_split(raw: BinaryIO, size: int, parts: int, header: bool, delimiter: str = ",") -> SplitPlan | None:
    """About `parts` ranges of the rows after the header (one when no safe cut exists); None without a header end."""
    scan = _Scan(size, parts, header)
    quotes = QuoteCheck(delimiter.encode(), stray=True) if len(delimiter.encode()) == 1 else None
    stray = quotes is None
    digest = hashlib.sha256()
    # The hash runs on a thread of its own (hashlib lets go of the GIL), beside the counting and the quote check.
    with ThreadPoolExecutor(1, thread_name_prefix="split-hash") as hasher:
        hashed = None
        while chunk := raw.read(CHUNK):
            if hashed is not None:
                hashed.result()
            hashed = hasher.submit(digest.update, chunk)
            scan.feed(chunk)
            stray = stray or bool(quotes.feed(chunk))
        if hashed is not None:
            hashed.result()
    if scan.header_end is None:
        return None
    scan.evidence.feed(b"", final=True)
    cuts = [] if stray or quotes.unclosed else scan.cuts
    starts = [(scan.header_end, 2 if header else 1), *cuts]
    ends = [offset for offset, _ in cuts] + [scan.offset]
    ranges = tuple(ByteRange(start, end, line) for (start, line), end in zip(starts, ends, strict=True) if end > start)
    return SplitPlan("sha256:" + digest.hexdigest(), ranges, scan.evidence.verdict)


class _Scan:
    def __init__(self, size: int, parts: int, header: bool):
        self.evidence = Evidence()
        self.offset = 0  # bytes fed before the current chunk
        self.quotes = 0
        self.breaks = 0  # line breaks so far: \n, \r and \r\n each count once
        self.last_was_cr = False
        self.header_end: int | None = None if header else 0
        self.targets = deque(size * i // parts for i in range(1, parts))
        self.want: int | None = 0 if header else self._next_target(0)
        self.cuts: list[tuple[int, int]] = []  # (offset of the first byte of a range, its first line)

    def _next_target(self, position: int) -> int | None:
        while self.targets and self.targets[0] <= position:
            self.targets.popleft()
        return self.targets.popleft() if self.targets else None

    def feed(self, chunk: bytes) -> None:
        self.evidence.feed(chunk)
        position = 0
        while position < len(chunk):
            if self.want is None or self.want >= self.offset + len(chunk):
                self._count(chunk[position:])
                break
            if self.offset + position < self.want:
                self._count(chunk[position : self.want - self.offset])
                position = self.want - self.offset
            end = _after_break(chunk, position)
            self._count(chunk[position:end])
            if end == len(chunk) and not chunk.endswith(b"\n"):
                self.want = self.offset + end  # no complete line break here: keep looking in the next chunk
                break
            position = end
            if self.quotes % 2 == 0:
                self._cut(self.offset + position)
        self.offset += len(chunk)

    def _cut(self, at: int) -> None:
        if self.header_end is None:
            self.header_end = at
        else:
            self.cuts.append((at, self.breaks + 1))
        self.want = self._next_target(at)

    def _count(self, piece: bytes) -> None:
        if not piece:
            return
        self.quotes += piece.count(b'"')
        self.breaks += piece.count(b"\n")
        if b"\r" in piece:  # found at memchr speed; counting it (and \r\n) in a file without one costs a pass each
            self.breaks += piece.count(b"\r") - piece.count(b"\r\n")
        if self.last_was_cr and piece[:1] == b"\n":
            self.breaks -= 1  # a \r\n split across two pieces
        self.last_was_cr = piece[-1:] == b"\r"


def _after_break(chunk: bytes, position: int) -> int:
    """The offset just after the next line break (\\n, \\r\\n or \\r), or the end of the chunk."""
    newline, carriage = chunk.find(b"\n", position), chunk.find(b"\r", position)
    found = min((i for i in (newline, carriage) if i >= 0), default=-1)
    if found < 0:
        return len(chunk)
    if chunk[found] == 13 and found + 1 < len(chunk) and chunk[found + 1] == 10:
        return found + 2
    if chunk[found] == 13 and found + 1 == len(chunk):
        return len(chunk)  # a \r at the end: its \n may open the next chunk
    return found + 1


class RangeReader(io.RawIOBase):
    """Reads bytes [start, end) of a seekable file and nothing more."""

    def __init__(self, handle: BinaryIO, byte_range: ByteRange):
        super().__init__()
        handle.seek(byte_range.start)
        self._handle = handle
        self._left = byte_range.end - byte_range.start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._handle.read(size) if size else b""
        self._left -= len(data)
        return data


@contextmanager
def open_range(location: str, byte_range: ByteRange, root: str | None = None) -> Iterator[BinaryIO]:
    """The bytes of one range of a local file (checked to be inside `root`, the folder it was listed in)."""
    with open_location(location, 0, root=root) as handle:
        yield RangeReader(handle, byte_range)
