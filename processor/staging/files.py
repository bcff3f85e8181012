"""Opening a source file as a byte stream, and telling its CSV dialect (encoding, newline, delimiter).

Streams are never read whole: compressed files and zip members are decompressed on the fly,
and a `HashingReader` fingerprints the exact bytes that were loaded while they stream past.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import hashlib
import io
import itertools
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from .. import meter
from ..find import SourceFile
from ..find.streams import open_location

DELIMITERS = (",", ";", "\t", "|")
CHUNK = 1 << 20
HEAD_BYTES = 1 << 20
FIELD_SIZE_LIMIT = 16 * 1024 * 1024
csv.field_size_limit(FIELD_SIZE_LIMIT)

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
UNDECODABLE = re.compile("[\udc00-\udcff]")  # bytes a decoding could not read (ESCAPE, surrogateescape)
_BEYOND_ASCII = re.compile("[\x80-\ud7ff\ue000-\U0010ffff]")  # characters UTF-8 did read, beyond ASCII

ESCAPE = "processor-escape"  # surrogateescape for every byte, ASCII ones too: UTF-16 cuts a character anywhere


def _escape(error: UnicodeError) -> tuple[str, int]:
    """Each byte a codec could not read as U+DC00 + byte (surrogateescape gives up on bytes below 0x80)."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "".join(chr(0xDC00 + byte) for byte in error.object[error.start : error.end]), error.end


codecs.register_error(ESCAPE, _escape)


@dataclass(frozen=True)
class CsvFormat:
    """How a file is written: Python codec, delimiter, newline of its first line, header or not.

    `encoding_settled` is false when the encoding was guessed from a head that could not tell
    (ASCII only, or bytes UTF-8 cannot read): the first whole read of the file settles it.
    """

    encoding: str = "utf-8"
    delimiter: str = ","
    newline: str = "\n"
    header: bool = True
    encoding_settled: bool = True

    @property
    def ascii_compatible(self) -> bool:
        """Whether delimiters and newlines are single bytes (false for UTF-16)."""
        return not self.encoding.startswith("utf-16")


@contextmanager
def open_binary(source: SourceFile, retries: int = 3) -> Iterator[BinaryIO]:
    """The file's bytes, decompressed; raises OSError (or zipfile/gzip errors) when unreadable.

    A remote file is streamed in ranged requests, each retried up to `retries` times (LOAD_RETRIES).
    """
    archive = source.compression == "zip"  # a member's fingerprint is its CRC, not the archive's
    with open_location(source.location, retries, None if archive else source.fingerprint, source.root) as raw:
        if source.compression == "zip":
            with zipfile.ZipFile(raw) as archive, archive.open(source.member) as member:
                yield member
        elif source.compression == "gz":
            with gzip.GzipFile(fileobj=raw, mode="rb") as handle:
                yield handle
        elif source.compression == "bz2":
            with bz2.BZ2File(raw, "rb") as handle:
                yield handle
        else:
            yield raw


