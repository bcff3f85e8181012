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
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import extras, ledger
from ..config import Settings
from ..db import (
    WIDTH,
    check_connection,
    create_engine,
    describe_db_error,
    dialect_family,
    display_url,
    refusal_kind,
    release_engines,
)
from ..errors import DatabaseError
from ..find import Discovery, SourceFile, discover
from ..find.presence import VANISHED, vanished
from ..find.streams import open_location
from ..names import check_names
from ..parallel import run_tasks
from ..schema import rewrites_values, table_name_for
from .files import file_fingerprint
from .gone import find_gone, settle_gone
from .plan import TablePlan, fold, hold_back, name_clash, overrides_by_table, plan_table, row_fits
from .profile import FileProfile, profile_file
from .ranges import Assembler, parts_for, prepare, range_tasks
from .reload import Waiting, resolve
from .report import LoadReport
from .split import SplitPlan, plan_split
from .steady import check_steady, stamp_of
from .tables import (
    MORE_COLUMN,
    SOURCE_COLUMN,
    apply_plan,
    columns_that_fit,
    drop_tables,
    index_source_column,
    reflect,
    refused,
)
from .worker import DEFERRED, FileResult, LoadTask, load_file

log = logging.getLogger(__name__)

MAX_ROUNDS = 3  # rounds of loading with widenings between them (see reload.py)


class Progress(Protocol):
    """Told how many files (and bytes) there are, then of each file's outcome as it arrives."""

    def expect(self, files: int, size: int) -> None: ...

    def __call__(self, result: FileResult) -> None: ...


@dataclass(frozen=True)
class ProfileTask:
    settings: Settings
    source: SourceFile
    table: str
    entry: ledger.Entry | None
    split_parts: int = 1
    force: bool = False  # profile it even when unchanged (it loads again)


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
    _ensure_ledger(engine)
    report = LoadReport(
        run_id=str(uuid.uuid4()), matches=discovery.matches, workers=settings.load_workers, source=discovery.source
    )
    routes = {source.path: route_table(source, settings) for source in discovery.files}
    clashes = _clashes(engine, settings, routes)
    if settings.full_refresh:
        _full_refresh(engine, sorted(set(routes.values()) - {routes[path] for path in clashes}))
    entries = _known(engine, settings, discovery, report)
    if progress:
        progress.expect(len(discovery.files), sum(source.size or 0 for source in discovery.files))
    family = dialect_family(engine)
    tasks = [
        ProfileTask(settings, s, routes[s.path], entries.get(ledger.key_of(s)), parts_for(s, settings, family))
        for s in discovery.files
        if s.path not in clashes
    ]
    profiled = list(run_tasks(profile_source, tasks, settings, _profile_crash))
    profiled += [Profiled(s, routes[s.path], error=clashes[s.path]) for s in discovery.files if s.path in clashes]
    ready = _settle(engine, report, profiled, progress)
    plans, waiting = _hold_back(_plan(engine, settings, ready), ready, family)
    _warn_moved(ready, entries)  # from the ledger as it was: marking the files queued changes their status
    ledger.mark_queued(engine, [(item.source, item.table, item.source.size) for item in ready], report.run_id)
    for plan in list(plans.values()):
        for note in plan.notes:
            log.warning("%s", note)
        try:
            plans[plan.name], changes = _apply(engine, settings, plan)
            report.schema_changes += changes
        except sa.exc.DBAPIError as exc:  # a limit or a privilege: this table's files fail, the others go on
            del plans[plan.name]
            waiting.pop(plan.name, None)
            failed = [item for item in ready if item.table == plan.name]
            ready = [item for item in ready if item.table != plan.name]
            reason = refused(exc, plan.name, len(plan.columns))
            _settle(
                engine, report, [dataclasses.replace(item, profile=None, error=reason) for item in failed], progress
            )
    for change in report.schema_changes:
        log.info("schema: %s", change)
    for table in _replacing(ready, entries):
        if index_source_column(engine, table):
            _changed(report, [f"indexed {table}.{SOURCE_COLUMN} (changed files are replaced by look-up)"])
    sources = {s.path: s for s in discovery.files}
    run = _Run(engine, settings, report, plans, progress, sources, routes, {i.source.path: i for i in ready})
    try:
        run.rounds([item for item in ready if item.table not in waiting], waiting)
    except BaseException:
        stopped = ledger.mark_interrupted(engine, report.run_id)
        run.discard()
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


def _changed(report: LoadReport, changes: list[str]) -> None:
    for change in changes:
        log.info("schema: %s", change)
    report.schema_changes += changes


