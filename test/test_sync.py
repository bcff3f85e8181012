"""End to end: sync_deals / run_sync against the fake Pipedrive; assertions read what the fake holds."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa
from test_sync_plan import row

from processor.errors import ConfigError
from processor.pipedrive.client import PipedriveClient, RateLimiter, RetryPolicy
from processor.pipedrive.fieldmap import parse_field_map
from processor.pipedrive.sync import run_sync, sync_deals

TOKEN = "pd-secret-7f3a9c21e5b4"
FAST = RetryPolicy(base=0.01, cap=0.05)
FIRST = ("Zoë", "José", "Aoife", "Martin", "Siobhán", "Björn", "Ana María")
LAST = ("Łukasiewicz-Müller", "D'Ángelo", "O'Brien", "Ñúñez", "P.", "Smith", "Nuño")


def make_rows(customers: int = 8, orders: int = 20) -> list[dict]:
    """A view: orders spread over customers (customer 1 has several), order 2 with a bonus value of 2401.20."""
    rows = []
    for order_id in range(1, orders + 1):
        customer_id = (order_id - 1) % customers + 1
        first, last = FIRST[customer_id % len(FIRST)], f"{LAST[customer_id % len(LAST)]}{customer_id}"
        value = Decimal("2401.20") if order_id == 2 else Decimal(order_id * 37) + Decimal("0.05")
        rows.append(
            {
                "order_id": order_id,
                "customer_id": customer_id,
                "first_name": first,
                "last_name": last,
                "title": f"{last} {first}",
                "order_date": None,
                "status": "completed",
                "payment_count": 1,
                "amount": value,
                "bonus": Decimal("400.20") if order_id == 2 else Decimal("0"),
                "value": value,
                "currency": "EUR",
            }
        )
    return rows


@pytest.fixture
def pipedrive(pipedrive_fake, make_settings):
    """pipedrive(rows, **fake_config) -> (fake, sync) where sync(rows, **settings) runs one sync with a fresh client."""

    def start(**config):
        fake = pipedrive_fake(token=TOKEN, **config)
        window = config.get("window", 2.0)

        def sync(rows, **settings):
            chosen = make_settings(
                pipedrive_api_key=TOKEN, pipedrive_base_url=fake.url, pipedrive_timeout=5, **settings
            )
            client = PipedriveClient(chosen, policy=FAST, limiter=RateLimiter(window=window))
            try:
                return sync_deals(chosen, rows, client=client)
            finally:
                client.close()

        return fake, sync

    return start


def held(fake) -> tuple[dict, dict]:
    """Pipedrive's persons and deals by our key; fails on any duplicate key."""
    person_code, deal_code = fake.field_code("persons", "customer_id"), fake.field_code("deals", "order_id")
    persons = Counter(p["custom_fields"][person_code] for p in fake.persons())
    deals = Counter(d["custom_fields"][deal_code] for d in fake.deals())
    assert [k for k, n in persons.items() if n > 1] == [] and [k for k, n in deals.items() if n > 1] == []
    return (
        {p["custom_fields"][person_code]: p for p in fake.persons()},
        {d["custom_fields"][deal_code]: d for d in fake.deals()},
    )


def assert_holds(fake, rows) -> None:
    """Pipedrive holds exactly one person per customer and one deal per row, as the view says."""
    persons, deals = held(fake)
    assert set(persons) == {str(r["customer_id"]) for r in rows}
    assert set(deals) == {str(r["order_id"]) for r in rows}
    for r in rows:
        deal, person = deals[str(r["order_id"])], persons[str(r["customer_id"])]
        assert deal["title"] == r["title"]
        assert Decimal(str(deal["value"])) == r["value"]
        assert deal["currency"] == r["currency"]
        assert deal["person_id"] == person["id"]
        assert person["name"] == f"{r['first_name']} {r['last_name']}"


