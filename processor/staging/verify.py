"""Prove that a bulk load kept every typed value as the file writes it.

A database's bulk parser takes more than a column's type promises to give back: PostgreSQL
reads `007` into a BIGINT as 7, `today` into a DATE as the day of the load, and drops the
offset of `2020-01-05T10:00:00+02:00`; MySQL and SQLite read `007` and `+7` as 7. The sample
that typed the column never saw such a value. So while the bulk path streams a file, a
`Verifier` parses the same bytes on a thread of its own (pyarrow's CSV reader, which runs
outside the GIL) and checks the typed columns a batch at a time: values in a column's plainest
form pass at once (`schema.plain_pattern`, matched once over the batch's values joined by line
ends, which costs about half of matching each value); the few distinct others are judged by
`schema.classify`, the rule the careful path applies. A value its column would not give back
fails the bulk load, and the careful path widens that column; so does a row of another width
than the header's, which the careful path rejects.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import queue
import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from ..db import first_line
from ..schema import ColumnType, classify, is_null, plain_pattern
from .files import CsvFormat
from .rows import short
from .target import Target

# Bytes per hand-over and per parse. pyarrow's CSV stream reads up to 32 blocks ahead of the batch it
# parses, on a thread of its own: with 1 MB blocks that held ~50 MB per worker. Blocks are views of the
# bytes the loader read (no copy), so the queue and the read-ahead pin only a few of its reads.
_BLOCK = 1 << 18
_QUEUED_CHUNKS = 4
_CHECK_ROWS = 8192  # rows checked at once (batches joined up to it)
_WAIT = 0.1
_LINE_END = re.compile(b"\n")


@dataclass(frozen=True)
class _Check:
    name: str  # the table's column
    field: str  # the name the parser gives the field
    column: ColumnType
    pattern: str | None
    lines: str | None  # the pattern for the batch's values joined by line ends: each one plain or empty


@contextlib.contextmanager
def verifying(target: Target, fmt: CsvFormat, needed: bool = True) -> Iterator[Verifier | None]:
    """A running verifier for a file's typed columns (None when it has none, or is not needed); stopped on exit."""
    checks = [
        _check(name, f"f{index}", column)
        for index, (name, column) in enumerate(zip(target.columns, target.types, strict=True))
        if column.kind not in ("text", "empty")
    ]
    if not (checks and needed):
        yield None
        return
    verifier = Verifier(checks, len(target.columns), fmt, frozenset(target.null_values))
    try:
        yield verifier
    finally:
        verifier.finish()


def _check(name: str, field: str, column: ColumnType) -> _Check:
    pattern = plain_pattern(column)
    # Multi-line: the pattern's ^ and $ match at each value's ends; an empty value is NULL in a typed column.
    lines = rf"(?m)\A(?:{pattern}|)(?:\n(?:{pattern}|))*\z" if pattern else None
    return _Check(name, field, column, pattern, lines)


