"""Kinds of field values: how a view value becomes what Pipedrive stores, and how stored values compare (pure).

A `Kind` reads a view value (`want`), reads back what Pipedrive holds (`have`) and says how it is
sent (`send`), so that both sides compare as Pipedrive stores them: money rounded half-up to
cents, dates as YYYY-MM-DD, text with its runs of whitespace made one space, enum and set labels
as option ids. A re-run on unchanged data therefore finds nothing to send.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")
STATUSES = ("open", "won", "lost")
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")


def text_of(value: Any) -> str:
    """Text with runs of whitespace made one space (as Pipedrive shows names); '' for None."""
    return "" if value is None else " ".join(str(value).split())


def number_of(value: Any, what: str = "a number") -> Decimal:
    """A finite Decimal from Decimal, int, float or text; raises ValueError saying it is not `what`."""
    try:
        number = None if isinstance(value, bool) else Decimal(str(value).strip())
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise ValueError(f"{value!r} is not {what}")
    return number


def money(value: Any) -> Decimal:
    """An amount rounded half-up to cents, from Decimal, float, int or text (None is 0); raises ValueError."""
    if value is None:
        return Decimal("0.00")
    return number_of(value, "an amount").quantize(CENT, rounding=ROUND_HALF_UP)


def _text(value: Any) -> str | None:
    return text_of(value) or None


def _float(value: Any) -> float:
    return float(number_of(value))


def _integer(value: Any) -> int:
    if isinstance(value, dict) and "id" in value:  # v1 answers an owner or org as an object
        value = value["id"]
    number = number_of(value, "a whole number")
    if number != number.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def _date(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()[:10]
    match = _DATE.fullmatch(text_of(value))
    if match is None:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(match[1]).isoformat()
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _stored_date(value: Any) -> str | None:
    return None if value in (None, "") else str(value)[:10]


def _status(value: Any) -> str:
    status = text_of(value).lower()
    if status not in STATUSES:
        raise ValueError(f"{value!r} is not a deal status (open, won or lost)")
    return status


def _currency(value: Any) -> str | None:
    return text_of(value).upper() or None


def _primary(contacts: Any) -> str | None:
    if isinstance(contacts, str):
        return _text(contacts)
    if not contacts:
        return None
    chosen = next((c for c in contacts if isinstance(c, dict) and c.get("primary")), contacts[0])
    return _text(chosen.get("value") if isinstance(chosen, dict) else chosen)


def _contacts(value: str | None) -> list[dict[str, Any]]:
    return [] if value is None else [{"value": value, "primary": True, "label": "work"}]


def _id_or_none(value: Any) -> int | None:
    return None if value is None else _integer(value)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else _float(value)


TEXT, NUMBER, DATE = frozenset({"text"}), frozenset({"text", "number"}), frozenset({"text", "date"})
ANY = frozenset({"text", "number", "date", "bool"})


@dataclass(frozen=True)
class Kind:
    """How one kind of field reads view values (`want`), Pipedrive values (`have`), and is sent.

    `want` raises ValueError for a value that cannot be this kind; `accepts` is which kinds of
    view column can feed it (the rest is a type mismatch found before any write); `nullable`
    False means an empty value leaves Pipedrive's value alone rather than clearing it.
    """

    name: str
    want: Callable[[Any], Any]
    have: Callable[[Any], Any]
    send: Callable[[Any], Any] = lambda value: value
    accepts: frozenset[str] = ANY
    nullable: bool = True
    sends_empty: bool = False  # `send` turns None into what clears the field (an empty list)


TEXT_KIND = Kind("a text", _text, _text)
NAME_KIND = Kind("a non-empty text", _text, _text, nullable=False)
MONEY_KIND = Kind("an amount", money, lambda v: None if v is None else money(v), float, NUMBER, nullable=False)
NUMBER_KIND = Kind("a number", _float, _float_or_none, accepts=NUMBER)
ID_KIND = Kind("an id (a whole number)", _integer, _id_or_none, accepts=NUMBER, nullable=False)
NULLABLE_ID_KIND = Kind("an id (a whole number)", _integer, _id_or_none, accepts=NUMBER)
DATE_KIND = Kind("a date (YYYY-MM-DD)", _date, _stored_date, accepts=DATE)
STATUS_KIND = Kind("open, won or lost", _status, _text, accepts=TEXT, nullable=False)
CURRENCY_KIND = Kind("a currency code", _currency, _currency, accepts=TEXT, nullable=False)
CONTACT_KIND = Kind("an e-mail address or phone number", _text, _primary, _contacts, NUMBER, sends_empty=True)

_CUSTOM_TEXT = frozenset({"varchar", "varchar_auto", "text", "phone", "address"})
_CUSTOM_IDS = frozenset({"org", "people", "user"})


def _options(field_item: Mapping[str, Any]) -> dict[str, int]:
    return {str(o.get("label")): int(o["id"]) for o in field_item.get("options") or [] if "id" in o}


def _option_id(options: dict[str, int], name: str) -> Callable[[Any], int]:
    folded: dict[str, list[int]] = {}
    for label, option in options.items():
        folded.setdefault(label.casefold(), []).append(option)

    def want(value: Any) -> int:
        label = text_of(value)
        is_id = isinstance(value, int) and not isinstance(value, bool) and value in options.values()
        if is_id and label not in options:  # an option id given as such
            return value
        if label in options:
            return options[label]
        found = folded.get(label.casefold(), [])
        if len(found) == 1:
            return found[0]
        shown = ", ".join(sorted(options)) or "none"
        raise ValueError(f"{label!r} is not an option of the field {name!r} (its options: {shown})")

    return want


def _option_ids(one: Callable[[Any], int]) -> Callable[[Any], tuple[int, ...] | None]:
    def want(value: Any) -> tuple[int, ...] | None:
        labels = value if isinstance(value, tuple | list) else [p for p in text_of(value).split(",")]
        ids = sorted({one(label.strip() if isinstance(label, str) else label) for label in labels if text_of(label)})
        return tuple(ids) or None

    return want


def _stored_ids(value: Any) -> tuple[int, ...] | None:
    if value in (None, "", []):
        return None
    parts = value.split(",") if isinstance(value, str) else value
    return tuple(sorted(int(p) for p in parts))


def _monetary(currency: str) -> Kind:
    def want(value: Any) -> tuple[Decimal, str]:
        return money(value), currency

    def have(value: Any) -> tuple[Decimal, str] | None:
        if not isinstance(value, dict) or value.get("value") is None:
            return None
        return money(value["value"]), text_of(value.get("currency")).upper() or currency

    return Kind("an amount", want, have, lambda v: {"value": float(v[0]), "currency": v[1]}, NUMBER)


def custom_kind(field_item: Mapping[str, Any], currency: str) -> Kind | None:
    """How a custom field's values compare and are sent, by its field_type; None when the sync cannot map it."""
    field_type, name = field_item.get("field_type"), str(field_item.get("field_name"))
    if field_type in _CUSTOM_TEXT:
        return TEXT_KIND
    if field_type == "double":
        return NUMBER_KIND
    if field_type == "date":
        return DATE_KIND
    if field_type == "monetary":
        return _monetary(currency)
    if field_type in _CUSTOM_IDS:
        return NULLABLE_ID_KIND
    if field_type == "enum":
        one = _option_id(_options(field_item), name)
        return Kind("an option label", one, _id_or_none, accepts=NUMBER)
    if field_type == "set":
        many = _option_ids(_option_id(_options(field_item), name))
        return Kind("option labels separated by commas", many, _stored_ids, lambda v: list(v) if v else None, NUMBER)
    return None


def value_text(value: Any) -> str:
    """A view value as its exact text: 7 -> '7', Decimal('7.50') -> '7.50', a date -> '2024-01-31'."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
