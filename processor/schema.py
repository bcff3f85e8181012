"""Column names and column types, as pure functions: header cleaning, type inference, widening.

Inference never loses information. A column is typed only when every sampled value is written
the way the database would write it back: `00123`, `+5` and `-0` stay text (the zeros or the
sign would be lost), integers beyond 64 bits stay text, and so does any column that mixes kinds.
When files or rows disagree, types widen along

    empty -> integer -> decimal -> double -> text,     empty -> date -> timestamp -> text

and anything else meets at text.
"""

from __future__ import annotations

import hashlib
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# Type names users may give in COLUMN_TYPES, and the kind each means.
KIND_ALIASES = {
    "integer": "integer",
    "int": "integer",
    "bigint": "integer",
    "decimal": "decimal",
    "numeric": "decimal",
    "double": "double",
    "float": "double",
    "real": "double",
    "date": "date",
    "timestamp": "timestamp",
    "datetime": "timestamp",
    "text": "text",
    "string": "text",
    "varchar": "text",
}
KINDS = tuple(KIND_ALIASES)
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's limit; MySQL allows 64 characters
UNBOUNDED = 16383  # digits/scale of an unconstrained NUMERIC: PostgreSQL keeps 16,383 after the point
SQLITE_REAL_DIGITS = 15  # significant digits a REAL keeps exactly
SMALLEST_NORMAL = sys.float_info.min  # below it a double keeps fewer digits, down to none (1e-400 is 0)
MYSQL_DECIMAL_PRECISION, MYSQL_DECIMAL_SCALE = 65, 30
INT64_MAX = 2**63 - 1


# ---------------------------------------------------------------- names

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_WORD = re.compile(r"\W+")
_UNDERSCORES = re.compile(r"_+")


def normalise_name(raw: str) -> str:
    """Trimmed lower snake_case: ' First Name' -> 'first_name', 'raceId' -> 'race_id'."""
    text = unicodedata.normalize("NFKC", raw).strip()
    text = _CAMEL.sub("_", text).lower()
    text = _UNDERSCORES.sub("_", _NOT_WORD.sub("_", text)).strip("_")
    return _fit_identifier(text)


def _fit_identifier(name: str) -> str:
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    cut = name.encode()[: MAX_IDENTIFIER_BYTES - 9].decode(errors="ignore")
    return f"{cut}_{digest}"


def column_names(header: Sequence[str]) -> list[str]:
    """Normalised, unique column names for a header; empty names become column_<position>."""
    names: list[str] = []
    taken: set[str] = set()
    for position, raw in enumerate(header, start=1):
        base = normalise_name(raw) or f"column_{position}"
        name, suffix = base, 1
        while name in taken:
            suffix += 1
            name = _fit_identifier(f"{base}_{suffix}")
        taken.add(name)
        names.append(name)
    return names


COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zip")


def table_name_for(relative_path: str) -> str:
    """The staging table a file goes to without DEST_TABLE: its sanitised stem."""
    name = relative_path.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in COMPRESSED_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return normalise_name(stem) or "data"


# ---------------------------------------------------------------- types


@dataclass(frozen=True)
class ColumnType:
    """A column's kind; numeric kinds also carry the widest digits seen left/right of the point."""

    kind: str = "empty"
    digits: int = 0
    scale: int = 0

    def join(self, other: ColumnType) -> ColumnType:
        """The narrowest type that holds the values of both."""
        return join(self, other)

    def accepts(self, value: ColumnType) -> bool:
        """Whether a value of type `value` fits this column unchanged."""
        return join(self, value) == self


EMPTY = ColumnType("empty")
TEXT = ColumnType("text")
DATE = ColumnType("date")
TIMESTAMP = ColumnType("timestamp")
DOUBLE = ColumnType("double")
_NUMERIC_ORDER = {"integer": 0, "decimal": 1, "double": 2}
_TEMPORAL_ORDER = {"date": 0, "timestamp": 1}