def test_first_sync_creates_one_person_per_customer_and_one_deal_per_row(pipedrive):
    fake, sync = pipedrive()
    rows = make_rows()
    report = sync(rows)
    assert_holds(fake, rows)
    _, deals = held(fake)
    assert deals["2"]["value"] == 2401.2
    assert (report.persons.created, report.deals.created, report.exit_code) == (8, 20, 0)
    assert Counter(r.method for r in fake.writes()) == {"POST": 2 + 8 + 20}  # two key fields, then one per record


def test_second_run_sends_no_writes(pipedrive):
    fake, sync = pipedrive()
    rows = make_rows()
    sync(rows)
    fake.clear_log()
    report = sync(rows)
    assert fake.writes() == []
    assert sorted(r.path for r in fake.requests()) == [  # looked up side by side, in either order
        "/api/v2/dealFields",
        "/api/v2/deals",
        "/api/v2/deals/archived",
        "/api/v2/personFields",
        "/api/v2/persons",
    ]
    assert (report.persons.unchanged, report.deals.unchanged, report.exit_code) == (8, 20, 0)


def test_a_changed_payment_updates_exactly_that_deal(pipedrive):
    fake, sync = pipedrive()
    rows = make_rows()
    sync(rows)
    _, before = held(fake)
    rows[4]["value"] = Decimal("9999.99")
    fake.clear_log()
    report = sync(rows)
    assert [(r.method, r.path, r.body) for r in fake.writes()] == [
        ("PATCH", f"/api/v2/deals/{before['5']['id']}", {"value": 9999.99})
    ]
    assert_holds(fake, rows)
    assert (report.deals.updated, report.deals.unchanged, report.deals_archived) == (1, 19, 0)
    [change] = report.changes
    assert (change.entity, change.key, change.id, change.action) == ("deal", "5", before["5"]["id"], "updated")
    assert change.fields == {"value": ["185.05", "9999.99"]}


def test_an_archived_deal_that_differs_is_reported_not_sent_and_the_run_does_not_fail(pipedrive):
    fake, sync = pipedrive()
    rows = make_rows()
    sync(rows)
    _, before = held(fake)
    fake.archive_deal(before["5"]["id"])  # by a salesperson: still ours, and Pipedrive refuses edits of it
    rows[4]["value"] = Decimal("9999.99")
    rows[5]["value"] = Decimal("1.00")
    fake.clear_log()
    report = sync(rows)
    assert [(r.method, r.path, r.body) for r in fake.writes()] == [
        ("PATCH", f"/api/v2/deals/{before['6']['id']}", {"value": 1.0})
    ]
    _, after = held(fake)
    assert (after["5"]["value"], after["5"]["is_archived"], after["6"]["value"]) == (185.05, True, 1.0)
    assert report.exit_code == 0 and report.failures == []
    assert (report.deals.updated, report.deals.skipped, report.deals_archived) == (1, 1, 1)
    assert "archived in Pipedrive, differs from the view: 1, not updated" in "\n".join(report.lines())
    skipped = [c for c in report.changes if c.action == "skipped"]
    assert [(c.key, c.fields) for c in skipped] == [("5", {"value": ["185.05", "9999.99"]})]


def test_sync_archived_unarchive_unarchives_then_updates(pipedrive):
    fake, sync = pipedrive()
    rows = make_rows()
    sync(rows)
    _, before = held(fake)
    fake.archive_deal(before["5"]["id"])
    fake.archive_deal(before["7"]["id"])  # archived and unchanged: left as it is
    rows[4]["value"] = Decimal("9999.99")
    fake.clear_log()
    report = sync(rows, sync_archived="unarchive")
    url = f"/api/v2/deals/{before['5']['id']}"
    assert [(r.method, r.path, r.body, r.status) for r in fake.writes()] == [
        ("PATCH", url, {"is_archived": False}, 200),
        ("PATCH", url, {"value": 9999.99}, 200),
    ]
    assert_holds(fake, rows)
    _, after = held(fake)
    assert [key for key, deal in after.items() if deal["is_archived"]] == ["7"]
    assert (report.deals.updated, report.deals.skipped, report.done, report.exit_code) == (1, 0, 2, 0)
    assert report.changes[0].fields == {"value": ["185.05", "9999.99"], "is_archived": [True, False]}


