"""SYNC_FIELD_MAP: which view column feeds which Pipedrive field, and how values compare (pure).

    {"deal":   {"status": {"column": "status", "map": {"completed": "won", "returned": "lost", "*": "open"}},
                "expected_close_date": "order_date",
                "stage_id": {"value": 3},
                "Channel": "channel"},
     "person": {"emails": "email"}}

Each section maps a target to a source. A target is a built-in field (its API key: `status`,
`stage_id`, ...) or a custom field by its name as Pipedrive shows it. A source is a column name,
or an object with exactly one of `column`, `columns` (joined with a space) or `value` (a constant),
plus optionally `map` (view value -> Pipedrive value; `"*"` catches the rest) and `default` (used
when the column is empty; `{key}` in it is the record's key). The map is merged over the default
mapping (deal title, value, currency; person name); `null` drops a default entry.

Parsing checks the shape (a ConfigError at start-up); `resolve` checks the entries against the view
and Pipedrive's field list before anything is written (unknown fields, kinds that cannot meet,
enum option labels, too many custom fields), and every problem names its entry.

Each target gets a `Kind` (values.py) that says how its values compare as Pipedrive stores them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .values import (
    CONTACT_KIND,
    CURRENCY_KIND,
    DATE_KIND,
    ID_KIND,
    MONEY_KIND,
    NAME_KIND,
    NULLABLE_ID_KIND,
    NUMBER_KIND,
    STATUS_KIND,
    TEXT_KIND,
    Kind,
    custom_kind,
    text_of,
    value_text,
)

ENTITIES = ("deal", "person")
MAX_CUSTOM_FIELDS = 15  # Pipedrive's limit on the `custom_fields` list parameter, our key field included
WILDCARD = "*"
_SOURCE_KEYS = ("column", "columns", "value")
_ENTRY_KEYS = frozenset((*_SOURCE_KEYS, "map", "default"))


# ---------------------------------------------------------------------- the map as written


@dataclass(frozen=True)
class Entry:
    """One mapping entry as written: a target and where its value comes from."""

    entity: str
    target: str
    columns: tuple[str, ...] = ()
    constant: Any = None
    has_constant: bool = False
    value_map: tuple[tuple[str, Any], ...] | None = None
    default: Any = None

    @property
    def label(self) -> str:
        """How messages name the entry: deal.status, person."Customer tier"."""
        plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.target)
        return f"{self.entity}.{self.target}" if plain else f"{self.entity}.{json.dumps(self.target)}"


@dataclass(frozen=True)
class FieldMap:
    """SYNC_FIELD_MAP parsed: entries that add to or replace the defaults, and defaults dropped."""

    entries: tuple[Entry, ...] = ()
    dropped: tuple[tuple[str, str], ...] = ()


def parse_field_map(raw: str) -> FieldMap:
    """Inline JSON, or the path of a JSON or YAML file; raises ValueError naming the entry at fault."""
    text = raw.strip()
    if not text:
        return FieldMap()
    data = _load(text)
    if not isinstance(data, dict):
        raise ValueError('expected an object such as {"deal": {...}, "person": {...}}')
    unknown = [name for name in data if name not in ENTITIES]
    if unknown:
        raise ValueError(f"unknown section {unknown[0]!r}: use deal and person")
    entries, dropped = [], []
    for entity, section in data.items():
        if not isinstance(section, dict):
            raise ValueError(f"section {entity!r} must be an object of target: source")
        for target, spec in section.items():
            if spec is None:
                dropped.append((entity, str(target)))
            else:
                entries.append(_entry(entity, str(target), spec))
    return FieldMap(tuple(entries), tuple(dropped))


def _load(text: str) -> Any:
    if text.startswith(("{", "[")):
        return _json(text, "inline JSON")
    path = Path(text)
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the file {text}: {exc.strerror or exc}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(content)
        except yaml.YAMLError as exc:
            raise ValueError(f"{text} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return _json(content, text)


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None


def _entry(entity: str, target: str, spec: Any) -> Entry:
    probe = Entry(entity, target)
    if isinstance(spec, str):
        return Entry(entity, target, columns=(spec,))
    if not isinstance(spec, dict):
        raise ValueError(f"entry {probe.label}: expected a column name or an object with column, columns or value")
    extra = sorted(set(spec) - _ENTRY_KEYS)
    if extra:
        raise ValueError(f"entry {probe.label}: unknown key {extra[0]!r} (use column, columns, value, map, default)")
    sources = [key for key in _SOURCE_KEYS if key in spec]
    if len(sources) != 1:
        raise ValueError(f"entry {probe.label}: give exactly one of column, columns or value")
    columns, constant = _source(probe, sources[0], spec[sources[0]])
    value_map = _value_map(probe, spec.get("map"))
    default = spec.get("default")
    if not _is_scalar(default):
        raise ValueError(f"entry {probe.label}: default must be a text, number or boolean")
    return Entry(entity, target, columns, constant, sources[0] == "value", value_map, default)


def _source(probe: Entry, kind: str, value: Any) -> tuple[tuple[str, ...], Any]:
    if kind == "column":
        if not isinstance(value, str) or not value:
            raise ValueError(f"entry {probe.label}: column must be a column name")
        return (value,), None
    if kind == "columns":
        if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
            raise ValueError(f"entry {probe.label}: columns must be a list of column names")
        return tuple(value), None
    if not (_is_scalar(value) or (isinstance(value, list) and all(map(_is_scalar, value)))):
        raise ValueError(f"entry {probe.label}: value must be a text, number, boolean or a list of them")
    return (), tuple(value) if isinstance(value, list) else value


def _value_map(probe: Entry, raw: Any) -> tuple[tuple[str, Any], ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(_is_scalar(v) for v in raw.values()):
        raise ValueError(f"entry {probe.label}: map must be an object of view value: Pipedrive value")
    return tuple((str(k), v) for k, v in raw.items())


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


# ---------------------------------------------------------------------- what can be mapped

BUILT_IN: dict[str, dict[str, Kind]] = {
    "deal": {
        "title": NAME_KIND,
        "value": MONEY_KIND,
        "currency": CURRENCY_KIND,
        "status": STATUS_KIND,
        "expected_close_date": DATE_KIND,
        "probability": NUMBER_KIND,
        "lost_reason": TEXT_KIND,
        "pipeline_id": ID_KIND,
        "stage_id": ID_KIND,
        "owner_id": ID_KIND,
        "org_id": NULLABLE_ID_KIND,
        "visible_to": ID_KIND,
    },
    "person": {
        "name": NAME_KIND,
        "emails": CONTACT_KIND,
        "phones": CONTACT_KIND,
        "owner_id": ID_KIND,
        "org_id": NULLABLE_ID_KIND,
        "visible_to": ID_KIND,
    },
}
NOT_MAPPABLE = {
    "add_time": "Pipedrive API v2 cannot set a deal's add_time; map the date to expected_close_date "
    "or to a custom date field",
    "person_id": "the sync links every deal to its customer's person itself",
    "won_time": "Pipedrive sets it when the status becomes won; map status",
    "lost_time": "Pipedrive sets it when the status becomes lost; map status",
    "close_time": "Pipedrive sets it when the status becomes won or lost; map status",
    "is_archived": "SYNC_ARCHIVED and SYNC_REMOVED decide what is archived",
    "id": "Pipedrive gives the id",
}
REQUIRED = {"deal": "title", "person": "name"}
# ---------------------------------------------------------------------- resolved against Pipedrive


@dataclass(frozen=True)
class Target:
    """One mapped field, resolved: where it lives in Pipedrive's JSON, its kind, and its entry."""

    name: str
    entry: Entry
    kind: Kind
    code: str | None = None  # a custom field's 40-hex code; None for a built-in field

    def read(self, item: Mapping[str, Any]) -> Any:
        """The value Pipedrive holds, normalised for comparing (None when empty)."""
        raw = (item.get("custom_fields") or {}).get(self.code) if self.code else item.get(self.name)
        try:
            return self.kind.have(raw)
        except (ValueError, TypeError):
            return ("unreadable", repr(raw))  # differs from anything we want: it gets rewritten

    def fixed_values(self) -> list[Any]:
        """The values the entry itself writes (constant, map outputs, default), as this field takes them."""
        entry = self.entry
        raw = [value for _, value in entry.value_map or ()]
        raw += [entry.constant] if entry.has_constant else []
        raw += [entry.default] if entry.default is not None else []
        fixed = [self.kind.want(v) for v in raw if v is not None and not (isinstance(v, str) and "{key}" in v)]
        return list(dict.fromkeys(v for v in fixed if v is not None))

    def value(self, row: Mapping[str, Any], key: str) -> Any:
        """The value the view wants (None: empty); raises ValueError saying what is wrong with it."""
        raw = source_value(self.entry, row, key)
        return None if raw is None else self.kind.want(raw)


