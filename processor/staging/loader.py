"""The stage: walk → profile (parallel) → plan and create tables (parent) → load (parallel) → report.

Tables are created or altered by the parent, before any worker starts, so workers never race
to create them. Files whose content the ledger already holds are skipped; files whose content
changed are reloaded, their old rows replaced in the same transaction.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import time
import uuid
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.engine import Engine

from .. import extras, ledger
from ..config import Settings
from ..db import check_connection, create_engine, dialect_family, release_engines
from ..find import Discovery, SourceFile, discover
from ..find.presence import VANISHED, vanished
from ..find.streams import open_location
from ..names import check_names
from ..parallel import run_tasks
from ..schema import table_name_for
from .files import file_fingerprint
from .gone import find_gone, settle_gone
from .plan import TablePlan, overrides_by_table, plan_table
from .profile import FileProfile, profile_file
from .ranges import Assembler, parts_for, prepare, range_tasks
from .report import LoadReport
from .split import SplitPlan, plan_split
from .tables import SOURCE_COLUMN, apply_plan, drop_tables, index_source_column, reflect
from .worker import FileResult, LoadTask, load_file

log = logging.getLogger(__name__)


class Progress(Protocol):
    """Told how many files there are, then of each file's outcome as it arrives."""

    def expect(self, total: int) -> None: ...

    def __call__(self, result: FileResult) -> None: ...


@dataclass(frozen=True)
class ProfileTask:
    settings: Settings
    source: SourceFile
    table: str
    entry: ledger.Entry | None
    split_parts: int = 1


@dataclass(frozen=True)
class Profiled:
    """A profiled file, or why it needs no loading (unchanged, empty) or cannot be loaded."""

    source: SourceFile
    table: str
    profile: FileProfile | None = None
    skip: str | None = None
    error: str | None = None
    split: SplitPlan | None = None


def load(settings: Settings, engine: Engine | None = None, progress: Progress | None = None) -> LoadReport:
    """Stage every matching file; raises SourceError, ConfigError or DatabaseError before any load starts."""
    extras.check(settings.src_data_folder, settings.executor)
    check_names(settings)
    discovery = discover(settings.src_data_folder, settings.src_file_name, settings.load_retries, settings.source_name)
    own = engine is None
    engine = engine or create_engine(settings.dest_sql)
    try:
        return _load(settings, engine, discovery, progress)
    finally:
        release_engines()  # the inline worker's
        if own:
            engine.dispose()


def _load(settings: Settings, engine: Engine, discovery: Discovery, progress: Progress | None) -> LoadReport:
    started = time.monotonic()
    check_connection(engine)
    ledger.ensure(engine)
    report = LoadReport(
        run_id=str(uuid.uuid4()), matches=discovery.matches, workers=settings.load_workers, source=discovery.source
    )
    routes = {source.path: route_table(source, settings) for source in discovery.files}
    if settings.full_refresh:
        _full_refresh(engine, sorted(set(routes.values())))
    entries = _known(engine, settings, discovery, report)
    if progress:
        progress.expect(len(discovery.files))
    family = dialect_family(engine)
    tasks = [
        ProfileTask(settings, s, routes[s.path], entries.get(ledger.key_of(s)), parts_for(s, settings, family))
        for s in discovery.files
    ]
    profiled = list(run_tasks(profile_source, tasks, settings, _profile_crash))
    ready = _settle(engine, report, profiled, progress)
    plans = _plan(engine, settings, ready)
    for plan in plans.values():
        for note in plan.notes:
            log.warning("%s", note)
        report.schema_changes += apply_plan(engine, plan, settings.deals_view)
    for change in report.schema_changes:
        log.info("schema: %s", change)
    for table in _replacing(ready, entries):
        if index_source_column(engine, table):
            report.schema_changes.append(f"indexed {table}.{SOURCE_COLUMN} (changed files are replaced by look-up)")
    load_tasks, assembler = _load_tasks(engine, settings, report.run_id, ready, plans, entries)
    try:
        for result in run_tasks(load_file, load_tasks, settings, _load_crash):
            if result.path in assembler.expected:
                result = assembler.add(next(t for t in load_tasks if t.source.path == result.path), result)
                if result is None:
                    continue
            report.files.append(result)
            report.schema_changes += result.changes
            if progress:
                progress(result)
    except BaseException:
        stopped = ledger.mark_interrupted(engine, report.run_id)
        log.error("run stopped: %d file(s) were loading and rolled back", stopped)
        raise
    report.seconds = time.monotonic() - started
    return report


