"""Locks on the destination: one run at a time (`destination_lock`), one schema change at a time (`ddl_lock`).

A run holds the destination's lock for every step that writes (load, transform, sync); a second
run waits up to LOCK_TIMEOUT seconds, then stops with LockTimeout naming the holder. The lock is
per database, and per schema on PostgreSQL (the one DEST_SQL's search_path selects):

    PostgreSQL   a session advisory lock, keyed by database and schema
    MySQL        GET_LOCK, keyed by database (MySQL's locks are server-wide)
    SQLite       flock() on `<database file>.lock` beside the database (same host, as WAL needs)

Server-side locks belong to one connection the run keeps open, and the lock file to one open
descriptor: whatever ends the run (kill -9 included) releases the lock with them. Who holds it
(host, pid, start) is written where a waiting run reads it: the `_processor_lock` table, or the
lock file itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import zlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .db import PRIVILEGE, check_connection, describe_db_error, dialect_family, display_url, refusal_kind
from .errors import DatabaseError, LockTimeout

log = logging.getLogger(__name__)

LOCK_TABLE = "_processor_lock"
POLL_SECONDS = 0.5

_metadata = sa.MetaData()
_holders = sa.Table(
    LOCK_TABLE,
    _metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.BigInteger),
    sa.Column("started_at", sa.DateTime),
    mysql_charset="utf8mb4",
)


@dataclass(frozen=True)
class Holder:
    """The run that holds a destination's lock."""

    host: str
    pid: int
    started_at: datetime

    @classmethod
    def me(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), datetime.now(UTC).replace(tzinfo=None, microsecond=0))

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, started {self.started_at:%Y-%m-%d %H:%M:%S} UTC"


class destination_lock:
    """Hold the run lock of the engine's destination; waits up to `timeout` seconds, then raises LockTimeout.

    Raises DatabaseError when the destination cannot be reached.
    """

    def __init__(self, engine: Engine, timeout: float):
        self.engine, self.timeout = engine, timeout
        self._lock: _FileLock | _ServerLock | None = None
        self._me: Holder | None = None

    def __enter__(self) -> Holder:
        check_connection(self.engine)
        family = dialect_family(self.engine)
        self._lock = _FileLock(self.engine) if family == "sqlite" else _ServerLock(self.engine, family)
        self._me = self._take()
        return self._me

    def check(self, stage: str) -> None:
        """Before a stage: make sure the run still holds the lock, taking it again (waiting as on entry) when the
        server closed the connection that held it; raises LockTimeout when another run keeps it meanwhile.

        A server-side lock goes with its connection: a DBA's pg_terminate_backend, idle_session_timeout, a
        proxy or firewall dropping an idle connection all release it while the run goes on.
        """
        if self._lock is None or self._lock.alive():
            return
        log.warning(
            "the connection holding this run's lock on %s was closed; taking the lock again before the %s",
            display_url(self.engine.url),
            stage,
        )
        self._lock.close()
        self._lock = None
        self._lock = _ServerLock(self.engine, dialect_family(self.engine))
        self._take(self._me)

    def _take(self, me: Holder | None = None) -> Holder:
        try:
            self._wait()
            me = me or Holder.me()
            self._lock.announce(me)
        except sa.exc.DBAPIError as exc:  # no schema to create the holders' table in, or no right to
            self._lock.close()
            self._lock = None
            fix = "the user needs CREATE on the schema (or database)" if refusal_kind(exc) == PRIVILEGE else "run again"
            raise DatabaseError(
                f"cannot record this run's lock at {display_url(self.engine.url)}: "
                f"{describe_db_error(exc, self.engine.url)}; {fix}"
            ) from None
        except BaseException:
            self._lock.close()
            self._lock = None
            raise
        return me

    def __exit__(self, *exc) -> bool:
        if self._lock is not None:
            self._lock.close()
        return False

    def _wait(self) -> None:
        deadline = time.monotonic() + self.timeout
        told = False
        while not self._lock.try_acquire():
            holder = self._lock.holder()
            who = holder.describe() if holder else "a run that has not said who it is yet"
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"another run is writing to {display_url(self.engine.url)} ({who}); gave up after "
                    f"{self.timeout:g} s (LOCK_TIMEOUT): let it finish, or stop it, then run again"
                )
            if not told:
                log.warning(
                    "another run is writing to %s (%s); waiting up to %g s for it (LOCK_TIMEOUT)",
                    display_url(self.engine.url),
                    who,
                    self.timeout,
                )
                told = True
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