@dataclass(frozen=True)
class Targets:
    """The resolved map: each entity's targets, and the custom field codes its listing must ask for."""

    deal: tuple[Target, ...] = ()
    person: tuple[Target, ...] = ()

    def of(self, entity: str) -> tuple[Target, ...]:
        return self.deal if entity == "deal" else self.person

    def custom_codes(self, entity: str) -> list[str]:
        return [t.code for t in self.of(entity) if t.code]


def source_value(entry: Entry, row: Mapping[str, Any], key: str) -> Any:
    """The raw value an entry gives for one row, after default and map; raises ValueError for an unmapped value."""
    if entry.has_constant:
        raw = entry.constant
    elif len(entry.columns) == 1:
        raw = row.get(entry.columns[0])
    else:
        raw = " ".join(part for part in (text_of(row.get(c)) for c in entry.columns) if part)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raw = entry.default.replace("{key}", key) if isinstance(entry.default, str) else entry.default
    if entry.value_map is None or raw is None:
        return raw
    mapped = dict(entry.value_map)
    looked_up = value_text(raw)
    if looked_up in mapped:
        return mapped[looked_up]
    if WILDCARD in mapped:
        return mapped[WILDCARD]
    raise ValueError(f"{looked_up!r} has no entry in its map")


def default_entries(currency: str) -> dict[str, dict[str, Entry]]:
    """The payload the sync sends without a map: deal title, value and currency; person name."""
    return {
        "deal": {
            "title": Entry("deal", "title", ("title",), default="Order {key}"),
            "value": Entry("deal", "value", ("value",), default=0),
            "currency": Entry("deal", "currency", ("currency",), default=currency),
        },
        "person": {
            "name": Entry("person", "name", ("first_name", "last_name"), default="Customer {key}"),
        },
    }


