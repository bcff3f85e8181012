"""SQLite: `executemany` fed straight from the csv reader, in one transaction.

Empty fields and null markers become NULL inside the INSERT (SQL, not Python), dates are
checked as they stream past, and one query over the new rows checks that numeric columns
got numbers (SQLite would otherwise keep `N/A` as text in an INTEGER column).

The first attempt is lean: a number, date or timestamp column whose sample held no empty field
or marker goes in as the field is (`?`, no SQL around it). A null the sample missed then shows:
as text in a numeric column, which the check after the insert finds, or as a field that is no
date, which the date check finds; and the file is loaded again with every field guarded. A wrong
guess costs one more pass over the file (a number's only after the insert, a date's as it streams), logged.
"""

from __future__ import annotations

import contextlib
import csv
import re
import sqlite3
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from sqlalchemy.engine import Connection

from ..db import first_line, refusal_kind
from ..schema import classify
from .encode import Chunk, rows_of
from .files import CsvFormat, csv_reader, text_stream
from .tables import SOURCE_COLUMN
from .target import DataProblem, Disconnected, Refused, Target

NAME = "insert"
TOOL = "SQLite's insert path"
# The bulk path parses with our own reader: it reads no construct otherwise.
BENDS: frozenset[str] = frozenset()
_REAL_CHARACTERS = 17  # 15 significant digits, a sign and a point
# What a numeric column must not hold, two types each: a three-item IN list costs SQLite a lookup table.
_NOT_NUMBERS = {"integer": "NOT IN ('integer', 'null')", "double": "IN ('text', 'blob')"}
_CHECKED_KINDS = frozenset({*_NOT_NUMBERS, "date", "timestamp"})  # a stray null in them is found after all


class _BadValue(Exception):
    pass


def can_bulk(conn: Connection) -> bool:
    return True


def faithful(target: Target) -> bool:
    """Null markers become NULL inside the INSERT: any target loads faithfully."""
    return True


def lean(target: Target) -> bool:
    """Whether a lean load would differ from a guarded one: some checked column's sample held no null."""
    return bool(_unguarded(target))


def _unguarded(target: Target) -> frozenset[int]:
    """The columns a lean load takes as they are: numbers, dates and timestamps whose sample held no empty
    field or marker, unless a marker reads as a value (`-999` would go in as a number, unnoticed)."""
    if not target.nullish or target.markers_read_as_values:
        return frozenset()
    return frozenset(i for i, t in enumerate(target.types) if t.kind in _CHECKED_KINDS and not target.nullish[i])


def bends(target: Target) -> frozenset[str]:
    return BENDS


def begin(conn: Connection, target: Target) -> None:
    return None


def bulk(conn: Connection, target: Target, raw: BinaryIO, fmt: CsvFormat) -> int:
    """Insert the file's rows as they are parsed; returns rows loaded; raises DataProblem."""
    cursor = conn.connection.driver_connection.cursor()
    table = conn.dialect.identifier_preparer.quote(target.table)
    start = cursor.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}").fetchone()[0]
    reader = csv_reader(text_stream(raw, fmt), fmt, strict=True)
    rows: Iterable[list[str]] = filter(None, reader)
    bare = _bare(target)
    dates = [i for i, t in enumerate(target.types) if t.kind == "date"]
    stamps = [i for i, t in enumerate(target.types) if t.kind == "timestamp"]
    if dates or stamps:
        rows = _checked(rows, dates, stamps, frozenset(["", *target.null_values]), bare)
    with _driver_errors():
        if fmt.header:
            next(reader, None)
        cursor.executemany(_insert_sql(conn, target, bare), rows)
        count = cursor.rowcount
        _check_numbers(cursor, conn.dialect.identifier_preparer.quote, table, target, start)
    return count


def insert(conn: Connection, target: Target, rows: list[list[str | None]]) -> None:
    """Insert rows that were already checked (None is NULL)."""
    with _driver_errors():
        conn.connection.driver_connection.cursor().executemany(_insert_sql(conn, target, _bare(target)), rows)


def load_chunks(conn: Connection, target: Target, chunks: Iterable[Chunk]) -> int:
    """Insert values our code produced, in chunks of columns, bound as they are (None is NULL); returns the
    rows loaded; raises DataProblem."""
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(c) for c in [*target.columns, SOURCE_COLUMN])
    marks = ", ".join(["?"] * len(target.columns))
    sql = f"INSERT INTO {quote(target.table)} ({columns}) VALUES ({marks}, {_literal(target.path)})"
    cursor = conn.connection.driver_connection.cursor()
    start = cursor.execute(f"SELECT coalesce(max(rowid), 0) FROM {quote(target.table)}").fetchone()[0]
    with _driver_errors():
        cursor.executemany(sql, rows_of(chunks))
        count = max(cursor.rowcount, 0)
        _check_numbers(cursor, quote, quote(target.table), target, start)
    return count


