"""The ledger: which files were staged, from which content, with how many rows; and their rejects.

`_processor_files` holds one row per file, keyed by `file_key`: a hash of the file's source (SOURCE_NAME,
or the folder or URL it was listed under) and its path relative to that root, so two folders that each
hold `certificates.csv` are two files, and a path of any length fits. `lineage` is the `_source_file`
value its rows carry in its table. The row is written in the same transaction as the file's data, so it
never claims rows that are not there. `content_hash`, `table_name`, `lineage` and `rows_loaded` describe
the rows the table holds now; `status`, `error` and the times describe the last attempt, so a failed
reload of a changed file still remembers the older rows it must replace next time. (A big file cut into
ranges loads them into a private table and moves them in with its ledger row, in one transaction.)

Every transaction that puts a file's rows in a table first locks the file's row here (`claim`)
and reads it: two processes loading one file (two runs that bypass the run lock, Dask tasks,
a killed run's survivors) take turns, and the second sees what the first committed.

A ledger written before files were known by their source keys them by path alone: `ensure` upgrades
it in place, each such file with no source (`source` NULL, `lineage` its path, as its rows say), and the
first run that lists a file at that path adopts it as a file of its source (`adopt`).

`_processor_rejects` holds every rejected row: file, content hash, line number, reason and the
raw text of the line.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .db import dialect_family, writing
from .find.source import SourceFile
from .lock import ddl_lock

log = logging.getLogger(__name__)

FILES_TABLE = "_processor_files"
REJECTS_TABLE = "_processor_rejects"
KEY_LENGTH = 64  # a SHA-256 in hex
RAW_LIMIT = 16_000  # characters of a rejected line kept: 4 bytes each fit a MySQL TEXT (65,535 bytes)

metadata = sa.MetaData()
files = sa.Table(
    FILES_TABLE,
    metadata,
    sa.Column("file_key", sa.String(KEY_LENGTH), primary_key=True),
    sa.Column("source", sa.Text),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("lineage", sa.Text),
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
    sa.Column("file_key", sa.String(KEY_LENGTH), index=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(128)),
    sa.Column("line", sa.BigInteger),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.Text),
    sa.Column("run_id", sa.String(36)),
    sa.Column("created_at", sa.DateTime),
    mysql_charset="utf8mb4",
)

LOADING, LOADED, FAILED, EMPTY, INTERRUPTED = "loading", "loaded", "failed", "empty", "interrupted"
GONE = "gone"  # the file is no longer in its source; its rows stay until REMOVE_GONE=1 removes them


@dataclass(frozen=True)
class Entry:
    """What the ledger knows of one file (`source` None: loaded before sources were recorded)."""

    path: str
    table_name: str | None
    size: int | None
    content_hash: str | None
    rows_loaded: int
    status: str
    rows_rejected: int = 0
    error: str | None = None
    finished_at: datetime | None = None
    key: str = ""
    source: str | None = None
    lineage: str | None = None


@dataclass(frozen=True)
class Reject:
    """One rejected row: its first line in the file, why, and the raw text."""

    line: int
    reason: str
    raw: str


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def file_key(source: str | None, path: str) -> str:
    """The ledger key of a file: a hash of its source and its path (both of any length)."""
    return hashlib.sha256(json.dumps([source, path]).encode("ascii")).hexdigest()


def key_of(file: SourceFile) -> str:
    return file_key(file.source, file.path)


# ---------------------------------------------------------------- the tables, and their upgrade in place

UPGRADING = f"{FILES_TABLE}__upgrading"
REPLACED = f"{FILES_TABLE}__replaced"


def ensure(engine: Engine) -> None:
    """Create the ledger tables when missing, and upgrade a ledger that keys files by path alone (one process
    at a time: two runs, or a run and a library load, may start together)."""
    with writing(engine) as conn, ddl_lock(conn, FILES_TABLE):
        inspector = sa.inspect(conn)
        for leftover in (UPGRADING, REPLACED):  # MySQL commits each DDL: an upgrade may have stopped between
            if inspector.has_table(leftover) and inspector.has_table(FILES_TABLE):
                conn.exec_driver_sql(f"DROP TABLE {_quote(conn, leftover)}")
        if inspector.has_table(FILES_TABLE) and "file_key" not in _columns(conn, FILES_TABLE):
            _upgrade_files(conn)
        metadata.create_all(conn, checkfirst=True)
        _upgrade_rejects(conn)


def _columns(conn: Connection, table: str) -> dict[str, sa.types.TypeEngine]:
    return {c["name"]: c["type"] for c in sa.inspect(conn).get_columns(table)}


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _upgrade_files(conn: Connection) -> None:
    """Rebuild `_processor_files` keyed by file_key, each old file with no source and its path as lineage."""
    side = files.to_metadata(sa.MetaData(), name=UPGRADING)
    old = sa.Table(FILES_TABLE, sa.MetaData(), autoload_with=conn)
    kept = [c.name for c in files.columns if c.name in old.c and c.name != "path"]
    rows = conn.execute(sa.select(old)).mappings().all()
    side.create(conn)
    batch = [
        {
            **{c: row[c] for c in kept},
            "file_key": file_key(None, row["path"]),
            "path": row["path"],
            "lineage": row["path"],
        }
        for row in rows
    ]
    if batch:
        conn.execute(sa.insert(side), batch)
    if dialect_family(conn.engine) == "mysql":  # one atomic swap; the old table is dropped after
        conn.exec_driver_sql(
            f"RENAME TABLE {_quote(conn, FILES_TABLE)} TO {_quote(conn, REPLACED)}, "
            f"{_quote(conn, UPGRADING)} TO {_quote(conn, FILES_TABLE)}"
        )
        conn.exec_driver_sql(f"DROP TABLE {_quote(conn, REPLACED)}")
    else:  # one transaction
        conn.exec_driver_sql(f"DROP TABLE {_quote(conn, FILES_TABLE)}")
        conn.exec_driver_sql(f"ALTER TABLE {_quote(conn, UPGRADING)} RENAME TO {_quote(conn, FILES_TABLE)}")
    log.warning(
        "upgraded the ledger: its %d file(s) were known by path alone; each becomes a file of the source "
        "that next lists it",
        len(rows),
    )


def _upgrade_rejects(conn: Connection) -> None:
    """Give rejects of an old ledger their file's key, and their path room for any length (each step idempotent)."""
    columns = _columns(conn, REJECTS_TABLE)
    if "file_key" not in columns:
        conn.exec_driver_sql(f"ALTER TABLE {_quote(conn, REJECTS_TABLE)} ADD COLUMN file_key VARCHAR({KEY_LENGTH})")
        sa.Index(f"ix_{REJECTS_TABLE}_file_key", rejects.c.file_key).create(conn)
    unkeyed = sa.select(rejects.c.path).where(rejects.c.file_key.is_(None)).distinct()
    for path in conn.execute(unkeyed).scalars().all():
        keyed = sa.update(rejects).where(rejects.c.path == path, rejects.c.file_key.is_(None))
        conn.execute(keyed.values(file_key=file_key(None, path)))
    if getattr(columns["path"], "length", None) is not None:
        _widen_reject_paths(conn)


