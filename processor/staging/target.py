"""What every dialect's writer receives, and the one signal writers raise for bad data."""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import ColumnType, classify


class DataProblem(Exception):
    """The bulk path refused the data; the careful path will find the rows or widen the columns."""


class Refused(Exception):
    """The database refuses the table or the user (a privilege, a row wider than it stores): no retry or other
    row helps, so the file fails with the fix. `orig` is the driver's error."""

    def __init__(self, orig: BaseException):
        super().__init__(str(orig))
        self.orig = orig


class Disconnected(Exception):
    """The database connection dropped during a load; the file may be retried."""


@dataclass(frozen=True)
class Target:
    """Where a file's rows go: the table, the file's columns in file order with their types, the lineage value."""

    table: str
    path: str
    columns: tuple[str, ...]
    types: tuple[ColumnType, ...]
    null_values: tuple[str, ...] = ()
    nulls_in_text: bool = False
    nullish: tuple[frozenset[str], ...] = ()  # per column, the stand-ins for nothing its sample held
    lean: bool = False  # load trusting the sample: columns it saw no nulls in go in unguarded, checked after
    checked: bool = False  # a verifier (verify.py) proves beside the load that every typed value keeps its form

    @property
    def text_columns(self) -> list[str]:
        return [c for c, t in zip(self.columns, self.types, strict=True) if t.kind == "text"]

    @property
    def typed_columns(self) -> list[str]:
        return [c for c, t in zip(self.columns, self.types, strict=True) if t.kind != "text"]

    @property
    def markers_read_as_values(self) -> bool:
        """Whether a null marker is also a valid number or date (`-999`): no database refuses it as data."""
        return any(classify(marker).kind != "text" for marker in self.null_values)

    def nullable(self, kind: str) -> bool:
        """Whether empty fields and null markers become NULL in a column of this kind."""
        return kind != "text" or self.nulls_in_text
