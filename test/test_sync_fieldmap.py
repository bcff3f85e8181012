"""SYNC_FIELD_MAP: parsing, checking against the view and Pipedrive's fields, and values that compare as stored (pure)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from processor.config import Settings
from processor.errors import ConfigError
from processor.pipedrive.fieldmap import Entry, FieldMap, describe_view, parse_field_map, resolve

KEYS = {"deal": "order_id", "person": "customer_id"}
COLUMNS = ["order_id", "customer_id", "first_name", "last_name", "title", "value", "currency", "status", "order_date"]
ROWS = [
    {
        "order_id": 1,
        "customer_id": 7,
        "first_name": "Ann",
        "last_name": "Lee",
        "title": "Lee Ann",
        "value": Decimal("12.50"),
        "currency": "EUR",
        "status": "completed",
        "order_date": dt.date(2024, 1, 31),
    }
]


def custom(name, field_type, code=None, options=None):
    return {
        "field_name": name,
        "field_code": code or name.lower().replace(" ", "_").ljust(40, "0")[:40],
        "field_type": field_type,
        "options": [{"id": 100 + n, "label": label} for n, label in enumerate(options)] if options else None,
        "is_custom_field": True,
    }


DEAL_FIELDS = [
    custom("order_id", "varchar"),
    custom("Channel", "enum", options=["Shop", "Phone"]),
    custom("Tags", "set", options=["gift", "repeat"]),
    custom("Margin", "double"),
    custom("Shipped on", "date"),
    custom("Net", "monetary"),
    custom("Period", "daterange"),
]
PERSON_FIELDS = [custom("customer_id", "varchar"), custom("Tier", "varchar")]


def resolved(raw, rows=ROWS, columns=COLUMNS):
    return resolve(
        parse_field_map(json.dumps(raw)),
        {"deal": DEAL_FIELDS, "person": PERSON_FIELDS},
        KEYS,
        describe_view(rows, columns),
        "EUR",
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[1]", "expected an object"),
        ('{"deals": {}}', "unknown section 'deals'"),
        ('{"deal": []}', "section 'deal' must be an object"),
        ('{"deal": {"status": 3}}', "entry deal.status: expected a column name"),
        ('{"deal": {"status": {"column": "a", "value": "won"}}}', "exactly one of column, columns or value"),
        ('{"deal": {"status": {"colum": "status"}}}', "unknown key 'colum'"),
        ('{"deal": {"status": {"column": "status", "map": ["won"]}}}', "map must be an object"),
        ('{"deal": {"Net value": {"columns": "a"}}}', 'entry deal."Net value": columns must be a list'),
        ('{"deal": {"status": "status",}}', "not valid JSON"),
    ],
    ids=["not-object", "section", "section-type", "entry-type", "two-sources", "unknown-key", "map-type",
         "columns-type", "bad-json"],
)  # fmt: skip
def test_a_malformed_map_is_a_config_error_naming_the_entry(raw, message):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"SYNC_FIELD_MAP": raw})
    assert "SYNC_FIELD_MAP" in str(raised.value) and message in str(raised.value)


def test_the_map_is_read_from_a_json_or_yaml_file(tmp_path):
    as_json = tmp_path / "map.json"
    as_json.write_text('{"deal": {"status": {"column": "status", "map": {"completed": "won", "*": "open"}}}}')
    as_yaml = tmp_path / "map.yaml"
    as_yaml.write_text("deal:\n  status:\n    column: status\n    map: {completed: won, '*': open}\n")
    parsed = [Settings.from_env({"SYNC_FIELD_MAP": str(path)}).sync_field_map for path in (as_json, as_yaml)]
    entry = Entry("deal", "status", ("status",), value_map=(("completed", "won"), ("*", "open")))
    assert parsed[0] == parsed[1] == FieldMap((entry,))
    with pytest.raises(ConfigError, match="cannot read the file"):
        Settings.from_env({"SYNC_FIELD_MAP": str(tmp_path / "missing.json")})
    as_yaml.write_text("deal: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Settings.from_env({"SYNC_FIELD_MAP": str(as_yaml)})


def test_without_a_map_the_payload_is_title_value_currency_and_the_person_name():
    targets = resolve(None, {}, KEYS, describe_view([]), "EUR")
    assert [t.name for t in targets.deal] == ["title", "value", "currency"]
    assert [t.name for t in targets.person] == ["name"]
    assert targets.custom_codes("deal") == []


def test_a_full_map_resolves_built_in_and_custom_fields_by_name():
    targets = resolved(
        {
            "deal": {
                "status": {"column": "status", "map": {"completed": "won", "returned": "lost", "*": "open"}},
                "expected_close_date": "order_date",
                "stage_id": {"value": 3},
                "Channel": {"value": "shop"},
                "Tags": {"value": ["gift", "repeat"]},
                "Margin": "value",
                "Shipped on": "order_date",
                "Net": "value",
                "currency": None,
            },
            "person": {"Tier": {"value": "gold"}, "emails": {"column": "first_name"}},
        }
    )
    by_name = {t.name: t for t in targets.deal}
    assert "currency" not in by_name
    row = ROWS[0]
    values = {name: t.value(row, "1") for name, t in by_name.items()}
    assert values == {
        "title": "Lee Ann",
        "value": Decimal("12.50"),
        "status": "won",
        "expected_close_date": "2024-01-31",
        "stage_id": 3,
        "Channel": 100,  # the label matched without regard to case
        "Tags": (100, 101),
        "Margin": 12.5,
        "Shipped on": "2024-01-31",
        "Net": (Decimal("12.50"), "EUR"),
    }
    assert targets.custom_codes("deal") == [by_name[n].code for n in ("Channel", "Tags", "Margin", "Shipped on", "Net")]
    assert [t.name for t in targets.person] == ["name", "Tier", "emails"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"deal": {"Chanel": "status"}}, 'deal.Chanel: no such deal field (built-in: '),
        ({"deal": {"add_time": "order_date"}}, "deal.add_time: cannot be mapped: Pipedrive API v2 cannot set a deal's add_time"),
        ({"deal": {"order_id": "status"}}, "deal.order_id: is the sync's key field"),
        ({"deal": {"status": "state"}}, "deal.status: the view has no column 'state'"),
        ({"deal": {"status": {"value": "closed"}}}, "deal.status: 'closed' is not a deal status"),
        ({"deal": {"status": {"column": "status", "map": {"completed": "done"}}}}, "'done' is not a deal status"),
        ({"deal": {"Channel": {"column": "status", "map": {"completed": "Web"}}}}, "'Web' is not an option of the field 'Channel' (its options: Phone, Shop)"),
        ({"deal": {"value": "order_date"}}, "deal.value: type mismatch: column order_date holds date values, the field wants an amount"),
        ({"deal": {"expected_close_date": "value"}}, "type mismatch: column value holds number values"),
        ({"deal": {"stage_id": {"value": "three"}}}, "deal.stage_id: 'three' is not a whole number"),
        ({"deal": {"Period": "order_date"}}, 'deal.Period: the custom field is of type daterange'),
        ({"deal": {"title": None}}, "deal.title: cannot be dropped"),
        ({"person": {"Tier": "tier"}}, "person.Tier: the view has no column 'tier'"),
    ],
    ids=["unknown-field", "deal-add-time", "key-field", "unknown-column", "bad-constant", "bad-map-output",
         "enum-label", "date-into-amount", "number-into-date", "id-not-int", "unsupported-type", "required",
         "person-column"],
)  # fmt: skip
def test_every_bad_entry_is_named_before_anything_is_written(raw, message):
    with pytest.raises(ConfigError) as raised:
        resolved(raw)
    assert message in str(raised.value)
    assert raised.value.exit_code == 2


def test_all_bad_entries_are_reported_at_once_and_too_many_custom_fields_too():
    fields = [custom(f"F{n}", "varchar", code=f"{n:040d}") for n in range(15)]
    raw = {"deal": {**{f"F{n}": "title" for n in range(15)}, "status": "state"}}
    with pytest.raises(ConfigError) as raised:
        resolve(parse_field_map(json.dumps(raw)), {"deal": fields}, KEYS, describe_view(ROWS, COLUMNS), "EUR")
    text = str(raised.value)
    assert "deal.status: the view has no column 'state'" in text
    assert "deal: 15 custom fields mapped; Pipedrive lists at most 14 besides the key field" in text


def test_a_value_that_does_not_fit_fails_its_row_naming_the_entry():
    targets = resolved({"deal": {"status": {"column": "status", "map": {"completed": "won"}}}})
    status = next(t for t in targets.deal if t.name == "status")
    with pytest.raises(ValueError, match="'refunded' has no entry in its map"):
        status.value({**ROWS[0], "status": "refunded"}, "1")
    assert status.value({**ROWS[0], "status": None}, "1") is None  # empty: left as Pipedrive has it


@pytest.mark.parametrize(
    ("field", "column_value", "stored"),
    [
        ("title", "  Lee   Ann ", "Lee Ann"),
        ("value", Decimal("2401.20"), 2401.2),
        ("value", 2401.2000000001, 2401.2),
        ("expected_close_date", "2024-01-31T10:00:00Z", "2024-01-31"),
        ("expected_close_date", dt.datetime(2024, 1, 31, 23, 59), "2024-01-31"),
        ("Margin", "0.1", 0.1),
        ("Channel", "Phone", 101),
        ("Tags", "repeat, gift", [101, 100]),
        ("Net", "5", {"value": 5, "currency": "EUR"}),
        ("currency", "eur", "EUR"),
    ],
    ids=["text", "money", "money-noise", "date-text", "datetime", "double", "enum", "set", "monetary", "currency"],
)
def test_a_value_compares_equal_to_what_pipedrive_stores_after_sending_it(field, column_value, stored):
    targets = resolved({"deal": {field: "x"}}, rows=[], columns=None)
    target = next(t for t in targets.deal if t.name == field)
    wanted = target.value({"x": column_value}, "1")
    item = {"custom_fields": {target.code: stored}} if target.code else {field: stored}
    assert target.read(item) == wanted
    sent = target.kind.send(wanted)
    echoed = {"custom_fields": {target.code: sent}} if target.code else {field: sent}
    assert target.read(echoed) == wanted  # what we send reads back as what we want
