"""Check one parsed row against the table's column types (pure).

A value either fits its column unchanged, stands for NULL, or does not fit. A column typed by
inference then needs widening (the sample was too small: that is not the data's fault); a
column pinned by COLUMN_TYPES rejects the row instead. Wrong field counts are rejects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..schema import ColumnType, classify

_CACHE_LIMIT = 50_000


@dataclass
class RowChecker:
    """Checks rows of one file; collects the widenings its columns need as it goes."""

    names: Sequence[str]
    types: Sequence[ColumnType]
    pinned: Sequence[bool]
    null_values: frozenset[str] = frozenset()
    nulls_in_text: bool = False
    needed: dict[int, ColumnType] = field(default_factory=dict)
    _fits: list[set[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._fits = [set() for _ in self.types]

    @property
    def width(self) -> int:
        return len(self.types)

    def check(self, fields: Sequence[str]) -> tuple[list[str | None] | None, str | None]:
        """(values with None for NULL, None) when the row is usable, else (None, reason)."""
        if len(fields) != self.width:
            return None, f"expected {self.width} fields, found {len(fields)}"
        values: list[str | None] = list(fields)
        for index, value in enumerate(fields):
            column = self.types[index]
            if value == "" or value in self.null_values:
                if column.kind != "text" or self.nulls_in_text:
                    values[index] = None
                continue
            if column.kind == "text" or value in self._fits[index]:
                continue
            reason = self._fit(index, value)
            if reason:
                return None, reason
        return values, None

    def _fit(self, index: int, value: str) -> str | None:
        column = self.types[index]
        found = classify(value)
        if column.accepts(found):
            if len(self._fits[index]) < _CACHE_LIMIT:
                self._fits[index].add(value)
            return None
        if self.pinned[index]:
            return f"column {self.names[index]}: {short(value)!r} is not a {column.kind} (set by COLUMN_TYPES)"
        self.needed[index] = self.needed.get(index, column).join(found)
        return None


def short(value: str, limit: int = 80) -> str:
    """A value cut to `limit` characters for a message."""
    return value if len(value) <= limit else value[:limit] + "..."