def join(a: ColumnType, b: ColumnType) -> ColumnType:
    if a.kind == "empty":
        return b
    if b.kind == "empty" or a == b:
        return a
    if a.kind in _NUMERIC_ORDER and b.kind in _NUMERIC_ORDER:
        kind = max(a.kind, b.kind, key=_NUMERIC_ORDER.__getitem__)
        if kind == "double":
            exact = a if b.kind == "double" else b
            if exact.kind != "double" and exact.digits + exact.scale > SQLITE_REAL_DIGITS:
                return TEXT  # a long exact number and a float have no exact common type
            return DOUBLE
        return ColumnType(kind, max(a.digits, b.digits), max(a.scale, b.scale))
    if a.kind in _TEMPORAL_ORDER and b.kind in _TEMPORAL_ORDER:
        return TIMESTAMP
    return TEXT


# Kinds whose stored value does not keep how the file wrote it, per database: cast to text they read `3.0`
# for `3` (a REAL), `3.00` (a DECIMAL(65, 2)), `0.0025` for `2.5E-3` (any double), `2020-01-05 10:00:00` for
# `2020-01-05T10:00:00` (a timestamp; SQLite keeps the text as written). The others cast back exactly.
_INEXACT_AS_TEXT = {
    "sqlite": frozenset({"decimal", "double"}),
    "postgresql": frozenset({"double", "timestamp"}),
    "mysql": frozenset({"decimal", "double", "timestamp"}),
}


def rewrites_values(old: ColumnType, new: ColumnType, family: str) -> bool:
    """Whether widening a column from `old` to `new` in place would change how its values read back: a typed
    column gives back the same number or day either way, but a text column must give back the very text."""
    return new.kind == "text" and old.kind in _INEXACT_AS_TEXT[family]


def join_all(types: Iterable[ColumnType]) -> ColumnType:
    result = EMPTY
    for column_type in types:
        result = join(result, column_type)
    return result


_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)\.([0-9]+)\Z")
_DOUBLE = re.compile(r"-?(0|[1-9][0-9]*)(?:\.([0-9]+))?[eE][-+]?[0-9]{1,3}\Z")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?\Z")


def classify(value: str) -> ColumnType:
    """The narrowest type that stores `value` without changing it (non-null values only)."""
    if _INTEGER.match(value):
        if value == "-0" or abs(int(value)) > INT64_MAX:
            return TEXT
        return ColumnType("integer", len(value.lstrip("-")), 0)
    match = _DECIMAL.match(value)
    if match:
        if value.startswith("-") and not value.strip("-0."):
            return TEXT  # -0.0 would come back as 0.0
        return ColumnType("decimal", len(match.group(1)), len(match.group(2)))
    match = _DOUBLE.match(value)
    if match:
        significant = len((match.group(1) + (match.group(2) or "")).lstrip("0"))
        return DOUBLE if _double_keeps(float(value), significant, value.startswith("-")) else TEXT
    if _DATE.match(value):
        return DATE if _is_iso(date, value) else TEXT
    if _TIMESTAMP.match(value):
        return TIMESTAMP if _is_iso(datetime, value) else TEXT
    return TEXT


def _double_keeps(number: float, significant: int, negative: bool) -> bool:
    """Whether a double gives back a number written with `significant` digits: at most 15 of them, and
    within the normal range (beyond it lies infinity, below it digits are lost down to 0); -0 is not kept."""
    if not significant:
        return not negative
    return significant <= SQLITE_REAL_DIGITS and SMALLEST_NORMAL <= abs(number) < float("inf")


