"""Plan the staging tables (pure): which columns each table needs and the type of each.

A table's columns are the union of the headers of every file routed to it, matched by their
normalised name, after the columns the table already has. A column's type is the narrowest
that holds the existing column and every file's sample, unless COLUMN_TYPES pins it. Types
only ever widen: an existing column is never narrowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..schema import TEXT, ColumnType, join, parse_type_spec, rewrites_values, stored_type
from .profile import FileProfile


@dataclass(frozen=True)
class TablePlan:
    """One staging table as it must be before workers start."""

    name: str
    columns: tuple[str, ...]
    types: Mapping[str, ColumnType]
    pinned: frozenset[str] = frozenset()
    existing: Mapping[str, ColumnType] | None = None
    notes: tuple[str, ...] = field(default=())
    folded: tuple[str, ...] = ()  # columns the table cannot take: kept in the JSON column `more` (WIDE_FILES=json)

    @property
    def added(self) -> list[str]:
        """Columns to add to an existing table (all of them for a new table)."""
        return [c for c in self.columns if self.existing is None or c not in self.existing]

    @property
    def widened(self) -> list[tuple[str, ColumnType, ColumnType]]:
        """Existing columns whose type must widen: (column, from, to)."""
        if self.existing is None:
            return []
        return [(c, old, self.types[c]) for c, old in self.existing.items() if self.types.get(c, old) != old]


RESERVED_PREFIX = "_processor_"  # the ledger's tables


def name_clash(table: str, deals_view: str, views: Iterable[str]) -> str | None:
    """Why a staging table may not take this name (the deals view's, the ledger's, another view's), or None."""
    folded = table.lower()
    if folded == deals_view.lower():
        return (
            f"its table {table} would take the name of the deals view (DEALS_VIEW={deals_view}); rename the file, "
            "or set DEST_TABLE, or set DEALS_VIEW to another name"
        )
    if folded.startswith(RESERVED_PREFIX):
        return f"its table {table} would take a name kept for the ledger ({RESERVED_PREFIX}*); rename the file or set DEST_TABLE"
    if folded in {view.lower() for view in views}:
        return f"its table {table} is the name of a view in the database; rename the file or set DEST_TABLE"
    return None


# PostgreSQL keeps a row in one 8 KB page: a text or numeric value inline up to a TOAST pointer's size (longer
# ones move out of line), fixed-size values with their alignment; the worst case per column, and the page.
_PG_COLUMN_BYTES = {"integer": 16, "double": 16, "timestamp": 16, "date": 8}
_PG_TEXT_BYTES, _PG_ROW_BYTES, _PG_ROW_HEADER = 20, 8160, 24

# InnoDB (DYNAMIC rows, 16 KB pages) keeps a row within 8,126 bytes. CREATE TABLE counts a text column as
# its 20-byte off-page pointer, but a value of up to 40 bytes always stays in the row (with its 2 length
# bytes), so a table the database created may still refuse a row: count each column at its worst. The
# header: 5 bytes, the hidden row id, transaction id and roll pointer (6 + 6 + 7), a null bit per column.
_MYSQL_COLUMN_BYTES = {"integer": 8, "double": 8, "timestamp": 8, "date": 3, "decimal": 30}
_MYSQL_TEXT_BYTES, _MYSQL_ROW_BYTES, _MYSQL_ROW_HEADER = 42, 8126, 24


def hold_back(plan: TablePlan, family: str) -> tuple[TablePlan, dict[str, ColumnType]]:
    """The plan without the widenings that would change how values already in the table read back (to text
    from a kind whose text is not the file's, see `schema.rewrites_values`), and those widenings: the loader
    does them apart, and loads the files holding such values again."""
    held = {c: new for c, old, new in plan.widened if rewrites_values(old, new, family)}
    if not held:
        return plan, {}
    existing = plan.existing or {}
    return dataclasses.replace(plan, types={**plan.types, **{c: existing[c] for c in held}}), held


def row_fits(types: Iterable[ColumnType], family: str) -> bool:
    """Whether any row of columns of these types (beside the lineage column) fits the database's row:
    PostgreSQL's page, InnoDB's half page; SQLite has no such limit."""
    if family == "postgresql":
        kinds = [t.kind for t in types]
        size = _PG_ROW_HEADER + (len(kinds) + 7) // 8 + sum(_PG_COLUMN_BYTES.get(k, _PG_TEXT_BYTES) for k in kinds)
        return size <= _PG_ROW_BYTES
    if family == "mysql":
        kinds = [stored_type(t, family).kind for t in types] + ["text"]  # as stored (a long decimal is text)
        size = _MYSQL_ROW_HEADER + (len(kinds) + 7) // 8
        size += sum(_MYSQL_COLUMN_BYTES.get(k, _MYSQL_TEXT_BYTES) for k in kinds)
        return size <= _MYSQL_ROW_BYTES
    return True


def fold(plan: TablePlan, keep: int, more: str) -> TablePlan:
    """The plan with only the first `keep` new columns, and the others folded into the JSON text column `more`."""
    added = plan.added
    kept = [c for c in plan.columns if c not in added] + [c for c in added[:keep] if c != more]
    columns = (*kept, *([] if more in kept else [more]))
    types = {**{c: plan.types[c] for c in kept}, more: plan.types.get(more, TEXT)}
    folded = tuple(dict.fromkeys((*plan.folded, *(c for c in added[keep:] if c != more))))
    return dataclasses.replace(plan, columns=columns, types=types, folded=folded)


def overrides_by_table(column_types: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, ColumnType]]:
    """COLUMN_TYPES entries as {table: {column: type}}."""
    out: dict[str, dict[str, ColumnType]] = {}
    for table, column, spec in column_types:
        out.setdefault(table, {})[column] = parse_type_spec(spec)
    return out


def plan_table(
    name: str,
    profiles: Iterable[FileProfile],
    existing: Mapping[str, ColumnType] | None,
    overrides: Mapping[str, ColumnType],
    family: str,
) -> TablePlan:
    """The plan for one table from its files' profiles, its current columns and the overrides."""
    columns: list[str] = list(existing or {})
    wanted: dict[str, ColumnType] = dict(existing or {})
    for profile in profiles:
        for column, column_type in zip(profile.columns, profile.types, strict=True):
            if column not in wanted:
                columns.append(column)
                wanted[column] = column_type
            else:
                wanted[column] = join(wanted[column], column_type)
    notes: list[str] = []
    pinned = set()
    for column, forced in overrides.items():
        if column not in wanted:
            continue
        pinned.add(column)
        current = (existing or {}).get(column)
        if current is not None and join(current, forced) != stored_type(forced, family):
            notes.append(
                f"COLUMN_TYPES asks {forced.kind} for {name}.{column}, but the table holds {current.kind}; "
                "kept (FULL_REFRESH=1 rebuilds the table)"
            )
            wanted[column] = current
        else:
            wanted[column] = forced
    types = {c: _stored(wanted[c], family, (existing or {}).get(c)) for c in columns}
    return TablePlan(name, tuple(columns), types, frozenset(pinned), existing, tuple(notes))


def _stored(wanted: ColumnType, family: str, current: ColumnType | None) -> ColumnType:
    """What the database will hold for a wanted type; an existing column keeps its type if wide enough."""
    stored = stored_type(TEXT if wanted.kind == "empty" else wanted, family)
    if current is not None and join(current, stored) == current:
        return current
    return stored
