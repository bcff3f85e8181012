"""What a sync did (or, in a dry run, would do): counts, every change with old and new values, and the exit code."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import SyncStopped

MAX_FAILURE_LINES = 20
PAST = {"create": "created", "update": "updated", "archive": "archived", "delete": "deleted", "skip": "skipped"}


@dataclass
class EntityCounts:
    """Outcomes for one kind of record."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    archived: int = 0
    deleted: int = 0
    skipped: int = 0

    def describe(self, dry_run: bool) -> str:
        """'3 created, 1 updated, 5 unchanged, 0 failed' (or what a dry run would do)."""
        removed = [(n, word) for n, word in ((self.archived, "archive"), (self.deleted, "delete")) if n]
        if dry_run:
            extra = "".join(f", {word} {n}" for n, word in removed)
            return f"would create {self.created}, update {self.updated}{extra}, leave {self.unchanged} unchanged"
        extra = "".join(f", {n} {PAST[word]}" for n, word in removed)
        return (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, {self.failed} failed{extra}"
        )


@dataclass(frozen=True)
class Failure:
    """One record that could not be synced, with Pipedrive's (or our) reason."""

    entity: str
    key: str
    reason: str


@dataclass
class Change:
    """One record's change: planned (create, update, archive, delete, skip) or done (created, ..., failed).

    `fields` maps a field to [old, new] as Pipedrive stores it (`person`: the customer keys).
    """

    entity: str
    key: str
    id: int | None
    action: str
    fields: dict[str, list[Any]] = field(default_factory=dict)
    error: str | None = None

    def line(self) -> str:
        """'update deal 7 (id 12): value 2000.00 -> 2401.20'."""
        where = f" (id {self.id})" if self.id is not None else ""
        shown = "; ".join(f"{name}: {_shown(old)} -> {_shown(new)}" for name, (old, new) in self.fields.items())
        note = f" [{self.error}]" if self.error else ""
        return f"{self.action} {self.entity} {self.key}{where}" + (f": {shown}" if shown else "") + note


def _shown(value: Any) -> str:
    return "-" if value is None else json.dumps(value, ensure_ascii=False, default=str)


@dataclass
class SyncReport:
    """What a sync did; `exit_code` is 0 (all synced), 1 (some records failed, or removals refused) or 6 (stopped)."""

    persons: EntityCounts = field(default_factory=EntityCounts)
    deals: EntityCounts = field(default_factory=EntityCounts)
    deals_not_in_view: int = 0
    deals_without_key: int = 0
    persons_not_in_view: int = 0
    deals_archived: int = 0
    removal: str = "keep"
    removal_refused: str | None = None
    duplicates: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    tokens_used: int | None = None
    elapsed: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    stopped: str | None = None
    planned: int | None = None
    done: int = 0
    remaining: int = 0
    dry_run: bool = False
    history: str | None = None  # why the run could not be recorded, when it could not

    @property
    def exit_code(self) -> int:
        """6 when the run stopped early, 1 when some record failed or removals were refused, else 0."""
        if self.stopped:
            return SyncStopped.exit_code
        return 1 if self.failures or self.removal_refused else 0

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (for SUMMARY_JSON), planned or done changes included."""
        return {**dataclasses.asdict(self), "elapsed": round(self.elapsed, 3), "exit_code": self.exit_code}

    def lines(self) -> list[str]:
        """The report as short human lines; a dry run lists every planned change."""
        out = ["dry run: nothing written"] if self.dry_run else []
        out.append(f"Pipedrive persons: {self.persons.describe(self.dry_run)}")
        out.append(f"Pipedrive deals: {self.deals.describe(self.dry_run)}")
        out += self._notes()
        sent = ", ".join(f"{count} {method}" for method, count in sorted(self.requests.items())) or "none"
        tokens = "unknown" if self.tokens_used is None else str(self.tokens_used)
        out.append(f"requests: {sent}; {self.rate_limited} answered 429; tokens used: {tokens}; {self.elapsed:.1f} s")
        out += [f"failed {f.entity} {f.key}: {f.reason}" for f in self.failures[:MAX_FAILURE_LINES]]
        if len(self.failures) > MAX_FAILURE_LINES:
            out.append(f"... and {len(self.failures) - MAX_FAILURE_LINES} more failures")
        out += self._stop_lines()
        if self.dry_run and self.changes:
            out.append(f"planned changes ({len(self.changes)}):")
            out += [f"  {change.line()}" for change in self.changes]
        if self.history:
            out.append(f"sync history not recorded: {self.history}")
        return out

    def _notes(self) -> list[str]:
        out = []
        if self.deals_archived:
            out.append(f"{self.deals_archived} deals of the view are archived in Pipedrive")
        if self.deals.skipped:
            out.append(
                f"archived in Pipedrive, differs from the view: {self.deals.skipped}, not updated "
                "(SYNC_ARCHIVED=skip; =unarchive un-archives and updates them)"
            )
        if self.removal == "keep" and self.deals_not_in_view:
            out.append(f"{self.deals_not_in_view} deals carrying our key are not in the view (left alone)")
        if self.removal != "delete" and self.persons_not_in_view:
            out.append(f"{self.persons_not_in_view} persons carrying our key are not in the view (left alone)")
        if self.deals_without_key:
            out.append(f"{self.deals_without_key} deals in Pipedrive carry no key (made by hand; left alone)")
        if self.removal_refused:
            out.append(f"refused: {self.removal_refused}")
        if self.duplicates:
            out.append(f"{self.duplicates} keys are held by more than one Pipedrive record (extra copies left alone)")
        return out

    def _stop_lines(self) -> list[str]:
        if not self.stopped:
            return []
        out = [f"stopped: {self.stopped}"]
        if self.planned is None:
            out.append("stopped before the plan was made; nothing was written")
        else:
            out.append(f"{self.done} of {self.planned} writes done, {self.remaining} remaining; run again to finish")
        return out
