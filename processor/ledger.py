"""The ledger: which files were staged, from which content, with how many rows; and their rejects.

`_processor_files` holds one row per file (by its path relative to the source root). The row
is written in the same transaction as the file's data, so it never claims rows that are not
there. `content_hash`, `table_name` and `rows_loaded` describe the rows the table holds now;
`status`, `error` and the times describe the last attempt, so a failed reload of a changed
file still remembers the older rows it must replace next time. (A big file cut into ranges
loads them into a private table and moves them in with its ledger row, in one transaction.)

Every transaction that puts a file's rows in a table first locks the file's row here (`claim`)
and reads it: two processes loading one file (two runs that bypass the run lock, Dask tasks,
a killed run's survivors) take turns, and the second sees what the first committed.

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
from .lock import ddl_lock

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
    with writing(engine) as conn, ddl_lock(conn, FILES_TABLE):
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


def _upsert(conn: Connection, path: str, values: dict, new_only: dict | None = None) -> None:
    """Update the file's row, or insert it (with `new_only` too); safe when another process inserts it meanwhile."""
    where = files.c.path == path
    if conn.execute(sa.update(files).where(where).values(**values)).rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(files).values(path=path, **values, **(new_only or {})))
    except sa.exc.IntegrityError:  # inserted by a concurrent load of the same file: update it instead
        conn.execute(sa.update(files).where(where).values(**values))


def mark_loading(engine: Engine, path: str, table: str, size: int, run_id: str) -> None:
    """Note that a file is being loaded (committed at once, so a crash shows where it stopped)."""
    with writing(engine) as conn:
        values = {"status": LOADING, "error": None, "started_at": now(), "finished_at": None, "run_id": run_id}
        _upsert(conn, path, values, {"table_name": table, "size": size})


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
        _upsert(conn, path, values, {"table_name": table, "size": size, "started_at": stamp})


@dataclass(frozen=True)
class Claim:
    """A file's ledger row as a loading transaction found it, once it held the row's lock."""

    status: str | None = None
    table_name: str | None = None
    content_hash: str | None = None
    run_id: str | None = None

    def loaded_by_another(self, table: str, content_hash: str, run_id: str) -> bool:
        """Whether another run already put this very content in this table (this load must not add it again)."""
        return (
            self.status == LOADED
            and self.run_id != run_id
            and self.table_name == table
            and self.content_hash == content_hash
        )


def claim(conn: Connection, path: str) -> Claim:
    """Lock the file's ledger row until this transaction ends, and read it (another load of the file waits).

    The row must exist (`mark_loading` writes it first). SQLite needs no row lock: a writing
    transaction holds the whole database.
    """
    row = conn.execute(
        sa.select(files.c.status, files.c.table_name, files.c.content_hash, files.c.run_id)
        .where(files.c.path == path)
        .with_for_update()
    ).first()
    return Claim(*row) if row else Claim()


def keep_rejects_of(conn: Connection, path: str, content_hash: str, run_id: str) -> None:
    """Drop a file's rejects except those this run found in this content (a big file's ranges stored them)."""
    other = sa.or_(rejects.c.content_hash.is_distinct_from(content_hash), rejects.c.run_id.is_distinct_from(run_id))
    conn.execute(sa.delete(rejects).where(rejects.c.path == path, other))


def unfinished(conn: Connection, tables: Iterable[str]) -> list[tuple[str, str]]:
    """(path, status) of the files routed to these tables whose last load did not finish, in path order."""
    if not sa.inspect(conn).has_table(FILES_TABLE):
        return []
    query = (
        sa.select(files.c.path, files.c.status)
        .where(files.c.table_name.in_(list(tables)), files.c.status.in_((LOADING, FAILED, INTERRUPTED)))
        .order_by(files.c.path)
    )
    return [(row.path, row.status) for row in conn.execute(query)]


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
