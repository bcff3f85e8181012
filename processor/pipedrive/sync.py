"""The sync stage: make Pipedrive hold the deals view, safely re-runnable.

    run_sync(settings, engine) -> SyncReport     reads the deals view, syncs, records the run
    sync_deals(settings, rows) -> SyncReport     rows given directly (nothing recorded)

Steps: list the deal and person fields -> check SYNC_FIELD_MAP against them and the view (a bad
entry stops here, before any write, exit 2) -> find the key custom fields by name (create them
when missing) -> list persons, deals and archived deals (pages of 500, only our key field and the
mapped custom fields) -> plan (pure) -> apply with PARALLEL_PROCESS_NUMBER threads: persons, then
deals with their person ids, then deals and persons that left the view (SYNC_REMOVED).

Nothing is duplicated: the listing maps every key to its Pipedrive id before anything is created
(archived deals too: Pipedrive lists them apart; they stay ours), and a create whose answer was
lost is looked up before it is sent again (listing by key among the records updated since just
before the first attempt; a listing reads what is committed, where search may lag). A run stopped
by the daily budget, a bad token or Pipedrive's abuse block reports what it did and what remains,
and exits 6; the next run's listing finds what this one made.
"""

from __future__ import annotations

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
from ..errors import ConfigError, DatabaseError, Interrupted, ProcessorError, SyncError, SyncStopped, TransformError
from . import history
from .client import PipedriveClient
from .fieldmap import Targets, describe_view, resolve
from .mapping import (
    KEY_FIELD_TYPE,
    KEY_FIELD_TYPES,
    PERSON_LINK,
    Held,
    KeyField,
    Want,
    Wanted,
    create_body,
    fields_body,
    held_from_item,
    plain,
    wanted_from_rows,
)
from .plan import Plan, Policy, Removal, Update, make_plan
from .report import PAST, Change, EntityCounts, Failure, SyncReport

__all__ = ["Change", "EntityCounts", "Failure", "SyncReport", "read_view", "run_sync", "sync_deals"]

log = logging.getLogger(__name__)

KEY_COLUMN = "order_id"
RECOVERY_MARGIN = timedelta(seconds=30)  # look back this far (Pipedrive's clock) for a lost create


@dataclass(frozen=True)
class _Entity:
    name: str
    path: str
    fields_path: str


PERSONS = _Entity("person", "/api/v2/persons", "/api/v2/personFields")
DEALS = _Entity("deal", "/api/v2/deals", "/api/v2/dealFields")
ARCHIVED_DEALS = _Entity("deal", "/api/v2/deals/archived", "/api/v2/dealFields")  # not in the deals list
REFERENCES = {  # built-in id fields: what the id names, and where to look it up (1 token; v1 users 2)
    "pipeline_id": ("pipeline", "/api/v2/pipelines/{}"),
    "stage_id": ("stage", "/api/v2/stages/{}"),
    "owner_id": ("user", "/api/v1/users/{}"),
    "org_id": ("organization", "/api/v2/organizations/{}"),
}


def run_sync(settings: Settings, engine: sa.Engine) -> SyncReport:
    """Read the deals view, sync it, and record the run (not a dry run) in the destination; raises DatabaseError,
    ConfigError (a bad SYNC_FIELD_MAP entry, before any write), SyncError."""
    rows, columns = _read_rows(settings, engine)
    started = history.now()
    try:
        report = sync_deals(settings, rows, columns=columns)
    except (ProcessorError, Interrupted) as exc:
        done = getattr(exc, "sync_report", None)  # a signal may stop a sync that has written
        if settings.sync_dry_run:
            pass
        elif done is not None:
            history.record(engine, settings, started, done, stopped_by=exc)
        else:
            history.record_error(engine, settings, started, exc)
        raise
    if not settings.sync_dry_run:
        report.history = history.record(engine, settings, started, report)
    return report


def _read_rows(settings: Settings, engine: sa.Engine) -> tuple[list[dict[str, Any]], list[str]]:
    """The deals view; in a dry run before any view is built, the deals as transform would build them
    from what is staged (a dry run builds nothing); raises DatabaseError, TransformError."""
    if settings.sync_dry_run:
        with engine.connect() as conn:
            built = settings.deals_view in sa.inspect(conn).get_view_names() or sa.inspect(conn).has_table(
                settings.deals_view
            )
        if not built:
            from ..transform import deals_select, reflect_staging

            with engine.connect() as conn:
                select = deals_select(settings, reflect_staging(settings, conn))
                result = conn.execute(select.order_by(select.selected_columns.order_id))
                return [dict(row) for row in result.mappings()], list(result.keys())
    return read_view(engine, settings.deals_view)


