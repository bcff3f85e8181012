"""Widenings that would change values already loaded, done apart: widen, then load the files holding them again.

A column widened to text in place keeps the database's reading of its earlier values, not the file's
text: `3` reads `3.0` from a REAL and `3.00` from a DECIMAL(65, 2), `2.5E-3` reads `0.0025`,
`2020-01-05T10:00:00` reads `2020-01-05 10:00:00` (`schema.rewrites_values` knows which kinds on which
database). So such a widening waits until the files of its table in this round are done (the parent
holds them back when their samples ask for it, a worker defers its file when a later value does),
then: the files whose rows hold values in those columns are found, their rows taken out and their
ledger rows told so (a crash from here on reloads them next run), the columns widen, and those files
load again from their sources with the waiting ones. When some of them are no longer among the sources (another
quarter's folder, rows of no file), nothing changes: the files that needed the widening fail with the
fix, and the table keeps its values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import ledger
from ..config import Settings
from ..db import PRIVILEGE, dialect_family, refusal_kind, writing
from ..find import SourceFile
from ..schema import ColumnType, rewrites_values
from .tables import SOURCE_COLUMN, files_holding_values, reflect, refused, widen

log = logging.getLogger(__name__)

NAMED = 3  # missing files named in a message
CHUNK = 500  # files per DELETE


@dataclass
class Waiting:
    """Files of one table waiting for widenings that would change values already loaded."""

    needed: dict[str, ColumnType] = field(default_factory=dict)  # column -> the type asked for
    items: dict[str, Any] = field(default_factory=dict)  # path -> the file's Profiled item
    needing: set[str] = field(default_factory=set)  # the paths that asked (the others only wait)

    def add(self, path: str, item: Any, needed: Mapping[str, ColumnType], asks: bool) -> None:
        self.items[path] = item
        for column, column_type in needed.items():
            self.needed[column] = self.needed[column].join(column_type) if column in self.needed else column_type
        if asks:
            self.needing.add(path)


@dataclass
class Resolved:
    """What to do with a table's waiting files: load these (and the holders again), fail those."""

    load: list[Any] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)


def resolve(
    engine: Engine,
    settings: Settings,
    table: str,
    waiting: Waiting,
    sources: Mapping[str, Any],
    reprofile: Callable[[list[str]], dict[str, Any]],
) -> Resolved:
    """Widen the table for its waiting files and list what loads next; `sources` are this run's files of the
    table by path (Profiled items where profiled), `reprofile(paths)` profiles others ({path: item or error})."""
    family = dialect_family(engine)
    with engine.connect() as conn:
        current = reflect(conn, table) or {}
    target = {
        c: current[c].join(t) for c, t in waiting.needed.items() if c in current and current[c].join(t) != current[c]
    }
    changing = [c for c, t in target.items() if rewrites_values(current[c], t, family)]
    paths = _paths_by_lineage(engine, sources)
    holding = files_holding_values(engine, table, changing) if changing else set()
    holders = {paths.get(h, h) if h is not None else None for h in holding} - set(waiting.items)
    missing = sorted(h or "(rows of no file)" for h in holders if h is None or h not in sources)
    items = _items(sorted(h for h in holders if h not in missing), sources, reprofile, missing)
    if missing:
        return _cannot(table, waiting, changing, current, missing)
    lineages = [lineage for lineage, path in paths.items() if path in {item.source.path for item in items}]
    _take_out(engine, table, [item.source for item in items], lineages)
    try:
        wider = widen(engine, table, target, settings.deals_view)
    except sa.exc.DBAPIError as exc:
        if refusal_kind(exc) is None:
            raise
        reason = refused(exc, table, len(current))
        return Resolved(failed=dict.fromkeys(waiting.items, reason))
    changes = [f"widened {table}.{c} from {current[c].kind} to {wider[c].kind}" for c in target]
    if items:
        changes.append(f"{table}: {len(items)} earlier file(s) loaded again so their values read back as written")
        log.warning("%s", changes[-1])
    return Resolved(load=[*waiting.items.values(), *items], changes=changes)