def test_a_new_order_creates_exactly_one_deal(pipedrive):
    fake, sync = pipedrive()
    rows = make_rows()
    sync(rows)
    rows.append({**rows[0], "order_id": 21, "value": Decimal("12.30")})
    fake.clear_log()
    report = sync(rows)
    assert [(r.method, r.path) for r in fake.writes()] == [("POST", "/api/v2/deals")]
    assert_holds(fake, rows)
    assert (report.deals.created, report.persons.created) == (1, 0)


def test_faults_leave_no_duplicates_and_nothing_missing(pipedrive):
    fake, sync = pipedrive(error_rate=0.05, drop_rate=0.02, seed=7)
    rows = make_rows(customers=40, orders=160)
    report = sync(rows)
    assert_holds(fake, rows)
    log = fake.requests()
    assert any(r.dropped and r.method == "POST" for r in log), "the seed should drop at least one create"
    assert any(r.status == 524 and r.method == "POST" for r in log), "the seed should commit at least one 524"
    assert report.exit_code == 0, report.lines()
    assert (report.persons.created, report.deals.created) == (40, 160)


def test_every_lost_create_is_found_instead_of_sent_again(pipedrive):
    fake, sync = pipedrive(drop_rate=1.0)
    rows = make_rows(customers=3, orders=6)
    report = sync(rows)
    assert_holds(fake, rows)
    posts = Counter(r.path for r in fake.writes())
    assert posts == {"/api/v2/personFields": 1, "/api/v2/dealFields": 1, "/api/v2/persons": 3, "/api/v2/deals": 6}
    assert report.exit_code == 0


def test_a_tight_burst_limit_is_respected(pipedrive):
    fake, sync = pipedrive(burst_limit=6, window=0.5, block_after=3)
    rows = make_rows(customers=6, orders=14)
    report = sync(rows, parallel_process_number=6)
    statuses = Counter(r.status for r in fake.requests())
    assert statuses[403] == 0
    assert statuses[429] <= 2
    assert report.rate_limited == statuses[429]
    assert_holds(fake, rows)


def test_an_exhausted_budget_stops_cleanly_and_the_next_run_finishes(pipedrive):
    fields_and_lists = 2 * (10 + 5) + 2 * 10 + 20  # the archived deals list costs 20
    fake, sync = pipedrive(daily_budget=10_000)
    fake.spend(10_000 - fields_and_lists - 7 * 5)  # other integrations used the rest of today's budget
    rows = make_rows()
    report = sync(rows)
    assert report.exit_code == 6
    assert "budget" in report.stopped
    assert 4 <= report.done <= 7  # what fits; a race between workers may leave a write or two unbooked
    assert report.done + report.remaining == report.planned == 28
    assert len(fake.persons()) + len(fake.deals()) == report.done
    assert f"{report.done} of 28 writes done, {report.remaining} remaining; run again to finish" in report.lines()
    assert [
        (r.method, r.path, r.status) for r in fake.requests() if r.status in (429, 403)
    ] == []  # stopped before Pipedrive had to refuse

    fake.reset_budget()
    again = sync(rows)
    assert again.exit_code == 0
    assert_holds(fake, rows)
    assert (again.persons.unchanged + again.deals.unchanged, again.done) == (report.done, report.remaining)


def test_a_spent_budget_stops_before_the_plan(pipedrive):
    fake, sync = pipedrive(daily_budget=5)
    report = sync(make_rows())
    assert report.exit_code == 6 and report.planned is None
    assert "stopped before the plan was made; nothing was written" in report.lines()
    assert [r.status for r in fake.requests()] in ([429], [429, 429])  # the two field look-ups go side by side


def test_a_bad_token_stops_at_once(pipedrive, make_settings):
    fake, _ = pipedrive()
    settings = make_settings(pipedrive_api_key="not-the-token", pipedrive_base_url=fake.url)
    report = sync_deals(settings, make_rows())
    assert report.exit_code == 6 and "401" in report.stopped
    assert [r.status for r in fake.requests()] in ([401], [401, 401]) and fake.persons() == []


