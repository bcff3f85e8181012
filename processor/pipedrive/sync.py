"""The sync stage: make Pipedrive hold the deals view, safely re-runnable.

    run_sync(settings, engine) -> SyncReport     reads the deals view, then sync_deals
    sync_deals(settings, rows) -> SyncReport     rows given directly

Steps: find the key custom fields by name (create them when missing) -> list persons, deals and
archived deals (pages of 500, only our key field) -> plan (pure) -> apply with
PARALLEL_PROCESS_NUMBER threads, persons first, then deals with their person ids.

Nothing is duplicated: the listing maps every key to its Pipedrive id before anything is created
(archived deals too: Pipedrive lists them apart, and they stay ours and stay archived),
and a create whose answer was lost is looked up before it is sent again (listing by key among
the records updated since just before the first attempt; a listing reads what is committed, where
search may lag). A run stopped by the daily budget, a bad token or Pipedrive's abuse block reports
what it did and what remains, and exits 6; the next run's listing finds what this one made.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa

from ..config import Settings
from ..db import describe_db_error
from ..errors import DatabaseError, SyncError, SyncStopped
from .client import PipedriveClient
from .mapping import (
    KEY_FIELD_TYPE,
    DealWant,
    KeyField,
    PersonWant,
    Wanted,
    changes_payload,
    deal_have,
    deal_payload,
    person_have,
    person_payload,
    wanted_from_rows,
)
from .plan import Plan, Update, make_plan

log = logging.getLogger(__name__)

VIEW_COLUMNS = ("order_id", "customer_id", "first_name", "last_name", "title", "value", "currency")  # those we use
RECOVERY_MARGIN = timedelta(seconds=30)  # look back this far (Pipedrive's clock) for a lost create
MAX_FAILURE_LINES = 20


@dataclass(frozen=True)
class _Entity:
    name: str
    path: str
    fields_path: str


PERSONS = _Entity("person", "/api/v2/persons", "/api/v2/personFields")
DEALS = _Entity("deal", "/api/v2/deals", "/api/v2/dealFields")
ARCHIVED_DEALS = _Entity("deal", "/api/v2/deals/archived", "/api/v2/dealFields")  # not in the deals list


@dataclass
class EntityCounts:
    """Outcomes for one kind of record."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0

    def describe(self, dry_run: bool) -> str:
        """'3 created, 1 updated, 5 unchanged, 0 failed' (or what a dry run would do)."""
        if dry_run:
            return f"would create {self.created}, update {self.updated}, leave {self.unchanged} unchanged"
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, {self.failed} failed"


@dataclass(frozen=True)
class Failure:
    """One record that could not be synced, with Pipedrive's (or our) reason."""

    entity: str
    key: str
    reason: str