def _paths_by_lineage(engine: Engine, sources: Mapping[str, Any]) -> dict[str, str]:
    """This run's files by the `_source_file` their rows carry: their lineage now, and the one the ledger
    recorded for their earlier rows (an upgraded ledger's rows keep their old lineage)."""
    files = {path: item if isinstance(item, SourceFile) else item.source for path, item in sources.items()}
    paths = {file.lineage: path for path, file in files.items()}
    entries = ledger.read(engine)
    for path, file in files.items():
        entry = entries.get(ledger.key_of(file))
        if entry is not None and entry.lineage:
            paths.setdefault(entry.lineage, path)
    return paths


def _items(paths: list[str], sources: Mapping[str, Any], reprofile, missing: list[str]) -> list[Any]:
    """The Profiled items of the holders to load again; a holder that cannot be profiled now joins `missing`."""
    known = {p: sources[p] for p in paths if getattr(sources[p], "profile", None) is not None}
    fresh = reprofile([p for p in paths if p not in known]) if len(known) < len(paths) else {}
    for path, item in fresh.items():
        if item.profile is None:
            missing.append(f"{path} ({item.error or item.skip})")
    return [*known.values(), *(item for item in fresh.values() if item.profile is not None)]


def _cannot(table: str, waiting: Waiting, changing: list[str], current, missing: list[str]) -> Resolved:
    """The files that asked fail with the fix; the others load with the table as it is."""
    columns = ", ".join(f"{table}.{c} ({current[c].kind})" for c in changing)
    named = ", ".join(missing[:NAMED]) + (f" and {len(missing) - NAMED} more" if len(missing) > NAMED else "")
    reason = (
        f"{columns} would have to become text, and the {len(missing)} earlier file(s) holding its values "
        f"({named}) are not among the sources to be read again, so they would read back changed (3 as 3.0); "
        "put those files back for one run, or list such values in NULL_VALUES, or pin the column with "
        "COLUMN_TYPES to reject them"
    )
    failed = dict.fromkeys(sorted(waiting.needing), reason)
    return Resolved(load=[item for path, item in waiting.items.items() if path not in failed], failed=failed)


def _take_out(engine: Engine, table: str, files: list[Any], lineages: list[str]) -> None:
    """Remove the rows of the files that load again, and note in the ledger that the table holds none of them (a
    run stopped before they are back reloads them). A table left empty is emptied at once: then the widening
    has no row to rewrite either."""
    if not files:
        return
    source = sa.column(SOURCE_COLUMN)
    with writing(engine) as conn:
        for file in files:
            ledger.claim(conn, file)  # a load of it that bypassed the run lock waits, then finds it cleared
            ledger.clear_rows(conn, file)
        others = sa.or_(source.is_(None), source.not_in(lineages))
        if conn.execute(sa.select(sa.func.count()).select_from(sa.table(table)).where(others)).scalar_one():
            for start in range(0, len(lineages), CHUNK):
                chunk = lineages[start : start + CHUNK]
                conn.execute(sa.delete(sa.table(table, source)).where(source.in_(chunk)))
            return
    _empty(engine, table)


def _empty(engine: Engine, table: str) -> None:
    """TRUNCATE (a user who may not, and SQLite, delete every row instead: slower on a big table, same result)."""
    quoted = engine.dialect.identifier_preparer.quote(table)
    if dialect_family(engine) != "sqlite":
        try:
            with writing(engine) as conn:
                conn.exec_driver_sql(f"TRUNCATE TABLE {quoted}")
            return
        except sa.exc.DBAPIError as exc:
            if refusal_kind(exc) != PRIVILEGE:
                raise
    with writing(engine) as conn:
        conn.exec_driver_sql(f"DELETE FROM {quoted}")