def test_a_rejected_deal_fails_alone_with_pipedrives_message(pipedrive):
    fake, sync = pipedrive()
    rows = make_rows()
    rows[3]["currency"] = "euro"
    report = sync(rows)
    assert report.exit_code == 1
    assert [(f.entity, f.key) for f in report.failures] == [("deal", "4")]
    assert "Validation failed: currency" in report.failures[0].reason
    assert (report.deals.created, report.deals.failed) == (19, 1)
    _, deals = held(fake)
    assert "4" not in deals and len(deals) == 19


def test_deals_not_in_the_view_are_left_alone_by_default(pipedrive):
    fake, sync = pipedrive()
    rows = make_rows(customers=2, orders=3)
    sync(rows)
    code = fake.field_code("deals", "order_id")
    fake.seed("deals", {"title": "Old order", "value": 5, "custom_fields": {code: "999"}})
    fake.seed("deals", {"title": "Made by hand"})
    fake.clear_log()
    report = sync(rows)
    assert (report.deals_not_in_view, report.deals_without_key) == (1, 1) and fake.writes() == []
    assert {d["title"] for d in fake.deals()} >= {"Old order", "Made by hand"}


def test_an_archived_deal_is_not_created_again(pipedrive):
    fake, sync = pipedrive()
    rows = make_rows()
    sync(rows)
    _, before = held(fake)
    fake.archive_deal(before["3"]["id"])
    fake.clear_log()
    report = sync(rows)
    assert fake.writes() == []
    _, after = held(fake)  # one deal per key, the archived one included
    assert len(fake.deals()) == 20 and after["3"]["id"] == before["3"]["id"] and after["3"]["is_archived"]
    assert (report.deals.created, report.deals.unchanged, report.deals_archived) == (0, 20, 1)
    assert "1 deals of the view are archived in Pipedrive" in report.lines()


def test_archived_deals_are_listed_page_by_page(pipedrive, monkeypatch):
    monkeypatch.setattr("processor.pipedrive.client.PAGE_LIMIT", 2)
    fake, sync = pipedrive()
    rows = make_rows(customers=2, orders=7)
    sync(rows)
    for deal in fake.deals()[:5]:
        fake.archive_deal(deal["id"])
    fake.clear_log()
    report = sync(rows)
    assert fake.writes() == []
    pages = [r for r in fake.requests() if r.path == "/api/v2/deals/archived"]
    code = fake.field_code("deals", "order_id")
    assert [(r.query["custom_fields"], r.query["limit"], "cursor" in r.query) for r in pages] == [
        (code, "2", False),
        (code, "2", True),
        (code, "2", True),
    ]
    assert len(fake.deals()) == 7
    assert (report.deals.unchanged, report.deals_archived) == (7, 5)


def test_dry_run_sends_no_writes(pipedrive):
    fake, sync = pipedrive()
    rows = make_rows()
    report = sync(rows, sync_dry_run=True)
    assert fake.writes() == [] and fake.persons() == [] and fake.deals() == []
    assert (report.persons.created, report.deals.created, report.remaining) == (8, 20, 28)
    sync(rows)
    rows[0]["value"] = Decimal("1.00")
    fake.clear_log()
    report = sync(rows, sync_dry_run=True)
    assert fake.writes() == []
    assert (report.deals.updated, report.deals.unchanged) == (1, 19)
    assert report.lines()[0] == "dry run: nothing written"
    assert [(c.action, c.entity, c.key, c.fields) for c in report.changes] == [
        ("update", "deal", "1", {"value": ["37.05", "1.00"]})
    ]
    assert report.lines()[-2:] == [
        "planned changes (1):",
        f'  update deal 1 (id {held(fake)[1]["1"]["id"]}): value: "37.05" -> "1.00"',
    ]