def _widen_reject_paths(conn: Connection) -> None:
    """An old rejects table holds paths of up to 700 characters, indexed: make it TEXT, unindexed (keys look up)."""
    family, table = dialect_family(conn.engine), _quote(conn, REJECTS_TABLE)
    if family == "sqlite":  # a SQLite VARCHAR has no length limit
        return
    for index in sa.inspect(conn).get_indexes(REJECTS_TABLE):
        if index["column_names"] == ["path"]:
            on = f" ON {table}" if family == "mysql" else ""
            conn.exec_driver_sql(f"DROP INDEX {_quote(conn, index['name'])}{on}")
    if family == "mysql":
        conn.exec_driver_sql(f"ALTER TABLE {table} MODIFY path TEXT NOT NULL")
    else:
        conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN path TYPE TEXT")


# ---------------------------------------------------------------- reading


def check_writable(engine: Engine) -> None:
    """Raise the database's error when this user may not write the ledger (an update that changes nothing)."""
    with writing(engine) as conn:
        conn.execute(sa.update(files).where(sa.false()).values(status=files.c.status))
        conn.execute(sa.delete(rejects).where(sa.false()))


def read(engine: Engine) -> dict[str, Entry]:
    """Every ledger entry by its key (a ledger not upgraded yet is read as it will be: files of no source)."""
    with engine.connect() as conn:
        current = "file_key" in _columns(conn, FILES_TABLE)
        table = files if current else sa.Table(FILES_TABLE, sa.MetaData(), autoload_with=conn)
        rows = conn.execute(sa.select(table)).mappings().all()
    return {entry.key: entry for entry in map(_entry, rows)}


