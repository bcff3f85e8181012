"""The ledger: which files were staged, from which content, with how many rows; and their rejects.

`_processor_files` holds one row per file (by its path relative to the source root). The row
is written in the same transaction as the file's data, so it never claims rows that are not
there. `content_hash`, `table_name` and `rows_loaded` describe the rows the table holds now;
`status`, `error` and the times describe the last attempt, so a failed reload of a changed
file still remembers the older rows it must replace next time. (A big file cut into ranges
commits range by range and is marked loaded after the last one, so rows of a file the ledger
knows may sit in its `table_name` whatever its status: a reload always removes them first.)

`_processor_rejects` holds every rejected row: file, content hash, line number, reason and the
raw text of the line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .db import writing

FILES_TABLE = "_processor_files"
REJECTS_TABLE = "_processor_rejects"
PATH_LENGTH = 700  # indexable in MySQL's utf8mb4 (3072 bytes)
RAW_LIMIT = 65536  # characters of a rejected line kept

metadata = sa.MetaData()
files = sa.Table(
    FILES_TABLE,
    metadata,
    sa.Column("path", sa.String(PATH_LENGTH), primary_key=True),
    sa.Column("table_name", sa.String(128)),
    sa.Column("size", sa.BigInteger),
    sa.Column("content_hash", sa.String(128)),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False, default=0),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False, default=0),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.DateTime),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("run_id", sa.String(36)),
    mysql_charset="utf8mb4",
)
rejects = sa.Table(
    REJECTS_TABLE,
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("path", sa.String(PATH_LENGTH), nullable=False, index=True),
    sa.Column("content_hash", sa.String(128)),
    sa.Column("line", sa.BigInteger),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.Text),
    sa.Column("run_id", sa.String(36)),
    sa.Column("created_at", sa.DateTime),
    mysql_charset="utf8mb4",
)

LOADING, LOADED, FAILED, EMPTY, INTERRUPTED = "loading", "loaded", "failed", "empty", "interrupted"


@dataclass(frozen=True)
class Entry:
    """What the ledger knows of one file."""

    path: str
    table_name: str | None
    size: int | None
    content_hash: str | None
    rows_loaded: int
    status: str
    rows_rejected: int = 0
    error: str | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Reject:
    """One rejected row: its first line in the file, why, and the raw text."""

    line: int
    reason: str
    raw: str


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def ensure(engine: Engine) -> None:
    """Create the ledger tables when missing."""
    with writing(engine) as conn:
        metadata.create_all(conn, checkfirst=True)


def read(engine: Engine) -> dict[str, Entry]:
    """Every ledger entry by path."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                files.c.path,
                files.c.table_name,
                files.c.size,
                files.c.content_hash,
                files.c.rows_loaded,
                files.c.status,
                files.c.rows_rejected,
                files.c.error,
                files.c.finished_at,
            )
        )
        return {row.path: Entry(*row) for row in rows}


def _upsert(conn: Connection, path: str, values: dict) -> None:
    updated = conn.execute(sa.update(files).where(files.c.path == path).values(**values)).rowcount
    if not updated:
        conn.execute(sa.insert(files).values(path=path, **values))


def mark_loading(engine: Engine, path: str, table: str, size: int, run_id: str) -> None:
    """Note that a file is being loaded (committed at once, so a crash shows where it stopped)."""
    with writing(engine) as conn:
        values = {"status": LOADING, "error": None, "started_at": now(), "finished_at": None, "run_id": run_id}
        if not conn.execute(sa.update(files).where(files.c.path == path).values(**values)).rowcount:
            conn.execute(sa.insert(files).values(path=path, table_name=table, size=size, **values))


def record_loaded(
    conn: Connection,
    path: str,
    table: str,
    size: int,
    content_hash: str,
    rows: int,
    rejected: int,
    run_id: str,
    status: str = LOADED,
) -> None:
    """Record a file as loaded, inside the transaction that loaded its rows."""
    _upsert(
        conn,
        path,
        {
            "table_name": table,
            "size": size,
            "content_hash": content_hash,
            "rows_loaded": rows,
            "rows_rejected": rejected,
            "status": status,
            "error": None,
            "finished_at": now(),
            "run_id": run_id,
        },
    )


def record_attempt(
    engine: Engine, path: str, table: str, size: int, status: str, error: str | None, rejected: int, run_id: str
) -> None:
    """Record an attempt that loaded nothing (failed, empty file); what the table held before is kept."""
    with writing(engine) as conn:
        stamp = now()
        values = {"status": status, "error": error, "rows_rejected": rejected, "finished_at": stamp, "run_id": run_id}
        if not conn.execute(sa.update(files).where(files.c.path == path).values(**values)).rowcount:
            conn.execute(sa.insert(files).values(path=path, table_name=table, size=size, started_at=stamp, **values))


def replace_rejects(
    conn: Connection, path: str, content_hash: str | None, found: Iterable[Reject], run_id: str, all_versions: bool
) -> None:
    """Store a file's rejects, dropping those of earlier attempts (of every version, or of this one)."""
    forget_rejects(conn, path, None if all_versions else content_hash, all_versions)
    add_rejects(conn, path, content_hash, found, run_id)


def forget_rejects(conn: Connection, path: str, content_hash: str | None = None, all_versions: bool = True) -> None:
    condition = rejects.c.path == path
    if not all_versions:
        condition = sa.and_(condition, rejects.c.content_hash == content_hash)
    conn.execute(sa.delete(rejects).where(condition))


def add_rejects(conn: Connection, path: str, content_hash: str | None, found: Iterable[Reject], run_id: str) -> None:
    stamp = now()
    batch = [
        {
            "path": path,
            "content_hash": content_hash,
            "line": r.line,
            "reason": r.reason,
            "raw": r.raw[:RAW_LIMIT],
            "run_id": run_id,
            "created_at": stamp,
        }
        for r in found
    ]
    if batch:
        conn.execute(sa.insert(rejects), batch)


def clear_rows(conn: Connection, path: str) -> None:
    """Note that the table holds no row of this file any more (its rows were just removed)."""
    conn.execute(sa.update(files).where(files.c.path == path).values(content_hash=None, rows_loaded=0))


def mark_interrupted(engine: Engine, run_id: str) -> int:
    """Files still marked loading by this run were stopped; their transactions rolled back."""
    with writing(engine) as conn:
        return conn.execute(
            sa.update(files)
            .where(files.c.run_id == run_id, files.c.status == LOADING)
            .values(
                status=INTERRUPTED, error="the run was stopped; nothing of this attempt was kept", finished_at=now()
            )
        ).rowcount


def forget(engine: Engine, tables: Iterable[str]) -> None:
    """Drop the ledger entries of tables being rebuilt (FULL_REFRESH)."""
    names = list(tables)
    with writing(engine) as conn:
        paths = sa.select(files.c.path).where(files.c.table_name.in_(names))
        conn.execute(sa.delete(rejects).where(rejects.c.path.in_(paths.scalar_subquery())))
        conn.execute(sa.delete(files).where(files.c.table_name.in_(names)))