def read_view(engine: sa.Engine, name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every row of the deals view (every column: the field map may use any), and its column names;
    raises TransformError (no such view, or one without the key column: exit 5), DatabaseError.

    Date columns are read as dates on every database (SQLite hands back their text), so the field
    map finds a date mapped to a number before any write, as it does on the others.
    """
    build = "build it with `python index.py transform`"
    try:
        with engine.connect() as conn:
            declared = sa.inspect(conn).get_columns(name)
            view = sa.table(name, *(sa.column(c["name"], _date_or_none(c["type"])) for c in declared))
            if KEY_COLUMN not in view.c:
                raise TransformError(f"the deals view {name!r} has no column {KEY_COLUMN!r} to key deals by ({build})")
            result = conn.execute(sa.select(*view.c).order_by(view.c[KEY_COLUMN]))
            return [dict(row) for row in result.mappings()], list(result.keys())
    except sa.exc.NoSuchTableError:
        raise TransformError(f"the deals view {name!r} does not exist: {build}") from None
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(
            f"cannot read the deals view {name!r}: {describe_db_error(exc, engine.url)} ({build})"
        ) from None


def _date_or_none(declared: Any) -> sa.types.TypeEngine | None:
    """The declared type of a date column (read back as a date), else None (values as the driver gives them)."""
    return declared if isinstance(declared, sa.Date) else None


def sync_deals(
    settings: Settings,
    rows: Iterable[Mapping[str, Any]],
    *,
    client: PipedriveClient | None = None,
    columns: Iterable[str] | None = None,
) -> SyncReport:
    """Make Pipedrive hold these view rows (a stop is reported, not raised); raises ConfigError for a bad
    SYNC_FIELD_MAP (before any write), SyncError when it cannot list.

    `client` (one per run) lets tests and benchmarks choose the retry policy and burst window;
    `columns` names the view's columns (default: the rows' keys) for checking the field map.
    """
    started = time.monotonic()
    report = SyncReport(dry_run=settings.sync_dry_run, removal=settings.sync_removed)
    owned = client is None
    client = client or PipedriveClient(settings)
    try:
        _Sync(settings, client, report).run(list(rows), columns)
    except SyncStopped as exc:
        report.stopped = str(exc)
    except Interrupted as exc:
        exc.sync_report = report  # what was written before the signal, for the history
        raise
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


@dataclass(frozen=True)
class _Job:
    """One write: what it is (for the report and the history), and the function that sends it."""

    change: Change
    send: Callable[[], int | None]  # returns the record's id (a create learns it)
    after: tuple[int, ...] = ()  # ids of deals whose removal must have worked first
    writes: int = 1  # requests it sends (un-archive, then update: 2)


@dataclass
class _State:
    """What the apply phase learns as it goes: persons created, removals that failed."""

    person_ids: dict[str, int] = field(default_factory=dict)
    failed_ids: set[int] = field(default_factory=set)


class _Sync:
    """One run: fields and map, key fields, listing, plan, apply; counts and changes go into the report."""

    def __init__(self, settings: Settings, client: PipedriveClient, report: SyncReport) -> None:
        self.settings, self.client, self.report = settings, client, report
        self.key_fields: dict[str, KeyField | None] = {}
        self.targets = Targets()
        self.state = _State()
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self, rows: list[Mapping[str, Any]], columns: Iterable[str] | None) -> None:
        with ThreadPoolExecutor(3, thread_name_prefix="pipedrive-list") as pool:  # the listings side by side
            person_fields = pool.submit(self._fields, PERSONS)
            deal_fields = pool.submit(self._fields, DEALS)
            fields = {PERSONS.name: person_fields.result(), DEALS.name: deal_fields.result()}
            self.targets = resolve(
                self.settings.sync_field_map,
                fields,
                {
                    PERSONS.name: self.settings.pipedrive_person_key_field,
                    DEALS.name: self.settings.pipedrive_deal_key_field,
                },
                describe_view(rows, columns),
                self.settings.deal_currency,
            )
            self._check_key_field_types(fields)
            self._check_references()
            wanted = wanted_from_rows(rows, self.targets)
            person_key = pool.submit(self._key_field, PERSONS, fields[PERSONS.name])
            deal_key = pool.submit(self._key_field, DEALS, fields[DEALS.name])
            self.key_fields = {PERSONS.name: person_key.result(), DEALS.name: deal_key.result()}
            persons, deals = pool.submit(self._have, PERSONS), pool.submit(self._have, DEALS)
            archived = pool.submit(self._have, ARCHIVED_DEALS, True)
            plan = make_plan(wanted, persons.result(), deals.result() + archived.result(), self._policy())
        self._start(plan, wanted)
        if self.settings.sync_dry_run:
            self._plan_only(plan)
            return
        self._apply(plan)

    def _policy(self) -> Policy:
        s = self.settings
        return Policy(s.sync_archived, s.sync_removed, s.sync_removed_max, s.sync_removed_force)

    # ------------------------------------------------------------------ fields and listing

    def _fields(self, entity: _Entity) -> list[dict[str, Any]]:
        return list(self.client.iter_items(entity.fields_path))

    def _check_references(self) -> None:
        """Ids the map itself writes (stage, pipeline, owner, organization) must exist; raises ConfigError."""
        problems = []
        for entity in (DEALS, PERSONS):
            for target in self.targets.of(entity.name):
                what, path = REFERENCES.get(target.name, (None, None))
                for value in target.fixed_values() if path and not target.code else []:
                    try:
                        self.client.get(path.format(value))
                    except SyncError as exc:
                        if exc.status != 404 or isinstance(exc, SyncStopped):
                            raise
                        problems.append(f"{target.entry.label}: Pipedrive has no {what} with id {value}")
        if problems:
            raise ConfigError("SYNC_FIELD_MAP: " + "; ".join(problems) + "; nothing was written")

    def _check_key_field_types(self, fields: dict[str, list[dict[str, Any]]]) -> None:
        """A key field made by hand must be able to hold keys (text, or a number); raises ConfigError."""
        problems = []
        for entity, setting in ((PERSONS, "PIPEDRIVE_PERSON_KEY_FIELD"), (DEALS, "PIPEDRIVE_DEAL_KEY_FIELD")):
            name = self._key_name(entity)
            item = _named(fields[entity.name], name, entity)
            field_type = None if item is None else item.get("field_type") or KEY_FIELD_TYPE
            if field_type is not None and field_type not in KEY_FIELD_TYPES:
                problems.append(
                    f"{setting}: the {entity.name} field {name!r} is a {field_type} field, which cannot hold keys; "
                    f"make it a text field in Pipedrive, or name another field in {setting}"
                )
        if problems:
            raise ConfigError("; ".join(problems) + "; nothing was written")

    def _key_field(self, entity: _Entity, fields: list[dict[str, Any]]) -> KeyField | None:
        """Our key field by name; created when missing (not in a dry run: then None)."""
        name = self._key_name(entity)
        item = _named(fields, name, entity)
        if item is None and not self.settings.sync_dry_run:
            log.info("creating the %s custom field %r in Pipedrive", entity.name, name)
            body = {
                "field_name": name,
                "field_type": KEY_FIELD_TYPE,
                "description": f"{entity.name} key set by processor",
            }
            item = self.client.post(entity.fields_path, body, recover=lambda: self._find_field(entity))["data"]
        return None if item is None else KeyField(item["field_code"], item.get("field_type") or KEY_FIELD_TYPE)

    def _key_name(self, entity: _Entity) -> str:
        s = self.settings
        return s.pipedrive_person_key_field if entity is PERSONS else s.pipedrive_deal_key_field

    def _find_field(self, entity: _Entity) -> dict[str, Any] | None:
        return _named(self._fields(entity), self._key_name(entity), entity)

    def _list(self, entity: _Entity, **params: str) -> Iterable[dict[str, Any]]:
        key_field = self.key_fields[entity.name]
        if key_field is None:  # dry run without the field: nothing of ours exists yet
            return []
        codes = ",".join([key_field.code, *self.targets.custom_codes(entity.name)])
        return self.client.iter_items(entity.path, {"custom_fields": codes, **params})

    def _have(self, entity: _Entity, archived: bool = False) -> list[Held]:
        """Everything Pipedrive holds for one entity, as comparable records."""
        key_field, targets = self.key_fields[entity.name], self.targets.of(entity.name)
        return [held_from_item(item, key_field, targets, archived) for item in self._list(entity)]

    # ------------------------------------------------------------------ the plan, reported

    def _start(self, plan: Plan, wanted: Wanted) -> None:
        self.state.person_ids = dict(plan.person_ids)
        report = self.report
        for problem in wanted.problems:
            self._failed(Change(problem.entity, problem.key, None, "failed", error=problem.reason))
        report.planned = plan.writes
        report.persons.unchanged, report.deals.unchanged = plan.persons_unchanged, plan.deals_unchanged
        report.deals_not_in_view, report.deals_without_key = plan.deals_not_in_view, plan.deals_without_key
        report.persons_not_in_view, report.deals_archived = plan.persons_not_in_view, plan.deals_archived
        report.duplicates, report.removal_refused = len(plan.duplicates), plan.removal_refused
        report.deals.skipped = len(plan.archived_skipped)
        for duplicate in plan.duplicates:
            log.warning("Pipedrive holds %s %s more than once (ids %s); syncing the first", *vars(duplicate).values())
        if plan.removal_refused:
            log.warning("%s", plan.removal_refused)
        log.info(
            "sync plan: persons %d to create, %d to update, %d to delete, %d unchanged; deals %d to create, "
            "%d to update, %d to %s, %d unchanged, %d archived and differing (skipped)",
            len(plan.person_creates),
            len(plan.person_updates),
            len(plan.person_removals),
            plan.persons_unchanged,
            len(plan.deal_creates),
            len(plan.deal_updates),
            len(plan.deal_removals),
            plan.removal,
            plan.deals_unchanged,
            len(plan.archived_skipped),
        )

    def _plan_only(self, plan: Plan) -> None:
        """A dry run: count and list every planned change."""
        for jobs in self._job_lists(plan):
            for job in jobs:
                counts = self._counts(job.change.entity)
                setattr(counts, PAST[job.change.action], getattr(counts, PAST[job.change.action]) + 1)
                self.report.changes.append(job.change)
        self.report.changes += self._skipped(plan, "skip")
        self.report.remaining = plan.writes

    def _skipped(self, plan: Plan, action: str) -> list[Change]:
        changes = [self._update_change("deal", update, action) for update in plan.archived_skipped]
        for change in changes:
            change.error = "archived in Pipedrive, which refuses edits; SYNC_ARCHIVED=unarchive un-archives it"
        return changes

    # ------------------------------------------------------------------ apply

    def _apply(self, plan: Plan) -> None:
        self.report.changes += self._skipped(plan, "skipped")
        for jobs in self._job_lists(plan):
            self._run_jobs(jobs)

    def _job_lists(self, plan: Plan) -> list[list[_Job]]:
        """Persons, then deals (they need their persons' ids), then deal removals, then person removals."""
        persons = [self._create_job(PERSONS, want) for want in plan.person_creates]
        persons += [self._update_job(PERSONS, update) for update in plan.person_updates]
        deals = [self._create_job(DEALS, want) for want in plan.deal_creates]
        deals += [self._update_job(DEALS, update) for update in plan.deal_updates]
        verb = "archive" if plan.removal == "archive" else "delete"
        deal_removals = [self._removal_job(DEALS, removal, verb) for removal in plan.deal_removals]
        person_removals = [self._removal_job(PERSONS, removal, "delete") for removal in plan.person_removals]
        return [persons, deals, deal_removals, person_removals]

    def _create_job(self, entity: _Entity, want: Want) -> _Job:
        values = {name: [None, plain(value)] for name, value in want.fields.items() if value is not None}
        if want.person_key is not None:
            values["person"] = [None, want.person_key]
        return _Job(Change(entity.name, want.key, None, "create", values), partial(self._create, entity, want))

    def _update_job(self, entity: _Entity, update: Update) -> _Job:
        change = self._update_change(entity.name, update, "update")
        return _Job(change, partial(self._update, entity, update), writes=1 + update.unarchive)

    def _update_change(self, entity: str, update: Update, action: str) -> Change:
        keys = {person_id: key for key, person_id in self.state.person_ids.items()}
        values = {}
        for name, new in update.changes.items():
            old = update.old.get(name)
            if name == PERSON_LINK:
                values["person"] = [keys.get(old, None if old is None else f"id {old}"), new]
            else:
                values[name] = [plain(old), plain(new)]
        if update.unarchive:
            values["is_archived"] = [True, False]
        return Change(entity, update.key, update.id, action, values)

    def _removal_job(self, entity: _Entity, removal: Removal, verb: str) -> _Job:
        values = {"is_archived": [False, True]} if verb == "archive" else {}
        send = partial(self._archive if verb == "archive" else self._delete, entity, removal.id)
        return _Job(Change(entity.name, removal.key, removal.id, verb, values), send, removal.deal_ids)

    def _run_jobs(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        with ThreadPoolExecutor(self.settings.parallel_process_number, thread_name_prefix="pipedrive") as pool:
            list(pool.map(self._run_job, jobs))

    def _run_job(self, job: _Job) -> None:
        change = job.change
        if self.stop.is_set():
            self._tally(remaining=job.writes)
            return
        try:
            with self.lock:
                blocked = [i for i in job.after if i in self.state.failed_ids]
            if blocked:
                raise SyncError(f"its deal (id {blocked[0]}) could not be removed, so it still has a deal")
            record_id = job.send()
        except SyncStopped as exc:
            with self.lock:
                if not self.stop.is_set():
                    self.report.stopped = str(exc)
                    self.stop.set()
            self._tally(remaining=job.writes)
        except SyncError as exc:
            if change.id is not None:
                with self.lock:
                    self.state.failed_ids.add(change.id)
            change.action, change.error = "failed", str(exc)
            self._failed(change)
        else:
            change.action = PAST[change.action]
            change.id = record_id if record_id is not None else change.id
            self._tally(change=change, done=job.writes)

    def _failed(self, change: Change) -> None:
        with self.lock:
            self.report.failures.append(Failure(change.entity, change.key, change.error or ""))
            self.report.changes.append(change)
            self._counts(change.entity).failed += 1

    def _tally(self, *, change: Change | None = None, remaining: int = 0, done: int = 0) -> None:
        with self.lock:
            self.report.remaining += remaining
            if change is not None:
                counts = self._counts(change.entity)
                setattr(counts, change.action, getattr(counts, change.action) + 1)
                self.report.changes.append(change)
                self.report.done += done

    def _counts(self, entity: str) -> EntityCounts:
        return self.report.persons if entity == PERSONS.name else self.report.deals

    # ------------------------------------------------------------------ the requests

    def _create(self, entity: _Entity, want: Want) -> int:
        targets, key_field = self.targets.of(entity.name), self.key_fields[entity.name]
        person_id = self._person_id(want.person_key) if entity is DEALS else None
        try:
            body = create_body(want, targets, key_field, person_id)
        except ValueError as exc:
            raise SyncError(str(exc), key=want.key) from None
        since = (self.client.server_time() - RECOVERY_MARGIN).strftime("%Y-%m-%dT%H:%M:%SZ")
        created = self.client.post(entity.path, body, recover=lambda: self._find_created(entity, want.key, since))
        record_id = int(created["data"]["id"])
        if entity is PERSONS:
            with self.lock:
                self.state.person_ids[want.key] = record_id
        return record_id

    def _find_created(self, entity: _Entity, key: str, since: str) -> dict[str, Any] | None:
        """The record with this key updated since `since`, if a lost create committed it."""
        key_field = self.key_fields[entity.name]
        return next((item for item in self._list(entity, updated_since=since) if key_field.read(item) == key), None)

    def _update(self, entity: _Entity, update: Update) -> int:
        person_key = update.changes.get(PERSON_LINK)
        person_id = self._person_id(person_key) if PERSON_LINK in update.changes else None
        body = fields_body(update.changes, self.targets.of(entity.name), person_id=person_id)
        if update.unarchive:  # Pipedrive edits no archived deal: un-archiving must be a request of its own
            self.client.patch(f"{entity.path}/{update.id}", {"is_archived": False})
        self.client.patch(f"{entity.path}/{update.id}", body)
        return update.id

    def _archive(self, entity: _Entity, record_id: int) -> int:
        self.client.patch(f"{entity.path}/{record_id}", {"is_archived": True})
        return record_id

    def _delete(self, entity: _Entity, record_id: int) -> int:
        self.client.delete(f"{entity.path}/{record_id}")
        return record_id

    def _person_id(self, person_key: str | None) -> int | None:
        if person_key is None:
            return None
        with self.lock:
            person_id = self.state.person_ids.get(person_key)
        if person_id is None:
            raise SyncError(f"its person (customer {person_key}) could not be created", key=person_key)
        return person_id


def _named(fields: list[dict[str, Any]], name: str, entity: _Entity) -> dict[str, Any] | None:
    """The custom field of this name; raises SyncStopped when Pipedrive has several."""
    found = [item for item in fields if item.get("is_custom_field") and item.get("field_name") == name]
    if len(found) > 1:
        raise SyncStopped(
            f"Pipedrive has {len(found)} {entity.name} fields named {name!r}; rename all but one "
            "(or choose another name in the settings) so the key is unambiguous"
        )
    return found[0] if found else None
