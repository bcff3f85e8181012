"""The sync plan: what the view wants against what Pipedrive holds -> create / update / unchanged (pure).

Updates carry only the fields that differ (deals: title, value, currency, person; persons: name).
An archived deal is ours like any other: matched by key (so never created again), updated when it
differs, and counted; it stays archived (an update does not touch that). Deals in Pipedrive that
the view does not have are counted and left alone. When Pipedrive holds one key twice (made by
hand, or by an older tool), ours is the lowest id among the deals not archived (else the lowest
id) and the others are reported, never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .mapping import DealHave, DealWant, PersonHave, PersonWant, Wanted

_NEW = object()  # the id of a person this run will create: equal to no existing id
Have = TypeVar("Have", PersonHave, DealHave)


@dataclass(frozen=True)
class Update:
    """One PATCH: the Pipedrive id, our key, and the changed fields (`person_key` for a deal's person)."""

    id: int
    key: str
    changes: dict[str, Any]


@dataclass(frozen=True)
class Duplicate:
    """A key that Pipedrive holds more than once; `ids[0]` is the one we sync."""

    entity: str
    key: str
    ids: tuple[int, ...]


@dataclass
class Plan:
    """What to send, and what to leave."""

    person_creates: list[PersonWant] = field(default_factory=list)
    person_updates: list[Update] = field(default_factory=list)
    persons_unchanged: int = 0
    deal_creates: list[DealWant] = field(default_factory=list)
    deal_updates: list[Update] = field(default_factory=list)
    deals_unchanged: int = 0
    deals_not_in_view: int = 0
    deals_archived: int = 0
    person_ids: dict[str, int] = field(default_factory=dict)
    duplicates: list[Duplicate] = field(default_factory=list)

    @property
    def writes(self) -> int:
        """How many write requests the plan needs."""
        return len(self.person_creates) + len(self.person_updates) + len(self.deal_creates) + len(self.deal_updates)


def make_plan(wanted: Wanted, persons: Iterable[PersonHave], deals: Iterable[DealHave]) -> Plan:
    """Compare the view with Pipedrive's persons and deals; never raises."""
    deals = list({have.id: have for have in deals}.values())  # one archived mid-listing is listed twice
    people, person_dupes = _by_key(persons, "person")
    found, deal_dupes = _by_key(deals, "deal")
    plan = Plan(person_ids={key: have.id for key, have in people.items()}, duplicates=person_dupes + deal_dupes)
    for key, want in wanted.persons.items():
        have = people.get(key)
        if have is None:
            plan.person_creates.append(want)
        elif changes := _person_changes(want, have):
            plan.person_updates.append(Update(have.id, key, changes))
        else:
            plan.persons_unchanged += 1
    for key, want in wanted.deals.items():
        have = found.get(key)
        if have is None:
            plan.deal_creates.append(want)
        elif changes := _deal_changes(want, have, plan.person_ids):
            plan.deal_updates.append(Update(have.id, key, changes))
        else:
            plan.deals_unchanged += 1
    plan.deals_not_in_view = sum(1 for have in deals if have.key not in wanted.deals)
    plan.deals_archived = sum(1 for key, have in found.items() if have.archived and key in wanted.deals)
    return plan


def _by_key(items: Iterable[Have], entity: str) -> tuple[dict[str, Have], list[Duplicate]]:
    """Items by key (unarchived first, then the lowest id), and the keys held more than once; keyless items skipped."""
    grouped: dict[str, list[Have]] = {}
    for item in items:
        if item.key is not None:
            grouped.setdefault(item.key, []).append(item)
    chosen, duplicates = {}, []
    for key, group in grouped.items():
        group.sort(key=lambda have: (getattr(have, "archived", False), have.id))  # persons have no archive
        chosen[key] = group[0]
        if len(group) > 1:
            duplicates.append(Duplicate(entity, key, tuple(have.id for have in group)))
    return chosen, duplicates


def _person_changes(want: PersonWant, have: PersonHave) -> dict[str, Any]:
    return {"name": want.name} if want.name != have.name else {}


def _deal_changes(want: DealWant, have: DealHave, person_ids: dict[str, int]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if want.title != have.title:
        changes["title"] = want.title
    if want.value != have.value:
        changes["value"] = want.value
    if want.currency != have.currency:
        changes["currency"] = want.currency
    person_id = None if want.person_key is None else person_ids.get(want.person_key, _NEW)
    if person_id != have.person_id:
        changes["person_key"] = want.person_key
    return changes
