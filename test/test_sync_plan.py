"""The pure parts of the sync: view rows -> payloads, Pipedrive items -> records, the plan, the report."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from processor.pipedrive.mapping import (
    DealHave,
    DealWant,
    KeyField,
    PersonHave,
    PersonWant,
    changes_payload,
    deal_have,
    deal_payload,
    key_of,
    money,
    person_payload,
    wanted_from_rows,
)
from processor.pipedrive.plan import Duplicate, make_plan
from processor.pipedrive.sync import EntityCounts, Failure, SyncReport

FIELD = KeyField("a" * 40)


def row(order_id=1, customer_id=10, first="Zoë", last="Łukasiewicz-Müller", value="2401.20", currency="EUR", **extra):
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "first_name": first,
        "last_name": last,
        "title": f"{last} {first}",
        "value": value,
        "currency": currency,
        **extra,
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (42, "42"),
        (42.0, "42"),
        (Decimal("42"), "42"),
        (Decimal("42.00"), "42"),
        (" 42 ", "42"),
        (None, None),
        ("", None),
    ],
    ids=["int", "float", "decimal", "decimal-scale", "text", "none", "empty"],
)
def test_key_of_normalises_ids(raw, expected):
    assert key_of(raw) == expected


@pytest.mark.parametrize("raw", [42.5, "abc", True, float("nan")], ids=["fraction", "text", "bool", "nan"])
def test_key_of_refuses_what_is_not_an_id(raw):
    with pytest.raises(ValueError):
        key_of(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (Decimal("2401.20"), "2401.20"),
        (2401.2, "2401.20"),
        (2401.2000000000003, "2401.20"),
        ("2401.2", "2401.20"),
        (2500, "2500.00"),
        (Decimal("0.005"), "0.01"),
        (Decimal("2.675"), "2.68"),
        (None, "0.00"),
    ],
    ids=["decimal", "float", "float-noise", "text", "int", "half-up", "half-up-2", "none"],
)
def test_money_rounds_half_up_to_cents_whatever_the_dialect_returns(raw, expected):
    assert money(raw) == Decimal(expected)
    assert str(money(raw)) == expected


def test_rows_become_one_person_per_customer_and_one_deal_per_order():
    wanted = wanted_from_rows(
        [row(1, 10), row(2, 10, value=2001), row(3, 11, first="José", last="D'Ángelo", currency="usd")], "EUR"
    )
    assert wanted.persons == {
        "10": PersonWant("10", "Zoë Łukasiewicz-Müller"),
        "11": PersonWant("11", "José D'Ángelo"),
    }
    assert wanted.deals["1"] == DealWant("1", "Łukasiewicz-Müller Zoë", Decimal("2401.20"), "EUR", "10")
    assert wanted.deals["2"].value == Decimal("2001.00")
    assert wanted.deals["3"].currency == "USD"
    assert wanted.problems == []


def test_rows_with_gaps_get_fallbacks_and_bad_rows_become_problems():
    wanted = wanted_from_rows(
        [
            row(1, 10, first=None, last=None, title=None, currency=None, value=None),
            row(2, None),
            row(2, 12),
            row(None, 13),
            row(4, 14, value="n/a"),
        ],
        "eur",
    )
    assert wanted.persons == {"10": PersonWant("10", "Customer 10")}
    assert wanted.deals["1"] == DealWant("1", "Order 1", Decimal("0.00"), "EUR", "10")
    assert wanted.deals["2"].person_key is None
    assert [(p.key, p.reason) for p in wanted.problems] == [
        ("2", "order_id appears more than once in the view"),
        ("None", "the row has no order_id"),
        ("4", "'n/a' is not an amount"),
    ]


def test_payloads_carry_the_key_in_the_custom_field_and_value_as_a_number():
    deal = DealWant("7", "Doe Jane", Decimal("2401.20"), "EUR", "3")
    assert deal_payload(deal, 99, FIELD) == {
        "title": "Doe Jane",
        "value": 2401.2,
        "currency": "EUR",
        "person_id": 99,
        "custom_fields": {FIELD.code: "7"},
    }
    assert "person_id" not in deal_payload(deal, None, FIELD)
    assert person_payload(PersonWant("3", "Jane Doe"), KeyField("b" * 40, "double")) == {
        "name": "Jane Doe",
        "custom_fields": {"b" * 40: 3},
    }


def test_listed_items_become_comparable_records():
    item = {"id": 5, "title": "Doe  Jane", "value": 2401.2, "currency": "eur", "person_id": 9}
    assert deal_have({**item, "custom_fields": {FIELD.code: "7"}}, FIELD) == DealHave(
        5, "7", "Doe Jane", Decimal("2401.20"), "EUR", 9
    )
    assert deal_have({**item, "custom_fields": {FIELD.code: 7.0}}, FIELD).key == "7"
    assert deal_have({**item, "custom_fields": {FIELD.code: "seven"}}, FIELD).key is None
    assert deal_have({**item, "custom_fields": None}, FIELD).key is None
    assert deal_have({**item, "is_archived": True}, FIELD).archived is True


def test_changes_payload_sends_only_the_changed_fields():
    assert changes_payload({"value": Decimal("10.50")}) == {"value": 10.5}
    assert changes_payload({"title": "T", "person_key": "3"}, 77) == {"title": "T", "person_id": 77}
    assert changes_payload({"person_key": None}, None) == {"person_id": None}


# ---------------------------------------------------------------------- the plan


def wanted_for(*rows):
    return wanted_from_rows(rows, "EUR")


def test_empty_pipedrive_means_create_everything():
    plan = make_plan(wanted_for(row(1, 10), row(2, 10), row(3, 11)), [], [])
    assert [p.key for p in plan.person_creates] == ["10", "11"]
    assert [d.key for d in plan.deal_creates] == ["1", "2", "3"]
    assert plan.writes == 5
    assert (plan.persons_unchanged, plan.deals_unchanged, plan.deals_not_in_view) == (0, 0, 0)


def test_matching_pipedrive_means_nothing_to_send():
    persons = [PersonHave(100, "10", "Zoë Łukasiewicz-Müller")]
    deals = [DealHave(200, "1", "Łukasiewicz-Müller Zoë", Decimal("2401.2"), "EUR", 100)]
    plan = make_plan(wanted_for(row(1, 10)), persons, deals)
    assert plan.writes == 0
    assert (plan.persons_unchanged, plan.deals_unchanged) == (1, 1)


@pytest.mark.parametrize(
    ("have", "changes"),
    [
        (DealHave(200, "1", "Łukasiewicz-Müller Zoë", Decimal("2000.00"), "EUR", 100), {"value": Decimal("2401.20")}),
        (DealHave(200, "1", "Old Title", Decimal("2401.20"), "EUR", 100), {"title": "Łukasiewicz-Müller Zoë"}),
        (DealHave(200, "1", "Łukasiewicz-Müller Zoë", Decimal("2401.20"), "USD", 100), {"currency": "EUR"}),
        (DealHave(200, "1", "Łukasiewicz-Müller Zoë", Decimal("2401.20"), "EUR", None), {"person_key": "10"}),
        (DealHave(200, "1", "Łukasiewicz-Müller Zoë", Decimal("2401.20"), "EUR", 555), {"person_key": "10"}),
    ],
    ids=["value", "title", "currency", "person-missing", "person-other"],
)
def test_updates_carry_only_what_differs(have, changes):
    plan = make_plan(wanted_for(row(1, 10)), [PersonHave(100, "10", "Zoë Łukasiewicz-Müller")], [have])
    assert [(u.id, u.key, u.changes) for u in plan.deal_updates] == [(200, "1", changes)]
    assert plan.deal_creates == [] and plan.person_updates == []


def test_a_deal_whose_person_is_new_moves_to_that_person():
    deals = [DealHave(200, "1", "Łukasiewicz-Müller Zoë", Decimal("2401.20"), "EUR", None)]
    plan = make_plan(wanted_for(row(1, 10)), [], deals)
    assert [p.key for p in plan.person_creates] == ["10"]
    assert [u.changes for u in plan.deal_updates] == [{"person_key": "10"}]


def test_a_renamed_customer_updates_the_person_name():
    plan = make_plan(wanted_for(row(1, 10)), [PersonHave(100, "10", "Zoe Lukasiewicz")], [])
    assert [(u.id, u.changes) for u in plan.person_updates] == [(100, {"name": "Zoë Łukasiewicz-Müller"})]


def test_deals_not_in_the_view_are_counted_and_left_alone():
    deals = [
        DealHave(300, "999", "Gone", Decimal("1"), "EUR", None),
        DealHave(301, None, "Made by hand", Decimal("1"), "EUR", None),
    ]
    plan = make_plan(wanted_for(row(1, 10)), [], deals)
    assert plan.deals_not_in_view == 2
    assert [d.key for d in plan.deal_creates] == ["1"]
    assert plan.deal_updates == []


def test_a_key_held_twice_syncs_the_lowest_id_and_reports_the_rest():
    persons = [PersonHave(101, "10", "Zoë Łukasiewicz-Müller"), PersonHave(100, "10", "Zoë Łukasiewicz-Müller")]
    deals = [
        DealHave(202, "1", "Łukasiewicz-Müller Zoë", Decimal("2401.20"), "EUR", 101),
        DealHave(201, "1", "Łukasiewicz-Müller Zoë", Decimal("1.00"), "EUR", 100),
    ]
    plan = make_plan(wanted_for(row(1, 10)), persons, deals)
    assert plan.person_ids == {"10": 100}
    assert [(u.id, u.changes) for u in plan.deal_updates] == [(201, {"value": Decimal("2401.20")})]
    assert plan.duplicates == [Duplicate("person", "10", (100, 101)), Duplicate("deal", "1", (201, 202))]
    assert plan.deals_not_in_view == 0


def test_archived_deals_are_ours_updated_like_any_other_and_counted():
    persons = [PersonHave(100, "10", "Zoë Łukasiewicz-Müller")]
    deals = [
        DealHave(200, "1", "Łukasiewicz-Müller Zoë", Decimal("2401.20"), "EUR", 100, archived=True),
        DealHave(201, "2", "Łukasiewicz-Müller Zoë", Decimal("1.00"), "EUR", 100, archived=True),
        DealHave(202, "999", "Gone", Decimal("1"), "EUR", None, archived=True),
    ]
    plan = make_plan(wanted_for(row(1, 10), row(2, 10), row(3, 10)), persons, deals)
    assert [d.key for d in plan.deal_creates] == ["3"]
    assert [(u.id, u.changes) for u in plan.deal_updates] == [(201, {"value": Decimal("2401.20")})]
    assert (plan.deals_unchanged, plan.deals_archived, plan.deals_not_in_view) == (1, 2, 1)


def test_a_deal_archived_while_listing_counts_once_and_an_active_copy_beats_an_archived_one():
    deal = DealHave(200, "1", "Łukasiewicz-Müller Zoë", Decimal("2401.20"), "EUR", 100)
    archived = dataclasses.replace(deal, archived=True)
    persons = [PersonHave(100, "10", "Zoë Łukasiewicz-Müller")]
    plan = make_plan(wanted_for(row(1, 10)), persons, [deal, archived])
    assert (plan.duplicates, plan.writes, plan.deals_archived) == ([], 0, 1)
    copy = dataclasses.replace(deal, id=300, value=Decimal("1.00"))
    plan = make_plan(wanted_for(row(1, 10)), persons, [archived, copy])
    assert plan.duplicates == [Duplicate("deal", "1", (300, 200))]
    assert [(u.id, u.changes) for u in plan.deal_updates] == [(300, {"value": Decimal("2401.20")})]
    assert plan.deals_archived == 0


# ---------------------------------------------------------------------- the report


def test_report_exit_codes():
    assert SyncReport().exit_code == 0
    assert SyncReport(failures=[Failure("deal", "1", "no")]).exit_code == 1
    assert SyncReport(failures=[Failure("deal", "1", "no")], stopped="budget").exit_code == 6


def test_report_lines_say_what_happened():
    report = SyncReport(
        persons=EntityCounts(created=2),
        deals=EntityCounts(created=3, updated=1, failed=1),
        deals_not_in_view=4,
        deals_archived=2,
        requests={"POST": 6, "GET": 4},
        tokens_used=70,
        failures=[Failure("deal", "17", "Validation failed: currency")],
        stopped="the daily Pipedrive token budget is spent",
        planned=10,
        done=6,
        remaining=3,
    )
    text = "\n".join(report.lines())
    assert "Pipedrive deals: 3 created, 1 updated, 0 unchanged, 1 failed" in text
    assert "4 deals in Pipedrive are not in the view (left alone)" in text
    assert "2 deals of the view are archived in Pipedrive (synced, kept archived)" in text
    assert "requests: 4 GET, 6 POST; 0 answered 429; tokens used: 70" in text
    assert "failed deal 17: Validation failed: currency" in text
    assert "6 of 10 writes done, 3 remaining" in text
    data = report.to_dict()
    assert data["exit_code"] == 6 and data["deals"]["updated"] == 1
    assert data["failures"] == [{"entity": "deal", "key": "17", "reason": "Validation failed: currency"}]


def test_dry_run_lines_say_what_would_happen():
    report = SyncReport(persons=EntityCounts(created=2, unchanged=1), dry_run=True)
    assert report.lines()[:2] == [
        "dry run: nothing written",
        "Pipedrive persons: would create 2, update 0, leave 1 unchanged",
    ]