def plain_pattern(column: ColumnType) -> str | None:
    """A regex (RE2 and Python `re` alike) for the plainest way a column's values are written.

    Sound, not complete: a value it matches is stored unchanged by a column of this type, as far
    as its form goes (a database proves the calendar; SQLite's loader checks it too). A value it
    misses may still fit: `classify` decides. Doubles keep to 15 digits, as a float does; a
    negative number below 1 is left to `classify` (it knows -0.0). None for text and empty columns.
    """
    kind = column.kind
    if kind == "integer":
        return r"^(0|-?[1-9][0-9]{0,17})$"
    if kind == "double":
        return r"^(0|-?[1-9][0-9]{0,6})(\.[0-9]{1,8})?$"
    if kind == "decimal":
        if column.digits < 1:
            return None
        integer = rf"^(0|-?[1-9][0-9]{{0,{min(17, column.digits - 1)}}})$"  # classify keeps longer ones text
        if not column.scale:
            return integer
        whole = "[0-9]*" if column.digits >= UNBOUNDED else f"[0-9]{{0,{column.digits - 1}}}"
        fraction = "[0-9]+" if column.scale >= UNBOUNDED else f"[0-9]{{1,{column.scale}}}"
        return rf"{integer}|^(0|-?[1-9]{whole})\.{fraction}$"
    if kind == "date":
        return r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
    if kind == "timestamp":
        # Hours to 23 and seconds to 59: PostgreSQL reads `24:00:00` as the next day and a leap second
        # `23:59:60` as the next minute, which a timestamp column would not give back as written.
        return r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?)?$"
    return None


NULL_WORD = "NULL"  # what SQL loaders read as NULL when it stands unquoted in a CSV


def is_null(value: str, column: ColumnType, null_values: frozenset[str], nulls_in_text: bool) -> bool:
    """Whether a field stands for NULL in a column of this type."""
    if column.kind == "text" and not nulls_in_text:
        return False
    return value == "" or value in null_values


def sampled_values(rows: Sequence[Sequence[str]], width: int) -> list[set[str]]:
    """The distinct values of each column in sampled rows (rows of another width are ignored)."""
    usable = [row for row in rows if len(row) == width]
    return [set(map(itemgetter(index), usable)) for index in range(width)]


def types_of(values: Sequence[set[str]], null_values: frozenset[str] = frozenset()) -> list[ColumnType]:
    """Column types for each column's sampled values (empty fields and null markers left out; an all-null
    column is `empty`)."""
    skip = {"", *null_values}
    return [classify_values(column - skip) for column in values]


def nullish(values: Sequence[set[str]], null_values: frozenset[str] = frozenset()) -> list[frozenset[str]]:
    """Per column, which stand-ins for nothing its sample held: the empty field, a null marker, the word NULL.

    A loader that treats a column as never empty (MySQL's lean LOAD DATA) checks these first.
    """
    watch = {"", NULL_WORD, *null_values}
    return [frozenset(column & watch) for column in values]


_INTEGERS = re.compile(r"(?:-?(?:0|[1-9][0-9]{0,17})\n)*")
_NUMBERS = re.compile(r"(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?\n)*")
_DATES = re.compile(r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}\n)*")
_TIMESTAMPS = re.compile(r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?\n)*")
_NEGATIVE_ZERO = re.compile(r"^-0(?:\.0+)?$", re.MULTILINE)
_WHOLE_PART = re.compile(r"^-?([0-9]+)", re.MULTILINE)
_FRACTION = re.compile(r"\.([0-9]+)$", re.MULTILINE)
_LONG_INTEGER = re.compile(r"^-?[0-9]{19,}$", re.MULTILINE)


def classify_values(values: set[str]) -> ColumnType:
    """The narrowest type holding every value: whole-column regex checks first, one value at a time if needed."""
    if not values:
        return EMPTY
    text = "\n".join(values) + "\n"
    if "-0" not in values and _INTEGERS.fullmatch(text):
        return ColumnType("integer", max(map(len, _WHOLE_PART.findall(text))), 0)
    if _NUMBERS.fullmatch(text) and not _NEGATIVE_ZERO.search(text):
        digits = max(map(len, _WHOLE_PART.findall(text)))
        scale = max(map(len, _FRACTION.findall(text)), default=0)
        if scale:
            return ColumnType("decimal", digits, scale)
        if all(classify(v).kind == "integer" for v in _LONG_INTEGER.findall(text)):
            return ColumnType("integer", digits, 0)
        return TEXT
    if _DATES.fullmatch(text):
        return DATE if all(_is_iso(date, v) for v in values) else TEXT
    if _TIMESTAMPS.fullmatch(text):
        return TIMESTAMP if all(_is_iso(datetime, v) for v in values) else TEXT
    result = EMPTY
    for value in values:
        result = join(result, classify(value))
        if result == TEXT:
            break
    return result


