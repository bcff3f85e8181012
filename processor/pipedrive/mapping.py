"""Deals-view rows to Pipedrive payloads, and Pipedrive items back to comparable records (pure).

Keys are our ids as text ("42"): the customer id on persons, the order id on deals, each held in
a custom field found by name. Money is compared the way Pipedrive keeps it: the deal `value` is a
JSON number, which we send rounded half-up to cents; what comes back is rounded the same way
before comparing, so 2401.2 (float), Decimal("2401.20") and "2401.2" are one value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")
NUMERIC_FIELD_TYPES = frozenset({"double", "int"})
KEY_FIELD_TYPE = "varchar"  # searchable, exact, and never turns 42 into 42.0


@dataclass(frozen=True)
class KeyField:
    """The custom field that holds our key on one entity: its 40-hex code and its type."""

    code: str
    field_type: str = KEY_FIELD_TYPE

    def encode(self, key: str) -> str | int:
        """The key as this field's type wants it (a number for numeric fields, else text)."""
        return int(key) if self.field_type in NUMERIC_FIELD_TYPES else key

    def read(self, item: Mapping[str, Any]) -> str | None:
        """The key stored on a Pipedrive item, or None when it has none (or not a whole number)."""
        try:
            return key_of((item.get("custom_fields") or {}).get(self.code))
        except ValueError:
            return None


@dataclass(frozen=True)
class PersonWant:
    """A person as the view wants it."""

    key: str
    name: str


@dataclass(frozen=True)
class DealWant:
    """A deal as the view wants it; `person_key` is the customer's key (None: no person)."""

    key: str
    title: str
    value: Decimal
    currency: str
    person_key: str | None


@dataclass(frozen=True)
class PersonHave:
    """A person as Pipedrive holds it."""

    id: int
    key: str | None
    name: str


@dataclass(frozen=True)
class DealHave:
    """A deal as Pipedrive holds it; `archived` when a salesperson archived it (it is ours all the same)."""

    id: int
    key: str | None
    title: str
    value: Decimal
    currency: str
    person_id: int | None
    archived: bool = False


@dataclass(frozen=True)
class RowProblem:
    """A view row we cannot sync, with the reason."""

    key: str
    reason: str


@dataclass
class Wanted:
    """Everything the view wants in Pipedrive, keyed by our ids, and the rows we had to skip."""

    persons: dict[str, PersonWant] = field(default_factory=dict)
    deals: dict[str, DealWant] = field(default_factory=dict)
    problems: list[RowProblem] = field(default_factory=list)


def _number(value: Any, what: str) -> Decimal:
    """A finite Decimal from Decimal, int, float or text; raises ValueError saying it is not `what`."""
    try:
        number = None if isinstance(value, bool) else Decimal(str(value).strip())
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise ValueError(f"{value!r} is not {what}")
    return number


def key_of(value: Any) -> str | None:
    """An id as key text: 42, 42.0, Decimal('42') and ' 42 ' give '42'; raises ValueError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _number(value, "an id")
    if number != number.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number")
    return str(int(number))


def money(value: Any) -> Decimal:
    """An amount rounded half-up to cents, from Decimal, float, int or text (None is 0); raises ValueError."""
    if value is None:
        return Decimal("0.00")
    return _number(value, "an amount").quantize(CENT, rounding=ROUND_HALF_UP)


def _text(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def person_from_row(row: Mapping[str, Any], key: str) -> PersonWant:
    """The customer's person: name 'FirstName LastName' (or 'Customer <id>' when the view has no name)."""
    name = " ".join(part for part in (_text(row.get("first_name")), _text(row.get("last_name"))) if part)
    return PersonWant(key=key, name=name or f"Customer {key}")


def deal_from_row(row: Mapping[str, Any], key: str, default_currency: str) -> DealWant:
    """The order's deal: the view's title, value and currency; raises ValueError for a bad amount."""
    person_key = key_of(row.get("customer_id"))
    title = _text(row.get("title")) or f"Order {key}"
    currency = _text(row.get("currency")).upper() or default_currency.upper()
    return DealWant(key=key, title=title, value=money(row.get("value")), currency=currency, person_key=person_key)


def wanted_from_rows(rows: Iterable[Mapping[str, Any]], default_currency: str) -> Wanted:
    """Persons and deals the view wants; bad or repeated rows become problems (the first row of an id wins)."""
    wanted = Wanted()
    for row in rows:
        try:
            key = key_of(row.get("order_id"))
            if key is None:
                raise ValueError("the row has no order_id")
            if key in wanted.deals:
                raise ValueError("order_id appears more than once in the view")
            deal = deal_from_row(row, key, default_currency)
        except ValueError as exc:
            wanted.problems.append(RowProblem(key=str(row.get("order_id")), reason=str(exc)))
            continue
        wanted.deals[key] = deal
        if deal.person_key is not None and deal.person_key not in wanted.persons:
            wanted.persons[deal.person_key] = person_from_row(row, deal.person_key)
    return wanted


def person_have(item: Mapping[str, Any], key_field: KeyField) -> PersonHave:
    """A listed Pipedrive person as a comparable record."""
    return PersonHave(id=int(item["id"]), key=key_field.read(item), name=_text(item.get("name")))


def deal_have(item: Mapping[str, Any], key_field: KeyField, archived: bool = False) -> DealHave:
    """A listed Pipedrive deal as a comparable record; `archived` when it came from the archived list."""
    person_id = item.get("person_id")
    return DealHave(
        id=int(item["id"]),
        key=key_field.read(item),
        title=_text(item.get("title")),
        value=money(item.get("value")),
        currency=_text(item.get("currency")).upper(),
        person_id=int(person_id) if person_id is not None else None,
        archived=archived or item.get("is_archived") is True,
    )


def person_payload(want: PersonWant, key_field: KeyField) -> dict[str, Any]:
    """The body of POST /api/v2/persons."""
    return {"name": want.name, "custom_fields": {key_field.code: key_field.encode(want.key)}}


def deal_payload(want: DealWant, person_id: int | None, key_field: KeyField) -> dict[str, Any]:
    """The body of POST /api/v2/deals (no person_id when the order has no customer)."""
    body = {"title": want.title, "value": float(want.value), "currency": want.currency}
    if person_id is not None:
        body["person_id"] = person_id
    body["custom_fields"] = {key_field.code: key_field.encode(want.key)}
    return body


def changes_payload(changes: Mapping[str, Any], person_id: int | None = None) -> dict[str, Any]:
    """The body of a PATCH: the changed fields, `person_key` replaced by the person's id."""
    body = {name: value for name, value in changes.items() if name != "person_key"}
    if "value" in body:
        body["value"] = float(body["value"])
    if "person_key" in changes:
        body["person_id"] = person_id
    return body
