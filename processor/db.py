"""The destination database: URL normalising, engines (one per process), connection checks.

Users write URLs the way their tools do (`postgres://`, `postgresql://`, `mysql://`); we ship
psycopg2 and PyMySQL, so bare schemes are pinned to those drivers (SQLAlchemy 2.1 would pick
psycopg 3 and mysqlclient, which are not installed). Passwords never leave this module
unmasked: `display_url` is what logs and errors show.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from .errors import ConfigError, DatabaseError
from .redact import redact

log = logging.getLogger(__name__)

_DRIVERS = {
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "postgresql+psycopg2": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "mysql+pymysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "mariadb+pymysql": "mariadb+pymysql",
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
}
CONNECT_TIMEOUT = 10
LOCK_WAIT_SECONDS = 3600  # how long a load waits for another's lock: SQLite's write lock, a file's ledger row
SQLITE_BUSY_TIMEOUT = LOCK_WAIT_SECONDS  # workers take turns writing to one SQLite file


def normalise_url(raw: str) -> URL:
    """Parse DEST_SQL and pin the driver we ship; raises ConfigError with the fix."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            "DEST_SQL is not a database URL; expected e.g. sqlite:///processor.db, "
            "postgresql://user:password@host:5432/db or mysql://user:password@host:3306/db"
        ) from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ConfigError(
            f"DEST_SQL uses {url.drivername!r}, which processor does not support; "
            "use sqlite:///file.db, postgresql://... (psycopg2) or mysql://... (PyMySQL)"
        )
    url = url.set(drivername=driver)
    if driver == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ConfigError("DEST_SQL: an in-memory SQLite database cannot be shared by workers; give a file path")
    elif "charset" not in url.query and driver.endswith("pymysql"):
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url


def display_url(url: URL | str) -> str:
    """The URL with its password masked, for logs, reports and errors."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            return "(unparseable URL)"
    return url.render_as_string(hide_password=True)


def dialect_family(engine: Engine) -> str:
    """'postgresql', 'mysql' (MySQL and MariaDB) or 'sqlite'."""
    name = engine.dialect.name
    return "mysql" if name in ("mysql", "mariadb") else name


def create_engine(raw_url: str) -> Engine:
    """A new engine for DEST_SQL with our driver options; raises ConfigError."""
    url = normalise_url(raw_url)
    kwargs: dict = {"pool_pre_ping": True}
    if url.drivername == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT}
    elif url.drivername.startswith("postgresql"):
        # A URL's own ?application_name= wins, so one job's sessions can be told from another's.
        name = url.query.get("application_name", "processor")
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT, "application_name": name}
    else:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT, "local_infile": True}
    try:
        engine = sa.create_engine(url, **kwargs)
    except NoSuchModuleError as exc:
        raise ConfigError(f"DEST_SQL: driver for {url.drivername} is not installed ({exc})") from None
    if url.drivername == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
    elif url.drivername.endswith("pymysql"):
        sa.event.listen(engine, "connect", _mysql_session)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy's transactions be real SQLite transactions (DDL and savepoints included).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn) -> None:
    # A writing transaction takes the write lock up front (IMMEDIATE): workers queue for it
    # (busy timeout) instead of failing when two readers both try to upgrade. Readers do not wait.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("writes") else "BEGIN")


def _mysql_session(dbapi_connection, _record) -> None:
    # Strict mode turns MySQL's "warning and a zero" into an error on INSERT; LOAD DATA LOCAL
    # still downgrades errors to warnings, which the MySQL loader checks after every load.
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO'")
    cursor.execute("SET SESSION time_zone = '+00:00'")
    # No gap locks: parallel workers upserting ledger rows for new paths would deadlock on them.
    cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    # Two loads of one file take turns on its ledger row (ledger.claim) for as long as a load takes,
    # as they do on PostgreSQL (no lock timeout) and SQLite (SQLITE_BUSY_TIMEOUT): not 50 seconds.
    cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_SECONDS}")
    cursor.close()


_engines: dict[tuple[str, int], Engine] = {}


def engine_for(raw_url: str) -> Engine:
    """This process's engine for the URL: workers build their own, never inherit one."""
    key = (raw_url, os.getpid())
    if key not in _engines:
        _engines[key] = create_engine(raw_url)
    return _engines[key]


def release_engines() -> None:
    """Close the connections `engine_for` opened in this process (after an inline run, or in tests)."""
    for key in [k for k in _engines if k[1] == os.getpid()]:
        _engines.pop(key).dispose()


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes (committed on success, rolled back on error)."""
    with engine.connect().execution_options(writes=True) as conn, conn.begin():
        yield conn


def check_connection(engine: Engine) -> None:
    """Connect once and run SELECT 1; raises DatabaseError with a masked URL."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(
            f"cannot reach the database at {display_url(engine.url)}: {describe_db_error(exc, engine.url)}"
        ) from None


def describe_db_error(exc: BaseException, url: URL | None = None) -> str:
    """The first line of a driver error, without SQL parameters or passwords."""
    text = first_line(getattr(exc, "orig", None) or exc)
    secrets = [url.password] if url is not None and url.password else []
    return redact(text, secrets)


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (drivers add SQL and hints below it)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