def test_the_api_key_appears_in_no_output(pipedrive, make_settings, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    fake, sync = pipedrive(error_rate=0.1, drop_rate=0.1, seed=3)
    rows = make_rows()
    rows[1]["currency"] = "euro"
    reports = [sync(rows), sync(rows, sync_dry_run=True)]
    wrong = make_settings(pipedrive_api_key="wrong-secret-key-123", pipedrive_base_url=fake.url)
    reports.append(sync_deals(wrong, rows))
    text = "\n".join(["\n".join(r.lines()) + repr(r) for r in reports] + [caplog.text, *capsys.readouterr()])
    assert "failed deal 2" in text and "401" in text  # the output does say things
    assert TOKEN not in text and "wrong-secret-key-123" not in text
    assert TOKEN not in repr(make_settings(pipedrive_api_key=TOKEN))


def test_run_sync_reads_the_deals_view(pipedrive, make_settings, engine_of, tmp_path):
    fake, _ = pipedrive()
    url = f"sqlite:///{tmp_path / 'view.db'}"
    engine = engine_of(url)
    table = sa.Table(
        "deals",
        sa.MetaData(),
        *(sa.Column(name, sa.Integer) for name in ("order_id", "customer_id", "payment_count")),
        *(sa.Column(name, sa.Text) for name in ("first_name", "last_name", "title", "status", "currency")),
        sa.Column("order_date", sa.Date),
        *(sa.Column(name, sa.Numeric(12, 2)) for name in ("amount", "bonus", "value")),
    )
    rows = make_rows()
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), rows)
    settings = make_settings(dest_sql=url, pipedrive_api_key=TOKEN, pipedrive_base_url=fake.url)
    report = run_sync(settings, engine)
    assert report.exit_code == 0
    assert_holds(fake, rows)


# ---------------------------------------------------------------------- keys are the view's text


def keyed_rows() -> list[dict]:
    """Keys that are not plain integers, and two pairs that differ only by leading zeros."""
    return [
        row("007", "007", "Ann", "Lee", "100.00"),
        row("7", "7", "Bob", "Roe", "200.00"),
        row("SO-1001", "C-01", "Cy", "Doe", "300.00"),
        row("A1", "C-01", "Cy", "Doe", "400.00"),
    ]


def test_keys_are_the_exact_text_of_the_view_everywhere(pipedrive):
    fake, sync = pipedrive()
    rows = keyed_rows()
    report = sync(rows)
    assert report.exit_code == 0, report.lines()
    persons, deals = held(fake)
    assert {key: p["name"] for key, p in persons.items()} == {"007": "Ann Lee", "7": "Bob Roe", "C-01": "Cy Doe"}
    assert {key: (d["title"], d["value"], d["person_id"]) for key, d in deals.items()} == {
        "007": ("Lee Ann", 100.0, persons["007"]["id"]),
        "7": ("Roe Bob", 200.0, persons["7"]["id"]),
        "SO-1001": ("Doe Cy", 300.0, persons["C-01"]["id"]),
        "A1": ("Doe Cy", 400.0, persons["C-01"]["id"]),
    }
    assert {(c.entity, c.key) for c in report.changes} == {
        ("person", "007"), ("person", "7"), ("person", "C-01"), ("deal", "007"), ("deal", "7"), ("deal", "SO-1001"),
        ("deal", "A1"),
    }  # fmt: skip
    fake.clear_log()
    again = sync(rows)
    assert fake.writes() == [] and (again.persons.unchanged, again.deals.unchanged) == (3, 4)


def test_a_numeric_key_field_made_by_hand_takes_plain_numbers_and_refuses_the_rest(pipedrive):
    fake, sync = pipedrive()
    fake.add_field("deals", "order_id", "double")
    rows = [row("7", "1", "Ann", "Lee", "1.00"), row("007", "2", "Bob", "Roe", "2.00")]
    report = sync(rows)
    assert [(f.entity, f.key) for f in report.failures] == [("deal", "007")]
    assert "numeric (double) field, which cannot hold the key '007'" in report.failures[0].reason
    code = fake.field_code("deals", "order_id")
    assert [d["custom_fields"][code] for d in fake.deals()] == [7]
    fake.clear_log()
    again = sync(rows)
    assert fake.writes() == [] and [f.key for f in again.failures] == ["007"]  # 7 is found; 007 is never sent


