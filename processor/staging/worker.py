"""Load one file: the per-file task the executor runs in a worker process.

A file lands whole or not at all. The bulk path streams it into the database's own loader
while a verifier checks on another thread that every typed value will come back as written;
when the database refuses some of the data, or the verifier finds a value the database would
change, the careful path reads the file again row by row:
it widens columns whose sample was too narrow, rejects rows that are broken (each recorded
with its line and raw text), and isolates rows the database refuses by bisecting batches.
Every outcome, including failures, comes back as a `FileResult`: nothing is raised across
the process boundary.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .. import ledger, meter
from ..config import Settings
from ..db import describe_db_error, dialect_family, engine_for, first_line, refusal_kind, writing
from ..find import SourceFile
from ..find.presence import VANISHED, vanished
from ..ledger import Reject
from ..parallel import WorkerStopped, stopped_by
from ..redact import redact
from ..schema import ColumnType, column_names, rewrites_values
from . import mysql, postgres, sqlite
from .files import ESCAPE, CsvFormat, HashingReader, csv_reader, first_record, open_binary, text_stream
from .records import printable, read_records
from .rows import RowChecker
from .scan import Reencode, Watch
from .split import ByteRange, open_range
from .steady import Stamp, check_steady, stamp_of, steady
from .tables import MORE_COLUMN, delete_file_rows, others_hold_values, reflect, refused, widen
from .target import DataProblem, Disconnected, Refused, Target
from .verify import verifying

log = logging.getLogger(__name__)

WRITERS = {"postgresql": postgres, "mysql": mysql, "sqlite": sqlite}
DEFERRED = "deferred"  # a result status the parent resolves; never in the ledger or the final report
BATCH_ROWS = 5000
MAX_WIDENINGS = 4


@dataclass(frozen=True)
class LoadTask:
    """Everything a worker needs to load one file (picklable)."""

    settings: Settings
    source: SourceFile
    format: CsvFormat
    table: str
    columns: tuple[str, ...]
    pinned: frozenset[str]
    previous_table: str | None
    run_id: str
    nullish: tuple[frozenset[str], ...] = ()  # per column, what the sample held for nothing (see schema.nullish)
    byte_range: ByteRange | None = None  # one piece of a big file; the parent owns the file's ledger row
    sampled_whole: bool = False  # the sample read every row
    previous_lineage: str | None = None  # the `_source_file` of the rows an earlier load left in previous_table
    folded: tuple[str, ...] = ()  # columns its table cannot take: kept as one JSON object in MORE_COLUMN
    alone: bool = False  # the only task of this run for its table (no other writer this run)
    into: str | None = None  # a big file's private table, where its ranges load until the file moves in whole
    stamp: Stamp | None = None  # the file as the pass that cut it into ranges found it
    careful_only: bool = False  # blank lines before the header, which every bulk loader would take for it

    @property
    def table_columns(self) -> tuple[str, ...]:
        """The table's columns this file's rows fill, in file order (with MORE_COLUMN last when it folds)."""
        if not self.folded:
            return self.columns
        return (*(c for c in self.columns if c not in self.folded), MORE_COLUMN)

    @property
    def load_table(self) -> str:
        """The table this task writes: the staging table, or the file's private table for a range."""
        return self.into or self.table

    @property
    def verify(self) -> bool:
        """Whether the bulk path must prove its typed values: VERIFY_VALUES, unless the sample read
        every row and typed them all itself (no column pinned by COLUMN_TYPES)."""
        return self.settings.verify_values and not (self.sampled_whole and not self.pinned)

    @property
    def read_format(self) -> CsvFormat:
        """The format of the bytes this task reads (a range has no header line)."""
        return dataclasses.replace(self.format, header=False) if self.byte_range else self.format

    @property
    def first_line(self) -> int:
        return self.byte_range.first_line if self.byte_range else 1

    def reencoded(self, encoding: str) -> LoadTask:
        """This task, reading the file in `encoding` (settled)."""
        fmt = dataclasses.replace(self.format, encoding=encoding, encoding_settled=True)
        return dataclasses.replace(self, format=fmt)

    @contextlib.contextmanager
    def open(self):
        """The bytes this task loads: the whole file, or its range; raises FileChanged, after the last byte was
        read, when a local file changed meanwhile (see steady.py)."""
        before = stamp_of(self.source)
        if self.byte_range:
            opened = open_range(self.source.location, self.byte_range, self.source.root)
        else:
            opened = open_binary(self.source, self.settings.load_retries)
        with opened as raw:
            try:
                yield raw
            except Exception:  # torn rows, a failed COPY: the file changing under it explains them
                if steady(self.source, before, self.stamp):
                    raise
                check_steady(self.source, before, self.stamp)  # raises FileChanged
        check_steady(self.source, before, self.stamp)


