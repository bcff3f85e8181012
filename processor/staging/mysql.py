"""MySQL / MariaDB: `LOAD DATA LOCAL INFILE` fed through a named pipe, checked for silent coercions.

LOAD DATA LOCAL turns every data error into a warning and stores a zero, an empty string or
0000-00-00 instead. So after each load the warnings are counted: any warning rolls the file
back. Guarded, fields come in through user variables so that empty fields and null markers
become NULL only in typed columns, and the literal word NULL stays text. That costs a third of
the load, so the first attempt is lean: columns whose sample held no empty field, marker or
NULL word go straight in, and the feeder watches the stream for an unquoted NULL. Whatever the
sample missed shows up as a warning or as that NULL, and the file is loaded again guarded.
Integers go in through a CAST, which warns where MariaDB would round `2.5` silently, unless the
value check runs beside the load (`Target.checked`): it fails such a value itself, and the CASTs
cost about 3 % of the server's CPU.
When the server does not allow LOCAL, rows go in as batched multi-row INSERTs.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from sqlalchemy.engine import Connection

from ..db import refusal_kind
from ..parallel import on_stop, process_alive
from ..schema import NULL_WORD
from .encode import Chunk, ChunkStream
from .files import CHUNK, CsvFormat
from .scan import CP1252_UNDEFINED, OPEN_QUOTE, TEXT_AFTER_QUOTE
from .tables import SOURCE_COLUMN
from .target import DataProblem, Disconnected, Refused, Target

NAME = "load data"
TOOL = "MySQL's LOAD DATA"
# Constructs LOAD DATA reads otherwise than our reader (scan.py): files holding one take the careful
# path. Blank lines and line endings other than the file's are the feeder's to notice.
BENDS: frozenset[str] = frozenset({TEXT_AFTER_QUOTE, OPEN_QUOTE, CP1252_UNDEFINED})
# Python codec -> MySQL character set; anything else is transcoded to UTF-8 on the way. MySQL's
# latin1 is cp1252 (0x80 is the euro sign), so ISO 8859-1 files are transcoded.
_ENCODINGS = {"utf-8": "utf8mb4", "utf-8-sig": "utf8mb4", "cp1252": "latin1"}
_DISCONNECTS = {2006, 2013, 2055, 1053, 1927}
_local_infile: dict[str, bool] = {}
_max_packet: dict[str, int] = {}
_ROWS_FORMAT = CsvFormat("utf-8", ",", "\n", header=False)


def can_bulk(conn: Connection) -> bool:
    """Whether the server accepts LOAD DATA LOCAL (asked once per server)."""
    key = str(conn.engine.url)
    if key not in _local_infile:
        _local_infile[key] = bool(conn.exec_driver_sql("SELECT @@GLOBAL.local_infile").scalar())
    return _local_infile[key]


def faithful(target: Target) -> bool:
    """Guarded, every null marker becomes NULL in SQL: any target loads faithfully."""
    return True


def lean(target: Target) -> bool:
    """Whether a lean load would differ from a guarded one: some column's sample held no null."""
    return bool(target.nullish) and not all(_guarded(target, index) for index in range(len(target.columns)))


def bends(target: Target) -> frozenset[str]:
    return BENDS


def begin(conn: Connection, target: Target) -> None:
    return None


def bulk(conn: Connection, target: Target, raw: BinaryIO, fmt: CsvFormat) -> int:
    """LOAD DATA the file's bytes; returns rows loaded; raises DataProblem or Disconnected."""
    import pymysql  # here, not at the top: a run on another database never loads it (~10 MB a process)

    charset = _ENCODINGS.get(codecs.lookup(fmt.encoding).name)
    sql, params = _load_sql(conn, target, fmt, charset or "utf8mb4")
    # Lean, an unquoted NULL anywhere is lost; guarded, one that ends a line (the last field's,
    # which the load would refuse, or a field beyond the last column's, which it would drop).
    feeder = _Feeder(raw, None if charset else fmt.encoding, fmt, null_word="field" if target.lean else "line end")
    with feeder.pipe() as path, _driver_errors(), conn.connection.driver_connection.cursor() as cursor:
        try:
            rows = cursor.execute(sql, [path, *params])
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] in (1148, 3948, 2068):  # LOCAL refused by the server or client
                _local_infile[str(conn.engine.url)] = False
            raise
        feeder.finish()
        if feeder.saw_null_word:  # the feeder stopped there: no need to read on
            raise DataProblem(f"an unquoted {NULL_WORD}, which LOAD DATA reads as no value")
        _raise_on_warnings(cursor)
    if feeder.error is not None:
        raise DataProblem(f"could not read the file: {feeder.error}")
    if feeder.saw_mixed_line_ends:
        raise DataProblem("the file mixes line endings, which LOAD DATA reads as data")
    if feeder.saw_blank_line:
        raise DataProblem("the file has blank lines, which LOAD DATA would take for rows")
    if feeder.ends_in_delimiter:
        raise DataProblem("the file ends in a delimiter without a line end, which LOAD DATA drops with its field")
    if rows + int(fmt.header) != feeder.lines:
        # MySQL reads an unterminated quote to the end of the file without a warning; quoted
        # newlines are legal but rare, so any mismatch takes the careful path.
        raise DataProblem(f"{feeder.lines} lines held {rows} rows: some rows span several lines")
    return rows