@pytest.mark.parametrize("field_type", ["monetary", "date", "enum", "set", "people"])
def test_a_key_field_made_by_hand_that_cannot_hold_keys_stops_before_any_write(pipedrive, field_type):
    fake, sync = pipedrive()
    code = fake.add_field("deals", "order_id", field_type, ["A"] if field_type in ("enum", "set") else None)
    if field_type == "monetary":  # a value typed in by hand must never be taken for a key (and archived)
        fake.seed("deals", {"title": "by hand", "custom_fields": {code: {"value": 9, "currency": "EUR"}}})
    rows = [row("7", "1", "Ann", "Lee", "1.00")]
    with pytest.raises(ConfigError, match=f"PIPEDRIVE_DEAL_KEY_FIELD: the deal field 'order_id' is a {field_type} "):
        sync(rows, sync_removed="archive", sync_removed_force=True)
    assert fake.writes() == []
    assert all(not d["is_archived"] for d in fake.deals())


# ---------------------------------------------------------------------- deals that leave the view


def test_sync_removed_archive_archives_only_keyed_deals_that_left(pipedrive):
    fake, sync = pipedrive()
    rows = make_rows()
    sync(rows)
    fake.seed("deals", {"title": "Made by hand"})
    _, before = held(fake)
    fake.clear_log()
    report = sync(rows[:-1], sync_removed="archive")  # order 20 left: 1 of 20 keyed deals, within 10 %
    assert [(r.method, r.path, r.body) for r in fake.writes()] == [
        ("PATCH", f"/api/v2/deals/{before['20']['id']}", {"is_archived": True})
    ]
    _, after = held(fake)
    assert after["20"]["is_archived"] and len(fake.persons()) == 8  # customer 4 has other orders; persons stay
    assert "Made by hand" in {d["title"] for d in fake.deals()}
    assert (report.deals.archived, report.exit_code) == (1, 0)
    assert [(c.action, c.key, c.fields) for c in report.changes] == [("archived", "20", {"is_archived": [False, True]})]
    fake.clear_log()
    assert sync(rows[:-1], sync_removed="archive").exit_code == 0 and fake.writes() == []  # archived: nothing to do


def test_sync_removed_delete_takes_persons_without_other_deals_along(pipedrive):
    fake, sync = pipedrive()
    rows = make_rows()
    sync(rows)
    persons, before = held(fake)
    fake.seed("deals", {"title": "Made by hand", "person_id": persons["7"]["id"]})
    kept = [r for r in rows if r["customer_id"] not in (7, 8)]  # orders 7, 15, 8, 16 leave: 20 %
    fake.clear_log()
    dry = sync(kept, sync_removed="delete", sync_removed_max=Decimal(25), sync_dry_run=True)
    assert fake.writes() == []
    assert sorted((c.action, c.entity, c.key) for c in dry.changes) == [
        ("delete", "deal", "15"), ("delete", "deal", "16"), ("delete", "deal", "7"), ("delete", "deal", "8"),
        ("delete", "person", "8"),
    ]  # fmt: skip
    report = sync(kept, sync_removed="delete", sync_removed_max=Decimal(25))
    writes = [(r.method, r.path) for r in fake.writes()]
    deal_paths = {f"/api/v2/deals/{before[k]['id']}" for k in ("7", "15", "8", "16")}
    assert {path for _, path in writes[:4]} == deal_paths and writes[4] == (
        "DELETE",
        f"/api/v2/persons/{persons['8']['id']}",
    )
    assert len(writes) == 5 and {method for method, _ in writes} == {"DELETE"}
    persons_after, deals_after = held(fake)
    assert set(persons_after) == {str(n) for n in range(1, 8)}  # customer 7 keeps its person: it has a deal
    assert {str(r["order_id"]) for r in kept} == set(deals_after) - {None}
    assert "Made by hand" in {d["title"] for d in fake.deals()}
    assert (report.deals.deleted, report.persons.deleted, report.exit_code) == (4, 1, 0)


