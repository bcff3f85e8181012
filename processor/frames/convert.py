"""DataFrames in and out, as pure functions: a frame's column types and values, and rows back into a frame.

In: a column's type comes from its dtype (and, for object columns, from every value), by the
staging rules (`schema.py`): integers -> integer unless beyond 64 bits, floats -> double, `Decimal`
-> decimal with the widest digits and scale, `datetime.date` -> date, naive datetimes -> timestamp
unless they carry nanoseconds, and text for strings, booleans, datetimes with an offset and
anything else. Values of mixed kinds in one object column meet by the widening rules
(`schema.join`): ints and Decimals make a decimal, anything with a string makes text.

Out: a column's dtype comes from its SQL type: integers -> nullable Int64, decimals -> `Decimal`
objects (never float64), doubles -> float64, dates -> `datetime.date` objects, timestamps ->
datetime64, text -> the pandas string dtype. A column without a SQL type (a query's, a SQLite
view's expression) takes its dtype from its values the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ..schema import DATE, DOUBLE, EMPTY, INT64_MAX, TEXT, TIMESTAMP, ColumnType, column_names, join

ROWS_PER_CHUNK = 50_000


@dataclass(frozen=True)
class FrameShape:
    """A frame's columns as the staging planner sees a file: normalised names and their types."""

    header: tuple[str, ...]
    columns: tuple[str, ...]
    types: tuple[ColumnType, ...]


def shape_of(frame: pd.DataFrame) -> FrameShape:
    """The staging columns and types a frame needs."""
    header = tuple(str(label) for label in frame.columns)
    types = tuple(column_type(frame.iloc[:, position]) for position in range(frame.shape[1]))
    return FrameShape(header, tuple(column_names(header)), types)


def column_type(series: pd.Series) -> ColumnType:
    """The narrowest staging type that keeps every value of a column as it is."""
    dtype = series.dtype
    present = series.dropna()
    if pd.api.types.is_bool_dtype(dtype):
        return TEXT
    if pd.api.types.is_integer_dtype(dtype):
        if present.empty:
            return ColumnType("integer", 1, 0)
        largest = max(abs(int(present.min())), abs(int(present.max())))
        return ColumnType("integer", len(str(largest)), 0) if largest <= INT64_MAX else TEXT
    if pd.api.types.is_float_dtype(dtype):
        return DOUBLE if np.isfinite(present.to_numpy(dtype=float)).all() else TEXT
    if isinstance(dtype, pd.DatetimeTZDtype):
        return TEXT  # a timestamp column cannot keep the offset
    if pd.api.types.is_datetime64_dtype(dtype):
        return TEXT if (present.dt.nanosecond != 0).any() else TIMESTAMP
    if pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return values_type(present.astype(object))
    return TEXT  # strings, timedeltas, periods, intervals, ...


def values_type(values: Sequence[Any] | pd.Series) -> ColumnType:
    """The type that holds every (non-null) value: the values of each Python type typed together, the
    results joined by the widening rules."""
    groups: dict[type, list] = {}
    for value in values:
        groups.setdefault(type(value), []).append(value)
    result = EMPTY
    for kind, members in groups.items():
        result = join(result, _group_type(kind, members))
        if result == TEXT:
            break
    return result


def _group_type(kind: type, values: list) -> ColumnType:
    """The narrowest staging type of values that are all of one Python type."""
    if issubclass(kind, bool | np.bool_ | str):
        return TEXT
    if issubclass(kind, int | np.integer):
        largest = max(abs(int(min(values))), abs(int(max(values))))
        return ColumnType("integer", len(str(largest)), 0) if largest <= INT64_MAX else TEXT
    if issubclass(kind, float | np.floating):
        return DOUBLE if all(map(math.isfinite, values)) else TEXT
    if issubclass(kind, Decimal):
        if not all(value.is_finite() for value in values):
            return TEXT
        scale = max(0, -min(value.as_tuple().exponent for value in values))
        return ColumnType("decimal", max(1, max(value.adjusted() for value in values) + 1), scale)
    if issubclass(kind, datetime):
        plain = all(value.tzinfo is None and not getattr(value, "nanosecond", 0) for value in values)
        return TIMESTAMP if plain else TEXT  # a timestamp column keeps neither an offset nor nanoseconds
    if issubclass(kind, date):
        return DATE
    return TEXT


def chunks(frame: pd.DataFrame, stored: Sequence[ColumnType], size: int = ROWS_PER_CHUNK) -> Iterator[list[list]]:
    """The frame's values for columns of the `stored` types, `size` rows at a time, column by column."""
    for start in range(0, len(frame), size):
        part = frame.iloc[start : start + size]
        yield [cells(part.iloc[:, position], column_type) for position, column_type in enumerate(stored)]


