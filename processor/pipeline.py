"""run(settings): chain the stages — load, transform, sync — and return what each did. No logic of its own."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import extras
from .config import Settings, sample_sync_problem
from .db import check_connection, create_engine
from .errors import ConfigError
from .lock import destination_lock
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
    error: str | None = None  # what stopped the run, when a stage raised: the reports above are those that finished
    error_code: int | None = None

    def _reports(self) -> list:
        return [report for report in (self.load, self.transform, self.sync, self.status) if report is not None]

    @property
    def exit_code(self) -> int:
        if self.error_code is not None:
            return self.error_code
        return max((report.exit_code for report in self._reports()), default=0)

    def stopped(self, message: str, exit_code: int) -> None:
        """Record what stopped the run (the stages that finished keep their reports)."""
        self.error, self.error_code = message, exit_code

    def to_dict(self) -> dict:
        return {
            "exit_code": self.exit_code,
            "load": self.load.to_dict() if self.load else None,
            "transform": self.transform.to_dict() if self.transform else None,
            "sync": self.sync.to_dict() if self.sync else None,
            "status": self.status.to_dict() if self.status else None,
            "notes": self.notes,
            "error": self.error,
        }

    @property
    def rows_rejected(self) -> int:
        return self.load.rows_rejected if self.load else 0

    def headline(self) -> str:
        """What the run did, in one line (for the runs table and notifications)."""
        parts = []
        if self.load:
            load = self.load
            parts.append(
                f"load: {len(load.loaded)} loaded, {len(load.skipped)} skipped, {len(load.failed)} failed, "
                f"{load.rows_loaded:,} rows, {load.rows_rejected:,} rejected"
            )
        if self.transform:
            parts.append(
                f"transform: {self.transform.deals:,} deals in {self.transform.kind} {self.transform.relation}"
            )
        if self.sync:
            parts.append(f"sync: deals {self.sync.deals.describe(self.sync.dry_run)}")
        if self.status:
            parts.append(f"status: {len(self.status.files)} file(s) in the ledger, {len(self.status.not_in)} not in")
        parts += self.notes
        return "; ".join(parts) or "nothing ran"

    def lines(self) -> list[str]:
        out: list[str] = []
        for report in self._reports():
            out += report.lines()
        out += self.notes
        if self.error:
            out.append(f"stopped: {self.error} (exit {self.exit_code})")
        return out


def run(
    settings: Settings, step: str = "all", progress: Progress | None = None, report: RunReport | None = None
) -> RunReport:
    """Run one step or all of them; raises ProcessorError subclasses for run-stopping problems.

    Pass `report` to keep what the stages that finished did when a later one raises.
    """
    report = report if report is not None else RunReport()
    refusal = sample_sync_problem(settings) if step in ("all", "sync") else None
    if step == "sync" and not settings.pipedrive_api_key:  # `all` skips the sync with a note; asked for, it fails
        refusal = "PIPEDRIVE_API_KEY is not set (or empty): the sync needs the Pipedrive API token"
    if refusal:
        raise ConfigError(refusal)
    engine = create_engine(settings.dest_sql)
    held = ExitStack()
    try:
        if step == "status":
            from .status import ledger_status

            report.status = ledger_status(engine, settings)
            return report
        if step == "all" and settings.sync_dry_run:  # a dry run plans from what is already staged and built
            report.notes.append("load and transform: skipped, SYNC_DRY_RUN=1 plans from what is already staged")
            step = "sync"
        if step in ("all", "load"):  # a missing extra stops the run before the database is touched
            extras.check(settings.src_data_folder, settings.executor)
        check_connection(engine)
        # One run at a time per destination, for every step that writes (raises LockTimeout, exit 7).
        lock = destination_lock(engine, settings.lock_timeout)
        held.enter_context(lock)
        if step in ("all", "load"):
            report.load = load(settings, engine, progress)
        if step == "all" and not _may_transform(settings, engine, report):
            return report
        if step in ("all", "transform"):
            from .transform import build_deals

            lock.check("transform")
            report.transform = build_deals(settings, engine)
        if step in ("all", "sync"):
            if settings.pipedrive_api_key:
                from .pipedrive import run_sync
                from .transform import check_payments

                lock.check("sync")
                if report.transform is None:  # a sync alone: the view was built earlier, the payments may be newer
                    check_payments(settings, engine)

                report.sync = run_sync(settings, engine)
            else:
                report.notes.append("sync: skipped, PIPEDRIVE_API_KEY is not set")
    finally:
        held.close()
        engine.dispose()
    return report


def _may_transform(settings: Settings, engine, report: RunReport) -> bool:
    """Whether `all` goes on to transform and sync; if not, says why in the report's notes."""
    from .transform import missing_inputs

    if report.load.failed:
        # Deals built from a partial load would push wrong values to Pipedrive.
        report.notes.append(
            f"transform and sync: skipped, {len(report.load.failed)} file(s) failed to load; fix them and run again"
        )
        return False
    missing = missing_inputs(settings, engine)
    if missing:
        # A loader-only job (one DEST_TABLE of certificates, say) is complete without the deals.
        report.notes.append(
            f"transform and sync: skipped, no table {', '.join(missing)} to build the deals from "
            "(load them, or set CUSTOMERS_TABLE, ORDERS_TABLE and PAYMENTS_TABLE)"
        )
        return False
    return True
