"""The benchmark's own schemas (PostgreSQL), databases (MariaDB) and files (SQLite): reset, drop,
copy a table's columns, read a table back. Nothing else on the servers is touched."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import sqlalchemy as sa

from .tools import Servers, namespace

TEXT_TYPES = ("text", "varchar", "char", "character varying", "longtext", "mediumtext", "tinytext", "")


class Spaces:
    def __init__(self, servers: Servers) -> None:
        self.servers = servers
        self._engines: dict[str, sa.Engine] = {}

    def engine(self, family: str) -> sa.Engine:
        if family not in self._engines:
            if family == "postgres":
                url = self.servers.postgres.set(drivername="postgresql+psycopg2")
            else:
                url = self.servers.mysql.set(drivername="mysql+pymysql", database=None, query={"charset": "utf8mb4"})
            self._engines[family] = sa.create_engine(url, poolclass=sa.NullPool)
        return self._engines[family]

    def _execute(self, family: str, *statements: str) -> None:
        with self.engine(family).begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)

    def reset(self, family: str, tool: str) -> None:
        """An empty namespace for `tool`, and none of its working files for this database."""
        self.drop(family, tool)
        space = namespace(tool)
        if family == "postgres":
            self._execute(family, f'CREATE SCHEMA "{space}"')
        elif family == "mysql":
            self._execute(family, f"CREATE DATABASE `{space}` CHARACTER SET utf8mb4")
        else:
            self.servers.sqlite_dir.mkdir(parents=True, exist_ok=True)

    def drop(self, family: str, tool: str) -> None:
        space = namespace(tool)
        if family == "postgres":
            self._execute(family, f'DROP SCHEMA IF EXISTS "{space}" CASCADE')
        elif family == "mysql":
            self._execute(family, f"DROP DATABASE IF EXISTS `{space}`")
        else:
            base = self.servers.sqlite_file(tool)
            for path in [base, *base.parent.glob(f"{base.stem}__*"), *base.parent.glob(f"{base.name}-*")]:
                path.unlink(missing_ok=True)
        shutil.rmtree(self.servers.work / "dlt" / family, ignore_errors=True)

    def copy_table(self, family: str, table: str, source: str, target: str) -> None:
        """Create `table` in `target`'s namespace with the columns of `source`'s, less `_source_file`."""
        src, dst = namespace(source), namespace(target)
        if family == "postgres":
            self._execute(
                family,
                f'CREATE TABLE "{dst}"."{table}" (LIKE "{src}"."{table}")',
                f'ALTER TABLE "{dst}"."{table}" DROP COLUMN IF EXISTS _source_file',
            )
        elif family == "mysql":
            self._execute(
                family,
                f"CREATE TABLE `{dst}`.`{table}` LIKE `{src}`.`{table}`",
                f"ALTER TABLE `{dst}`.`{table}` DROP COLUMN _source_file",
            )
        else:
            columns = [(name, kind) for name, kind in self._sqlite_columns(source, table) if name != "_source_file"]
            body = ", ".join(f'"{name}" {kind}' for name, kind in columns)
            with sqlite3.connect(self.servers.sqlite_file(target)) as conn:
                conn.execute(f'CREATE TABLE "{table}" ({body})')
            conn.close()

    def _sqlite_columns(self, tool: str, table: str) -> list[tuple[str, str]]:
        with sqlite3.connect(self.servers.sqlite_file(tool)) as conn:
            found = [(row[1], row[2]) for row in conn.execute(f'PRAGMA table_info("{table}")')]
        conn.close()
        return found

    def typed_columns(self, family: str, tool: str, table: str) -> frozenset[str]:
        """Columns of a table whose type is not text (a native load makes their empty fields NULL)."""
        if family == "sqlite":
            return frozenset(name for name, kind in self._sqlite_columns(tool, table) if kind.lower() not in TEXT_TYPES)
        sql = (
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = :space AND table_name = :table"
        )
        with self.engine(family).connect() as conn:
            rows = conn.execute(sa.text(sql), {"space": namespace(tool), "table": table}).all()
        return frozenset(name for name, kind in rows if kind.lower() not in TEXT_TYPES)

    def read(self, family: str, tool: str, table: str) -> tuple[list[str], list[tuple]]:
        """Every row of a tool's table as the driver gives it back (SQLite: the stored values)."""
        if family == "sqlite":
            path = self.servers.sqlite_file(tool)
            if not Path(path).exists():
                return [], []
            with sqlite3.connect(path) as conn:
                cursor = conn.execute(f'SELECT * FROM "{table}"')
                rows = cursor.fetchall()
                columns = [d[0].lower() for d in cursor.description]
            conn.close()
            return columns, rows
        quote = '"' if family == "postgres" else "`"
        sql = f"SELECT * FROM {quote}{namespace(tool)}{quote}.{quote}{table}{quote}"
        with self.engine(family).connect() as conn:
            result = conn.exec_driver_sql(sql)
            names = list(result.keys())  # noqa: SIM118 (a Result, not a dict)
            return [c.lower() for c in names], [tuple(r) for r in result]

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