class HashingReader(io.RawIOBase):
    """A read-only stream that hashes and counts the bytes read through it."""

    TAIL = 65536

    def __init__(self, raw: BinaryIO):
        super().__init__()
        self._raw = raw
        self._hash = hashlib.sha256()
        self.tail = b""  # the last bytes read, to look at the file's last line
        self.error: Exception | None = (
            None  # why reading stopped (the source, or a tee), whatever a consumer made of it
        )
        self.tees: list[Callable[[bytes], None]] = []  # also receive every byte read from here on; may raise to stop
        self.meter = meter.reading()  # the progress bar's count, when a load task reads through it

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        return size

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._raw.read(size) if size is not None and size >= 0 else self._raw.read()
        except OSError as exc:
            self.error = exc
            raise
        self._seen(data)
        return data

    def raise_read_error(self) -> None:
        """Raise the error that reading met, if any: the source's, or what a watcher raised (a database
        driver may have reworded it)."""
        if self.error is not None:
            raise self.error

    def _seen(self, data: bytes) -> None:
        self._hash.update(data)
        if data:
            if self.meter is not None:
                self.meter.add(len(data))
            try:
                for tee in self.tees:
                    tee(data)
            except Exception as exc:
                self.error = exc
                raise
            self.tail = (self.tail + data)[-self.TAIL :] if len(data) < self.TAIL else data[-self.TAIL :]

    def last_line_has_open_quote(self, fmt: CsvFormat) -> bool:
        """Whether the file's last line holds an odd number of quotes (maybe a quote never closed)."""
        text = codecs.decode(self.tail, fmt.encoding.replace("-sig", ""), errors="replace").rstrip("\r\n")
        last = max(text.rfind("\n"), text.rfind("\r"))
        return text[last + 1 :].count('"') % 2 == 1

    def drain(self) -> None:
        """Read what is left, so the hash covers the whole stream."""
        while self.read(CHUNK):
            pass

    @property
    def fingerprint(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def file_fingerprint(source: SourceFile) -> str:
    """The content fingerprint of a source (its own, such as a zip CRC, when it has one)."""
    if source.fingerprint:
        return source.fingerprint
    with open_binary(source) as raw:
        reader = HashingReader(raw)
        reader.drain()
        return reader.fingerprint


class Evidence:
    """What a file's bytes, fed in order, say about its encoding (the rule of `verdict`)."""

    def __init__(self, guess: str = "utf-8"):
        self.guess = guess
        self.valid = False  # a character beyond ASCII that UTF-8 reads
        self.invalid = False  # bytes UTF-8 cannot read
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._pending = False  # the decoder holds the first bytes of a character

    def feed(self, data: bytes, final: bool = False) -> None:
        if self.valid or (data.isascii() and not self._pending and not final):
            return  # settled as UTF-8, or nothing to learn
        text = self._decoder.decode(data, final)
        self._pending = bool(self._decoder.getstate()[0])
        self.valid = bool(_BEYOND_ASCII.search(text))
        self.invalid = self.invalid or bool(UNDECODABLE.search(text))

    @property
    def verdict(self) -> str:
        """UTF-8, unless the bytes hold some UTF-8 cannot read and not one character beyond ASCII
        that it can: then cp1252. Valid UTF-8 is never read as anything else; a UTF-8 file with a
        few stray bytes stays UTF-8, and the lines holding them are rejected."""
        return "utf-8" if self.valid or not self.invalid else "cp1252"

    @property
    def disproved(self) -> bool:
        """Whether the guess is wrong whatever the rest holds (UTF-8 found where cp1252 was guessed)."""
        return self.valid and self.guess != "utf-8"


def detect_encoding(head: bytes, configured: str | None) -> tuple[str, bool]:
    """The codec for a file and whether it is settled: SRC_ENCODING, else its BOM, else UTF-8 when
    the head holds a UTF-8 character beyond ASCII; else the head's verdict, which the whole file
    settles when it is loaded (see Evidence.verdict)."""
    if configured:
        return configured, True
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec, True
    evidence = Evidence()
    evidence.feed(head)
    return evidence.verdict, evidence.valid


def decode_head(head: bytes, encoding: str) -> str:
    """The head decoded leniently (a cut multibyte character at the end is dropped)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    return decoder.decode(head, final=False)


def detect_newline(text: str) -> str:
    """The line ending of the first line: '\\r\\n', '\\n' or '\\r'."""
    for index, char in enumerate(text):
        if char == "\n":
            return "\n"
        if char == "\r":
            return "\r\n" if text[index + 1 : index + 2] == "\n" else "\r"
    return "\n"


def sniff_delimiter(text: str, configured: str | None) -> str:
    """SRC_DELIMITER, else the candidate that splits the first lines into the most, equal-width rows."""
    if configured:
        return configured
    lines = list(itertools.islice(io.StringIO(text, newline=""), 50))
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the last line of a head may be cut
    best, best_score = ",", (0, 0)
    for candidate in DELIMITERS:
        try:
            widths = [len(row) for row in csv.reader(lines, delimiter=candidate) if row]
        except csv.Error:
            continue
        if not widths or widths[0] < 2:
            continue
        consistent = sum(1 for width in widths if width == widths[0])
        score = (consistent, widths[0])
        if score > best_score:
            best, best_score = candidate, score
    return best


def detect_format(head: bytes, encoding: str | None, delimiter: str | None, header: bool) -> CsvFormat:
    """The CSV dialect of a file from its first bytes and the settings that override detection."""
    codec, settled = detect_encoding(head, encoding)
    text = decode_head(head, codec)
    if text.startswith("\ufeff"):
        text = text[1:]
    return CsvFormat(codec, sniff_delimiter(text, delimiter), detect_newline(text), header, settled)


def text_stream(raw: BinaryIO, fmt: CsvFormat, errors: str = "strict") -> io.TextIOWrapper:
    """A text view of the bytes that keeps line endings as they are (newline='')."""
    encoding = "utf-8-sig" if fmt.encoding in ("utf-8", "utf8") else fmt.encoding
    buffered = raw if isinstance(raw, io.BufferedIOBase) else io.BufferedReader(raw, CHUNK)
    return io.TextIOWrapper(buffered, encoding=encoding, errors=errors, newline="")


def csv_reader(lines, fmt: CsvFormat, strict: bool = False):
    """A csv.reader for the format that reads quotes as PostgreSQL's COPY does (`"ab"c` is `abc`).

    Not strict, an unterminated quote is no error: the careful path's reader finds it by the
    record's width and the end of the file. Strict (for bulk paths) any quoting oddity raises
    csv.Error, which sends the file to the careful path.
    """
    return csv.reader(lines, delimiter=fmt.delimiter, quotechar='"', doublequote=True, strict=strict)


def first_record(rows: Iterator[list[str]]) -> tuple[list[str], bool]:
    """The first record of a reader that is not a blank line (the header, in a file with one; [] when there is
    none), and whether blank lines came before it: they are not rows."""
    blank = False
    for row in rows:
        if row:
            return row, blank
        blank = True
    return [], blank
