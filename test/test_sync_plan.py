"""The pure parts of the sync: keys, view rows -> wanted records, Pipedrive items -> held records, the plan, the report."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from processor.pipedrive.fieldmap import describe_view, resolve
from processor.pipedrive.mapping import (
    Held,
    KeyField,
    Want,
    create_body,
    fields_body,
    held_from_item,
    key_of,
    money,
    wanted_from_rows,
)
from processor.pipedrive.plan import Duplicate, Policy, make_plan
from processor.pipedrive.sync import Change, EntityCounts, Failure, SyncReport

FIELD = KeyField("a" * 40)
TARGETS = resolve(None, {}, {"deal": "order_id", "person": "customer_id"}, describe_view([]), "EUR")
NAME = "Zoë Łukasiewicz-Müller"
TITLE = "Łukasiewicz-Müller Zoë"


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


def deal(key="1", title=TITLE, value="2401.20", currency="EUR", person_key="10"):
    return Want(key, {"title": title, "value": Decimal(value), "currency": currency}, person_key)


def person(key="10", name=NAME):
    return Want(key, {"name": name})


def held_deal(id, key="1", title=TITLE, value="2401.20", currency="EUR", person_id=100, archived=False):
    fields = {"title": title, "value": Decimal(value), "currency": currency}
    return Held(id, key, fields, person_id, archived)


def held_person(id, key="10", name=NAME):
    return Held(id, key, {"name": name})


# ---------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (42, "42"),
        ("007", "007"),
        ("7", "7"),
        ("SO-1001", "SO-1001"),
        ("C-01", "C-01"),
        (Decimal("42"), "42"),
        (Decimal("42.50"), "42.50"),
        (42.5, "42.5"),
        (42.0, "42"),
        (Decimal("42.0"), "42"),
        (" 42", " 42"),
        (None, None),
        ("", None),
        ("  ", None),
    ],
    ids=["int", "leading-zeros", "plain", "order-code", "customer-code", "decimal", "decimal-scale", "float",
         "whole-float", "whole-decimal", "space-kept", "none", "empty", "blank"],
)  # fmt: skip
def test_a_key_is_the_exact_text_of_the_views_value(raw, expected):
    assert key_of(raw) == expected


@pytest.mark.parametrize("raw", [True, float("nan"), Decimal("Infinity")], ids=["bool", "nan", "decimal-infinity"])
def test_key_of_refuses_what_cannot_be_a_key(raw):
    with pytest.raises(ValueError):
        key_of(raw)


def test_a_text_key_field_keeps_keys_as_written_and_a_numeric_one_refuses_what_it_would_change():
    assert FIELD.encode("007") == "007" and FIELD.read({"custom_fields": {FIELD.code: "007"}}) == "007"
    numeric = KeyField("b" * 40, "double")
    assert numeric.encode("7") == 7
    assert numeric.read({"custom_fields": {numeric.code: 7.0}}) == "7"
    for key in ("007", "SO-1001", "7.5"):
        with pytest.raises(ValueError, match="numeric"):
            numeric.encode(key)
    assert numeric.read({"custom_fields": {numeric.code: 7.5}}) is None
    assert FIELD.read({"custom_fields": None}) is None and FIELD.read({"custom_fields": {FIELD.code: ""}}) is None


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


# ---------------------------------------------------------------------- rows -> wanted


def test_rows_become_one_person_per_customer_and_one_deal_per_order():
    wanted = wanted_from_rows(
        [row(1, 10), row(2, 10, value=2001), row(3, 11, first="José", last="D'Ángelo", currency="usd")], TARGETS
    )
    assert wanted.persons == {"10": person("10"), "11": person("11", "José D'Ángelo")}
    assert wanted.deals["1"] == deal("1")
    assert wanted.deals["2"].fields["value"] == Decimal("2001.00")
    assert wanted.deals["3"].fields["currency"] == "USD"
    assert wanted.problems == []


def test_keys_that_differ_as_text_are_two_records():
    rows = [row("007", "007", "Ann", "Lee"), row("7", "7", "Bob", "Roe"), row("SO-1001", "C-01", "Cy", "Doe")]
    wanted = wanted_from_rows(rows, TARGETS)
    assert {k: w.fields["name"] for k, w in wanted.persons.items()} == {
        "007": "Ann Lee",
        "7": "Bob Roe",
        "C-01": "Cy Doe",
    }
    assert {k: w.person_key for k, w in wanted.deals.items()} == {"007": "007", "7": "7", "SO-1001": "C-01"}
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
        resolve(None, {}, {"deal": "order_id", "person": "customer_id"}, describe_view([]), "eur"),
    )
    assert wanted.persons == {"10": person("10", "Customer 10")}
    assert wanted.deals["1"] == Want("1", {"title": "Order 1", "value": Decimal("0.00"), "currency": "EUR"}, "10")
    assert wanted.deals["2"].person_key is None
    assert [(p.entity, p.key, p.reason) for p in wanted.problems] == [
        ("deal", "2", "order_id appears more than once in the view"),
        ("deal", "None", "the row has no order_id"),
        ("deal", "4", "deal.value: 'n/a' is not an amount"),
    ]


def test_bodies_carry_the_key_in_the_custom_field_and_value_as_a_number():
    deals, persons = TARGETS.deal, TARGETS.person
    assert create_body(deal("7", "Doe Jane", person_key="3"), deals, FIELD, 99) == {
        "title": "Doe Jane",
        "value": 2401.2,
        "currency": "EUR",
        "person_id": 99,
        "custom_fields": {FIELD.code: "7"},
    }
    assert "person_id" not in create_body(deal("7"), deals, FIELD, None)
    assert create_body(person("3", "Jane Doe"), persons, KeyField("b" * 40, "double"), None) == {
        "name": "Jane Doe",
        "custom_fields": {"b" * 40: 3},
    }
    assert fields_body({"value": Decimal("10.50")}, deals) == {"value": 10.5}
    assert fields_body({"title": "T", "person_id": "3"}, deals, person_id=77) == {"title": "T", "person_id": 77}


def test_listed_items_become_comparable_records():
    item = {"id": 5, "title": "Doe  Jane", "value": 2401.2, "currency": "eur", "person_id": 9}
    held = held_from_item({**item, "custom_fields": {FIELD.code: "007"}}, FIELD, TARGETS.deal)
    assert held == Held(5, "007", {"title": "Doe Jane", "value": Decimal("2401.20"), "currency": "EUR"}, 9)
    assert held_from_item({**item, "custom_fields": None}, FIELD, TARGETS.deal).key is None
    assert held_from_item({**item, "is_archived": True}, FIELD, TARGETS.deal).archived is True
    assert held_from_item(item, FIELD, TARGETS.deal, archived=True).archived is True


# ---------------------------------------------------------------------- the plan


def wanted_for(*rows):
    return wanted_from_rows(rows, TARGETS)


def test_empty_pipedrive_means_create_everything():
    plan = make_plan(wanted_for(row(1, 10), row(2, 10), row(3, 11)), [], [])
    assert [p.key for p in plan.person_creates] == ["10", "11"]
    assert [d.key for d in plan.deal_creates] == ["1", "2", "3"]
    assert plan.writes == 5
    assert (plan.persons_unchanged, plan.deals_unchanged, plan.deals_not_in_view) == (0, 0, 0)


def test_matching_pipedrive_means_nothing_to_send():
    plan = make_plan(wanted_for(row(1, 10)), [held_person(100)], [held_deal(200, value="2401.2")])
    assert plan.writes == 0
    assert (plan.persons_unchanged, plan.deals_unchanged) == (1, 1)


@pytest.mark.parametrize(
    ("have", "changes", "old"),
    [
        (held_deal(200, value="2000.00"), {"value": Decimal("2401.20")}, {"value": Decimal("2000.00")}),
        (held_deal(200, title="Old Title"), {"title": TITLE}, {"title": "Old Title"}),
        (held_deal(200, currency="USD"), {"currency": "EUR"}, {"currency": "USD"}),
        (held_deal(200, person_id=None), {"person_id": "10"}, {"person_id": None}),
        (held_deal(200, person_id=555), {"person_id": "10"}, {"person_id": 555}),
    ],
    ids=["value", "title", "currency", "person-missing", "person-other"],
)
def test_updates_carry_only_what_differs_with_the_old_values(have, changes, old):
    plan = make_plan(wanted_for(row(1, 10)), [held_person(100)], [have])
    assert [(u.id, u.key, u.changes, u.old) for u in plan.deal_updates] == [(200, "1", changes, old)]
    assert plan.deal_creates == [] and plan.person_updates == []


def test_a_deal_whose_person_is_new_moves_to_that_person():
    plan = make_plan(wanted_for(row(1, 10)), [], [held_deal(200, person_id=None)])
    assert [p.key for p in plan.person_creates] == ["10"]
    assert [u.changes for u in plan.deal_updates] == [{"person_id": "10"}]


def test_a_renamed_customer_updates_the_person_name():
    plan = make_plan(wanted_for(row(1, 10)), [held_person(100, name="Zoe Lukasiewicz")], [])
    assert [(u.id, u.changes) for u in plan.person_updates] == [(100, {"name": NAME})]


def test_keyed_deals_not_in_the_view_are_counted_apart_from_keyless_ones_and_kept_by_default():
    deals = [held_deal(300, key="999", person_id=None), held_deal(301, key=None, person_id=None)]
    plan = make_plan(wanted_for(row(1, 10)), [held_person(100, key="99")], deals)
    assert (plan.deals_not_in_view, plan.deals_without_key, plan.persons_not_in_view) == (1, 1, 1)
    assert [d.key for d in plan.deal_creates] == ["1"]
    assert plan.deal_updates == [] and plan.deal_removals == [] and plan.person_removals == []


def test_a_key_held_twice_syncs_the_lowest_id_and_reports_the_rest():
    persons = [held_person(101), held_person(100)]
    deals = [held_deal(202, person_id=101), held_deal(201, value="1.00", person_id=100)]
    plan = make_plan(wanted_for(row(1, 10)), persons, deals)
    assert plan.person_ids == {"10": 100}
    assert [(u.id, u.changes) for u in plan.deal_updates] == [(201, {"value": Decimal("2401.20")})]
    assert plan.duplicates == [Duplicate("person", "10", (100, 101)), Duplicate("deal", "1", (201, 202))]
    assert plan.deals_not_in_view == 0


def archived_case():
    persons = [held_person(100)]
    deals = [
        held_deal(200, "1", archived=True),
        held_deal(201, "2", value="1.00", archived=True),
        held_deal(202, "999", value="1", person_id=None, archived=True),
    ]
    return wanted_for(row(1, 10), row(2, 10), row(3, 10)), persons, deals


def test_an_archived_deal_that_differs_is_skipped_by_default_never_created_again():
    plan = make_plan(*archived_case())
    assert [d.key for d in plan.deal_creates] == ["3"]
    assert plan.deal_updates == []
    assert [(u.id, u.changes) for u in plan.archived_skipped] == [(201, {"value": Decimal("2401.20")})]
    assert (plan.deals_unchanged, plan.deals_archived, plan.deals_not_in_view, plan.writes) == (1, 2, 1, 1)


def test_sync_archived_unarchive_updates_it_with_one_more_write():
    plan = make_plan(*archived_case(), Policy(archived="unarchive"))
    assert [(u.id, u.changes, u.unarchive) for u in plan.deal_updates] == [(201, {"value": Decimal("2401.20")}, True)]
    assert plan.archived_skipped == [] and plan.writes == 1 + 2


def test_a_deal_archived_while_listing_counts_once_and_an_active_copy_beats_an_archived_one():
    active = held_deal(200)
    archived = dataclasses.replace(active, archived=True)
    plan = make_plan(wanted_for(row(1, 10)), [held_person(100)], [active, archived])
    assert (plan.duplicates, plan.writes, plan.deals_archived) == ([], 0, 1)
    copy = dataclasses.replace(active, id=300, fields={**active.fields, "value": Decimal("1.00")})
    plan = make_plan(wanted_for(row(1, 10)), [held_person(100)], [archived, copy])
    assert plan.duplicates == [Duplicate("deal", "1", (300, 200))]
    assert [(u.id, u.changes) for u in plan.deal_updates] == [(300, {"value": Decimal("2401.20")})]
    assert plan.deals_archived == 0


# ---------------------------------------------------------------------- deals that leave the view


def leaving_case(remaining: int = 19):
    """20 keyed deals of 20 customers in Pipedrive, one hand-made deal of customer 20, and a view of `remaining`."""
    persons = [held_person(1000 + n, key=str(n), name=f"P {n}") for n in range(1, 21)]
    deals = [held_deal(n, key=str(n), person_id=1000 + n) for n in range(1, 21)]
    deals += [held_deal(99, key=None, person_id=1020), held_deal(98, key="19", person_id=1019, archived=True)]
    rows = [row(n, n, first="P", last=str(n)) for n in range(1, remaining + 1)]
    return wanted_from_rows(rows, TARGETS), persons, deals


@pytest.mark.parametrize(
    ("removed", "deals", "persons"),
    [("keep", [], []), ("archive", [20], []), ("delete", [20], [])],
)
def test_only_keyed_deals_leave_and_a_person_follows_only_without_other_deals(removed, deals, persons):
    plan = make_plan(*leaving_case(19), Policy(removed=removed))
    assert [r.id for r in plan.deal_removals] == deals
    assert [r.key for r in plan.person_removals] == persons  # customer 20 still has the hand-made deal 99
    assert plan.removal_refused is None and plan.deals_not_in_view == 1


def test_delete_takes_the_person_with_its_deals_and_archived_copies():
    wanted, persons, deals = leaving_case(18)
    plan = make_plan(wanted, persons, deals, Policy(removed="delete", removed_max=Decimal("15")))
    assert sorted(r.id for r in plan.deal_removals) == [19, 20, 98]  # the archived copy of 19 too
    assert [(r.key, r.deal_ids) for r in plan.person_removals] == [("19", (19, 98))]
    archive = make_plan(wanted, persons, deals, Policy(removed="archive", removed_max=Decimal("15")))
    assert sorted(r.id for r in archive.deal_removals) == [19, 20]  # 98 is archived already
    assert archive.person_removals == []  # Pipedrive has no archive for persons


def test_more_than_the_safety_share_is_refused_unless_forced():
    wanted, persons, deals = leaving_case(0)  # an empty source
    plan = make_plan(wanted, persons, deals, Policy(removed="delete"))
    assert plan.deal_removals == [] and plan.person_removals == []
    assert "would remove 21 of the 21 deals carrying our key (100 %)" in plan.removal_refused
    assert "SYNC_REMOVED_FORCE=1" in plan.removal_refused
    forced = make_plan(wanted, persons, deals, Policy(removed="delete", force=True))
    assert len(forced.deal_removals) == 21 and len(forced.person_removals) == 19
    assert forced.removal_refused is None
    edge = make_plan(*leaving_case(18), Policy(removed="archive", removed_max=Decimal("9")))
    assert "2 of the 21 deals" in edge.removal_refused  # 9.5 % > 9 %
    assert make_plan(*leaving_case(18), Policy(removed="archive", removed_max=Decimal("10"))).removal_refused is None


# ---------------------------------------------------------------------- the report


def test_report_exit_codes():
    assert SyncReport().exit_code == 0
    assert SyncReport(failures=[Failure("deal", "1", "no")]).exit_code == 1
    assert SyncReport(removal_refused="too many").exit_code == 1
    assert SyncReport(deals=EntityCounts(skipped=3)).exit_code == 0  # archived and differing does not fail
    assert SyncReport(failures=[Failure("deal", "1", "no")], stopped="budget").exit_code == 6


def test_report_lines_say_what_happened():
    report = SyncReport(
        persons=EntityCounts(created=2, deleted=1),
        deals=EntityCounts(created=3, updated=1, failed=1, archived=2, skipped=2),
        deals_not_in_view=4,
        deals_without_key=1,
        deals_archived=2,
        requests={"POST": 6, "GET": 4},
        tokens_used=70,
        failures=[Failure("deal", "17", "Validation failed: currency")],
        changes=[Change("deal", "SO-1", 12, "updated", {"value": ["2000.00", "2401.20"]})],
        stopped="the daily Pipedrive token budget is spent",
        planned=10,
        done=6,
        remaining=3,
    )
    text = "\n".join(report.lines())
    assert "Pipedrive deals: 3 created, 1 updated, 0 unchanged, 1 failed, 2 archived" in text
    assert "Pipedrive persons: 2 created, 0 updated, 0 unchanged, 0 failed, 1 deleted" in text
    assert "4 deals carrying our key are not in the view (left alone)" in text
    assert "1 deals in Pipedrive carry no key" in text
    assert "archived in Pipedrive, differs from the view: 2, not updated" in text
    assert "requests: 4 GET, 6 POST; 0 answered 429; tokens used: 70" in text
    assert "failed deal 17: Validation failed: currency" in text
    assert "6 of 10 writes done, 3 remaining" in text
    assert "planned changes" not in text  # a run that wrote lists its changes in the history, not here
    data = report.to_dict()
    assert data["exit_code"] == 6 and data["deals"]["updated"] == 1
    assert data["failures"] == [{"entity": "deal", "key": "17", "reason": "Validation failed: currency"}]
    assert data["changes"][0]["fields"] == {"value": ["2000.00", "2401.20"]}


def test_dry_run_lines_list_every_planned_change():
    report = SyncReport(
        persons=EntityCounts(created=2, unchanged=1),
        deals=EntityCounts(updated=1, deleted=1),
        dry_run=True,
        changes=[
            Change("deal", "007", 12, "update", {"value": ["2000.00", "2401.20"], "person": ["7", "007"]}),
            Change("deal", "SO-9", 13, "delete"),
        ],
    )
    assert report.lines()[:3] == [
        "dry run: nothing written",
        "Pipedrive persons: would create 2, update 0, leave 1 unchanged",
        "Pipedrive deals: would create 0, update 1, delete 1, leave 0 unchanged",
    ]
    assert report.lines()[-3:] == [
        "planned changes (2):",
        '  update deal 007 (id 12): value: "2000.00" -> "2401.20"; person: "7" -> "007"',
        "  delete deal SO-9 (id 13)",
    ]


def test_a_record_with_a_bad_value_is_still_in_the_view_and_never_removed():
    _, persons, deals = leaving_case()
    rows = [row(n, n, first="P", last=str(n)) for n in range(1, 21)]
    rows[19]["value"] = "n/a"
    wanted = wanted_from_rows(rows, TARGETS)
    assert [(p.key, p.reason) for p in wanted.problems] == [("20", "deal.value: 'n/a' is not an amount")]
    plan = make_plan(wanted, persons, deals, Policy(removed="delete", force=True))
    assert (plan.deal_removals, plan.person_removals, plan.deals_not_in_view, plan.persons_not_in_view) == (
        [],
        [],
        0,
        0,
    )
