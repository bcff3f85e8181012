"""The end of a run, whatever stopped it: the summary (with where from and where to), SUMMARY_JSON,
a row in `_processor_runs`, and a message to NOTIFY_URL. Each part fails alone, logged, and none
changes the run's exit code."""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from . import notify, runs
from .config import Settings
from .db import create_engine, describe_db_error
from .errors import ProcessorError
from .feedback import describe_destination, describe_source
from .pipeline import RunReport
from .redact import clean, clean_tree, redact

log = logging.getLogger(__name__)

READS_SOURCE = ("all", "load")


@dataclass(frozen=True)
class Ending:
    """One run as it ended: which step, when, how long, and its report."""

    settings: Settings
    step: str
    report: RunReport
    started_at: datetime
    seconds: float

    def run(self) -> runs.Run:
        secrets = self.settings.secrets()
        report = self.report
        # A sync that stopped (exit 6) ends the run without an exception: its reason is the run's error.
        error = report.error or (report.sync.stopped if report.sync else None)
        return runs.Run(
            run_id=str(uuid.uuid4()),
            step=self.step,
            started_at=self.started_at.replace(tzinfo=None),
            finished_at=datetime.now(UTC).replace(tzinfo=None),
            seconds=round(self.seconds, 3),
            exit_code=report.exit_code,
            summary=redact(report.headline(), secrets),
            error=redact(error, secrets) if error else None,
            source=describe_source(self.settings) if self.step in READS_SOURCE else None,
            host=socket.gethostname(),
        )


def where(settings: Settings, step: str) -> list[str]:
    """The lines naming the source (for the steps that read it) and the destination; passwords masked."""
    lines = [f"source: {describe_source(settings)}"] if step in READS_SOURCE else []
    lines.append(f"destination: {describe_destination(settings)}")
    if step in ("all", "sync") and settings.pipedrive_api_key:
        lines.append(f"pipedrive: {settings.pipedrive_base_url}" + (" (dry run)" if settings.sync_dry_run else ""))
    return [clean(line, settings.secrets()) for line in lines]


def summary_lines(ending: Ending) -> list[str]:
    """The end summary: where from and where to, then what each stage did (or what stopped the run)."""
    secrets = ending.settings.secrets()
    return where(ending.settings, ending.step) + [clean(line, secrets) for line in ending.report.lines()]


def summary_data(ending: Ending, run: runs.Run) -> dict[str, Any]:
    """The summary as JSON-ready data (SUMMARY_JSON, and the notification's report), secrets masked."""
    data = {
        **ending.report.to_dict(),
        "run": run.to_dict(),
        "source": run.source,
        "destination": describe_destination(ending.settings),
    }
    return clean_tree(json.loads(json.dumps(data, default=str)), ending.settings.secrets())


def write_summary(path: str, data: dict[str, Any]) -> None:
    """Write SUMMARY_JSON; a failure is logged (the run's outcome stands)."""
    try:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, default=str)
    except OSError as exc:
        log.error("could not write SUMMARY_JSON to %s: %s", path, exc.strerror or exc)


def remember(settings: Settings, run: runs.Run) -> None:
    """Add the run to `_processor_runs` in the destination; skipped for status (which only reads), for a
    database that could not be reached, and for a SQLite file the run never created."""
    if run.step == "status" or run.exit_code in (2, 4):
        return
    try:
        engine = create_engine(settings.dest_sql)
    except ProcessorError:
        return
    try:
        database = engine.url.database
        if engine.dialect.name == "sqlite" and database and not os.path.exists(database):
            return
        runs.record(engine, run)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("could not record this run in %s: %s", runs.RUNS_TABLE, describe_db_error(exc, engine.url))
    finally:
        engine.dispose()


def tell(settings: Settings, run: runs.Run, data: dict[str, Any], rows_rejected: int) -> None:
    """POST the summary to NOTIFY_URL when NOTIFY_ON asks for it (never for status)."""
    if not settings.notify_url or run.step == "status":
        return
    if not notify.wanted(settings.notify_on, run.exit_code, rows_rejected):
        return
    fields = {**data["run"], "rows_rejected": rows_rejected, "destination": data["destination"]}
    notify.send(settings.notify_url, notify.body(fields, data, settings.secrets()))


def finish(ending: Ending) -> list[str]:
    """Record, write and tell how the run ended; returns the summary lines to print."""
    run = ending.run()
    data = summary_data(ending, run)
    if ending.settings.summary_json:
        write_summary(ending.settings.summary_json, data)
    remember(ending.settings, run)
    tell(ending.settings, run, data, ending.report.rows_rejected)
    return summary_lines(ending)


def tell_config_error(env: dict[str, str], message: str) -> None:
    """A run that cannot start for its configuration is a failed run too: tell NOTIFY_URL when it is valid."""
    from .config import notify_secrets, parse_notify_url

    try:
        url = parse_notify_url(env.get("NOTIFY_URL", ""))
    except ValueError:
        return
    if not url:
        return
    secrets = [env.get("PIPEDRIVE_API_KEY"), *notify_secrets(url)]
    run = {"step": "config", "host": socket.gethostname(), "exit_code": 2, "seconds": 0.0, "error": message}
    notify.send(url, notify.body(run, {}, [s for s in secrets if s]))
