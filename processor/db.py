"""The destination database: URL normalising, engines (one per process), connection checks.

Users write URLs the way their tools do (`postgres://`, `postgresql://`, `mysql://`); we ship
psycopg2 and PyMySQL, so bare schemes are pinned to those drivers (SQLAlchemy 2.1 would pick
psycopg 3 and mysqlclient, which are not installed). Passwords never leave this module
unmasked: `display_url` is what logs and errors show.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, quote, unquote

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from .errors import ConfigError, DatabaseError
from .redact import MASK, redact

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


_SECRET_QUERY = re.compile(r"pass|pwd|secret|token|key|auth|cred", re.IGNORECASE)
ESCAPE_HINT = (
    "percent-encode the characters of the user name and password that a URL reserves: '@' as %40, ':' as %3A, "
    "'/' as %2F, '?' as %3F, '#' as %23, '%' as %25 (e.g. postgresql://loader:p%40ss@host:5432/db)"
)


def normalise_url(raw: str) -> URL:
    """Parse DEST_SQL and pin the driver we ship; raises ConfigError with the fix."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            "DEST_SQL is not a database URL; expected e.g. sqlite:///processor.db, "
            "postgresql://user:password@host:5432/db or mysql://user:password@host:3306/db"
        ) from None
    except ValueError:  # a port that is not a number, often the second half of a password with an '@'
        raise ConfigError(
            f"DEST_SQL cannot be read: its port is not a number; if the password holds them, {ESCAPE_HINT}"
        ) from None
    if ambiguous(url):
        raise ConfigError(f"DEST_SQL cannot be read unambiguously: the host holds an '@'; {ESCAPE_HINT}")
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ConfigError(
            f"DEST_SQL uses {url.drivername!r}, which processor does not support; "
            "use sqlite:///file.db, postgresql://... (psycopg2) or mysql://... (PyMySQL)"
        )
    url = url.set(drivername=driver)
    if driver == "sqlite":
        _check_sqlite_url(url)
    elif url.port is not None and not 0 < url.port < 65536:
        raise ConfigError(f"DEST_SQL: port {url.port} is not a port (1 to 65535)")
    if "charset" not in url.query and driver.endswith("pymysql"):
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url


def ambiguous(url: URL) -> bool:
    """Whether a parsed URL may not be what its writer meant: an unescaped '@' left in the host."""
    return "@" in (url.host or "")


def _check_sqlite_url(url: URL) -> None:
    """A SQLite URL must name a file: `sqlite://name.db` (two slashes) names a host and no file."""
    if url.host:
        raise ConfigError(
            f"DEST_SQL: sqlite://{url.host} has two slashes, so {url.host!r} is read as a host and SQLite would "
            f"use a throw-away in-memory database; write sqlite:///{url.host} (a file in the working directory) "
            "or sqlite:////absolute/path.db"
        )
    if not url.database or url.database == ":memory:":
        raise ConfigError("DEST_SQL: an in-memory SQLite database cannot be shared by workers; give a file path")


def sqlite_folder_problem(url: URL) -> str | None:
    """Why the folder of a SQLite file cannot hold it (None when it can, or for other databases)."""
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    path = os.path.abspath(url.database)
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        return f"DEST_SQL: {url.database} is a folder; name a file in it, e.g. sqlite:///{url.database}/processor.db"
    if not os.path.isdir(folder):
        return f"DEST_SQL: the folder {folder} does not exist; create it, or fix the path in {url.database}"
    if not os.path.exists(path) and not os.access(folder, os.W_OK | os.X_OK):
        return f"DEST_SQL: cannot create {url.database}: the folder {folder} is not writable by this user"
    return None