def insert(conn: Connection, target: Target, rows: list[list[str | None]]) -> None:
    """Rows that were already checked (None is NULL), through LOAD DATA when the server allows it
    (no statement size limit: a value of any size LONGTEXT holds goes in), else as multi-row
    INSERTs, where a row over the server's max_allowed_packet is refused before it is sent (the
    server would drop the connection). Strict mode: a bad value is an error, never a zero."""
    if can_bulk(conn):
        loaded = load_chunks(conn, target, [list(zip(*rows, strict=True))])
        if loaded != len(rows):
            raise DataProblem(f"{len(rows)} rows sent, {loaded} loaded")
        return
    limit = _packet_limit(conn)
    for row in rows:
        if sum(len(value) for value in row if value.__class__ is str) * 4 > limit and _row_bytes(row) > limit:
            raise DataProblem(f"a row of {_row_bytes(row):,} bytes is over the server's max_allowed_packet ({limit:,})")
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(c) for c in [*target.columns, SOURCE_COLUMN])
    marks = ", ".join(["%s"] * (len(target.columns) + 1))
    sql = f"INSERT INTO {quote(target.table)} ({columns}) VALUES ({marks})"
    with _driver_errors(), conn.connection.driver_connection.cursor() as cursor:
        cursor.executemany(sql, [[*row, target.path] for row in rows])
        _raise_on_warnings(cursor)


def load_chunks(conn: Connection, target: Target, chunks: Iterable[Chunk]) -> int:
    """LOAD DATA values our code produced, in chunks of columns (None is NULL in every column, "" an
    empty string); returns the rows loaded; raises DataProblem.

    Every string is quoted and NULL is the unquoted word, so no field needs a guard. Without LOCAL,
    multi-row INSERTs of the same rows.
    """
    if not can_bulk(conn):
        loaded = 0
        for chunk in chunks:
            rows = list(zip(*chunk, strict=True))
            insert(conn, target, rows)
            loaded += len(rows)
        return loaded
    quote = conn.dialect.identifier_preparer.quote
    sql = (
        f"LOAD DATA LOCAL INFILE %s INTO TABLE {quote(target.table)} CHARACTER SET utf8mb4 "
        "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY %s "
        f"({', '.join(quote(c) for c in target.columns)}) SET {quote(SOURCE_COLUMN)} = %s"
    )
    feeder = _Feeder(ChunkStream(chunks, null=NULL_WORD), None, _ROWS_FORMAT)
    with feeder.pipe() as path, _driver_errors(), conn.connection.driver_connection.cursor() as cursor:
        loaded = cursor.execute(sql, [path, "\n", target.path])
        feeder.finish()
        _raise_on_warnings(cursor)
    if feeder.error is not None:
        raise DataProblem(f"could not encode the rows: {feeder.error}")
    return loaded


def _row_bytes(row: Sequence) -> int:
    """About the bytes a row's values take in a statement (values of a DataFrame need not be strings)."""
    return sum(len(str(value).encode("utf-8", "surrogateescape")) for value in row if value is not None)


def _packet_limit(conn: Connection) -> int:
    """The server's max_allowed_packet less room for the statement around the values (asked once per server)."""
    key = str(conn.engine.url)
    if key not in _max_packet:
        _max_packet[key] = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar())
    return _max_packet[key] - 4096


