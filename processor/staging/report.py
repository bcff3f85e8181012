"""What a load did, file by file, and its summary for people."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .. import ledger
from ..redact import shown
from .gone import Gone
from .worker import FileResult


@dataclass
class TableTotals:
    files: int = 0
    rows: int = 0
    rejected: int = 0
    seconds: float = 0.0  # wall-clock time in which some file of the table was writing to it

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def covered(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of time spans (overlapping loads into one table count once)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(spans):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


@dataclass
class LoadReport:
    """The outcome of staging: one `FileResult` per matched file, plus what the walk and planning found."""

    run_id: str
    files: list[FileResult] = field(default_factory=list)
    matches: dict[str, int] = field(default_factory=dict)
    schema_changes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1
    source: str = ""  # what this run's files are known by: SOURCE_NAME, or the folder or URL
    gone: Gone = field(default_factory=Gone)

    def _with(self, status: str) -> list[FileResult]:
        return [f for f in self.files if f.status == status]

    @property
    def loaded(self) -> list[FileResult]:
        return self._with(ledger.LOADED)

    @property
    def skipped(self) -> list[FileResult]:
        return [f for f in self.files if f.status in ("skipped", ledger.EMPTY, ledger.GONE)]

    @property
    def failed(self) -> list[FileResult]:
        return self._with(ledger.FAILED)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.loaded)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    @property
    def exit_code(self) -> int:
        """0 when every file loaded or was skipped, 1 when any failed."""
        return 1 if self.failed else 0

    def tables(self) -> dict[str, TableTotals]:
        """Per table: files, rows and rejects loaded, and the time its files spent writing to it (their
        spans merged: waiting for SQLite's write lock, or for a worker, is not loading)."""
        totals: dict[str, TableTotals] = defaultdict(TableTotals)
        spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for result in self.loaded:
            table = totals[result.table]
            table.files += 1
            table.rows += result.rows_loaded
            table.rejected += result.rows_rejected
            spans[result.table] += result.spans
        for name, table in totals.items():
            table.seconds = covered(spans[name])
        return dict(sorted(totals.items()))

    @property
    def bytes_loaded(self) -> int:
        return sum(f.size for f in self.loaded)

    def lines(self) -> list[str]:
        """The human summary: files, rows per table, and where the failures are."""
        out = [
            f"files: {len(self.loaded)} loaded, {len(self.skipped)} skipped, {len(self.failed)} failed "
            f"({len(self.files)} matched) in {self.seconds:.1f} s with {self.workers} worker(s)",
        ]
        tables = self.tables()
        for name, table in tables.items():
            out.append(
                f"  {name}: {table.rows:,} rows from {table.files} file(s), {table.rejected:,} rejected, "
                f"{table.rows_per_second:,.0f} rows/s over {table.seconds:.1f} s of loading"
            )
        if len(tables) > 1:
            out.append(
                f"  total: {self.rows_loaded:,} rows from {len(self.loaded)} file(s) into {len(tables)} tables, "
                f"{self.rows_rejected:,} rejected"
            )
        if self.schema_changes:  # each was logged as it happened
            out.append(f"  {len(self.schema_changes)} schema change(s), each logged as it was made")
        rejected = [f for f in self.loaded if f.rows_rejected]
        if rejected:
            out.append(f"rows rejected in {len(rejected)} file(s) (see table {ledger.REJECTS_TABLE}):")
            out += [f"  {shown(f.path)}: {f.rows_rejected} row(s)" for f in rejected]
        if self.failed:
            out.append(f"failed files (see table {ledger.FILES_TABLE}):")
            out += [f"  {shown(f.path)}: {shown(f.error or '')}" for f in self.failed]
        return out + self._gone_lines()

    def _gone_lines(self) -> list[str]:
        gone = self.gone
        if not gone.files:
            return []
        if gone.removed:
            head = f"gone from the source: {len(gone.files)} file(s), their {gone.removed_rows:,} row(s) removed"
        else:
            head = (
                f"gone from the source: {len(gone.files)} file(s), their {gone.rows:,} row(s) kept "
                "(REMOVE_GONE=1 removes them)"
            )
        return [head] + [f"  {shown(e.path)} ({e.table_name}: {e.rows_loaded:,} row(s))" for e in gone.files]

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "source": self.source,
            "seconds": round(self.seconds, 3),
            "files": [{k: v for k, v in vars(f).items() if k != "spans"} for f in self.files],
            "matches": self.matches,
            "schema_changes": self.schema_changes,
            "gone": [{"path": e.path, "table": e.table_name, "rows": e.rows_loaded} for e in self.gone.files],
            "gone_removed_rows": self.gone.removed_rows,
            "exit_code": self.exit_code,
        }