@dataclass
class FileResult:
    """What happened to one file."""

    path: str
    table: str
    status: str
    rows_loaded: int = 0
    rows_rejected: int = 0
    size: int = 0
    seconds: float = 0.0
    method: str = ""
    error: str | None = None
    changes: list[str] = field(default_factory=list)
    attempts: int = 1
    spans: list[tuple[float, float]] = field(default_factory=list, repr=False)  # wall-clock spans spent writing
    needed: dict[str, ColumnType] = field(default_factory=dict)  # DEFERRED: the widenings it waits for


@dataclass
class _Outcome:
    rows: int
    rejected: int
    method: str
    needed: dict[int, ColumnType] = field(default_factory=dict)


class _Failed(Exception):
    def __init__(self, reason: str, rejects: list[Reject] | None = None):
        super().__init__(reason)
        self.rejects = rejects or []


class _NeedsWidening(Exception):
    pass


class _LoadedElsewhere(Exception):
    """Another run committed this very content while this load waited for the file's ledger row."""


class _Deferred(Exception):
    """The file needs a widening that would change other files' values: the parent does it and reloads them."""

    def __init__(self, needed: dict[str, ColumnType]):
        super().__init__(", ".join(needed))
        self.needed = needed


def load_file(task: LoadTask) -> FileResult:
    """Load one file into its table; never raises (failures come back in the result)."""
    size = task.byte_range.end - task.byte_range.start if task.byte_range else task.source.size
    with meter.loading(size) as metered:
        result = _load_file(task)
        result.spans = metered.spans
        return result


def _load_file(task: LoadTask) -> FileResult:
    started = time.monotonic()
    result = FileResult(task.source.path, task.table, ledger.LOADED, size=task.source.size)
    engine = None
    try:
        engine = engine_for(task.settings.dest_sql)
        if task.byte_range is None:
            ledger.mark_loading(engine, task.source, task.table, task.source.size, task.run_id)
            _check_header(task)
        outcome = _load_with_retries(engine, task, result)
        result.rows_loaded, result.rows_rejected, result.method = outcome.rows, outcome.rejected, outcome.method
    except _LoadedElsewhere:
        result.status, result.error = "skipped", "loaded meanwhile by another run"
        log.info("%s: loaded meanwhile by another run; this load rolled back", task.source.path)
    except _Failed as failed:
        _fail(engine, task, result, str(failed), failed.rejects)
    except _Deferred as deferred:  # nothing of it is kept; the ledger says loading until the parent loads it
        result.status, result.needed = DEFERRED, deferred.needed
    except Refused as refusal:
        _fail(engine, task, result, refused(refusal, task.table, len(task.table_columns)), [])
    except Exception as exc:  # any other error fails this file alone
        log.debug("loading %s failed", task.source.path, exc_info=True)
        if task.byte_range is None and vanished(task.source, exc):
            _fail(engine, task, result, VANISHED, [], ledger.GONE)
        else:
            _fail(engine, task, result, _describe(exc, task.settings), [])
    result.seconds = time.monotonic() - started
    return result


def _fail(
    engine: Engine | None,
    task: LoadTask,
    result: FileResult,
    reason: str,
    rejects: list[Reject],
    status: str = ledger.FAILED,
) -> None:
    result.status, result.error, result.rows_rejected = status, reason, len(rejects)
    if engine is None:
        return
    try:
        if task.byte_range:  # the parent records the file once every range is back
            with writing(engine) as conn:
                ledger.add_rejects(conn, task.source, task.source.fingerprint, rejects, task.run_id)
            return
        ledger.record_attempt(
            engine, task.source, task.table, task.source.size, status, reason, len(rejects), task.run_id
        )
        if rejects:
            with writing(engine) as conn:
                ledger.replace_rejects(conn, task.source, None, rejects, task.run_id, all_versions=False)
    except sa.exc.SQLAlchemyError as exc:
        log.error("could not record the failure of %s in the ledger: %s", task.source.path, describe_db_error(exc))


def _describe(exc: BaseException, settings: Settings) -> str:
    if isinstance(exc, sa.exc.DBAPIError):
        text = describe_db_error(exc)
    else:
        text = f"{type(exc).__name__}: {first_line(exc)}" if not isinstance(exc, OSError) else str(exc)
    return redact(text, settings.secrets())