class _ServerLock:
    """PostgreSQL's advisory lock or MySQL's GET_LOCK, on a connection of its own (autocommit)."""

    def __init__(self, engine: Engine, family: str):
        self.engine, self.family = engine, family
        try:
            self.conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if family == "postgresql":
                database, schema = self.conn.exec_driver_sql("SELECT current_database(), current_schema()").one()
                self.name = f"processor-run:{database}:{schema}"
            else:
                self.name = f"processor-run:{self.conn.exec_driver_sql('SELECT DATABASE()').scalar()}"
                # The lock connection idles for the whole run: MySQL closes idle sessions after 8 hours.
                self.conn.exec_driver_sql("SET SESSION wait_timeout = 31536000")
        except sa.exc.DBAPIError as exc:
            raise DatabaseError(
                f"cannot lock {display_url(engine.url)}: {describe_db_error(exc, engine.url)}"
            ) from None
        digest = hashlib.sha256(self.name.encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)  # PostgreSQL: a bigint
        self.label = "processor-run:" + digest.hex()[:40]  # MySQL: at most 64 characters, server-wide
        self.held = False

    def try_acquire(self) -> bool:
        if self.family == "postgresql":
            got = self.conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
        else:
            got = self.conn.execute(sa.text("SELECT GET_LOCK(:k, 0)"), {"k": self.label}).scalar()
        self.held = bool(got)
        return self.held

    def alive(self) -> bool:
        """Whether the connection (and so the lock) is still there."""
        try:
            self.conn.exec_driver_sql("SELECT 1").scalar()
        except sa.exc.DBAPIError:
            return False
        return True

    def holder(self) -> Holder | None:
        try:
            row = self.conn.execute(
                sa.select(_holders.c.host, _holders.c.pid, _holders.c.started_at).where(_holders.c.name == self.label)
            ).first()
        except sa.exc.DBAPIError:
            return None  # no run has written its name here yet
        return Holder(*row) if row else None

    def announce(self, me: Holder) -> None:
        _holders.create(self.conn, checkfirst=True)  # only a holder gets here: no two runs create it at once
        self.conn.execute(sa.delete(_holders).where(_holders.c.name == self.label))
        self.conn.execute(sa.insert(_holders).values(name=self.label, **asdict(me)))

    def close(self) -> None:
        try:
            if self.held:
                self.conn.execute(sa.delete(_holders).where(_holders.c.name == self.label))
                unlock = "SELECT pg_advisory_unlock(:k)" if self.family == "postgresql" else "SELECT RELEASE_LOCK(:k)"
                self.conn.execute(sa.text(unlock), {"k": self.key if self.family == "postgresql" else self.label})
        except sa.exc.DBAPIError as exc:  # the connection is gone, and the lock with it
            log.debug("releasing the run lock: %s", describe_db_error(exc, self.engine.url))
        except sa.exc.InvalidRequestError:  # gone, and SQLAlchemy already knew it (alive() found it so)
            pass
        finally:
            self.held = False
            if not self.conn.closed:
                self.conn.invalidate()  # never back to the pool: a lock must not outlive its run on a pooled connection
            self.conn.close()


class _FileLock:
    """flock() on a file beside the SQLite database; the file holds the holder's name."""

    def __init__(self, engine: Engine):
        self.path = f"{os.path.abspath(engine.url.database)}.lock"
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DatabaseError(f"cannot create the lock file {self.path}: {exc.strerror}") from None

    def alive(self) -> bool:
        return True  # an open descriptor holds its flock until the run closes it

    def try_acquire(self) -> bool:
        import fcntl

        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def holder(self) -> Holder | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
            return Holder(data["host"], int(data["pid"]), datetime.fromisoformat(data["started_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def announce(self, me: Holder) -> None:
        text = json.dumps({**asdict(me), "started_at": me.started_at.isoformat()}).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, text, 0)

    def close(self) -> None:
        os.close(self.fd)  # releases the flock; the file stays (removing it would race with a waiting run)


class ddl_lock:
    """Serialise schema changes to one object (a table, the ledger) across processes, within a transaction.

    PostgreSQL: a transaction-scoped advisory lock; MySQL: GET_LOCK until the block ends (its DDL
    commits as it goes); SQLite needs none (a writing transaction holds the whole database).
    """

    def __init__(self, conn: Connection, name: str):
        self.conn, self.key, self.family = conn, f"processor:{name}", dialect_family(conn.engine)

    def __enter__(self):
        if self.family == "postgresql":
            self.conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(self.key.encode())})
        elif self.family == "mysql":
            self.conn.execute(sa.text("SELECT GET_LOCK(:k, 3600)"), {"k": self.key[:64]})
        return self

    def __exit__(self, *exc):
        if self.family == "mysql":
            self.conn.execute(sa.text("SELECT RELEASE_LOCK(:k)"), {"k": self.key[:64]})
        return False