def display_url(url: URL | str) -> str:
    """The URL with its password and credential-like query values masked, for logs, reports and errors."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except (ArgumentError, ValueError):
            return "(a database URL that cannot be read)"
    if ambiguous(url):
        return f"{url.drivername}://(a URL whose host cannot be told from its password)"
    url = _as_written(url)
    shown = url.set(query={}).render_as_string(hide_password=True)
    pairs = [(key, value) for key, values in url.query.items() for value in _values(values)]
    if not pairs:
        return shown
    return (
        shown + "?" + "&".join(f"{key}={MASK if _SECRET_QUERY.search(key) else quote(value)}" for key, value in pairs)
    )


def _as_written(url: URL) -> URL:
    """The URL without what `normalise_url` adds (our driver, MySQL's utf8mb4), so messages show the user's form."""
    if url.drivername in ("postgresql+psycopg2", "mysql+pymysql", "mariadb+pymysql"):
        url = url.set(drivername=url.drivername.split("+")[0])
        if url.query.get("charset") == "utf8mb4":
            url = url.difference_update_query(["charset"])
    return url


def _values(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)


def url_secrets(raw: str) -> list[str]:
    """Every part of a database URL that must never be printed: its password, query values that carry
    credentials, and, for a URL with an unescaped '@', every piece its password could be."""
    found: list[str] = []
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        url = None
    if url is not None:
        found.append(url.password or "")
        found += [v for key, values in url.query.items() if _SECRET_QUERY.search(key) for v in _values(values)]
    rest = raw.split("://", 1)[-1]
    for at in (i for i, char in enumerate(rest) if char == "@"):
        _user, colon, password = rest[:at].partition(":")
        if colon:
            found += [password, unquote(password), *password.split("@")]
    query = rest.split("?", 1)[1] if "?" in rest else ""
    found += [value for key, value in parse_qsl(query) if _SECRET_QUERY.search(key)]
    return sorted({secret for secret in found if secret}, key=len, reverse=True)


def dialect_family(engine: Engine) -> str:
    """'postgresql', 'mysql' (MySQL and MariaDB) or 'sqlite'."""
    name = engine.dialect.name
    return "mysql" if name in ("mysql", "mariadb") else name


def create_engine(raw_url: str) -> Engine:
    """A new engine for DEST_SQL with our driver options; raises ConfigError."""
    url = normalise_url(raw_url)
    problem = sqlite_folder_problem(url)
    if problem:
        raise ConfigError(problem)
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
    except (TypeError, ValueError) as exc:  # a query parameter the dialect cannot convert: ?connect_timeout=abc
        raise ConfigError(f"DEST_SQL {display_url(url)}: {_refused_options(exc, url)}") from None
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
    # Two processes opening a new file at once: switching it to WAL needs it alone for a moment, and
    # SQLite answers "locked" at once there, without its busy wait; so wait here, as the busy wait would.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
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


def latest_row(conn: Connection, table: sa.Table) -> sa.RowMapping | None:
    """The row of `table` with the highest id (None when the table is empty or does not exist yet)."""
    if not sa.inspect(conn).has_table(table.name):
        return None
    return conn.execute(sa.select(table).order_by(table.c.id.desc()).limit(1)).mappings().first()


def check_connection(engine: Engine) -> None:
    """Connect once and run SELECT 1; raises DatabaseError with a masked URL."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(
            f"cannot reach the database at {display_url(engine.url)}: {describe_db_error(exc, engine.url)}"
        ) from None
    except (TypeError, ValueError, LookupError, AttributeError) as exc:
        # The driver refused a query parameter before connecting: PyMySQL's ?sslmode=, ?charset=bogus, ...
        raise ConfigError(f"DEST_SQL {display_url(engine.url)}: {_refused_options(exc, engine.url)}") from None


def _refused_options(exc: BaseException, url: URL) -> str:
    return f"its driver refuses the options after '?' ({describe_db_error(exc, url)}); remove or correct them"


def describe_db_error(exc: BaseException, url: URL | None = None) -> str:
    """The first line of a driver error, without SQL parameters or passwords."""
    orig = getattr(exc, "orig", None) or exc
    text = first_line(orig)
    if getattr(orig, "pgcode", None) == _NO_SCHEMA:
        text += f" (no schema of the search path exists: {_NO_SCHEMA_FIX})"
    secrets = url_secrets(url.render_as_string(hide_password=False)) if url is not None else []
    return redact(text, secrets)


_NO_SCHEMA = "3F000"  # PostgreSQL's invalid_schema_name: `-csearch_path=` names a schema that is not there
_NO_SCHEMA_FIX = "create it (CREATE SCHEMA ...) or correct options=-csearch_path in DEST_SQL"


PRIVILEGE, WIDTH = "privilege", "width"
_PG_CODES = {"42501": PRIVILEGE, "54011": WIDTH, "54000": WIDTH}  # insufficient_privilege, too_many_columns, limit
_MYSQL_CODES = {1142: PRIVILEGE, 1143: PRIVILEGE, 1044: PRIVILEGE, 1227: PRIVILEGE, 1370: PRIVILEGE}
_MYSQL_CODES |= {1117: WIDTH, 1118: WIDTH}  # too many columns / table definition too large, row size too large
_SQLITE_WORDS = {"readonly database": PRIVILEGE, "too many columns": WIDTH}


def refusal_kind(exc: BaseException) -> str | None:
    """What a database refused, when it is no passing fault: PRIVILEGE (the user may not create or change it),
    WIDTH (too many columns, or too wide a row), or None."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "pgcode", None)
    if code is not None:
        return _PG_CODES.get(code)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        if args[0] == 1005 and "185" in str(args[1:]):  # InnoDB's errno 185: too many columns
            return WIDTH
        return _MYSQL_CODES.get(args[0])
    text = str(orig).lower()
    return next((kind for words, kind in _SQLITE_WORDS.items() if words in text), None)


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (drivers add SQL and hints below it)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
