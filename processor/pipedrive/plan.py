"""The sync plan: what the view wants against what Pipedrive holds (pure).

    create    a key the view has and Pipedrive does not
    update    only the fields that differ (and a deal's person)
    unchanged everything equal, as Pipedrive stores it
    skip      an archived deal that differs (SYNC_ARCHIVED=skip): Pipedrive refuses edits of
              archived deals, so it is reported, not sent; =unarchive un-archives, then updates
    archive / delete   a deal carrying our key whose key left the view (SYNC_REMOVED), and a
              person whose customer left the view and who has no deal left (delete only: Pipedrive
              cannot archive persons, and a person whose deals are archived still has them)

Only records carrying our key are ever touched. A share of the keyed deals larger than
SYNC_REMOVED_MAX leaving in one run looks like an empty or truncated source, so nothing is
removed unless SYNC_REMOVED_FORCE is set. When Pipedrive holds one key twice (made by hand, or
by an older tool), ours is the lowest id among the deals not archived (else the lowest id) and
the others are reported, never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .mapping import PERSON_LINK, Held, Want, Wanted

_NEW = object()  # the id of a person this run will create: equal to no existing id


@dataclass(frozen=True)
class Policy:
    """What the operator chose for archived deals and for deals that left the view."""

    archived: str = "skip"
    removed: str = "keep"
    removed_max: Decimal = Decimal("10")  # percent of the keyed deals (and persons)
    force: bool = False


@dataclass(frozen=True)
class Update:
    """One PATCH: the Pipedrive id, our key, the new values and the old (`person_id`: key new, id old)."""

    id: int
    key: str
    changes: dict[str, Any]
    old: dict[str, Any] = field(default_factory=dict)
    unarchive: bool = False


@dataclass(frozen=True)
class Removal:
    """A record to archive or delete: its id and key (a person: and the ids of its deals removed first)."""

    id: int
    key: str
    deal_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Duplicate:
    """A key that Pipedrive holds more than once; `ids[0]` is the one we sync."""

    entity: str
    key: str
    ids: tuple[int, ...]


@dataclass
class Plan:
    """What to send, and what to leave."""

    person_creates: list[Want] = field(default_factory=list)
    person_updates: list[Update] = field(default_factory=list)
    persons_unchanged: int = 0
    deal_creates: list[Want] = field(default_factory=list)
    deal_updates: list[Update] = field(default_factory=list)
    deals_unchanged: int = 0
    archived_skipped: list[Update] = field(default_factory=list)
    deals_archived: int = 0
    deals_not_in_view: int = 0
    deals_without_key: int = 0
    persons_not_in_view: int = 0
    deal_removals: list[Removal] = field(default_factory=list)
    person_removals: list[Removal] = field(default_factory=list)
    removal: str = "keep"  # what the removals do: archive or delete
    removal_refused: str | None = None
    person_ids: dict[str, int] = field(default_factory=dict)
    duplicates: list[Duplicate] = field(default_factory=list)

    @property
    def writes(self) -> int:
        """How many write requests the plan needs."""
        updates = self.person_updates + self.deal_updates
        return (
            len(self.person_creates)
            + len(self.deal_creates)
            + len(updates)
            + sum(u.unarchive for u in updates)
            + len(self.deal_removals)
            + len(self.person_removals)
        )


def make_plan(wanted: Wanted, persons: Iterable[Held], deals: Iterable[Held], policy: Policy | None = None) -> Plan:
    """Compare the view with Pipedrive's persons and deals; never raises."""
    policy = policy or Policy()
    persons = list(persons)
    deals = list({have.id: have for have in deals}.values())  # one archived mid-listing is listed twice
    people, person_dupes = _by_key(persons, "person")
    found, deal_dupes = _by_key(deals, "deal")
    plan = Plan(person_ids={key: have.id for key, have in people.items()}, duplicates=person_dupes + deal_dupes)
    for key, want in wanted.persons.items():
        have = people.get(key)
        if have is None:
            plan.person_creates.append(want)
        elif changes := _changes(want, have):
            plan.person_updates.append(_update(have, key, changes))
        else:
            plan.persons_unchanged += 1
    for key, want in wanted.deals.items():
        _plan_deal(plan, want, found.get(key), policy)
    plan.deals_without_key = sum(1 for have in deals if have.key is None)
    plan.deals_archived = sum(1 for key, have in found.items() if have.archived and key in wanted.deals)
    _plan_removals(plan, wanted, persons, deals, policy)
    return plan