def _is_iso(kind, value: str) -> bool:
    try:
        kind.fromisoformat(value)
    except ValueError:
        return False
    return True


_TYPE_SPEC = re.compile(r"\s*([a-z]+)\s*(?:\(\s*([0-9]+)\s*(?:,\s*([0-9]+)\s*)?\))?\s*\Z")


def parse_type_spec(spec: str) -> ColumnType:
    """The column type a COLUMN_TYPES entry asks for: 'text', 'integer', 'numeric(12,2)', ...

    Raises ValueError naming the accepted types.
    """
    match = _TYPE_SPEC.match(spec.lower())
    kind = KIND_ALIASES.get(match.group(1)) if match else None
    if kind is None or (match.group(2) and kind != "decimal"):
        raise ValueError(f"unknown type {spec!r}; use one of {', '.join(KINDS)}, or numeric(precision,scale)")
    if kind == "decimal":
        if match.group(2) is None:
            return ColumnType("decimal", UNBOUNDED, UNBOUNDED)
        precision, scale = int(match.group(2)), int(match.group(3) or 0)
        if scale > precision or precision == 0:
            raise ValueError(f"{spec!r}: scale must not exceed precision")
        return ColumnType("decimal", precision - scale, scale)
    if kind == "integer":
        return ColumnType("integer", 19, 0)
    return ColumnType(kind)


# ---------------------------------------------------------------- SQL types


def sql_type(column: ColumnType, family: str) -> sa.types.TypeEngine:
    """The SQLAlchemy type that stores a column of this type on a dialect family."""
    kind = column.kind
    if kind == "integer":
        return sa.BigInteger()
    if kind == "decimal":
        if family == "postgresql":
            if column.digits > UNBOUNDED or column.scale > UNBOUNDED:
                return _text(family)  # beyond what a NUMERIC holds
            return sa.Numeric()
        if family == "mysql":
            if column.digits == UNBOUNDED:  # numeric without (precision, scale) asked for by the user
                return mysql.DECIMAL(MYSQL_DECIMAL_PRECISION, MYSQL_DECIMAL_SCALE)
            if column.scale > MYSQL_DECIMAL_SCALE or column.digits + column.scale > MYSQL_DECIMAL_PRECISION:
                return _text(family)
            return mysql.DECIMAL(MYSQL_DECIMAL_PRECISION, column.scale)
        if column.digits + column.scale > SQLITE_REAL_DIGITS:
            return _text(family)
        return sa.Double()
    if kind == "double":
        return sa.Double()
    if kind == "date":
        return sa.Date()
    if kind == "timestamp":
        return mysql.DATETIME(fsp=6) if family == "mysql" else sa.DateTime()
    return _text(family)


def _text(family: str) -> sa.types.TypeEngine:
    return mysql.LONGTEXT() if family == "mysql" else sa.Text()


def stored_type(column: ColumnType, family: str) -> ColumnType:
    """The column type a table really holds after mapping (e.g. a long decimal on SQLite is text)."""
    return column_type_of(sql_type(column if column.kind != "empty" else TEXT, family))


def column_type_of(sql: sa.types.TypeEngine) -> ColumnType:
    """The column type of a reflected SQL type."""
    if isinstance(sql, sa.Integer):
        return ColumnType("integer", 19, 0)
    if isinstance(sql, sa.Float):
        return DOUBLE
    if isinstance(sql, sa.Numeric):
        precision, scale = sql.precision, sql.scale
        if precision is None:
            return ColumnType("decimal", UNBOUNDED, UNBOUNDED)
        return ColumnType("decimal", precision - (scale or 0), scale or 0)
    if isinstance(sql, sa.DateTime):
        return TIMESTAMP
    if isinstance(sql, sa.Date):
        return DATE
    return TEXT
