"""Stage the customers / orders / payments CSV files the plain way, for tests and the benchmark.

A stand-in for the project loader: one table per file stem, typed as the loader types clean data
(BIGINT ids and amounts, TEXT names, DATE order dates, plus `_source_file`), rows inserted with
SQLAlchemy Core. `column_types` widens chosen columns the way the loader would when a file has junk,
e.g. {"raw_payments.amount": "decimal", "raw_orders.user_id": "text"}.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from processor.db import dialect_family
from processor.schema import parse_type_spec, sql_type

KINDS = {
    "raw_customers": {"id": "integer", "first_name": "text", "last_name": "text"},
    "raw_orders": {"id": "integer", "user_id": "integer", "order_date": "date", "status": "text"},
    "raw_payments": {"id": "integer", "order_id": "integer", "payment_method": "text", "amount": "integer"},
}
CHUNK = 10_000


def staging_tables(family: str, column_types: Mapping[str, str] | None = None) -> list[sa.Table]:
    """The three staging tables for a dialect family, with some columns widened (spec as in COLUMN_TYPES)."""
    metadata = sa.MetaData()
    widened = column_types or {}
    tables = []
    for name, kinds in KINDS.items():
        columns = [
            sa.Column(column, sql_type(parse_type_spec(widened.get(f"{name}.{column}", kind)), family))
            for column, kind in kinds.items()
        ]
        tables.append(
            sa.Table(name, metadata, *columns, sa.Column("_source_file", sql_type(parse_type_spec("text"), family)))
        )
    return tables


def stage_csv_folder(engine: sa.Engine, folder: Path, column_types: Mapping[str, str] | None = None) -> None:
    """Create the three staging tables and insert `folder`'s raw_*.csv files into them."""
    tables = staging_tables(dialect_family(engine), column_types)
    with engine.begin() as conn:
        for table in tables:
            table.drop(conn, checkfirst=True)
            table.create(conn)
            for chunk in _chunks(read_rows(folder / f"{table.name}.csv", table)):
                conn.execute(table.insert(), chunk)


def read_rows(path: Path, table: sa.Table) -> Iterator[dict[str, Any]]:
    """The rows of a CSV file as dicts of values converted for `table`'s column types."""
    converters = {column.name: _converter(column.type) for column in table.columns}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            values = {name: converters[name](value) for name, value in row.items()}
            values["_source_file"] = path.name
            yield values


def _converter(column_type: sa.types.TypeEngine) -> Callable[[str], Any]:
    if isinstance(column_type, sa.String):
        return str
    for python_type, convert in (
        (sa.Integer, int),
        (sa.Float, float),
        (sa.Numeric, Decimal),
        (sa.Date, date.fromisoformat),
    ):
        if isinstance(column_type, python_type):
            return lambda value, convert=convert: convert(value) if value != "" else None
    raise TypeError(f"no converter for {column_type!r}")


def _chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
