"""PostgreSQL: `COPY ... FROM STDIN` streamed straight from the file's bytes.

The server parses and type-checks every value; the client only streams. Lineage comes from
the `_source_file` column default, a transaction-local setting set before the copy.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable
from typing import BinaryIO

import psycopg2
from sqlalchemy.engine import Connection

from ..db import first_line, refusal_kind
from .encode import Chunk, ChunkStream
from .files import CHUNK, CsvFormat
from .scan import BLANK_LINE, END_MARKER, OPEN_QUOTE, STRAY_QUOTE, TEXT_AFTER_QUOTE
from .tables import SOURCE_SETTING
from .target import DataProblem, Disconnected, Refused, Target

NAME = "copy"
TOOL = "PostgreSQL's COPY"
# Constructs COPY reads otherwise than our reader (scan.py): files holding one take the careful path.
BENDS: frozenset[str] = frozenset({STRAY_QUOTE, TEXT_AFTER_QUOTE, OPEN_QUOTE, END_MARKER, BLANK_LINE})
# Python codec name -> PostgreSQL client encoding; anything else is transcoded to UTF-8 on the way.
_ENCODINGS = {
    "utf-8": "UTF8",
    "utf-8-sig": "UTF8",
    "cp1252": "WIN1252",
    "iso8859-1": "LATIN1",
    "iso8859-15": "LATIN9",
    "cp1250": "WIN1250",
    "cp1251": "WIN1251",
}
_CLEAN = CsvFormat("utf-8", ",", "\n", header=False)


def can_bulk(conn: Connection) -> bool:
    return True


def faithful(target: Target) -> bool:
    """Whether COPY keeps the file's meaning. It knows one null string, the empty field; a null marker
    it finds only by failing on it in a typed column. So not with markers in text columns, nor with
    a marker that is also a valid value (`-999`): those files take the careful path."""
    if not target.null_values:
        return True
    if target.nulls_in_text and target.text_columns:
        return False
    return not (target.typed_columns and target.markers_read_as_values)


def lean(target: Target) -> bool:
    """COPY has no variant that trusts the sample: the bytes go in as they are."""
    return False


def bends(target: Target) -> frozenset[str]:
    """What to watch for in this target's file: blank lines only in a one-column file (in a wider
    one COPY fails on them, missing data, and the careful path takes the file anyway)."""
    return BENDS if len(target.columns) == 1 else BENDS - {BLANK_LINE}


def begin(conn: Connection, target: Target) -> None:
    """Stamp this transaction's rows with their file."""
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", (SOURCE_SETTING, target.path))


def bulk(conn: Connection, target: Target, raw: BinaryIO, fmt: CsvFormat) -> int:
    """COPY the file's bytes; returns rows loaded; raises DataProblem or Disconnected."""
    encoding = _ENCODINGS.get(codecs.lookup(fmt.encoding).name)
    stream = raw if encoding else _Utf8Transcoder(raw, fmt.encoding)
    try:
        return _copy(conn, _copy_sql(conn, target, fmt, encoding or "UTF8"), stream)
    except Disconnected:
        # COPY reports any error of the stream's read() as its own: a file's bytes, not the connection
        if isinstance(stream, _Utf8Transcoder) and stream.error is not None:
            raise DataProblem(f"bytes that are not valid {fmt.encoding}: {stream.error}") from None
        raise


def insert(conn: Connection, target: Target, rows: list[list[str | None]]) -> None:
    """COPY rows that were already checked (None is NULL); raises DataProblem or Disconnected."""
    buffer = io.StringIO()
    # Every value quoted: a bare \r would otherwise end the row (csv only quotes what the line
    # terminator holds). None is then "" too, which FORCE_NULL turns back into NULL.
    csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL).writerows(rows)
    data = io.BytesIO(buffer.getvalue().encode("utf-8", errors="surrogateescape"))
    _copy(conn, _copy_sql(conn, target, _CLEAN, "UTF8"), data)


def load_chunks(conn: Connection, target: Target, chunks: Iterable[Chunk]) -> int:
    """COPY values our code produced, in chunks of columns (None is NULL in every column, "" an empty
    string); returns the rows loaded; raises DataProblem."""
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(c) for c in target.columns)
    sql = f"COPY {quote(target.table)} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER false, ENCODING 'UTF8')"
    return _copy(conn, sql, ChunkStream(chunks, null=""))


def _copy(conn: Connection, sql: str, stream) -> int:
    with conn.connection.driver_connection.cursor() as cursor:
        try:
            cursor.copy_expert(sql, stream, size=CHUNK)
        except psycopg2.Error as exc:
            if refusal_kind(exc):
                raise Refused(exc) from exc
            if isinstance(exc, psycopg2.DataError | psycopg2.IntegrityError):
                raise DataProblem(first_line(exc)) from exc
            if not isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
                raise
            raise Disconnected(first_line(exc)) from exc
        except UnicodeError as exc:
            raise DataProblem(first_line(exc)) from exc
        return cursor.rowcount


def _copy_sql(conn: Connection, target: Target, fmt: CsvFormat, encoding: str) -> str:
    quote = conn.dialect.identifier_preparer.quote

    def names(columns: list[str]) -> str:
        return ", ".join(quote(c) for c in columns)

    options = [
        "FORMAT csv",
        f"HEADER {'true' if fmt.header else 'false'}",
        "DELIMITER '{}'".format(fmt.delimiter.replace("'", "''")),
        "QUOTE '\"'",
        f"ENCODING '{encoding}'",
    ]
    text, typed = target.text_columns, target.typed_columns
    force_null = typed + (text if target.nulls_in_text else [])
    if text and not target.nulls_in_text:
        options.append(f"FORCE_NOT_NULL ({names(text)})")
    if force_null:
        options.append(f"FORCE_NULL ({names(force_null)})")
    return f"COPY {quote(target.table)} ({names(list(target.columns))}) FROM STDIN WITH ({', '.join(options)})"


class _Utf8Transcoder(io.RawIOBase):
    """Bytes in some encoding PostgreSQL cannot read (e.g. UTF-16), re-encoded as UTF-8."""

    def __init__(self, raw: BinaryIO, encoding: str):
        super().__init__()
        self._text = io.TextIOWrapper(
            raw if isinstance(raw, io.BufferedIOBase) else io.BufferedReader(raw), encoding=encoding, newline=""
        )
        self.error: UnicodeError | None = None  # what the last read could not decode

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._text.read(size if size and size > 0 else CHUNK).encode("utf-8")
        except UnicodeError as exc:
            self.error = exc
            raise