class Verifier:
    """Checks the typed fields of the bytes fed to it, on a thread of its own."""

    def __init__(self, checks: list[_Check], width: int, fmt: CsvFormat, null_values: frozenset[str]):
        self.problem: str | None = None
        self._wrong_row: str | None = None  # the first row of another width than the header's
        self._checks, self._width, self._format, self._null_values = checks, width, fmt, null_values
        self._chunks: queue.Queue[memoryview | None] = queue.Queue(_QUEUED_CHUNKS)
        self._pending: list[bytes | memoryview] = []
        self._pending_size = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="value-verifier", daemon=True)
        self._thread.start()

    def feed(self, data: bytes | None) -> None:
        """Pass on bytes the loader read (None ends them); dropped once the verdict is in.

        Gathered into blocks first: a reader may read 8 KB at a time, and every hand-over
        between threads costs more than parsing 8 KB.
        """
        if data is not None:
            self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size < _BLOCK:
                return
        block = memoryview(b"".join(self._pending))  # one read of a MB or more: itself, not a copy
        # Whole blocks only until the end: a row may straddle one block boundary, not a short block.
        whole = len(block) if data is None else len(block) - len(block) % _BLOCK
        for start in range(0, whole, _BLOCK):
            self._put(block[start : start + _BLOCK])
        self._pending, self._pending_size = ([block[whole:]] if whole < len(block) else []), len(block) - whole
        if data is None:
            self._put(None)

    def _put(self, item: memoryview | None) -> None:
        while not self._done.is_set():
            with contextlib.suppress(queue.Full):
                self._chunks.put(item, timeout=_WAIT)
                return

    def finish(self) -> str | None:
        """Wait for the verdict: the first value a typed column would not give back, or None."""
        self.feed(None)
        self._thread.join()
        return self.problem

    def _run(self) -> None:
        try:
            self.problem = self._verify()
        except Exception as exc:  # a parse the database may still make: the careful path decides
            self.problem = f"the file could not be parsed to check its values ({first_line(exc)})"
        finally:
            self._done.set()
            self._end_chunks()

    def _end_chunks(self) -> None:
        """End the bytes of a verdict given before the last of them: the parser's read-ahead (a pyarrow
        thread) may still wait for the next chunk, which `feed` no longer sends, and the process could
        never exit while it waits."""
        while True:
            with contextlib.suppress(queue.Empty):
                while True:
                    self._chunks.get_nowait()
            with contextlib.suppress(queue.Full):
                self._chunks.put_nowait(None)
                return

    def _verify(self) -> str | None:
        import pyarrow as pa  # imported here: only workers that verify pay for it
        import pyarrow.csv as pa_csv

        _use_returning_pool()

        fmt = self._format
        read = pa_csv.ReadOptions(
            column_names=[f"f{index}" for index in range(self._width)],
            skip_rows=int(fmt.header),
            use_threads=False,
            block_size=_BLOCK,
            encoding="utf8" if fmt.ascii_compatible else fmt.encoding,
        )
        parse = pa_csv.ParseOptions(
            delimiter=fmt.delimiter,
            newlines_in_values=True,
            invalid_row_handler=self._wrong_width,
        )
        convert = pa_csv.ConvertOptions(
            include_columns=[check.field for check in self._checks],
            column_types={check.field: pa.binary() for check in self._checks},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        try:
            batches = pa_csv.open_csv(
                pa.PythonFile(_QueueReader(self._chunks), mode="r"),
                read_options=read,
                parse_options=parse,
                convert_options=convert,
            )
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return None
            raise
        # Checked a few batches at a time: each check costs a few calls per batch, and a 256 KB block
        # holds only ~1,600 rows of a wide file.
        held: list = []
        for batch in itertools.chain(batches, [None]):
            if self._wrong_row is not None:
                return self._wrong_row
            if batch is not None:
                held.append(batch)
                if sum(b.num_rows for b in held) < _CHECK_ROWS:
                    continue
            for check in self._checks if held else ():
                columns = [b.column(check.field) for b in held]
                values = columns[0] if len(columns) == 1 else pa.concat_arrays(columns)
                problem = _first_misfit(values, check, self._null_values)
                if problem:
                    return problem
            held = []
        return self._wrong_row

    def _wrong_width(self, row) -> str:
        """A row of another width than the header's: no bulk loader takes it as it is (COPY fails on it,
        LOAD DATA fills or drops fields), so the careful path rejects it. Noted here, MySQL's LOAD DATA
        needs no per-row test of its own when this check runs (`Target.checked`)."""
        if self._wrong_row is None:
            self._wrong_row = f"a row has {row.actual_columns} fields, not {row.expected_columns}"
        return "skip"


@functools.cache
def _use_returning_pool() -> None:
    """Make pyarrow allocate from jemalloc, handing freed pages back to the system within 100 ms (once per
    process). Its default (mimalloc) kept ~20 MB per worker that the verifier no longer used; parsing takes a
    few MB."""
    import pyarrow as pa

    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(100)
    except NotImplementedError:  # a pyarrow built without jemalloc: its default pool
        return
    pa.set_memory_pool(pool)


def _first_misfit(values, check: _Check, null_values: frozenset[str]) -> str | None:
    """The first value of a batch's field that its column would not give back as written."""
    import pyarrow.compute as pc

    if check.lines and _all_plain(values, check.lines):
        return None
    if check.pattern:
        plain = pc.match_substring_regex(values, check.pattern)
        if pc.all(plain).as_py() is not False:
            return None
        values = pc.filter(values, pc.invert(plain))
    for raw in pc.unique(values).to_pylist():
        text = raw.decode("utf-8", "surrogateescape")
        if is_null(text, check.column, null_values, False) or check.column.accepts(classify(text)):
            continue
        kind = check.column.kind
        return f"column {check.name} holds {short(text)!r}, which a {kind} column would not give back as written"
    return None


def _all_plain(values, lines: str) -> bool:
    """Whether every value of a batch is plain or empty: one match over the values joined by line ends. A
    value holding a line end would read as two values there, so a batch with one is checked value by value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    data = values.buffers()[2]
    if data is not None and _LINE_END.search(memoryview(data)):
        return False
    # Made from buffers: pyarrow converts Python values (pa.array, pa.scalar, a bytes argument) through a
    # shim that imports pandas, which would cost the process 0.1 s and 30 MB.
    whole = pa.Array.from_buffers(pa.int32(), 2, [None, pa.py_buffer(struct.pack("=ii", 0, len(values)))])
    line_end = pa.Array.from_buffers(
        pa.binary(), 1, [None, pa.py_buffer(struct.pack("=ii", 0, 1)), pa.py_buffer(b"\n")]
    )
    joined = pc.binary_join(pa.ListArray.from_arrays(whole, values), line_end[0])
    return pc.match_substring_regex(joined, lines)[0].as_py() is True


class _QueueReader(io.RawIOBase):
    """A read-only stream over the chunks a verifier is fed (None ends them): a read returns at most the rest
    of one chunk, as a view of it (a short read, which a stream reader follows with another)."""

    def __init__(self, chunks: queue.Queue[memoryview | None]):
        super().__init__()
        self._chunks, self._left, self._ended = chunks, memoryview(b""), False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes | memoryview:
        if size is None or size < 0:
            parts = [bytes(self._left)]
            while (chunk := self._next()) is not None:
                parts.append(bytes(chunk))
            self._left = memoryview(b"")
            return b"".join(parts)
        if not self._left:
            self._left = self._next() or memoryview(b"")
        data, self._left = self._left[:size], self._left[size:]
        return data

    def _next(self) -> memoryview | None:
        if self._ended:
            return None
        chunk = self._chunks.get()
        self._ended = chunk is None
        return chunk