@dataclass
class _Resolver:
    """Checks every entry of one entity against the view and Pipedrive's fields, collecting problems."""

    entity: str
    fields: list[Mapping[str, Any]]
    key_field: str
    columns: set[str] | None
    column_kinds: Mapping[str, frozenset[str]]
    currency: str
    problems: list[str] = field(default_factory=list)

    def targets(self, entries: Iterable[Entry]) -> tuple[Target, ...]:
        found = [self._target(entry) for entry in entries]
        targets = tuple(t for t in found if t is not None)
        customs = sum(1 for t in targets if t.code)
        if customs > MAX_CUSTOM_FIELDS - 1:
            self.problems.append(
                f"{self.entity}: {customs} custom fields mapped; Pipedrive lists at most {MAX_CUSTOM_FIELDS - 1} "
                "besides the key field"
            )
        return targets

    def _target(self, entry: Entry) -> Target | None:
        located = self._locate(entry)
        if located is None:
            return None
        kind, code = located
        target = Target(entry.target, entry, kind, code)
        if self._check(target):
            return target
        return None

    def _locate(self, entry: Entry) -> tuple[Kind, str | None] | None:
        built_in = BUILT_IN[self.entity].get(entry.target)
        if built_in is not None:
            return built_in, None
        if entry.target in NOT_MAPPABLE:
            self._problem(entry, f"cannot be mapped: {NOT_MAPPABLE[entry.target]}")
            return None
        if entry.target == self.key_field:
            self._problem(entry, "is the sync's key field (it holds the record's key)")
            return None
        item = self._custom(entry)
        if item is None:
            return None
        kind = custom_kind(item, self.currency)
        if kind is None:
            self._problem(entry, f"the custom field is of type {item.get('field_type')}, which the sync cannot fill")
            return None
        return kind, str(item["field_code"])

    def _custom(self, entry: Entry) -> Mapping[str, Any] | None:
        customs = [f for f in self.fields if f.get("is_custom_field")]
        found = [f for f in customs if f.get("field_name") == entry.target]
        found = found or [f for f in customs if str(f.get("field_name", "")).casefold() == entry.target.casefold()]
        if len(found) == 1:
            return found[0]
        if found:
            self._problem(entry, f"Pipedrive has {len(found)} {self.entity} fields named so; rename all but one")
            return None
        names = ", ".join(sorted(BUILT_IN[self.entity]))
        custom = ", ".join(sorted(str(f.get("field_name")) for f in customs if f.get("field_name") != self.key_field))
        self._problem(
            entry,
            f"no such {self.entity} field (built-in: {names}; custom: {custom or 'none'}); "
            "create the custom field in Pipedrive or correct the name",
        )
        return None

    def _check(self, target: Target) -> bool:
        entry = target.entry
        missing = [c for c in entry.columns if self.columns is not None and c not in self.columns]
        if missing:
            shown = ", ".join(sorted(self.columns or ())) or "none"
            self._problem(entry, f"the view has no column {missing[0]!r} (its columns: {shown})")
            return False
        try:
            target.fixed_values()
        except ValueError as exc:
            self._problem(entry, str(exc))
            return False
        if entry.value_map is None and len(entry.columns) == 1:
            return self._kinds_meet(target, entry.columns[0])
        return True

    def _kinds_meet(self, target: Target, column: str) -> bool:
        held = self.column_kinds.get(column, frozenset())
        if held and not held & target.kind.accepts:
            self._problem(
                target.entry,
                f"type mismatch: column {column} holds {' and '.join(sorted(held))} values, "
                f"the field wants {target.kind.name}",
            )
            return False
        return True

    def _problem(self, entry: Entry, text: str) -> None:
        self.problems.append(f"{entry.label}: {text}")