@dataclass
class _Run:
    """The load phase: rounds of load tasks, with widenings that would change loaded values between them."""

    engine: Engine
    settings: Settings
    report: LoadReport
    plans: dict[str, TablePlan]
    progress: Progress | None
    sources: dict[str, SourceFile]
    routes: dict[str, str]
    profiled: dict[str, Profiled]  # this run's profiled files, by path
    assembler: Assembler | None = None  # the big files of the batch loading now

    def discard(self) -> None:
        """Drop the private tables of the big files still loading (the run stops)."""
        if self.assembler is not None:
            self.assembler.discard()

    def rounds(self, batch: list[Profiled], waiting: dict[str, Waiting]) -> None:
        """Load `batch`; then widen for the files waiting (held back, or deferred by a worker) and load them with
        the files holding the values that widening changes; again, up to MAX_ROUNDS times."""
        for round_number in range(MAX_ROUNDS + 1):
            if round_number:
                batch = [item for table, files in sorted(waiting.items()) for item in self._resolve(table, files)]
                waiting = {}
            for item, result in self._load(batch):
                waiting.setdefault(item.table, Waiting()).add(item.source.path, item, result.needed, asks=True)
            if not waiting:
                return
        reason = "column types kept changing while loading; set COLUMN_TYPES for this table"
        left = [item for files in waiting.values() for item in files.items.values()]
        self._fail([dataclasses.replace(item, profile=None, error=reason) for item in left])

    def _load(self, batch: list[Profiled]) -> list[tuple[Profiled, FileResult]]:
        """Run a batch's load tasks, record the results; returns the deferred ones with their items."""
        entries = ledger.read(self.engine)
        tasks, assembler = _load_tasks(self.engine, self.settings, self.report.run_id, batch, self.plans, entries)
        self.assembler = assembler
        items = {item.source.path: item for item in batch}
        deferred = []
        # Closed on the way out: a signal that lands here, between two results, stops the workers before the
        # ledger marks their files interrupted (left open, they would load on until the traceback is freed).
        with closing(run_tasks(load_file, tasks, self.settings, _load_crash)) as results:
            for result in results:
                if result.path in assembler.expected:
                    result = assembler.add(next(t for t in tasks if t.source.path == result.path), result)
                    if result is None:
                        continue
                if result.status == DEFERRED:
                    deferred.append((items[result.path], result))
                    continue
                self.report.files = [f for f in self.report.files if f.path != result.path] + [result]
                _changed(self.report, result.changes)
                if self.progress:
                    self.progress(result)
        return deferred

    def _resolve(self, table: str, files: Waiting) -> list[Profiled]:
        paths = [path for path, routed in self.routes.items() if routed == table]
        sources = {path: self.profiled.get(path, self.sources[path]) for path in paths} | files.items
        done = {f.path: f for f in self.report.files}
        resolved = resolve(self.engine, self.settings, table, files, sources, partial(self._reprofile, table))
        self._fail([dataclasses.replace(files.items[p], profile=None, error=why) for p, why in resolved.failed.items()])
        _changed(self.report, resolved.changes)
        if len(resolved.load) > len(files.items) and index_source_column(self.engine, table):
            _changed(self.report, [f"indexed {table}.{SOURCE_COLUMN} (its files are replaced by look-up)"])
        again = [item for item in resolved.load if item.source.path in done]
        if again and self.progress:
            total = sum(source.size or 0 for source in self.sources.values())
            self.progress.expect(len(self.sources) + len(again), total + sum(i.source.size or 0 for i in again))
        return resolved.load

    def _reprofile(self, table: str, paths: list[str]) -> dict[str, Profiled]:
        entries = ledger.read(self.engine)
        family = dialect_family(self.engine)
        tasks = [
            ProfileTask(
                self.settings, s, table, entries.get(ledger.key_of(s)), parts_for(s, self.settings, family), force=True
            )
            for s in (self.sources[p] for p in paths)
        ]
        with closing(run_tasks(profile_source, tasks, self.settings, _profile_crash)) as results:
            return {item.source.path: item for item in results}

    def _fail(self, items: list[Profiled]) -> None:
        if items:
            _settle(self.engine, self.report, items, self.progress)


def _hold_back(
    plans: dict[str, TablePlan], ready: list[Profiled], family: str
) -> tuple[dict[str, TablePlan], dict[str, Waiting]]:
    """Plans without widenings that would change loaded values, and the files of those tables, waiting for them."""
    waiting: dict[str, Waiting] = {}
    for name, plan in list(plans.items()):
        plans[name], held = hold_back(plan, family)
        if not held:
            continue
        existing = plan.existing or {}
        files = waiting[name] = Waiting()
        for item in (i for i in ready if i.table == name):
            types = dict(zip(item.profile.columns, item.profile.types, strict=True))
            asks = any(rewrites_values(existing[c], existing[c].join(types[c]), family) for c in held if c in types)
            files.add(item.source.path, item, held, asks)
    return plans, waiting


def _apply(engine: Engine, settings: Settings, plan: TablePlan) -> tuple[TablePlan, list[str]]:
    """Bring the table to its plan; with WIDE_FILES=json, columns it cannot take go to its JSON column instead
    (and once a table has that column, every column new to it goes there). Raises the database's error."""
    wide = settings.wide_files == "json"
    if wide and plan.added and MORE_COLUMN in (plan.existing or {}):
        plan = fold(plan, 0, MORE_COLUMN)
    elif wide and plan.added and not row_fits((plan.types[c] for c in plan.columns), dialect_family(engine)):
        # A table the database would create may still refuse rows whose values are long: fold first.
        keep = columns_that_fit(engine, plan)
        if keep >= 0:
            return _fold(engine, settings, plan, keep)
    try:
        return plan, apply_plan(engine, plan, settings.deals_view)
    except sa.exc.DBAPIError as exc:
        if not wide or refusal_kind(exc) != WIDTH:
            raise
        with engine.connect() as conn:  # MySQL may have added some columns before it refused one
            plan = dataclasses.replace(plan, existing=reflect(conn, plan.name))
        keep = columns_that_fit(engine, plan)
        if keep < 0:
            raise
    return _fold(engine, settings, plan, keep)


