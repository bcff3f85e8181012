"""The sync history in the destination database: what each sync did, record by record.

`_processor_sync_runs` holds one row per sync that could write (dry runs are not recorded: they
print their plan): start and end (UTC), the settings that shape it (`mode`), counts per outcome,
requests, tokens, exit code, and why it stopped or failed. `_processor_sync_changes` holds one
row per record the run touched or tried to: entity, key, Pipedrive id, action (created, updated,
archived, deleted, skipped, failed), the changed fields as JSON `{"field": [old, new]}`, and the
error. `python index.py status` reads the last run back (`last_sync`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..config import Settings
from ..db import describe_db_error, latest_row, writing
from ..errors import Interrupted, ProcessorError
from .report import SyncReport

log = logging.getLogger(__name__)

RUNS_TABLE = "_processor_sync_runs"
CHANGES_TABLE = "_processor_sync_changes"
COUNTED = ("created", "updated", "unchanged", "failed", "archived", "deleted", "skipped")
ENTITIES = ("persons", "deals")

metadata = sa.MetaData()
runs = sa.Table(
    RUNS_TABLE,
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=False),
    sa.Column("mode", sa.String(200), nullable=False),
    *(sa.Column(f"{entity}_{outcome}", sa.Integer, nullable=False) for entity in ENTITIES for outcome in COUNTED),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("tokens", sa.Integer),
    sa.Column("exit_code", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    mysql_charset="utf8mb4",
)
changes = sa.Table(
    CHANGES_TABLE,
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("entity", sa.String(16), nullable=False),
    sa.Column("record_key", sa.Text, nullable=False),
    sa.Column("pipedrive_id", sa.BigInteger),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("fields", sa.Text),
    sa.Column("error", sa.Text),
    mysql_charset="utf8mb4",
)


def now() -> datetime:
    """UTC now, without a zone (as the ledger stores times)."""
    return datetime.now(UTC).replace(tzinfo=None)


def mode(settings: Settings) -> str:
    """The settings that shape what a sync does, as one line."""
    mapped = "SYNC_FIELD_MAP" if settings.sync_field_map else "default fields"
    removed = settings.sync_removed
    if removed != "keep":
        removed += f" (max {settings.sync_removed_max} %{', forced' if settings.sync_removed_force else ''})"
    return f"archived={settings.sync_archived}; removed={removed}; {mapped}"


def record(
    engine: Engine, settings: Settings, started: datetime, report: SyncReport, stopped_by: Interrupted | None = None
) -> str | None:
    """Write one run and its changes (`stopped_by`: the signal that stopped it after what the report holds);
    returns why it could not (the sync is done all the same), else None."""
    counts = {
        f"{entity}_{outcome}": getattr(getattr(report, entity), outcome) for entity in ENTITIES for outcome in COUNTED
    }
    run = {
        **counts,
        "requests": sum(report.requests.values()),
        "tokens": report.tokens_used,
        "exit_code": stopped_by.exit_code if stopped_by else report.exit_code,
        "error": str(stopped_by) if stopped_by else report.stopped or report.removal_refused,
    }
    rows = [
        {
            "entity": c.entity,
            "record_key": c.key,
            "pipedrive_id": c.id,
            "action": c.action,
            "fields": json.dumps(c.fields, ensure_ascii=False, default=str) if c.fields else None,
            "error": c.error,
        }
        for c in report.changes
    ]
    return _write(engine, settings, started, run, rows)


def record_error(engine: Engine, settings: Settings, started: datetime, error: ProcessorError | Interrupted) -> None:
    """Write a run that stopped with an error before writing anything (e.g. a bad SYNC_FIELD_MAP entry)."""
    run = {f"{entity}_{outcome}": 0 for entity in ENTITIES for outcome in COUNTED}
    run.update(requests=0, tokens=None, exit_code=error.exit_code, error=str(error))
    _write(engine, settings, started, run, [])


def _write(engine: Engine, settings: Settings, started: datetime, run: dict[str, Any], rows: list[dict]) -> str | None:
    try:
        with writing(engine) as conn:
            metadata.create_all(conn, checkfirst=True)
            values = {**run, "started_at": started, "finished_at": now(), "mode": mode(settings)}
            run_id = conn.execute(sa.insert(runs).values(**values)).inserted_primary_key[0]
            if rows:
                conn.execute(sa.insert(changes), [{**row, "run_id": run_id} for row in rows])
    except sa.exc.DBAPIError as exc:
        reason = describe_db_error(exc, engine.url)
        log.error("the sync history could not be written to %s: %s", RUNS_TABLE, reason)
        return reason
    return None


@dataclass(frozen=True)
class LastSync:
    """The last recorded sync: its run row, and how many changes it recorded per entity and action."""

    run: dict[str, Any]
    actions: dict[tuple[str, str], int]

    def lines(self) -> list[str]:
        run = self.run
        took = (run["finished_at"] - run["started_at"]).total_seconds()
        out = [
            f"last sync: {run['started_at']:%Y-%m-%d %H:%M:%S} UTC, {took:.0f} s, exit {run['exit_code']} "
            f"({run['mode']})"
        ]
        for entity in ENTITIES:
            done = [f"{run[f'{entity}_{o}']} {o}" for o in COUNTED if run[f"{entity}_{o}"] or o in COUNTED[:3]]
            out.append(f"  {entity}: {', '.join(done)}")
        tokens = "unknown" if run["tokens"] is None else run["tokens"]
        out.append(f"  requests: {run['requests']}; tokens: {tokens}")
        if run["error"]:
            out.append(f"  {run['error']}")
        out.append(f"  each record it touched: {CHANGES_TABLE} where run_id = {run['id']}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**self.run, "changes": {f"{entity} {action}": n for (entity, action), n in self.actions.items()}}


def last_sync(engine: Engine) -> LastSync | None:
    """The last recorded sync (None when this database has none); raises DatabaseError via the caller's check."""
    with engine.connect() as conn:
        row = latest_row(conn, runs)
        if row is None:
            return None
        counted = conn.execute(
            sa.select(changes.c.entity, changes.c.action, sa.func.count())
            .where(changes.c.run_id == row["id"])
            .group_by(changes.c.entity, changes.c.action)
        )
        return LastSync(dict(row), {(entity, action): n for entity, action, n in counted})