def _check_header(task: LoadTask) -> None:
    """Fail the file if its header is no longer the one it was planned with (it changed mid-run)."""
    if not task.format.header:
        return
    with open_binary(task.source, task.settings.load_retries) as raw:
        header, _ = first_record(csv_reader(text_stream(raw, task.format, errors="replace"), task.format))
    if tuple(column_names(header)) != task.columns:
        raise _Failed("the file's header changed while the run was planning; run again to load its new shape")


def _load_with_retries(engine: Engine, task: LoadTask, result: FileResult) -> _Outcome:
    retries = task.settings.load_retries
    for attempt in range(retries + 1):
        result.attempts = attempt + 1
        try:
            return _load(engine, task, result.changes)
        except (Disconnected, sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if stopped_by() is not None:  # the stop, seen through the driver: unwind, never retry
                raise WorkerStopped(stopped_by()) from None
            if refusal_kind(exc):  # a privilege or a limit: no retry changes it
                raise _Failed(refused(exc, task.table, len(task.table_columns))) from None
            if attempt == retries:
                reason = f"the database connection failed {attempt + 1} times: {_describe(exc, task.settings)}"
                raise _Failed(reason) from None
            delay = min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.5)
            log.warning(
                "%s: database connection lost (%s); retrying in %.1f s",
                task.source.path,
                _describe(exc, task.settings),
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def _load(engine: Engine, task: LoadTask, changes: list[str]) -> _Outcome:
    """Load the file; once more in another encoding when its whole content settles a guessed one."""
    try:
        return _load_as(engine, task, changes)
    except Reencode as change:
        log.info("%s: %s; loading it again as %s", task.source.path, change, change.encoding)
        return _load_as(engine, task.reencoded(change.encoding), changes)


def _load_as(engine: Engine, task: LoadTask, changes: list[str]) -> _Outcome:
    writer = WRITERS[dialect_family(engine)]
    settings = task.settings
    with engine.connect() as conn:
        types = _file_types(conn, task)
        bulk_allowed = writer.can_bulk(conn) and not task.careful_only
    fast = bulk_allowed
    columns = task.table_columns
    for _ in range(MAX_WIDENINGS):
        target = Target(
            task.load_table,
            task.source.lineage,
            columns,
            types,
            settings.null_values,
            settings.null_values_in_text,
            () if task.folded else task.nullish,
        )
        if fast and writer.faithful(target):
            try:
                return _bulk_attempts(engine, writer, task, target)
            except DataProblem as problem:
                log.info("%s: %s; checking it row by row", task.source.path, problem)
        outcome = _careful(engine, writer, task, target)
        if not outcome.needed:
            return outcome
        needed = {columns[i]: t for i, t in outcome.needed.items()}
        _defer_if_others_would_change(engine, task, dict(zip(columns, types, strict=True)), needed)
        wider = _widen(engine, task, needed)
        for index in outcome.needed:
            changes.append(f"widened {task.table}.{columns[index]} to {wider[columns[index]].kind}")
        types = tuple(wider[c] for c in columns)
        fast = bulk_allowed and outcome.rejected == 0 and not task.folded
    raise _Failed("column types kept changing while loading; set COLUMN_TYPES for this table")


def _defer_if_others_would_change(
    engine: Engine, task: LoadTask, current: dict[str, ColumnType], needed: dict[str, ColumnType]
) -> None:
    """Raise _Deferred when widening in place would change how values of other files read back (`3` as `3.0`
    once the column is text): the parent then widens and loads those files again. In place is fine for a
    file alone in its table this run when no other file's rows hold a value in those columns."""
    family = dialect_family(engine)
    changing = [c for c, t in needed.items() if rewrites_values(current[c], current[c].join(t), family)]
    if not changing:
        return
    own = {task.source.lineage, task.previous_lineage or task.source.lineage}
    if task.alone and not others_hold_values(engine, task.table, changing, own):
        return
    raise _Deferred(needed)


def _widen(engine: Engine, task: LoadTask, needed: dict[str, ColumnType]) -> dict[str, ColumnType]:
    try:
        # A range widens its file's private table; the staging table follows when the file moves in.
        return widen(engine, task.load_table, needed, None if task.into else task.settings.deals_view)
    except sa.exc.DBAPIError as exc:
        if refusal_kind(exc) is None:
            raise
        raise _Failed(refused(exc, task.table, len(task.columns))) from None


def _file_types(conn: Connection, task: LoadTask) -> tuple:
    table = reflect(conn, task.load_table)
    missing = [c for c in task.table_columns if table is None or c not in table]
    if missing:
        raise _Failed(f"table {task.table} lacks column(s) {', '.join(missing)}; it changed during the run")
    return tuple(table[c] for c in task.table_columns)


def _begin(conn: Connection, writer, task: LoadTask, target: Target) -> ledger.Claim | None:
    """Start a file's transaction: lock its ledger row (a concurrent load of it waits here), then remove
    the rows of its earlier version. A range only writes its file's private table."""
    writer.begin(conn, target)
    if task.byte_range is not None:
        return None
    return claim_file(conn, task.source, task.previous_table, task.previous_lineage)


def claim_file(
    conn: Connection, file: SourceFile, previous_table: str | None, previous_lineage: str | None = None
) -> ledger.Claim:
    """Lock the file's ledger row for this transaction, then remove the rows of its earlier version: where the
    ledger knew them when the run planned, and where it says they are now (another run may have committed
    them since). After the lock, so that a file's rows are never in twice."""
    claim = ledger.claim(conn, file)
    held = {(previous_table, previous_lineage or file.lineage)}
    if claim.content_hash is not None:
        held.add((claim.table_name, claim.lineage or file.lineage))
    for table, lineage in sorted(pair for pair in held if pair[0]):
        delete_file_rows(conn, table, lineage)
    return claim


def _bulk_attempts(engine: Engine, writer, task: LoadTask, target: Target) -> _Outcome:
    """The bulk path; a writer with a lean variant (one that trusts the sample) tries that first."""
    if writer.lean(target):
        try:
            return _bulk(engine, writer, task, dataclasses.replace(target, lean=True))
        except DataProblem as problem:
            log.info("%s: %s; loading it again with every field checked", task.source.path, problem)
    return _bulk(engine, writer, task, target)


@contextmanager
def _writing_timed(engine: Engine) -> Iterator[Connection]:
    """`writing`, with the time the transaction held the table (from BEGIN, which on SQLite waits for the
    write lock, to COMMIT or ROLLBACK) added to the load's meter: its rows per second count only that."""
    metered, began = meter.current(), None
    try:
        with writing(engine) as conn:
            began = time.time()
            yield conn
    finally:
        if metered is not None and began is not None:
            metered.spans.append((began, time.time()))


def _bulk(engine: Engine, writer, task: LoadTask, target: Target) -> _Outcome:
    with _writing_timed(engine) as conn:
        claim = _begin(conn, writer, task, target)
        with task.open() as raw, verifying(target, task.read_format, needed=task.verify) as verifier:
            reader = HashingReader(raw)
            if task.read_format.encoding == "utf-8-sig" and task.byte_range is None:
                reader.read(len(codecs.BOM_UTF8))  # the database would take the BOM for data
            watch = Watch(task.read_format, writer.bends(target), writer.TOOL)
            reader.tees = [watch.feed, *([verifier.feed] if verifier else [])]
            try:
                checked = dataclasses.replace(target, checked=True) if verifier else target
                rows = writer.bulk(conn, checked, reader, task.read_format)
                reader.drain()
                watch.finish()
            except Exception as exc:
                # A download that failed is the source's fault, not the database's; a construct the
                # watch found is why the database's parser would have gone wrong.
                reader.raise_read_error()
                if isinstance(exc, DataProblem):
                    _settle_encoding(reader, watch)
                raise
            if reader.last_line_has_open_quote(task.format):
                raise DataProblem("the last line has a quote that may never close")
            misfit = verifier.finish() if verifier else None
            if misfit:
                raise DataProblem(misfit)
        _record(conn, task, claim, reader.fingerprint, rows, [])
    return _Outcome(rows, 0, writer.NAME)


def _settle_encoding(reader: HashingReader, watch: Watch) -> None:
    """After the database refused a file whose guessed encoding may be wrong: read the rest, and
    raise Reencode when the whole file calls for another encoding (else the careful path takes it)."""
    if not watch.suspects_encoding:
        return
    reader.tees = [watch.feed_encoding]
    reader.drain()
    watch.finish_encoding()


def _record(
    conn: Connection, task: LoadTask, claim: ledger.Claim | None, streamed: str, rows: int, rejects: list[Reject]
) -> None:
    """Write the file's ledger row in its transaction; raises _LoadedElsewhere when another run put this
    content in meanwhile (the transaction then rolls back: the file is never in twice)."""
    # A source with a fingerprint of its own (a zip member's CRC, a remote ETag) is known by it, so a
    # later run can tell it unchanged without reading it; other files by the hash of their bytes.
    fingerprint = task.source.fingerprint or streamed
    if task.byte_range:
        ledger.add_rejects(conn, task.source, fingerprint, rejects, task.run_id)
        return
    if claim is not None and claim.loaded_by_another(task.table, fingerprint, task.run_id):
        raise _LoadedElsewhere()
    ledger.record_loaded(conn, task.source, task.table, task.source.size, fingerprint, rows, len(rejects), task.run_id)
    ledger.replace_rejects(conn, task.source, fingerprint, rejects, task.run_id, all_versions=True)


def _careful(engine: Engine, writer, task: LoadTask, target: Target) -> _Outcome:
    settings = task.settings
    checker = RowChecker(
        target.columns,
        target.types,
        [c in task.pinned for c in target.columns],
        frozenset(settings.null_values),
        settings.null_values_in_text,
    )
    rejects: list[Reject] = []
    try:
        with _writing_timed(engine) as conn:
            claim = _begin(conn, writer, task, target)
            with task.open() as raw:
                reader = HashingReader(raw)
                watch = Watch(task.read_format, frozenset(), writer.TOOL)  # for a guessed encoding
                reader.tees = [watch.feed]
                stream = text_stream(reader, task.read_format, errors=ESCAPE)
                records = read_records(stream, task.read_format, len(task.columns), task.first_line)
                try:
                    seen, loaded = _careful_rows(conn, writer, task, target, checker, records, rejects)
                except _Failed:
                    _settle_encoding(reader, watch)  # too many rejects may come from a wrong guess
                    raise
                reader.drain()
                watch.finish()
            if checker.needed:
                raise _NeedsWidening()
            if seen != loaded + len(rejects):
                raise _Failed(f"internal error: {seen} rows read but {loaded} loaded and {len(rejects)} rejected")
            _record(conn, task, claim, reader.fingerprint, loaded, rejects)
    except _NeedsWidening:
        return _Outcome(0, len(rejects), "rows", dict(checker.needed))
    return _Outcome(loaded, len(rejects), "rows")


def _careful_rows(conn, writer, task, target, checker, records, rejects) -> tuple[int, int]:
    """Read every record, batch the good ones into the table; returns (rows seen, rows loaded)."""
    if task.read_format.header:
        next(records, None)
    seen = loaded = 0
    batch: list = []
    shape, width = _folding(task), len(task.columns)
    for record in records:
        seen += 1
        if record.error or len(record.fields) != width:
            values, reason = None, record.error or f"expected {width} fields, found {len(record.fields)}"
        else:
            values, reason = checker.check(shape(record.fields))
        if reason:
            rejects.append(Reject(record.line, reason, printable(record.raw)))
        elif not checker.needed:
            batch.append((record, values))
            if len(batch) >= BATCH_ROWS:
                loaded += _insert_isolating(conn, writer, target, batch, rejects)
                batch = []
        _check_limit(rejects, task.settings.max_errors)
    if batch and not checker.needed:
        loaded += _insert_isolating(conn, writer, target, batch, rejects)
        _check_limit(rejects, task.settings.max_errors)
    return seen, loaded


def _folding(task: LoadTask) -> Callable[[list[str]], list[str]]:
    """Fields as the table takes them: as they are, or (WIDE_FILES=json) the kept ones and one JSON object
    of the others, each under its column name, values as written (rows of the file's width only)."""
    if not task.folded:
        return lambda fields: fields
    folded = set(task.folded)
    kept = [i for i, c in enumerate(task.columns) if c not in folded]
    others = [(c, i) for i, c in enumerate(task.columns) if c in folded]

    def shape(fields: list[str]) -> list[str]:
        more = json.dumps({c: fields[i] for c, i in others}, ensure_ascii=False)
        return [*(fields[i] for i in kept), more]

    return shape


def _check_limit(rejects: list[Reject], max_errors: int) -> None:
    if len(rejects) > max_errors:
        first = min(rejects, key=lambda r: r.line)
        raise _Failed(
            f"more than MAX_ERRORS={max_errors} rejected rows (first at line {first.line}: {first.reason})", rejects
        )


def _insert_isolating(conn: Connection, writer, target: Target, batch: list, rejects: list[Reject]) -> int:
    """Insert a batch; when the database refuses it, bisect down to the rows it refuses."""
    try:
        with conn.begin_nested():
            writer.insert(conn, target, [values for _record, values in batch])
        return len(batch)
    except DataProblem as problem:
        if len(batch) == 1:
            record = batch[0][0]
            rejects.append(Reject(record.line, f"the database refused the row: {problem}", printable(record.raw)))
            return 0
        middle = len(batch) // 2
        return _insert_isolating(conn, writer, target, batch[:middle], rejects) + _insert_isolating(
            conn, writer, target, batch[middle:], rejects
        )