def _known(engine: Engine, settings: Settings, discovery: Discovery, report: LoadReport) -> dict[str, ledger.Entry]:
    """The ledger's entries by key, once the files of an upgraded ledger are adopted by this source and the
    files gone from it are noted (and, with REMOVE_GONE, removed)."""
    entries = ledger.adopt(engine, discovery.files, ledger.read(engine))
    listed = {source.path for source in discovery.files}
    gone = find_gone(settings, discovery.source, entries.values(), listed)
    report.gone = settle_gone(engine, settings, gone, report.run_id)
    return entries


def route_table(source: SourceFile, settings: Settings) -> str:
    """The staging table a file loads into: DEST_TABLE (as written: names.py refuses any other), or the file's stem."""
    if settings.dest_table:
        return settings.dest_table
    return table_name_for(source.path)


def _full_refresh(engine: Engine, tables: list[str]) -> None:
    log.info("FULL_REFRESH: dropping %s and forgetting their files", ", ".join(tables))
    drop_tables(engine, tables)
    ledger.forget(engine, tables)


def profile_source(task: ProfileTask) -> Profiled:
    """Decide whether a file needs loading and, if so, profile it (runs in a worker)."""
    source = task.source
    try:
        if task.split_parts < 2 and _unchanged(task, None):
            return Profiled(source, task.table, skip="unchanged since it was loaded")
        profile = profile_file(source, task.settings)
        if not profile.header:
            return Profiled(source, task.table, skip="empty file")
        split = _split(task, profile)
        if split and not profile.format.encoding_settled:
            settled = dataclasses.replace(profile.format, encoding=split.encoding, encoding_settled=True)
            profile = dataclasses.replace(profile, format=settled)
    except (OSError, csv.Error, UnicodeError, zipfile.BadZipFile, EOFError) as exc:
        if vanished(source, exc):
            return Profiled(source, task.table, skip=VANISHED)
        return Profiled(source, task.table, error=f"cannot read the file: {exc}")
    if task.split_parts >= 2 and _unchanged(task, split.fingerprint if split else None):
        return Profiled(source, task.table, skip="unchanged since it was loaded")
    return Profiled(source, task.table, profile=profile, split=split if split and len(split.ranges) > 1 else None)


def _split(task: ProfileTask, profile: FileProfile) -> SplitPlan | None:
    """For a big file: its ranges and fingerprint, from one pass over it."""
    if task.split_parts < 2 or not profile.format.ascii_compatible:
        return None
    with open_location(task.source.location, 0, root=task.source.root) as raw:
        return plan_split(raw, task.source.size, task.split_parts, profile.format.header, profile.format.delimiter)


def _unchanged(task: ProfileTask, fingerprint: str | None) -> bool:
    """Whether the ledger already holds this content in this table (the fingerprint is read when not given)."""
    entry = task.entry
    if task.settings.full_refresh or entry is None or entry.status != ledger.LOADED:
        return False
    if entry.table_name != task.table or entry.size != task.source.size:
        return False
    return (fingerprint or file_fingerprint(task.source)) == entry.content_hash


def _profile_crash(task: ProfileTask, exc: BaseException) -> Profiled:
    return Profiled(task.source, task.table, error=f"the worker reading it died ({exc}); out of memory?")


