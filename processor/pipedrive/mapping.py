"""Deals-view rows to wanted records, Pipedrive items to held records, and request bodies (pure).

A key is the exact text of the view's value: `007` and `7` are two customers, `SO-1001` an order
like any other; numbers a database returns become their plain text (7 -> "7", Decimal("7.50") ->
"7.50"), a whole number without the ".0" SQLite and MariaDB may add (20.0 -> "20", as the text a
column widened to text then holds). Keys live in a custom field found by name: a text field (ours are created so), or a
numeric one made by hand, which can only hold keys that are whole numbers written plainly; a field of
any other type (monetary, date, option, ...) cannot hold keys at all.

Which fields a record carries, and how each value compares with what Pipedrive stores, comes from
the resolved field map (fieldmap.py) and the kinds of value (values.py): money is rounded half-up to cents on both sides, dates are
YYYY-MM-DD, enum labels become option ids, so a re-run on unchanged data finds nothing to send.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .fieldmap import Target, Targets
from .values import money, number_of, text_of, value_text

__all__ = ["money", "text_of"]

NUMERIC_FIELD_TYPES = frozenset({"double", "int"})
KEY_FIELD_TYPE = "varchar"  # exact text, searchable, and never turns 42 into 42.0
KEY_FIELD_TYPES = frozenset({KEY_FIELD_TYPE, "varchar_auto", "text", "phone", *NUMERIC_FIELD_TYPES})  # can hold a key
PERSON_LINK = "person_id"  # the deal's person, in changes: the person's key (wanted) or id (held)


def key_of(value: Any) -> str | None:
    """A view value as key text, exactly as written ('007' stays '007'); a whole number is its plain text
    however the database returns it (20, 20.0 and Decimal('20.0') give '20'); None when empty; raises ValueError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or (isinstance(value, float | Decimal) and not math.isfinite(value)):
        raise ValueError(f"{value!r} is not a key")
    if isinstance(value, float | Decimal) and value % 1 == 0:
        return str(int(value))  # SQLite's REAL and MariaDB's DECIMAL(p, s) add a '.0' the source did not have
    return value_text(value)


@dataclass(frozen=True)
class KeyField:
    """The custom field that holds our key on one entity: its 40-hex code and its type."""

    code: str
    field_type: str = KEY_FIELD_TYPE

    @property
    def numeric(self) -> bool:
        return self.field_type in NUMERIC_FIELD_TYPES

    def encode(self, key: str) -> str | int:
        """The key as this field stores it; raises ValueError when a numeric field cannot hold it exactly."""
        if not self.numeric:
            return key
        if not key.isdigit() or str(int(key)) != key:
            raise ValueError(
                f"the key field is a numeric ({self.field_type}) field, which cannot hold the key {key!r} "
                "as written; change its type to text in Pipedrive"
            )
        return int(key)

    def read(self, item: Mapping[str, Any]) -> str | None:
        """The key stored on a Pipedrive item, as text; None when it has none."""
        stored = (item.get("custom_fields") or {}).get(self.code)
        if stored is None or isinstance(stored, bool) or (isinstance(stored, str) and not stored.strip()):
            return None
        if self.numeric and isinstance(stored, int | float):
            number = number_of(stored, "a key") if math.isfinite(stored) else None
            if number is None or number != number.to_integral_value():
                return None
            return str(int(number))
        return stored if isinstance(stored, str) else value_text(stored)


@dataclass(frozen=True)
class Want:
    """A record as the view wants it: its key, its fields (target -> value), and a deal's person key."""

    key: str
    fields: dict[str, Any]
    person_key: str | None = None


@dataclass(frozen=True)
class Held:
    """A record as Pipedrive holds it; `archived` when a salesperson archived the deal (still ours)."""

    id: int
    key: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    person_id: int | None = None
    archived: bool = False


@dataclass(frozen=True)
class RowProblem:
    """A record we cannot sync, with the reason."""

    entity: str
    key: str
    reason: str