@dataclass(frozen=True)
class View:
    """What the resolver needs to know of the view: its columns and the kinds of value each holds."""

    columns: set[str] | None
    kinds: Mapping[str, frozenset[str]]


def describe_view(rows: list[Mapping[str, Any]], columns: Iterable[str] | None = None) -> View:
    """The view's columns (given, or the rows' keys; None when unknown) and the kinds of value in each."""
    kinds: dict[str, set[str]] = {}
    for row in rows:
        for name, value in row.items():
            kind = _value_kind(value)
            if kind:
                kinds.setdefault(name, set()).add(kind)
    known = set(columns) if columns is not None else ({k for row in rows for k in row} if rows else None)
    return View(known, {name: frozenset(found) for name, found in kinds.items()})


def _value_kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, dt.date):
        return "date"
    return "text"


def resolve(
    field_map: FieldMap | None,
    fields: Mapping[str, list[Mapping[str, Any]]],
    key_fields: Mapping[str, str],
    view: View,
    currency: str,
) -> Targets:
    """The map checked against the view and Pipedrive's field lists; raises ConfigError naming every bad entry."""
    field_map = field_map or FieldMap()
    defaults = default_entries(currency)
    problems: list[str] = []
    resolved: dict[str, tuple[Target, ...]] = {}
    for entity in ENTITIES:
        entries = dict(defaults[entity])
        for dropped_entity, target in field_map.dropped:
            if dropped_entity == entity:
                entries.pop(target, None)
        entries.update({e.target: e for e in field_map.entries if e.entity == entity})
        if REQUIRED[entity] not in entries:
            problems.append(f"{entity}.{REQUIRED[entity]}: cannot be dropped; Pipedrive requires it")
        resolver = _Resolver(
            entity, list(fields.get(entity, [])), key_fields[entity], view.columns, view.kinds, currency
        )
        resolved[entity] = resolver.targets(entries.values())
        problems += resolver.problems
    if problems:
        raise ConfigError("SYNC_FIELD_MAP: " + "; ".join(problems) + "; nothing was written")
    return Targets(**resolved)
