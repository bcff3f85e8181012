"""One big file loaded by several workers: its range tasks, and the file's outcome once all are back.

No reader sees a row of the file before all of it is in. Its ranges load into a private table
of their own (`_processor_part_<file>_<run>`, each range committing there); when the last range
is back, one transaction locks the file's ledger row, removes the rows of its earlier version,
moves the new rows into the staging table and marks the file loaded. If any range fails (or the
file has more than MAX_ERRORS rejects in all), or the run stops, the private table is dropped and
the staging table never held any of it. A private table that a killed run left behind is dropped
when the file is next loaded.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import ledger
from ..config import Settings
from ..db import describe_db_error, dialect_family, writing
from ..find import SourceFile
from ..schema import ColumnType, rewrites_values
from .split import SplitPlan
from .tables import SOURCE_COLUMN, drop_tables, reflect, table_object, widen
from .worker import DEFERRED, FileResult, LoadTask, claim_file

log = logging.getLogger(__name__)

PART_PREFIX = "_processor_part_"


def parts_for(source: SourceFile, settings: Settings, family: str) -> int:
    """How many ranges to cut a file into (1: load it whole)."""
    if (
        settings.split_min_bytes <= 0
        or source.size < settings.split_min_bytes
        or settings.load_workers < 2
        or source.compression is not None
        or family == "sqlite"
        or "://" in source.location
    ):
        return 1
    return max(settings.load_workers, math.ceil(source.size / settings.split_min_bytes))


def range_tasks(task: LoadTask, plan: SplitPlan) -> list[LoadTask]:
    """One task per range; each carries the file's fingerprint and stamp from the split pass."""
    source = dataclasses.replace(task.source, fingerprint=plan.fingerprint)
    return [
        dataclasses.replace(task, source=source, byte_range=byte_range, stamp=plan.stamp) for byte_range in plan.ranges
    ]


def part_prefix(file: SourceFile) -> str:
    """The start of the names of a file's private tables (one per run that loads it), from its ledger key."""
    return f"{PART_PREFIX}{ledger.key_of(file)[:12]}_"


def prepare(engine: Engine, task: LoadTask) -> LoadTask:
    """Drop what killed runs (or an earlier round of this run) left of the file, create its private table and
    mark it loading (before its ranges start); returns the task with its private table."""
    private = part_prefix(task.source) + task.run_id.replace("-", "")[:8]
    _drop_parts(engine, task.source)
    with engine.connect() as conn:
        staged = reflect(conn, task.table) or {}
    types = {c: staged[c] for c in task.table_columns}
    with writing(engine) as conn:
        ledger.forget_run_rejects(conn, task.source, task.run_id)  # of a round whose ranges were not kept
        table_object(private, types, dialect_family(engine), scratch=True).create(conn)
    ledger.mark_loading(engine, task.source, task.table, task.source.size, task.run_id)
    return dataclasses.replace(task, into=private)


def _drop_parts(engine: Engine, file: SourceFile) -> None:
    prefix = part_prefix(file)
    with engine.connect() as conn:
        leftovers = [name for name in sa.inspect(conn).get_table_names() if name.startswith(prefix)]
    if leftovers:
        log.info("%s: dropping %s, left by a run that was stopped", file.path, ", ".join(leftovers))
        drop_tables(engine, leftovers)


class Assembler:
    """Collects range results; returns the file's result when its last range is back."""

    def __init__(self, engine: Engine, max_errors: int):
        self.engine = engine
        self.max_errors = max_errors
        self.expected: dict[str, int] = {}
        self.results: dict[str, list[FileResult]] = {}
        self.private: dict[str, str] = {}

    def expect(self, tasks: list[LoadTask]) -> None:
        for task in tasks:
            self.expected[task.source.path] = self.expected.get(task.source.path, 0) + 1
            self.private[task.source.path] = task.load_table

    def add(self, task: LoadTask, result: FileResult) -> FileResult | None:
        path = task.source.path
        self.results.setdefault(path, []).append(result)
        if len(self.results[path]) < self.expected[path]:
            return None
        try:
            return self._finish(task, self.results.pop(path))
        finally:
            drop_tables(self.engine, [self.private.pop(path)])

    def discard(self) -> None:
        """Drop the private tables of files still loading (the run stops; their workers were stopped)."""
        try:
            drop_tables(self.engine, list(self.private.values()))
        except sa.exc.SQLAlchemyError as exc:  # the next load of each file drops them
            log.debug("could not drop private tables: %s", exc)
        self.private.clear()

    def _finish(self, task: LoadTask, parts: list[FileResult]) -> FileResult:
        merged = FileResult(
            task.source.path,
            task.table,
            ledger.LOADED,
            size=task.source.size,
            rows_loaded=sum(p.rows_loaded for p in parts),
            rows_rejected=sum(p.rows_rejected for p in parts),
            seconds=max(p.seconds for p in parts),
            method=_method(parts),
            changes=[c for p in parts for c in p.changes],
            attempts=max(p.attempts for p in parts),
            spans=[span for p in parts for span in p.spans],
        )
        errors = [p.error for p in parts if p.status == ledger.FAILED]
        waiting = [p for p in parts if p.status == DEFERRED]
        if waiting and not errors:  # the parent widens the table, then loads the whole file again
            merged.status, merged.needed, merged.rows_loaded = DEFERRED, _joined(p.needed for p in waiting), 0
            return merged  # its private table is dropped: the staging table never held any of it
        if not errors and merged.rows_rejected > self.max_errors:
            errors = [f"more than MAX_ERRORS={self.max_errors} rejected rows across its ranges"]
        if errors:
            merged.status, merged.error = ledger.FAILED, errors[0]
            self._fail(task, merged)
        else:
            try:
                needed = _rewriting_widenings(self.engine, task)
                if needed:  # moving in would change values as they read back: the parent widens apart
                    merged.status, merged.needed, merged.rows_loaded = DEFERRED, needed, 0
                elif not _move_in(self.engine, task, merged):
                    merged.status, merged.error, merged.rows_loaded = "skipped", "loaded meanwhile by another run", 0
            except _MoveFailed as exc:
                merged.status, merged.error = ledger.FAILED, str(exc)
                self._fail(task, merged)
        return merged

    def _fail(self, task: LoadTask, merged: FileResult) -> None:
        log.warning("%s failed: %s; none of its rows went into %s", task.source.path, merged.error, task.table)
        ledger.record_attempt(
            self.engine,
            task.source,
            task.table,
            task.source.size,
            ledger.FAILED,
            merged.error,
            merged.rows_rejected,
            task.run_id,
        )
        merged.rows_loaded = 0


