"""One big file loaded by several workers: its range tasks, and the file's outcome once all are back.

Each range commits on its own, so the file's guarantees live here: before the ranges start, the
rows and rejects of any earlier version of the file are removed; the ledger marks the file
loaded only when every range is in; if any range fails (or the file has more than MAX_ERRORS
rejects in all), the rows the other ranges committed are removed, so a re-run redoes it cleanly.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable

from sqlalchemy.engine import Engine

from .. import ledger
from ..config import Settings
from ..db import writing
from ..find import SourceFile
from ..schema import ColumnType
from .split import SplitPlan
from .tables import delete_file_rows
from .worker import DEFERRED, FileResult, LoadTask

log = logging.getLogger(__name__)


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
    """One task per range; each carries the file's fingerprint from the split pass."""
    source = dataclasses.replace(task.source, fingerprint=plan.fingerprint)
    return [dataclasses.replace(task, source=source, byte_range=byte_range) for byte_range in plan.ranges]


def prepare(engine: Engine, task: LoadTask) -> None:
    """Clear what an earlier version of the file left, and mark it loading (before its ranges start)."""
    with writing(engine) as conn:
        if task.previous_table:
            delete_file_rows(conn, task.previous_table, task.previous_lineage or task.source.lineage)
        ledger.clear_rows(conn, task.source)
        ledger.forget_rejects(conn, task.source)
    ledger.mark_loading(engine, task.source, task.table, task.source.size, task.run_id)


class Assembler:
    """Collects range results; returns the file's result when its last range is back."""

    def __init__(self, engine: Engine, max_errors: int):
        self.engine = engine
        self.max_errors = max_errors
        self.expected: dict[str, int] = {}
        self.results: dict[str, list[FileResult]] = {}

    def expect(self, tasks: list[LoadTask]) -> None:
        for task in tasks:
            self.expected[task.source.path] = self.expected.get(task.source.path, 0) + 1

    def add(self, task: LoadTask, result: FileResult) -> FileResult | None:
        path = task.source.path
        self.results.setdefault(path, []).append(result)
        if len(self.results[path]) < self.expected[path]:
            return None
        return self._finish(task, self.results.pop(path))

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
            with writing(self.engine) as conn:
                delete_file_rows(conn, task.table, task.source.path)
            return merged
        if not errors and merged.rows_rejected > self.max_errors:
            errors = [f"more than MAX_ERRORS={self.max_errors} rejected rows across its ranges"]
        if errors:
            merged.status, merged.error = ledger.FAILED, errors[0]
            self._undo(task, merged)
        else:
            with writing(self.engine) as conn:
                ledger.record_loaded(
                    conn,
                    task.source,
                    task.table,
                    task.source.size,
                    task.source.fingerprint,
                    merged.rows_loaded,
                    merged.rows_rejected,
                    task.run_id,
                )
        return merged

    def _undo(self, task: LoadTask, merged: FileResult) -> None:
        with writing(self.engine) as conn:
            removed = delete_file_rows(conn, task.table, task.source.lineage)
        log.warning(
            "%s failed in one of its ranges; removed the %d row(s) the others loaded", task.source.path, removed
        )
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


def _joined(needs: Iterable[dict[str, ColumnType]]) -> dict[str, ColumnType]:
    out: dict[str, ColumnType] = {}
    for need in needs:
        for column, column_type in need.items():
            out[column] = out[column].join(column_type) if column in out else column_type
    return out


def _method(parts: list[FileResult]) -> str:
    methods = sorted({p.method for p in parts if p.method})
    return f"{'+'.join(methods)} in {len(parts)} ranges"