def _plan_deal(plan: Plan, want: Want, have: Held | None, policy: Policy) -> None:
    if have is None:
        plan.deal_creates.append(want)
        return
    changes = _changes(want, have)
    person_id = None if want.person_key is None else plan.person_ids.get(want.person_key, _NEW)
    if person_id != have.person_id:
        changes[PERSON_LINK] = want.person_key
    if not changes:
        plan.deals_unchanged += 1
    elif not have.archived:
        plan.deal_updates.append(_update(have, want.key, changes))
    elif policy.archived == "unarchive":
        plan.deal_updates.append(_update(have, want.key, changes, unarchive=True))
    else:
        plan.archived_skipped.append(_update(have, want.key, changes))


def _update(have: Held, key: str, changes: dict[str, Any], unarchive: bool = False) -> Update:
    old = {name: have.person_id if name == PERSON_LINK else have.fields.get(name) for name in changes}
    return Update(have.id, key, changes, old, unarchive)


def _changes(want: Want, have: Held) -> dict[str, Any]:
    return {name: value for name, value in want.fields.items() if have.fields.get(name) != value}


def _by_key(items: Iterable[Held], entity: str) -> tuple[dict[str, Held], list[Duplicate]]:
    """Items by key (unarchived first, then the lowest id), and the keys held more than once; keyless items skipped."""
    grouped: dict[str, list[Held]] = {}
    for item in items:
        if item.key is not None:
            grouped.setdefault(item.key, []).append(item)
    chosen, duplicates = {}, []
    for key, group in grouped.items():
        group.sort(key=lambda have: (have.archived, have.id))
        chosen[key] = group[0]
        if len(group) > 1:
            duplicates.append(Duplicate(entity, key, tuple(have.id for have in group)))
    return chosen, duplicates


def _plan_removals(plan: Plan, wanted: Wanted, persons: list[Held], deals: list[Held], policy: Policy) -> None:
    keyed_deals = [d for d in deals if d.key is not None]
    gone = [d for d in keyed_deals if d.key not in wanted.in_view["deal"] and d.key not in wanted.deals]
    keyed_persons = [p for p in persons if p.key is not None]
    gone_persons = [p for p in keyed_persons if p.key not in wanted.in_view["person"] and p.key not in wanted.persons]
    plan.deals_not_in_view, plan.persons_not_in_view = len(gone), len(gone_persons)
    plan.removal = policy.removed
    if policy.removed == "keep":
        return
    deal_removals = [d for d in gone if policy.removed == "delete" or not d.archived]
    person_removals = []
    if policy.removed == "delete":
        removed_ids = {d.id for d in deal_removals}
        kept_for = {d.person_id for d in deals if d.id not in removed_ids}
        person_removals = [p for p in gone_persons if p.id not in kept_for]
    refused = [
        _too_many(policy, "deals", len(deal_removals), len(keyed_deals)),
        _too_many(policy, "persons", len(person_removals), len(keyed_persons)),
    ]
    plan.removal_refused = next((reason for reason in refused if reason), None)
    if plan.removal_refused is None:
        plan.deal_removals = [Removal(d.id, d.key) for d in deal_removals]
        plan.person_removals = [
            Removal(p.id, p.key, tuple(d.id for d in deal_removals if d.person_id == p.id)) for p in person_removals
        ]


def _too_many(policy: Policy, what: str, removing: int, keyed: int) -> str | None:
    """Why removing `removing` of `keyed` records is refused, or None when it is within SYNC_REMOVED_MAX."""
    if policy.force or not removing or removing * 100 <= policy.removed_max * keyed:
        return None
    share = Decimal(removing * 100) / keyed
    verb = "archived" if policy.removed == "archive" else "deleted"
    return (
        f"SYNC_REMOVED={policy.removed} would remove {removing} of the {keyed} {what} carrying our key "
        f"({share:.0f} %), more than SYNC_REMOVED_MAX={policy.removed_max} %; none was {verb}. An empty or "
        "truncated source looks like this: check it, then set SYNC_REMOVED_FORCE=1 to remove them"
    )
