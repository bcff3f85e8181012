"""Plan the staging tables (pure): which columns each table needs and the type of each.

A table's columns are the union of the headers of every file routed to it, matched by their
normalised name, after the columns the table already has. A column's type is the narrowest
that holds the existing column and every file's sample, unless COLUMN_TYPES pins it. Types
only ever widen: an existing column is never narrowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..schema import TEXT, ColumnType, join, parse_type_spec, stored_type
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