@dataclass
class SyncReport:
    """What a sync did; `exit_code` is 0 (all synced), 1 (some records failed) or 6 (stopped early)."""

    persons: EntityCounts = field(default_factory=EntityCounts)
    deals: EntityCounts = field(default_factory=EntityCounts)
    deals_not_in_view: int = 0
    deals_archived: int = 0
    duplicates: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    tokens_used: int | None = None
    elapsed: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    stopped: str | None = None
    planned: int | None = None
    done: int = 0
    remaining: int = 0
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        """6 when the run stopped early, 1 when some record failed, else 0."""
        if self.stopped:
            return SyncStopped.exit_code
        return 1 if self.failures else 0

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (for SUMMARY_JSON)."""
        return {**dataclasses.asdict(self), "elapsed": round(self.elapsed, 3), "exit_code": self.exit_code}

    def lines(self) -> list[str]:
        """The report as short human lines."""
        out = ["dry run: nothing written"] if self.dry_run else []
        out.append(f"Pipedrive persons: {self.persons.describe(self.dry_run)}")
        out.append(f"Pipedrive deals: {self.deals.describe(self.dry_run)}")
        if self.deals_not_in_view:
            out.append(f"{self.deals_not_in_view} deals in Pipedrive are not in the view (left alone)")
        if self.deals_archived:
            out.append(f"{self.deals_archived} deals of the view are archived in Pipedrive (synced, kept archived)")
        if self.duplicates:
            out.append(f"{self.duplicates} keys are held by more than one Pipedrive record (extra copies left alone)")
        sent = ", ".join(f"{count} {method}" for method, count in sorted(self.requests.items())) or "none"
        tokens = "unknown" if self.tokens_used is None else str(self.tokens_used)
        out.append(f"requests: {sent}; {self.rate_limited} answered 429; tokens used: {tokens}; {self.elapsed:.1f} s")
        out += [f"failed {f.entity} {f.key}: {f.reason}" for f in self.failures[:MAX_FAILURE_LINES]]
        if len(self.failures) > MAX_FAILURE_LINES:
            out.append(f"... and {len(self.failures) - MAX_FAILURE_LINES} more failures")
        if self.stopped:
            out.append(f"stopped: {self.stopped}")
            if self.planned is None:
                out.append("stopped before the plan was made; nothing was written")
            else:
                out.append(
                    f"{self.done} of {self.planned} writes done, {self.remaining} remaining; run again to finish"
                )
        return out


@dataclass(frozen=True)
class _Job:
    entity: str
    outcome: str
    key: str
    send: Callable[[], None]


def run_sync(settings: Settings, engine: sa.Engine) -> SyncReport:
    """Read the deals view and sync it; raises DatabaseError when the view cannot be read, SyncError."""
    return sync_deals(settings, read_view(engine, settings.deals_view))


def read_view(engine: sa.Engine, name: str) -> list[dict[str, Any]]:
    """Every row of the deals view, ordered by order id; raises DatabaseError."""
    view = sa.table(name, *(sa.column(column) for column in VIEW_COLUMNS))
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.select(view).order_by(view.c.order_id))
            return [dict(row) for row in result.mappings()]
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(f"cannot read the deals view {name!r}: {describe_db_error(exc, engine.url)}") from None


def sync_deals(
    settings: Settings, rows: Iterable[Mapping[str, Any]], *, client: PipedriveClient | None = None
) -> SyncReport:
    """Make Pipedrive hold these view rows (a stop is reported, not raised); raises SyncError when it cannot list.

    `client` (one per run) lets tests and benchmarks choose the retry policy and burst window.
    """
    started = time.monotonic()
    report = SyncReport(dry_run=settings.sync_dry_run)
    wanted = wanted_from_rows(rows, settings.deal_currency)
    for problem in wanted.problems:
        report.failures.append(Failure("deal", problem.key, problem.reason))
        report.deals.failed += 1
    owned = client is None
    client = client or PipedriveClient(settings)
    try:
        _Sync(settings, client, report).run(wanted)
    except SyncStopped as exc:
        report.stopped = str(exc)
    finally:
        if owned:
            client.close()
        report.requests = dict(client.stats.requests)
        report.rate_limited = client.stats.rate_limited
        report.tokens_used = client.budget.used
        report.elapsed = time.monotonic() - started
    if report.stopped:
        log.warning("Pipedrive sync stopped: %s", report.stopped)
    return report


class _Sync:
    """One run: key fields, listing, plan, apply; counts go into the report."""

    def __init__(self, settings: Settings, client: PipedriveClient, report: SyncReport) -> None:
        self.settings, self.client, self.report = settings, client, report
        self.key_fields: dict[str, KeyField | None] = {}
        self.person_ids: dict[str, int] = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self, wanted: Wanted) -> None:
        with ThreadPoolExecutor(3, thread_name_prefix="pipedrive-list") as pool:  # the listings side by side
            person_field = pool.submit(self._key_field, PERSONS, self.settings.pipedrive_person_key_field)
            deal_field = pool.submit(self._key_field, DEALS, self.settings.pipedrive_deal_key_field)
            self.key_fields = {PERSONS.name: person_field.result(), DEALS.name: deal_field.result()}
            persons, deals = pool.submit(self._have, PERSONS, person_have), pool.submit(self._have, DEALS, deal_have)
            archived = pool.submit(self._have, ARCHIVED_DEALS, partial(deal_have, archived=True))
            plan = make_plan(wanted, persons.result(), deals.result() + archived.result())
        self._start(plan)
        if self.settings.sync_dry_run:
            self._count_dry_run(plan)
            return
        self._run_jobs(self._jobs(PERSONS, plan.person_creates, plan.person_updates, self._create_person))
        self._run_jobs(self._jobs(DEALS, plan.deal_creates, plan.deal_updates, self._create_deal))

    # ------------------------------------------------------------------ fields and listing

    def _key_field(self, entity: _Entity, name: str) -> KeyField | None:
        """Our key field by name; created when missing (not in a dry run: then None)."""
        item = self._find_field(entity, name)
        if item is None and not self.settings.sync_dry_run:
            log.info("creating the %s custom field %r in Pipedrive", entity.name, name)
            body = {
                "field_name": name,
                "field_type": KEY_FIELD_TYPE,
                "description": f"{entity.name} key set by processor",
            }
            item = self.client.post(entity.fields_path, body, recover=lambda: self._find_field(entity, name))["data"]
        return None if item is None else KeyField(item["field_code"], item.get("field_type") or KEY_FIELD_TYPE)

    def _find_field(self, entity: _Entity, name: str) -> dict[str, Any] | None:
        found = [
            item
            for item in self.client.iter_items(entity.fields_path)
            if item.get("is_custom_field") and item.get("field_name") == name
        ]
        if len(found) > 1:
            raise SyncStopped(
                f"Pipedrive has {len(found)} {entity.name} fields named {name!r}; rename all but one "
                "(or choose another name in the settings) so the key is unambiguous"
            )
        return found[0] if found else None

    def _list(self, entity: _Entity, **params: str) -> Iterable[dict[str, Any]]:
        key_field = self.key_fields[entity.name]
        if key_field is None:  # dry run without the field: nothing of ours exists yet
            return []
        return self.client.iter_items(entity.path, {"custom_fields": key_field.code, **params})

    def _have(self, entity: _Entity, convert: Callable[[dict[str, Any], KeyField], Any]) -> list:
        """Everything of ours that Pipedrive holds for one entity, as comparable records."""
        return [convert(item, self.key_fields[entity.name]) for item in self._list(entity)]

    def _start(self, plan: Plan) -> None:
        self.person_ids = dict(plan.person_ids)
        report = self.report
        report.planned = plan.writes
        report.persons.unchanged, report.deals.unchanged = plan.persons_unchanged, plan.deals_unchanged
        report.deals_not_in_view, report.duplicates = plan.deals_not_in_view, len(plan.duplicates)
        report.deals_archived = plan.deals_archived
        for duplicate in plan.duplicates:
            log.warning("Pipedrive holds %s %s more than once (ids %s); syncing the first", *vars(duplicate).values())
        log.info(
            "sync plan: persons %d to create, %d to update, %d unchanged; deals %d to create, %d to update, "
            "%d unchanged, %d not in the view, %d archived",
            len(plan.person_creates),
            len(plan.person_updates),
            plan.persons_unchanged,
            len(plan.deal_creates),
            len(plan.deal_updates),
            plan.deals_unchanged,
            plan.deals_not_in_view,
            plan.deals_archived,
        )

    def _count_dry_run(self, plan: Plan) -> None:
        self.report.persons.created, self.report.persons.updated = len(plan.person_creates), len(plan.person_updates)
        self.report.deals.created, self.report.deals.updated = len(plan.deal_creates), len(plan.deal_updates)
        self.report.remaining = plan.writes

    # ------------------------------------------------------------------ apply

    def _jobs(self, entity: _Entity, creates: list, updates: list[Update], create: Callable[[Any], None]) -> list[_Job]:
        jobs = [_Job(entity.name, "created", want.key, partial(create, want)) for want in creates]
        return jobs + [_Job(entity.name, "updated", u.key, partial(self._update, entity, u)) for u in updates]

    def _run_jobs(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        with ThreadPoolExecutor(self.settings.parallel_process_number, thread_name_prefix="pipedrive") as pool:
            list(pool.map(self._run_job, jobs))

    def _run_job(self, job: _Job) -> None:
        if self.stop.is_set():
            self._tally(remaining=1)
            return
        try:
            job.send()
        except SyncStopped as exc:
            with self.lock:
                if not self.stop.is_set():
                    self.report.stopped = str(exc)
                    self.stop.set()
            self._tally(remaining=1)
        except SyncError as exc:
            self._tally(failure=Failure(job.entity, job.key, str(exc)))
        else:
            self._tally(entity=job.entity, outcome=job.outcome)

    def _tally(
        self, *, entity: str = "", outcome: str = "", failure: Failure | None = None, remaining: int = 0
    ) -> None:
        with self.lock:
            self.report.remaining += remaining
            if failure is not None:
                self.report.failures.append(failure)
                entity, outcome = failure.entity, "failed"
            if entity:
                counts = self.report.persons if entity == "person" else self.report.deals
                setattr(counts, outcome, getattr(counts, outcome) + 1)
                self.report.done += outcome != "failed"

    def _create_person(self, want: PersonWant) -> None:
        body = person_payload(want, self.key_fields["person"])
        person = self._create(PERSONS, want.key, body)
        with self.lock:
            self.person_ids[want.key] = int(person["id"])

    def _create_deal(self, want: DealWant) -> None:
        self._create(DEALS, want.key, deal_payload(want, self._person_id(want.person_key), self.key_fields["deal"]))

    def _create(self, entity: _Entity, key: str, body: dict[str, Any]) -> dict[str, Any]:
        since = (self.client.server_time() - RECOVERY_MARGIN).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self.client.post(entity.path, body, recover=lambda: self._find_created(entity, key, since))["data"]

    def _find_created(self, entity: _Entity, key: str, since: str) -> dict[str, Any] | None:
        """The record with this key updated since `since`, if a lost create committed it."""
        key_field = self.key_fields[entity.name]
        return next((item for item in self._list(entity, updated_since=since) if key_field.read(item) == key), None)

    def _update(self, entity: _Entity, update: Update) -> None:
        person_key = update.changes.get("person_key")
        body = changes_payload(update.changes, self._person_id(person_key) if "person_key" in update.changes else None)
        self.client.patch(f"{entity.path}/{update.id}", body)

    def _person_id(self, person_key: str | None) -> int | None:
        if person_key is None:
            return None
        with self.lock:
            person_id = self.person_ids.get(person_key)
        if person_id is None:
            raise SyncError(f"its person (customer {person_key}) could not be created", key=person_key)
        return person_id