class _MoveFailed(Exception):
    pass


def _rewriting_widenings(engine: Engine, task: LoadTask) -> dict[str, ColumnType]:
    """The columns whose values would read back changed if the private table's rows moved in now (the staging
    table widened to text from an inexact kind, or this file's values cast to text), with the types asked for;
    empty when moving in changes no value. Each range deferred such a widening of its own; this catches the
    ones the staging table took meanwhile."""
    with engine.connect() as conn:
        staged = reflect(conn, task.table) or {}
        loaded_as = reflect(conn, task.load_table) or {}
    return _rewrites(staged, loaded_as, dialect_family(engine))


def _rewrites(staged: dict[str, ColumnType], loaded_as: dict[str, ColumnType], family: str) -> dict[str, ColumnType]:
    """Pure: see _rewriting_widenings."""
    out = {}
    for column, private in loaded_as.items():
        if column not in staged:
            continue
        final = staged[column].join(private)
        if rewrites_values(staged[column], final, family) or rewrites_values(private, final, family):
            out[column] = private
    return out


def _move_in(engine: Engine, task: LoadTask, merged: FileResult) -> bool:
    """Move the file's rows from its private table into the staging table with its ledger row, in one
    transaction; returns False (moving nothing) when another run loaded this content meanwhile.

    Raises _MoveFailed (the transaction rolled back) when the database refuses.
    """
    path, fingerprint = task.source.path, task.source.fingerprint
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            loaded_as = reflect(conn, task.load_table) or {}
        # A range may have widened a column of the private table: the staging table must hold it too.
        widen(engine, task.table, loaded_as, task.settings.deals_view)
        with writing(engine) as conn:
            claim = claim_file(conn, task.source, task.previous_table, task.previous_lineage)
            if claim.loaded_by_another(task.table, fingerprint, task.run_id):
                return False
            quote = conn.dialect.identifier_preparer.quote
            columns = ", ".join(quote(c) for c in [*task.table_columns, SOURCE_COLUMN])
            moved = conn.exec_driver_sql(
                f"INSERT INTO {quote(task.table)} ({columns}) SELECT {columns} FROM {quote(task.load_table)}"
            ).rowcount
            if moved != merged.rows_loaded:
                raise _MoveFailed(f"internal error: {merged.rows_loaded} rows loaded in ranges but {moved} to move")
            ledger.record_loaded(
                conn, task.source, task.table, task.source.size, fingerprint, moved, merged.rows_rejected, task.run_id
            )
            ledger.keep_rejects_of(conn, task.source, fingerprint, task.run_id)
    except sa.exc.SQLAlchemyError as exc:
        raise _MoveFailed(f"moving its rows into {task.table} failed: {describe_db_error(exc, engine.url)}") from None
    log.info("%s: its %d rows moved into %s in %.1f s", path, moved, task.table, time.monotonic() - started)
    return True


def _joined(needs: Iterable[dict[str, ColumnType]]) -> dict[str, ColumnType]:
    out: dict[str, ColumnType] = {}
    for need in needs:
        for column, column_type in need.items():
            out[column] = out[column].join(column_type) if column in out else column_type
    return out


def _method(parts: list[FileResult]) -> str:
    methods = sorted({p.method for p in parts if p.method})
    return f"{'+'.join(methods)} in {len(parts)} ranges"
