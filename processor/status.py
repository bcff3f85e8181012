"""`python index.py status`: what the ledger says, without loading anything.

For the operator who comes back the morning after a quarterly run: which files are in, with how
many rows and rejects per table, and which are not (failed, interrupted, or left `loading` by a
run that was killed), with their errors. Reading only; the exit code is 1 while some file is not
in, as after the run that left it so.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import ledger
from .db import check_connection

NOT_IN = (ledger.FAILED, ledger.INTERRUPTED, ledger.LOADING)
_WHY = {
    ledger.FAILED: "failed",
    ledger.INTERRUPTED: "stopped by Ctrl-C or SIGTERM",
    ledger.LOADING: "loading now, or its run was killed",
}


@dataclass(frozen=True)
class FileState:
    """One file as the ledger records it."""

    path: str
    table: str | None
    status: str
    rows_loaded: int
    rows_rejected: int
    error: str | None
    finished_at: datetime | None


@dataclass
class LedgerStatus:
    """Every file the ledger knows, and how many rejected rows it keeps."""

    files: list[FileState] = field(default_factory=list)
    rejects: int = 0

    @property
    def not_in(self) -> list[FileState]:
        return [f for f in self.files if f.status in NOT_IN]

    @property
    def exit_code(self) -> int:
        return 1 if self.not_in else 0

    def to_dict(self) -> dict:
        return {
            "exit_code": self.exit_code,
            "files": [vars(f) for f in self.files],
            "rejects": self.rejects,
        }

    def lines(self) -> list[str]:
        if not self.files:
            return ["ledger: empty; nothing has been loaded into this database yet"]
        counts = Counter(f.status for f in self.files)
        by_status = ", ".join(f"{counts[s]} {s}" for s in sorted(counts))
        last = max((f.finished_at for f in self.files if f.finished_at), default=None)
        when = f"; last finished {last:%Y-%m-%d %H:%M:%S} UTC" if last else ""
        out = [f"ledger: {len(self.files)} file(s): {by_status}{when}"]
        for table, (files, rows, rejected) in sorted(_by_table(self.files).items()):
            out.append(f"  {table}: {rows:,} rows from {files} file(s), {rejected:,} rejected")
        if self.not_in:
            out.append("not in (run again to finish them):")
            for f in self.not_in:
                out.append(f"  {f.path}: {_WHY[f.status]}" + (f" - {f.error}" if f.error else ""))
        if self.rejects:
            out.append(
                f"rejected rows: {self.rejects:,}, each with its file, line, reason and text in {ledger.REJECTS_TABLE}"
            )
        return out


def _by_table(files: list[FileState]) -> dict[str, tuple[int, int, int]]:
    """Files, rows and rejects per table, for the rows the tables hold now."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for f in files:
        if f.table:
            total = totals[f.table]
            total[0] += f.status not in NOT_IN
            total[1] += f.rows_loaded
            total[2] += f.rows_rejected
    return {table: (files, rows, rejected) for table, (files, rows, rejected) in totals.items()}


def ledger_status(engine: Engine) -> LedgerStatus:
    """Read the ledger (an empty status when this database has none); raises DatabaseError when unreachable."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:" and not os.path.exists(database):
        return LedgerStatus()  # asking must not leave an empty database file behind
    check_connection(engine)
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(ledger.FILES_TABLE):
            return LedgerStatus()
        columns = ledger.files.c
        rows = conn.execute(
            sa.select(
                columns.path,
                columns.table_name,
                columns.status,
                columns.rows_loaded,
                columns.rows_rejected,
                columns.error,
                columns.finished_at,
            ).order_by(columns.path)
        )
        files = [FileState(*row) for row in rows]
        rejects = conn.execute(sa.select(sa.func.count()).select_from(ledger.rejects)).scalar_one()
    return LedgerStatus(files, rejects)
