"""run(settings): chain the stages — load, transform, sync — and return what each did. No logic of its own."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import Settings
from .db import create_engine
from .staging.loader import Progress, load
from .staging.report import LoadReport

if TYPE_CHECKING:  # imported when their stage runs: a load alone starts faster
    from .pipedrive import SyncReport
    from .status import LedgerStatus
    from .transform import TransformReport

log = logging.getLogger(__name__)

STEPS = ("all", "load", "transform", "sync", "status")


@dataclass
class RunReport:
    """The reports of the stages that ran, and notes on the ones that did not."""

    load: LoadReport | None = None
    transform: TransformReport | None = None
    sync: SyncReport | None = None
    status: LedgerStatus | None = None
    notes: list[str] = field(default_factory=list)

    def _reports(self) -> list:
        return [report for report in (self.load, self.transform, self.sync, self.status) if report is not None]

    @property
    def exit_code(self) -> int:
        return max((report.exit_code for report in self._reports()), default=0)

    def to_dict(self) -> dict:
        return {
            "exit_code": self.exit_code,
            "load": self.load.to_dict() if self.load else None,
            "transform": self.transform.to_dict() if self.transform else None,
            "sync": self.sync.to_dict() if self.sync else None,
            "status": self.status.to_dict() if self.status else None,
            "notes": self.notes,
        }

    def lines(self) -> list[str]:
        out: list[str] = []
        for report in self._reports():
            out += report.lines()
        return out + self.notes


def run(settings: Settings, step: str = "all", progress: Progress | None = None) -> RunReport:
    """Run one step or all of them; raises ProcessorError subclasses for run-stopping problems."""
    engine = create_engine(settings.dest_sql)
    report = RunReport()
    try:
        if step == "status":
            from .status import ledger_status

            report.status = ledger_status(engine, settings)
            return report
        if step == "all" and settings.sync_dry_run:  # a dry run plans from what is already staged and built
            report.notes.append("load and transform: skipped, SYNC_DRY_RUN=1 plans from what is already staged")
            step = "sync"
        if step in ("all", "load"):
            report.load = load(settings, engine, progress)
        if step == "all" and report.load.failed:
            # Deals built from a partial load would push wrong values to Pipedrive.
            report.notes.append(
                f"transform and sync: skipped, {len(report.load.failed)} file(s) failed to load; fix them and run again"
            )
            return report
        if step in ("all", "transform"):
            from .transform import build_deals

            report.transform = build_deals(settings, engine)
        if step in ("all", "sync"):
            if settings.pipedrive_api_key:
                from .pipedrive import run_sync
                from .transform import check_payments

                if report.transform is None:  # a sync alone: the view was built earlier, the payments may be newer
                    check_payments(settings, engine)

                report.sync = run_sync(settings, engine)
            else:
                report.notes.append("sync: skipped, PIPEDRIVE_API_KEY is not set")
    finally:
        engine.dispose()
    return report
