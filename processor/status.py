"""`python index.py status`: what the ledger says, without loading anything.

For the operator who comes back the morning after a quarterly run: which files are in, with how
many rows and rejects per table, and which are not (failed, interrupted, or left `loading` by a
run that was killed), with their errors; which files are gone from the source since their load
(looked up in this run's SRC_DATA_FOLDER, for the files of its source); and what the last Pipedrive
sync did. Reading only; the exit code is 1 while some file still in its source is not in, as after
the run that left it so.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import ledger, runs
from .config import Settings
from .db import check_connection
from .find import source_identity
from .pipedrive.history import LastSync, last_sync
from .redact import shown
from .staging.gone import Gone, find_gone
from .staging.report import TableTotals

NOT_IN = (ledger.FAILED, ledger.INTERRUPTED, ledger.LOADING)
_WHY = {
    ledger.FAILED: "failed",
    ledger.INTERRUPTED: "stopped by Ctrl-C or SIGTERM",
    ledger.LOADING: "loading now, or its run was killed",
}


@dataclass
class LedgerStatus:
    """Every file the ledger knows (in path order), and how many rejected rows it keeps."""

    files: list[ledger.Entry] = field(default_factory=list)
    rejects: int = 0
    last_sync: LastSync | None = None
    last_run: runs.Run | None = None
    no_database: str | None = None  # the SQLite file that does not exist (status never creates it)
    checked: Gone = field(default_factory=Gone)  # files of this run's source found missing there now

    @property
    def gone(self) -> list[ledger.Entry]:
        """Files gone from their source: noted so by a run, or found missing now."""
        missing = {entry.key for entry in self.checked.files}
        return [f for f in self.files if f.status == ledger.GONE or f.key in missing]

    @property
    def not_in(self) -> list[ledger.Entry]:
        gone = {entry.key for entry in self.gone}
        return [f for f in self.files if f.status in NOT_IN and f.key not in gone]

    @property
    def exit_code(self) -> int:
        return 1 if self.not_in else 0

    def to_dict(self) -> dict:
        return {
            "exit_code": self.exit_code,
            "files": [vars(f) for f in self.files],
            "gone": [f.key for f in self.gone],
            "rejects": self.rejects,
            "last_sync": self.last_sync.to_dict() if self.last_sync else None,
            "last_run": self.last_run.to_dict() if self.last_run else None,
        }

    def tables(self) -> dict[str, TableTotals]:
        """Per table: the files in, and the rows and rejects the ledger records (rows the table holds now)."""
        totals: dict[str, TableTotals] = defaultdict(TableTotals)
        for f in self.files:
            if f.table_name:
                table = totals[f.table_name]
                table.files += f.status not in NOT_IN
                table.rows += f.rows_loaded
                table.rejected += f.rows_rejected
        return dict(sorted(totals.items()))

    def lines(self) -> list[str]:
        return self._ledger_lines() + _sync_lines(self.last_sync) + last_run_lines(self.last_run)

    def _ledger_lines(self) -> list[str]:
        if self.no_database:
            return [f"ledger: none yet; there is no database file {self.no_database}, so nothing has been loaded"]
        if not self.files:
            return ["ledger: none yet; nothing has been loaded into this database"]
        counts = Counter(f.status for f in self.files)
        by_status = ", ".join(f"{counts[s]} {s}" for s in sorted(counts))
        last = max((f.finished_at for f in self.files if f.finished_at), default=None)
        when = f"; last finished {last:%Y-%m-%d %H:%M:%S} UTC" if last else ""
        out = [f"ledger: {len(self.files)} file(s): {by_status}{when}"]
        for name, table in self.tables().items():
            out.append(f"  {name}: {table.rows:,} rows from {table.files} file(s), {table.rejected:,} rejected")
        if self.not_in:
            out.append("not in (run again to finish them):")
            for f in self.not_in:
                out.append(f"  {shown(_name(f))}: {_WHY[f.status]}" + (f" - {shown(f.error)}" if f.error else ""))
        if self.gone:
            out.append("gone from the source (their rows stay; a load with REMOVE_GONE=1 removes them):")
            out += [f"  {shown(_name(f))}: {f.rows_loaded:,} row(s) in {f.table_name}" for f in self.gone]
        if self.checked.unknown:
            out.append(f"gone from the source: cannot tell ({shown(self.checked.unknown)})")
        if self.rejects:
            out.append(
                f"rejected rows: {self.rejects:,}, each with its file, line, reason and text in {ledger.REJECTS_TABLE}"
            )
        return out


def last_run_lines(run: runs.Run | None) -> list[str]:
    """When the last run was, how long it took, what it did and how it ended."""
    if run is None:
        return []
    ended = "ok" if run.exit_code == 0 else "failed"
    out = [
        f"last run: {run.step}, started {run.started_at:%Y-%m-%d %H:%M:%S} UTC, took {run.seconds:,.1f} s, "
        f"exit {run.exit_code} ({ended})" + (f", on {run.host}" if run.host else ""),
    ]
    if run.summary:
        out.append(f"  {run.summary}")
    if run.error:
        out.append(f"  error: {run.error}")
    return out


def _name(entry: ledger.Entry) -> str:
    """How status names a file: its lineage (source and path), which tells two folders' files apart."""
    return entry.lineage or entry.path


def ledger_status(engine: Engine, settings: Settings | None = None) -> LedgerStatus:
    """Read the ledger and the last sync (empty when this database has none), and with `settings` look up which
    files of their source are gone; raises DatabaseError when the database is unreachable."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:" and not os.path.exists(database):
        return LedgerStatus(no_database=database)  # asking must not leave an empty database file behind
    check_connection(engine)
    status = _read_ledger(engine)
    status.last_sync = last_sync(engine)
    if settings is not None and status.files:
        source = source_identity(settings.src_data_folder, settings.source_name)
        status.checked = find_gone(settings, source, status.files)
    status.last_run = runs.last(engine)
    return status


def _read_ledger(engine: Engine) -> LedgerStatus:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(ledger.FILES_TABLE):
            return LedgerStatus()
        rejects = conn.execute(sa.select(sa.func.count()).select_from(ledger.rejects)).scalar_one()
    files = sorted(ledger.read(engine).values(), key=_name)
    return LedgerStatus(files, rejects)


# ---------------------------------------------------------------- the last Pipedrive sync


def _sync_lines(last: LastSync | None) -> list[str]:
    """What the last sync did, from the sync history (one line when none is recorded)."""
    return last.lines() if last else ["last sync: none recorded in this database"]