def _fold(engine: Engine, settings: Settings, plan: TablePlan, keep: int) -> tuple[TablePlan, list[str]]:
    """Bring the table to its plan with only the first `keep` new columns, the others in its JSON column."""
    folded = fold(plan, keep, MORE_COLUMN)
    note = f"{plan.name}: {len(folded.folded):,} column(s) it cannot take are kept in {MORE_COLUMN} (JSON)"
    log.warning("%s", note)
    return folded, [*apply_plan(engine, folded, settings.deals_view), note]


def _ensure_ledger(engine: Engine) -> None:
    """Create the ledger tables; raises DatabaseError (nothing can be recorded, so nothing is loaded)."""
    try:
        ledger.ensure(engine)
        ledger.check_writable(engine)
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(
            f"cannot create or write the ledger tables ({ledger.FILES_TABLE}, {ledger.REJECTS_TABLE}) at "
            f"{display_url(engine.url)}: {describe_db_error(exc, engine.url)}; grant the user CREATE on the schema "
            "(or database) and INSERT, UPDATE, DELETE on those tables, or use a user that has them"
        ) from None


def _clashes(engine: Engine, settings: Settings, routes: dict[str, str]) -> dict[str, str]:
    """The files whose table would take a name that is not a staging table's, with why."""
    with engine.connect() as conn:
        views = sa.inspect(conn).get_view_names()
    found = {path: name_clash(table, settings.deals_view, views) for path, table in routes.items()}
    return {path: reason for path, reason in found.items() if reason}


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
        if not task.force and task.split_parts < 2 and _unchanged(task, None):
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
    if not task.force and task.split_parts >= 2 and _unchanged(task, split.fingerprint if split else None):
        return Profiled(source, task.table, skip="unchanged since it was loaded")
    return Profiled(source, task.table, profile=profile, split=split if split and len(split.ranges) > 1 else None)


def _split(task: ProfileTask, profile: FileProfile) -> SplitPlan | None:
    """For a big file: its ranges and fingerprint, from one pass over it; raises FileChanged when it moved meanwhile."""
    if task.split_parts < 2 or not profile.format.ascii_compatible or profile.blank_lead:
        return None
    before = stamp_of(task.source)
    with open_location(task.source.location, 0, root=task.source.root) as raw:
        plan = plan_split(raw, task.source.size, task.split_parts, profile.format.header, profile.format.delimiter)
    check_steady(task.source, before)
    return dataclasses.replace(plan, stamp=before) if plan else None


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
    per_table = Counter(item.table for item in ready)
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
            careful_only=profile.blank_lead,
            previous_lineage=entry.lineage if entry is not None else None,
            folded=tuple(c for c in profile.columns if c not in plans[item.table].columns),
            alone=per_table[item.table] == 1 and item.split is None,
        )
        if item.split is None:
            tasks.append(task)
            continue
        pieces = range_tasks(prepare(engine, task), item.split)
        assembler.expect(pieces)
        tasks += pieces
        log.info("%s: %d ranges for %d workers", item.source.path, len(pieces), settings.load_workers)
    return sorted(tasks, key=_task_size, reverse=True), assembler


def _warn_moved(ready: list[Profiled], entries: dict[str, ledger.Entry]) -> None:
    """Warn of the files whose rows are in another table than the one they now route to: they move."""
    known = ((item, entries.get(ledger.key_of(item.source))) for item in ready)
    moved = [
        f"{i.source.path} ({e.table_name} -> {i.table})" for i, e in known if _holds_rows(e) and e.table_name != i.table
    ]
    if moved:
        log.warning(
            "%d file(s) loaded before into another table now route to a new one (DEST_TABLE or a *_TABLE changed): "
            "their rows move, leaving the old table: %s",
            len(moved),
            ", ".join(moved[:10]) + (f" and {len(moved) - 10} more" if len(moved) > 10 else ""),
        )


def _replacing(ready: list[Profiled], entries: dict[str, ledger.Entry]) -> list[str]:
    """Tables holding rows of a file this run loads again because its content changed."""
    known = [entries.get(ledger.key_of(item.source)) for item in ready]
    return sorted({e.table_name for e in known if _holds_rows(e)})


def _holds_rows(entry: ledger.Entry | None) -> bool:
    """Whether the ledger says a file's rows are in a table now (a loaded file with some rows)."""
    return bool(entry and entry.table_name and entry.status == ledger.LOADED and entry.rows_loaded)


def _task_size(task: LoadTask) -> int:
    return task.byte_range.end - task.byte_range.start if task.byte_range else task.source.size