def _entry(row) -> Entry:
    return Entry(
        path=row["path"],
        table_name=row["table_name"],
        size=row["size"],
        content_hash=row["content_hash"],
        rows_loaded=row["rows_loaded"],
        status=row["status"],
        rows_rejected=row["rows_rejected"],
        error=row["error"],
        finished_at=row["finished_at"],
        key=row.get("file_key") or file_key(None, row["path"]),
        source=row.get("source"),
        lineage=row.get("lineage") or row["path"],
    )


# ---------------------------------------------------------------- writing one file's row


def _new_row(file: SourceFile) -> dict:
    return {"file_key": key_of(file), "source": file.source, "path": file.path, "lineage": file.lineage}


def _upsert(conn: Connection, file: SourceFile, values: dict, inserted: dict | None = None) -> None:
    """Update the file's row, or insert it (with `inserted` too) when the ledger does not know it yet; safe when
    another process inserts it meanwhile."""
    where = files.c.file_key == key_of(file)
    if conn.execute(sa.update(files).where(where).values(**values)).rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(files).values(**_new_row(file), **(inserted or {}), **values))
    except sa.exc.IntegrityError:  # inserted by a concurrent load of the same file: update it instead
        conn.execute(sa.update(files).where(where).values(**values))


def mark_loading(engine: Engine, file: SourceFile, table: str, size: int, run_id: str) -> None:
    """Note that a file is being loaded (committed at once, so a crash shows where it stopped)."""
    mark_queued(engine, [(file, table, size)], run_id)


def mark_queued(engine: Engine, queued: Iterable[tuple[SourceFile, str, int]], run_id: str) -> None:
    """Note the (file, table, size) a run is about to load as loading, in one transaction, before it creates
    their tables: a run killed before a worker reaches a file leaves it listed, so the transform does not
    build the deals from a table its file never reached."""
    with writing(engine) as conn:
        values = {"status": LOADING, "error": None, "started_at": now(), "finished_at": None, "run_id": run_id}
        for file, table, size in queued:
            _upsert(conn, file, values, {"table_name": table, "size": size})


def record_loaded(
    conn: Connection,
    file: SourceFile,
    table: str,
    size: int,
    content_hash: str,
    rows: int,
    rejected: int,
    run_id: str,
    status: str = LOADED,
) -> None:
    """Record a file as loaded, inside the transaction that loaded its rows (stamped with its lineage)."""
    _upsert(
        conn,
        file,
        {
            "table_name": table,
            "lineage": file.lineage,
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
    engine: Engine,
    file: SourceFile,
    table: str,
    size: int,
    status: str,
    error: str | None,
    rejected: int,
    run_id: str,
) -> None:
    """Record an attempt that loaded nothing (failed, empty, gone); what the table held before is kept."""
    with writing(engine) as conn:
        stamp = now()
        values = {"status": status, "error": error, "rows_rejected": rejected, "finished_at": stamp, "run_id": run_id}
        _upsert(conn, file, values, {"table_name": table, "size": size, "started_at": stamp})


@dataclass(frozen=True)
class Claim:
    """A file's ledger row as a loading transaction found it, once it held the row's lock."""

    status: str | None = None
    table_name: str | None = None
    content_hash: str | None = None
    run_id: str | None = None
    lineage: str | None = None  # the `_source_file` its rows in table_name carry

    def loaded_by_another(self, table: str, content_hash: str, run_id: str) -> bool:
        """Whether another run already put this very content in this table (this load must not add it again)."""
        return (
            self.status == LOADED
            and self.run_id != run_id
            and self.table_name == table
            and self.content_hash == content_hash
        )


def claim(conn: Connection, file: SourceFile) -> Claim:
    """Lock the file's ledger row until this transaction ends, and read it (another load of the file waits).

    The row must exist (`mark_loading` writes it first). SQLite needs no row lock: a writing
    transaction holds the whole database.
    """
    row = conn.execute(
        sa.select(files.c.status, files.c.table_name, files.c.content_hash, files.c.run_id, files.c.lineage)
        .where(files.c.file_key == key_of(file))
        .with_for_update()
    ).first()
    return Claim(*row) if row else Claim()


def keep_rejects_of(conn: Connection, file: SourceFile, content_hash: str, run_id: str) -> None:
    """Drop a file's rejects except those this run found in this content (a big file's ranges stored them)."""
    other = sa.or_(rejects.c.content_hash.is_distinct_from(content_hash), rejects.c.run_id.is_distinct_from(run_id))
    conn.execute(sa.delete(rejects).where(rejects.c.file_key == key_of(file), other))


def forget_run_rejects(conn: Connection, file: SourceFile, run_id: str) -> None:
    """Drop the rejects this run stored for a file (a big file's ranges of an attempt that was not kept)."""
    conn.execute(sa.delete(rejects).where(rejects.c.file_key == key_of(file), rejects.c.run_id == run_id))


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
    conn: Connection,
    file: SourceFile,
    content_hash: str | None,
    found: Iterable[Reject],
    run_id: str,
    all_versions: bool,
) -> None:
    """Store a file's rejects, dropping those of earlier attempts (of every version, or of this one)."""
    forget_rejects(conn, file, None if all_versions else content_hash, all_versions)
    add_rejects(conn, file, content_hash, found, run_id)