def test_an_empty_source_removes_nothing_unless_forced(pipedrive):
    fake, sync = pipedrive()
    sync(make_rows())
    fake.clear_log()
    report = sync([], sync_removed="delete")
    assert fake.writes() == [] and len(fake.deals()) == 20 and len(fake.persons()) == 8
    assert report.exit_code == 1
    assert "refused: SYNC_REMOVED=delete would remove 20 of the 20 deals carrying our key (100 %)" in "\n".join(
        report.lines()
    )
    forced = sync([], sync_removed="archive", sync_removed_force=True)
    assert forced.exit_code == 0 and forced.deals.archived == 20
    assert all(d["is_archived"] for d in fake.deals()) and len(fake.persons()) == 8


# ---------------------------------------------------------------------- the field map


def mapped_rows() -> list[dict]:
    rows = make_rows(customers=3, orders=6)
    for n, r in enumerate(rows):
        r.update(
            status="returned" if n == 0 else "completed",
            order_date=date(2024, 1, n + 1),
            channel=("shop", "Phone")[n % 2],
            email=f"customer{r['customer_id']}@example.org",
        )
    return rows


def full_map(fake) -> dict:
    _, (_, paid) = fake.add_pipeline("Online", ["New", "Paid"])
    owner = fake.add_user("Sam Seller", "sam@example.org")
    org = fake.seed("organizations", {"name": "Acme"})["id"]
    fake.add_field("deals", "Channel", "enum", ["Shop", "Phone"])
    fake.add_field("deals", "Bonus", "double")
    fake.add_field("persons", "Tier", "varchar")
    return {
        "deal": {
            "status": {"column": "status", "map": {"completed": "won", "returned": "lost", "*": "open"}},
            "expected_close_date": "order_date",
            "stage_id": {"value": paid},
            "owner_id": {"value": owner},
            "org_id": {"value": org},
            "Channel": "channel",
            "Bonus": "bonus",
        },
        "person": {"emails": "email", "Tier": {"value": "gold"}},
    }


def test_a_field_map_fills_built_in_and_custom_fields_and_a_rerun_sends_nothing(pipedrive):
    fake, sync = pipedrive()
    mapping = full_map(fake)
    settings = {"sync_field_map": parse_field_map(json.dumps(mapping))}
    rows = mapped_rows()
    report = sync(rows, **settings)
    assert report.exit_code == 0, report.lines()
    persons, deals = held(fake)
    channel, bonus, tier = (
        fake.field_code(*f) for f in (("deals", "Channel"), ("deals", "Bonus"), ("persons", "Tier"))
    )
    deal = deals["2"]
    assert (deal["status"], deal["won_time"] is not None, deal["expected_close_date"]) == ("won", True, "2024-01-02")
    stage = mapping["deal"]["stage_id"]["value"]
    assert (deal["stage_id"], deal["pipeline_id"], deal["owner_id"]) == (stage, 2, mapping["deal"]["owner_id"]["value"])
    assert deal["org_id"] == mapping["deal"]["org_id"]["value"]
    assert deal["custom_fields"][channel] == fake.option_id(channel, "Phone")
    assert deal["custom_fields"][bonus] == 400.2
    assert deals["1"]["status"] == "lost" and deals["1"]["custom_fields"][channel] == fake.option_id(channel, "Shop")
    assert persons["1"]["emails"] == [{"value": "customer1@example.org", "primary": True, "label": "work"}]
    assert persons["1"]["custom_fields"][tier] == "gold"
    fake.clear_log()
    assert sync(rows, **settings).exit_code == 0 and fake.writes() == []
    rows[1]["status"] = "cancelled"
    report = sync(rows, **settings)
    assert [(r.method, r.path, r.body) for r in fake.writes()] == [
        ("PATCH", f"/api/v2/deals/{deal['id']}", {"status": "open"})
    ]
    assert report.changes[0].fields == {"status": ["won", "open"]}