@dataclass
class Wanted:
    """Everything the view wants in Pipedrive, keyed by our keys, and the records we had to skip.

    `in_view` holds every key the view has, a skipped record's too: a record with a bad value is
    still in the view, and must never look like one that left it.
    """

    persons: dict[str, Want] = field(default_factory=dict)
    deals: dict[str, Want] = field(default_factory=dict)
    problems: list[RowProblem] = field(default_factory=list)
    in_view: dict[str, set[str]] = field(default_factory=lambda: {"deal": set(), "person": set()})


def _fields(targets: Iterable[Target], row: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Each target's value for one row (an empty value of a field that cannot be cleared is left out)."""
    out = {}
    for target in targets:
        try:
            value = target.value(row, key)
        except ValueError as exc:
            raise ValueError(f"{target.entry.label}: {exc}") from None
        if value is not None or target.kind.nullable:
            out[target.name] = value
    return out


def wanted_from_rows(rows: Iterable[Mapping[str, Any]], targets: Targets) -> Wanted:
    """Persons and deals the view wants; bad or repeated rows become problems (the first row of a key wins)."""
    wanted = Wanted()
    bad_persons: set[str] = set()
    for row in rows:
        try:
            key = key_of(row.get("order_id"))
            if key is None:
                raise ValueError("the row has no order_id")
            if key in wanted.in_view["deal"]:
                raise ValueError("order_id appears more than once in the view")
            wanted.in_view["deal"].add(key)
            person_key = key_of(row.get("customer_id"))
            if person_key is not None:
                wanted.in_view["person"].add(person_key)
            deal = Want(key, _fields(targets.deal, row, key), person_key)
        except ValueError as exc:
            wanted.problems.append(RowProblem("deal", value_text(row.get("order_id")), str(exc)))
            continue
        wanted.deals[key] = deal
        if person_key is None or person_key in wanted.persons or person_key in bad_persons:
            continue
        try:
            wanted.persons[person_key] = Want(person_key, _fields(targets.person, row, person_key))
        except ValueError as exc:
            bad_persons.add(person_key)
            wanted.problems.append(RowProblem("person", person_key, str(exc)))
    return wanted


def held_from_item(item: Mapping[str, Any], key_field: KeyField, targets: Iterable[Target], archived=False) -> Held:
    """A listed Pipedrive person or deal as a comparable record; `archived` when it came from the archived list."""
    person_id = item.get(PERSON_LINK)
    return Held(
        id=int(item["id"]),
        key=key_field.read(item),
        fields={target.name: target.read(item) for target in targets},
        person_id=int(person_id) if isinstance(person_id, int | float) else None,
        archived=archived or item.get("is_archived") is True,
    )


def create_body(want: Want, targets: Iterable[Target], key_field: KeyField, person_id: int | None) -> dict[str, Any]:
    """The body of a POST: every field the view gives, the key, and a deal's person (when it has one)."""
    body = fields_body(want.fields, targets, skip_empty=True)
    if person_id is not None:
        body[PERSON_LINK] = person_id
    body.setdefault("custom_fields", {})[key_field.code] = key_field.encode(want.key)
    return body


def fields_body(
    values: Mapping[str, Any], targets: Iterable[Target], *, skip_empty: bool = False, person_id: int | None = None
) -> dict[str, Any]:
    """Fields as Pipedrive takes them: built-in ones at the top, custom ones under `custom_fields` by code."""
    by_name = {target.name: target for target in targets}
    body: dict[str, Any] = {}
    for name, value in values.items():
        if name == PERSON_LINK:
            body[PERSON_LINK] = person_id
            continue
        if value is None and skip_empty:
            continue
        target = by_name[name]
        sent = target.kind.send(value) if value is not None or target.kind.sends_empty else None
        if target.code:
            body.setdefault("custom_fields", {})[target.code] = sent
        else:
            body[name] = sent
    return body


def plain(value: Any) -> Any:
    """A compared value as plain JSON: Decimal -> '2401.20', tuples -> lists."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value