def _load_sql(conn: Connection, target: Target, fmt: CsvFormat, charset: str) -> tuple[str, list[str]]:
    quote = conn.dialect.identifier_preparer.quote
    fields, assignments, params = [], [], []
    for index, (column, column_type) in enumerate(zip(target.columns, target.types, strict=True)):
        variable = f"@c{index}"
        if target.lean and not _guarded(target, index):
            if column_type.kind != "integer" or target.checked:
                fields.append(quote(column))
                continue
            expression, values = f"CAST({variable} AS SIGNED)", []  # MariaDB rounds '2.5' silently; CAST warns
        else:
            expression, values = _value_expression(variable, target, column_type.kind)
        fields.append(variable)
        assignments.append(f"{quote(column)} = {expression}")
        params += values
    # LOAD DATA drops one empty field beyond the last column without a warning (`1,2,` under a
    # two-column header, which our reader rejects): @extra catches it. A short row leaves the
    # variables of its missing fields NULL, also without the warning MySQL gives for a missing
    # column. Either way this CAST warns instead (so does an unquoted NULL word in the last
    # column, or as the extra field, which the feeder watches for; the careful path sorts it out).
    # The value check beside the load fails such a row itself: then no per-row test is needed (it costs
    # about 4 % of the server's CPU).
    wrong = ["@extra IS NOT NULL", *([f"{fields[-1]} IS NULL"] if fields[-1].startswith("@") else [])]
    source = f"IF({' OR '.join(wrong)}, CAST('processor: a row has the wrong number of fields' AS DATE), %s)"
    if target.checked:
        source = "%s"
    else:
        fields.append("@extra")
    assignments.append(f"{quote(SOURCE_COLUMN)} = {source}")
    params.append(target.path)
    sql = (
        f"LOAD DATA LOCAL INFILE %s INTO TABLE {quote(target.table)} CHARACTER SET {charset} "
        "FIELDS TERMINATED BY %s OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY %s "
        f"{'IGNORE 1 LINES ' if fmt.header else ''}({', '.join(fields)}) SET {', '.join(assignments)}"
    )
    return sql, [fmt.delimiter, fmt.newline, *params]


def _guarded(target: Target, index: int) -> bool:
    """Whether a column needs the guarded expression even in a lean load.

    A typed column does when its sample held a null: unguarded, a later one warns and the file is
    loaded again. So does every typed column when a null marker reads as a value (`-999`), which
    would go in without a warning. A text column takes any value without a warning, so it does
    whenever an empty field must become NULL there (NULL_VALUES_IN_TEXT), or its sample held the
    NULL word.
    """
    seen = target.nullish[index] if target.nullish else frozenset({""})
    kind = target.types[index].kind
    if kind == "text":
        return target.nullable(kind) or NULL_WORD in seen
    return bool(seen) or target.markers_read_as_values


def _value_expression(variable: str, target: Target, kind: str) -> tuple[str, list[str]]:
    """SQL for one field: an unquoted NULL word arrives as SQL NULL and is turned back into text."""
    word_null = "NULL" in target.null_values and target.nullable(kind)
    literal_null = "NULL" if word_null else "'NULL'"
    if not target.nullable(kind):
        return f"IF({variable} IS NULL, {literal_null}, {variable})", []
    markers = ["", *target.null_values]
    placeholders = ", ".join(["%s"] * len(markers))
    expression = (
        f"CASE WHEN {variable} IS NULL THEN {literal_null} WHEN {variable} IN ({placeholders}) THEN NULL "
        f"ELSE {variable} END"
    )
    if kind == "integer" and not target.checked:  # MariaDB rounds '2.5' into a BIGINT silently; CAST warns
        expression = f"CAST({expression} AS SIGNED)"
    return expression, markers


def _raise_on_warnings(cursor) -> None:
    cursor.execute("SHOW COUNT(*) WARNINGS")
    count = cursor.fetchone()[0]
    if count:
        cursor.execute("SHOW WARNINGS LIMIT 1")
        level, code, message = cursor.fetchone()
        raise DataProblem(f"{count} warning(s), first: {message}")


@contextlib.contextmanager
def _driver_errors() -> Iterator[None]:
    import pymysql

    try:
        yield
    except (pymysql.err.DataError, pymysql.err.IntegrityError, pymysql.err.InternalError, UnicodeError) as exc:
        raise DataProblem(_message(exc)) from exc
    except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
        if refusal_kind(exc):  # a privilege or a limit: no other row or retry helps
            raise Refused(exc) from exc
        if isinstance(exc, pymysql.err.InterfaceError) or (exc.args and exc.args[0] in _DISCONNECTS):
            raise Disconnected(_message(exc)) from exc
        raise DataProblem(_message(exc)) from exc


def _message(exc: BaseException) -> str:
    if len(exc.args) >= 2:
        return f"{exc.args[1]} ({exc.args[0]})"
    return str(exc) or type(exc).__name__