def _bare(target: Target) -> frozenset[int]:
    """The columns this load takes as they are: those `_unguarded` names when the load is lean, else none."""
    return _unguarded(target) if target.lean else frozenset()


def _insert_sql(conn: Connection, target: Target, bare: frozenset[int]) -> str:
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(c) for c in [*target.columns, SOURCE_COLUMN])
    values = [_value(i + 1, target, t.kind, i in bare) for i, t in enumerate(target.types)]
    values.append(_literal(target.path))
    return f"INSERT INTO {quote(target.table)} ({columns}) VALUES ({', '.join(values)})"


def _value(position: int, target: Target, kind: str, bare: bool = False) -> str:
    """SQL for one field: NULL for empty fields and markers (unless `bare`: the lean load); a number too long
    for a REAL is kept as a BLOB, which the check after the insert turns into the careful path (never a silent
    rounding)."""
    value = f"?{position}"
    if not target.nullable(kind):
        return value
    too_long = f" WHEN length({value}) > {_REAL_CHARACTERS} THEN CAST({value} AS BLOB)" if kind == "double" else ""
    if bare:
        return f"CASE{too_long} ELSE {value} END" if too_long else value
    if not target.null_values and not too_long:
        return f"NULLIF({value}, '')"
    markers = ", ".join(_literal(m) for m in ["", *target.null_values])
    return f"CASE WHEN {value} IN ({markers}) THEN NULL{too_long} ELSE {value} END"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_TIME_OF_DAY = re.compile(r"[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?\Z")


def _checked(
    rows: Iterable[list[str]],
    dates: list[int],
    stamps: list[int],
    nulls: frozenset[str],
    bare: frozenset[int] = frozenset(),
) -> Iterator[list[str]]:
    """Rows whose date and timestamp fields are real ISO dates (SQLite would store anything as text).

    Files repeat their days, so a day is proven once (by `classify`) and remembered: the loop is set
    look-ups. A timestamp is a proven day and a time of day (a pattern), or a bare date. In the columns
    of `bare` (loaded lean) an empty field or a marker is no date either.
    """
    days: set[str] = set()
    fine_dates = set(nulls)  # proven days and the null markers
    guarded_dates = [i for i in dates if i not in bare]
    bare_dates = [i for i in dates if i in bare]
    stamps_skipping = [(i, frozenset() if i in bare else nulls) for i in stamps]

    def prove(day: str, value: str, kind: str) -> None:
        if classify(day).kind != "date":
            raise _BadValue(f"{value[:80]!r} is not a {kind}")
        days.add(day)
        fine_dates.add(day)

    for row in rows:
        try:
            for index in guarded_dates:
                if row[index] not in fine_dates:
                    prove(row[index], row[index], "date")
            for index in bare_dates:
                if row[index] not in days:
                    prove(row[index], row[index], "date")
            for index, skipped in stamps_skipping:
                value = row[index]
                if value in skipped:
                    continue
                if value[:10] not in days:
                    prove(value[:10], value, "timestamp")
                if len(value) != 10 and _TIME_OF_DAY.match(value, 10) is None:
                    raise _BadValue(f"{value[:80]!r} is not a timestamp")
        except IndexError:
            pass  # a short row: the INSERT refuses it
        yield row


def _check_numbers(cursor: sqlite3.Cursor, quote, table: str, target: Target, start: int) -> None:
    checks = [
        f"typeof({quote(c)}) {_NOT_NUMBERS[t.kind]}"
        for c, t in zip(target.columns, target.types, strict=True)
        if t.kind in _NOT_NUMBERS
    ]
    if not checks:
        return
    sql = f"SELECT 1 FROM {table} WHERE rowid > ? AND ({' OR '.join(checks)}) LIMIT 1"
    if cursor.execute(sql, (start,)).fetchone():
        raise DataProblem("a numeric column received a value that is not a number")


@contextlib.contextmanager
def _driver_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise Disconnected(str(exc)) from exc
        if refusal_kind(exc):  # a read-only database: no other row helps
            raise Refused(exc) from exc
        raise DataProblem(first_line(exc)) from exc
    except (sqlite3.Error, csv.Error, UnicodeError, _BadValue) as exc:
        raise DataProblem(first_line(exc)) from exc
