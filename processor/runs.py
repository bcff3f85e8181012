"""The runs table: one row per run of a step, so `status` can say when the last run was and how it ended.

`_processor_runs` lives in the destination beside the ledger. A run is recorded once it has ended
(whatever its exit code); a run that could not reach the database leaves no row, and `status`
(which only reads) records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .db import latest_row, writing
from .lock import ddl_lock

RUNS_TABLE = "_processor_runs"
TEXT_LIMIT = 2000  # characters of the summary and error kept

metadata = sa.MetaData()
runs = sa.Table(
    RUNS_TABLE,
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Column("step", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("exit_code", sa.Integer, nullable=False),
    sa.Column("summary", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("source", sa.String(1000)),
    sa.Column("host", sa.String(255)),
    mysql_charset="utf8mb4",
)


@dataclass(frozen=True)
class Run:
    """One run as the table keeps it (times in UTC, without zone)."""

    run_id: str
    step: str
    started_at: datetime
    finished_at: datetime
    seconds: float
    exit_code: int
    summary: str | None = None
    error: str | None = None
    source: str | None = None
    host: str | None = None

    def to_dict(self) -> dict:
        return {**vars(self), "started_at": self.started_at.isoformat(), "finished_at": self.finished_at.isoformat()}


def record(engine: Engine, run: Run) -> None:
    """Add a run (creating the table when missing); raises SQLAlchemyError."""
    with writing(engine) as conn, ddl_lock(conn, RUNS_TABLE):  # a run that timed out on the lock records too
        metadata.create_all(conn, checkfirst=True)
    values = {**vars(run), "summary": _cut(run.summary), "error": _cut(run.error), "source": _cut(run.source, 1000)}
    with writing(engine) as conn:
        conn.execute(runs.insert().values(**values))


def last(engine: Engine) -> Run | None:
    """The latest recorded run, or None when there is none (or no table yet)."""
    with engine.connect() as conn:
        row = latest_row(conn, runs)
    if row is None:
        return None
    return Run(**{key: value for key, value in row.items() if key != "id"})


def _cut(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"