class _Feeder:
    """Streams bytes into a named pipe that LOAD DATA LOCAL reads; counts lines, notes line endings
    other than the file's (LOAD DATA reads them as data, our reader as row ends) and read errors."""

    def __init__(self, raw: BinaryIO, transcode_from: str | None, fmt: CsvFormat, null_word: str = ""):
        self.raw, self.transcode_from = raw, transcode_from
        self.newline = fmt.newline.encode()
        self.error: BaseException | None = None
        self.saw_mixed_line_ends = False
        self.ends_in_delimiter = False
        self.delimiter = fmt.delimiter.encode()
        self.saw_blank_line = False
        self.saw_null_word = False
        self._null_word = _null_word_pattern(fmt.delimiter, null_word == "line end") if null_word else None
        self.lines = 0
        self._thread: threading.Thread | None = None
        self._path = ""

    @contextlib.contextmanager
    def pipe(self) -> Iterator[str]:
        sweep_pipes()
        folder = tempfile.mkdtemp(prefix=f"{PIPE_PREFIX}{os.getpid()}-")
        _pipes.add(folder)
        self._path = os.path.join(folder, "data.csv")
        os.mkfifo(self._path, 0o600)
        self._thread = threading.Thread(target=self._run, name="load-data-feeder", daemon=True)
        self._thread.start()
        try:
            yield self._path
        finally:
            self.finish()
            _remove(folder)

    def finish(self) -> None:
        """Wait for the feeder; unblock it if the server never opened the pipe."""
        if self._thread is None or not self._thread.is_alive():
            return
        with contextlib.suppress(OSError):
            fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK)
            os.close(fd)
        self._thread.join()

    def _chunks(self) -> Iterator[bytes]:
        if self.transcode_from is None:
            while chunk := self.raw.read(CHUNK):
                yield chunk
            return
        decoder = codecs.getincrementaldecoder(self.transcode_from)("strict")
        while chunk := self.raw.read(CHUNK):
            yield decoder.decode(chunk).encode("utf-8")
        yield decoder.decode(b"", final=True).encode("utf-8")

    def _run(self) -> None:
        last = b""
        try:
            with open(self._path, "wb") as pipe:
                for chunk in self._chunks():
                    if not chunk:
                        continue
                    if not self.saw_mixed_line_ends:
                        self.saw_mixed_line_ends = mixes_line_ends(last[-1:], chunk, self.newline)
                    self.lines += chunk.count(self.newline) + (last[-1:] + chunk[:1] == self.newline == b"\r\n")
                    joined = (last or self.newline) + chunk  # the file's first line follows a line end too
                    if not self.saw_blank_line:
                        self.saw_blank_line = self.newline * 2 in joined
                    if self._null_word and NULL_WORD.encode() in joined and self._null_word.search(joined):
                        self.saw_null_word = True
                        break  # the lean load is lost: end it here rather than at the end of the file
                    last = joined[-len(NULL_WORD) - 1 :]
                    pipe.write(chunk)
            if last and not last.endswith(self.newline):
                self.lines += 1  # a last line without its line ending
                self.ends_in_delimiter = last.endswith(self.delimiter)
        except BrokenPipeError:
            pass
        except Exception as exc:  # reported by bulk() after the statement
            self.error = exc


PIPE_PREFIX = "processor-"
_swept = False
_pipes: set[str] = set()  # this process's pipe folders


def _remove(folder: str) -> None:
    """Remove a pipe folder and what it holds (a pipe still open is removed all the same)."""
    _pipes.discard(folder)
    with contextlib.suppress(OSError):
        for leftover in os.listdir(folder):
            os.unlink(os.path.join(folder, leftover))
        os.rmdir(folder)


def _remove_own_pipes() -> None:
    for folder in list(_pipes):
        _remove(folder)


on_stop(_remove_own_pipes)  # a stopped worker removes its pipes before anything else


def sweep_pipes() -> None:
    """Remove the pipe folders that processes killed mid-load (kill -9) left in the temporary folder; once per process."""
    global _swept
    if _swept:
        return
    _swept = True
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        owner = name[len(PIPE_PREFIX) :].split("-", 1)[0]
        if not name.startswith(PIPE_PREFIX) or not owner.isdigit() or process_alive(int(owner)):
            continue
        _remove(os.path.join(base, name))


def mixes_line_ends(before: bytes, chunk: bytes, newline: bytes) -> bool:
    """Whether a chunk (after the byte `before`) holds a line ending other than `newline`; a CR
    that ends the chunk is judged with the next one."""
    if newline == b"\n":
        return b"\r" in chunk
    if newline == b"\r":
        return b"\n" in chunk
    piece = (before if before == b"\r" else b"") + chunk
    pairs = piece.count(b"\r\n")
    return piece.count(b"\n") != pairs or piece.count(b"\r") - piece.endswith(b"\r") != pairs


def _null_word_pattern(delimiter: str, line_end: bool = False) -> re.Pattern[bytes]:
    """An unquoted field that is exactly NULL, or only one that ends a line (at a chunk's end it may
    be a longer word: a false alarm costs a reload)."""
    edge = re.escape(delimiter.encode()) + rb"|\r|\n"
    after = rb"\r|\n" if line_end else edge
    return re.compile(rb"(?<=" + edge + rb")" + NULL_WORD.encode() + rb"(?=" + after + rb"|$)")