def _load_crash(task: LoadTask, exc: BaseException) -> FileResult:
    return FileResult(
        task.source.path,
        task.table,
        ledger.FAILED,
        size=task.source.size,
        error=f"the worker loading it died ({exc}); out of memory?",
    )


def _settle(engine: Engine, report: LoadReport, profiled: list[Profiled], progress: Progress | None) -> list[Profiled]:
    """Record skipped, empty, vanished and unreadable files; return the ones to load."""
    ready = []
    for item in sorted(profiled, key=lambda p: p.source.path):
        if item.profile is not None:
            ready.append(item)
            continue
        status, noted = _outcome(item)
        error = item.error if status == ledger.FAILED else item.skip
        result = FileResult(item.source.path, item.table, status, size=item.source.size, error=error)
        if noted:
            ledger.record_attempt(engine, item.source, item.table, item.source.size, status, noted, 0, report.run_id)
        report.files.append(result)
        if progress:
            progress(result)
    return ready


def _outcome(item: Profiled) -> tuple[str, str | None]:
    """A file that needs no load: its status, and what the ledger notes of it (None: nothing, it is unchanged)."""
    if item.error:
        return ledger.FAILED, item.error
    if item.skip == "empty file":
        log.warning("%s is empty (no header, no rows): skipped", item.source.path)
        return ledger.EMPTY, "empty file: skipped"
    if item.skip == VANISHED:
        log.warning("%s: %s", item.source.path, VANISHED)
        return ledger.GONE, VANISHED
    return "skipped", None


def _plan(engine: Engine, settings: Settings, ready: list[Profiled]) -> dict[str, TablePlan]:
    by_table: dict[str, list[FileProfile]] = defaultdict(list)
    for item in ready:
        by_table[item.table].append(item.profile)
    overrides = overrides_by_table(settings.column_types)
    family = dialect_family(engine)
    with engine.connect() as conn:
        existing = {name: reflect(conn, name) for name in by_table}
    return {
        name: plan_table(name, profiles, existing[name], overrides.get(name, {}), family)
        for name, profiles in sorted(by_table.items())
    }


def _load_tasks(
    engine: Engine,
    settings: Settings,
    run_id: str,
    ready: list[Profiled],
    plans: dict[str, TablePlan],
    entries: dict[str, ledger.Entry],
) -> tuple[list[LoadTask], Assembler]:
    """Tasks, largest first: one per file, or one per range of a file cut for several workers."""
    tasks: list[LoadTask] = []
    assembler = Assembler(engine, settings.max_errors)
    for item in ready:
        entry = entries.get(ledger.key_of(item.source))
        # Whenever the ledger knows the file, rows of an earlier version or attempt may be in its table.
        previous = entry.table_name if entry is not None else None
        profile = item.profile
        task = LoadTask(
            settings,
            item.source,
            profile.format,
            item.table,
            profile.columns,
            plans[item.table].pinned,
            previous,
            run_id,
            profile.nullish,
            sampled_whole=profile.whole,
            previous_lineage=entry.lineage if entry is not None else None,
        )
        if item.split is None:
            tasks.append(task)
            continue
        prepare(engine, task)
        pieces = range_tasks(task, item.split)
        assembler.expect(pieces)
        tasks += pieces
        log.info("%s: %d ranges for %d workers", item.source.path, len(pieces), settings.load_workers)
    return sorted(tasks, key=_task_size, reverse=True), assembler


def _replacing(ready: list[Profiled], entries: dict[str, ledger.Entry]) -> list[str]:
    """Tables holding rows of a file this run loads again because its content changed."""
    known = [entries.get(ledger.key_of(item.source)) for item in ready]
    return sorted({e.table_name for e in known if e and e.table_name and e.status == "loaded" and e.rows_loaded})


def _task_size(task: LoadTask) -> int:
    return task.byte_range.end - task.byte_range.start if task.byte_range else task.source.size