def cells(series: pd.Series, stored: ColumnType) -> list:
    """A column's values for a column of type `stored`: int, float or str, None for a missing value."""
    dtype, kind = series.dtype, stored.kind
    missing = series.isna().to_numpy()
    if kind in ("integer", "decimal", "double") and pd.api.types.is_integer_dtype(dtype):
        return series.to_numpy(dtype=object, na_value=None).tolist()
    if kind == "double" and pd.api.types.is_float_dtype(dtype):
        return _with_nulls(series.to_numpy(dtype=float).tolist(), missing)
    if kind == "timestamp" and pd.api.types.is_datetime64_dtype(dtype):
        return _with_nulls(series.dt.strftime("%Y-%m-%d %H:%M:%S.%f").tolist(), missing)
    values = _with_nulls(series.astype(object).tolist(), missing)
    if kind == "text":
        return [value if value is None or value.__class__ is str else _text(value) for value in values]
    convert = _typed(kind)
    return [None if value is None else convert(value) for value in values]


def _with_nulls(values: list, missing: np.ndarray) -> list:
    for index in np.flatnonzero(missing).tolist():
        values[index] = None
    return values


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _typed(kind: str):
    def convert(value: Any) -> Any:
        if isinstance(value, bool | np.bool_):
            return str(value)
        if isinstance(value, int | np.integer):
            return int(value)
        if isinstance(value, float | np.floating):
            return float(value)
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, datetime):
            return value.isoformat(sep=" ")
        if isinstance(value, date):
            return value.isoformat() + (" 00:00:00" if kind == "timestamp" else "")
        return str(value)

    return convert


# ---------------------------------------------------------------- out: rows -> frame


def to_frame(names: Sequence[str], types: Sequence[sa.types.TypeEngine | None], records: Sequence[Sequence]):
    """A DataFrame of rows read from the database, each column's dtype from its SQL type (or its values)."""
    columns = list(zip(*records, strict=True)) if records else [() for _ in names]
    data = {name: series_of(list(values), sql) for name, sql, values in zip(names, types, columns, strict=True)}
    return pd.DataFrame(data, columns=list(names))


def series_of(values: list, sql: sa.types.TypeEngine | None) -> pd.Series:
    """One column as a Series of the dtype its SQL type (or, without one, its values) calls for."""
    kind = _kind_of_sql(sql) if sql is not None else None
    if kind is None:
        kind = _kind_of_values(values)
    if kind == "integer":
        return pd.Series(pd.array(values, dtype="Int64"))
    if kind == "double":
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
    if kind == "decimal":
        return pd.Series([None if v is None else _decimal(v) for v in values], dtype=object)
    if kind == "date":
        return pd.Series([None if v is None else _date(v) for v in values], dtype=object)
    if kind == "timestamp":
        return pd.Series([None if v is None else _naive(v) for v in values], dtype="datetime64[us]")
    if kind == "boolean":
        return pd.Series(pd.array(values, dtype="boolean"))
    return pd.Series(values, dtype=object).infer_objects()


def _kind_of_sql(sql: sa.types.TypeEngine) -> str | None:
    if isinstance(sql, sa.Boolean):
        return "boolean"
    if isinstance(sql, sa.Integer):
        return "integer"
    if isinstance(sql, sa.Float):
        return "double"
    if isinstance(sql, sa.Numeric):
        return "decimal"
    if isinstance(sql, sa.DateTime):
        return "timestamp"
    if isinstance(sql, sa.Date):
        return "date"
    if isinstance(sql, sa.String | sa.Text | sa.Enum):
        return "text"
    return None  # NullType and the like: decided by the values


def _kind_of_values(values: list) -> str:
    """The dtype kind for values without a SQL type (a raw query, a SQLite expression column)."""
    present = [v for v in values if v is not None]
    kinds = {_kind_of_value(v) for v in present}
    if not kinds:
        return "text"
    if len(kinds) == 1:
        return kinds.pop()
    if kinds <= {"integer", "decimal"}:
        return "decimal"
    if kinds <= {"integer", "double"} and all(abs(v) < 2**53 for v in present if isinstance(v, int)):
        return "double"
    return "object"


def _kind_of_value(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, datetime):
        return "timestamp" if value.tzinfo is None else "object"
    if isinstance(value, date):
        return "date"
    return "text" if isinstance(value, str) else "object"


def _decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _naive(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