def test_a_bad_map_stops_before_any_write_naming_the_entry(pipedrive):
    fake, sync = pipedrive()
    fake.add_field("deals", "Channel", "enum", ["Shop", "Phone"])
    bad = {"deal": {"Chanel": "channel", "Channel": {"column": "channel", "map": {"shop": "Web"}}, "add_time": "x"}}
    with pytest.raises(ConfigError) as raised:
        sync(mapped_rows(), sync_field_map=parse_field_map(json.dumps(bad)))
    text = str(raised.value)
    assert "deal.Chanel: no such deal field" in text
    assert "deal.Channel: 'Web' is not an option of the field 'Channel'" in text
    assert "deal.add_time: cannot be mapped" in text and raised.value.exit_code == 2
    assert fake.writes() == [] and fake.persons() == []  # not even the key fields were created
    with pytest.raises(KeyError):
        fake.field_code("deals", "order_id")


def test_ids_the_map_writes_are_looked_up_before_any_write(pipedrive):
    fake, sync = pipedrive()
    mapping = full_map(fake)
    mapping["deal"].update(stage_id={"value": 99}, owner_id={"value": 98})
    mapping["person"]["org_id"] = {"value": mapping["deal"]["org_id"]["value"]}  # exists: fine
    with pytest.raises(ConfigError) as raised:
        sync(mapped_rows(), sync_field_map=parse_field_map(json.dumps(mapping)))
    assert "deal.stage_id: Pipedrive has no stage with id 99" in str(raised.value)
    assert "deal.owner_id: Pipedrive has no user with id 98" in str(raised.value)
    assert fake.writes() == []
    looked_up = sorted(
        r.path for r in fake.requests() if r.path.startswith(("/api/v2/stages", "/api/v1", "/api/v2/org"))
    )
    org = mapping["deal"]["org_id"]["value"]
    assert looked_up == [
        "/api/v1/users/98",
        f"/api/v2/organizations/{org}",
        f"/api/v2/organizations/{org}",
        "/api/v2/stages/99",
    ]


def test_a_value_the_map_cannot_take_fails_that_deal_alone(pipedrive):
    fake, sync = pipedrive()
    mapping = {"deal": {"status": {"column": "status", "map": {"completed": "won", "returned": "lost"}}}}
    rows = mapped_rows()
    rows[2]["status"] = "refunded"
    report = sync(rows, sync_field_map=parse_field_map(json.dumps(mapping)))
    assert [(f.entity, f.key, f.reason) for f in report.failures] == [
        ("deal", "3", "deal.status: 'refunded' has no entry in its map")
    ]
    assert report.exit_code == 1 and len(fake.deals()) == 5


# ---------------------------------------------------------------------- the budget without its header


def test_without_budget_headers_the_sync_counts_documented_costs_and_stops_in_time(pipedrive):
    fields_and_lists = 2 * (10 + 5) + 2 * 10 + 20
    fake, sync = pipedrive(rate_headers=False, daily_headers=False)
    rows = make_rows()
    report = sync(rows, pipedrive_daily_budget=fields_and_lists + 7 * 5)
    assert report.exit_code == 6 and "PIPEDRIVE_DAILY_BUDGET" in report.stopped
    assert 4 <= report.done <= 7 and report.done + report.remaining == report.planned == 28
    assert report.tokens_used == fields_and_lists + report.done * 5  # counted by us: no header said it
    assert [r.status for r in fake.requests() if r.status >= 400] == []  # stopped before Pipedrive had to refuse
    again = sync(rows, pipedrive_daily_budget=10_000)
    assert again.exit_code == 0 and again.done == report.remaining
    assert_holds(fake, rows)


def test_without_any_header_a_429_that_outlasts_a_burst_window_stops_the_run(pipedrive):
    fake, sync = pipedrive(rate_headers=False, daily_headers=False, daily_budget=1000)
    fake.spend(1000 - 70 - 3 * 5)  # other integrations spent today's budget; our count cannot know
    report = sync(make_rows(), parallel_process_number=2)
    assert report.exit_code == 6 and "daily token budget is spent" in report.stopped
    statuses = Counter(r.status for r in fake.requests())
    assert statuses[403] == 0 and 1 <= statuses[429] <= 4  # each worker waited once, then stopped
    assert report.done + report.remaining == report.planned and len(fake.persons()) + len(fake.deals()) == report.done