def forget_rejects(
    conn: Connection, file: SourceFile, content_hash: str | None = None, all_versions: bool = True
) -> None:
    condition = rejects.c.file_key == key_of(file)
    if not all_versions:
        condition = sa.and_(condition, rejects.c.content_hash == content_hash)
    conn.execute(sa.delete(rejects).where(condition))


def add_rejects(
    conn: Connection, file: SourceFile, content_hash: str | None, found: Iterable[Reject], run_id: str
) -> None:
    stamp = now()
    key = key_of(file)
    batch = [
        {
            "file_key": key,
            "path": file.path,
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


def clear_rows(conn: Connection, file: SourceFile) -> None:
    """Note that the table holds no row of this file any more; rows it gets from now on carry its lineage."""
    conn.execute(
        sa.update(files)
        .where(files.c.file_key == key_of(file))
        .values(content_hash=None, rows_loaded=0, lineage=file.lineage)
    )


# ---------------------------------------------------------------- whole runs


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
        keys = sa.select(files.c.file_key).where(files.c.table_name.in_(names))
        conn.execute(sa.delete(rejects).where(rejects.c.file_key.in_(keys.scalar_subquery())))
        conn.execute(sa.delete(files).where(files.c.table_name.in_(names)))


def adopt(engine: Engine, listed: Iterable[SourceFile], entries: dict[str, Entry]) -> dict[str, Entry]:
    """Files known by path alone (an upgraded ledger) become files of the source that lists them now.

    Their rows keep the lineage they were loaded with. Returns the entries as they are afterwards.
    """
    legacy = {entry.path: entry for entry in entries.values() if entry.source is None}
    claims = [(legacy[f.path], f) for f in listed if f.path in legacy and key_of(f) not in entries]
    if not claims:
        return entries
    with writing(engine) as conn:
        for entry, file in claims:
            conn.execute(
                sa.update(files).where(files.c.file_key == entry.key).values(file_key=key_of(file), source=file.source)
            )
            conn.execute(sa.update(rejects).where(rejects.c.file_key == entry.key).values(file_key=key_of(file)))
    log.info("%d file(s) loaded before sources were recorded are now files of %s", len(claims), claims[0][1].source)
    return read(engine)


def mark_gone(engine: Engine, entries: Iterable[Entry], run_id: str) -> None:
    """Note files that are no longer in their source (their rows stay)."""
    keys = [entry.key for entry in entries]
    if keys:
        with writing(engine) as conn:
            conn.execute(
                sa.update(files)
                .where(files.c.file_key.in_(keys))
                .values(status=GONE, error="gone from the source", finished_at=now(), run_id=run_id)
            )


def remove(conn: Connection, entry: Entry) -> None:
    """Forget a file and its rejects (its rows were just removed from its table)."""
    conn.execute(sa.delete(rejects).where(rejects.c.file_key == entry.key))
    conn.execute(sa.delete(files).where(files.c.file_key == entry.key))
