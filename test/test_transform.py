"""The deals view on SQLite, PostgreSQL and MySQL, checked row by row against deals computed in plain
Python (Decimal arithmetic) from the same CSV files."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from processor import transform
from processor.config import SAMPLE_DATA_FOLDER, Settings
from processor.db import dialect_family
from processor.errors import ConfigError, TransformError
from processor.staging.loader import load
from processor.transform import (
    DEAL_COLUMNS,
    TransformReport,
    build_deals,
    deals_relation,
    reflect_staging,
    threshold_cents,
)
from scripts.make_sample_data import ORPHAN_ORDER_ID, write_dataset

SAMPLE = Path(SAMPLE_DATA_FOLDER)
JAFFLE_SHOP = Path(__file__).resolve().parent / "data" / "jaffle-shop"  # the assignment's seed files
CENT = Decimal("0.01")
MONEY_COLUMNS = ("amount", "bonus", "value")


# ---------------------------------------------------------------- the expectation, in plain Python


@dataclass
class Expected:
    deals: dict[str, dict]
    orphan_orders: int
    orphan_payments: int


def _rows(folder: Path, name: str) -> list[dict[str, str]]:
    with (folder / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _money(text: str) -> Decimal:
    return Decimal(text).quantize(CENT, ROUND_HALF_UP)


def _bonus(amount: Decimal, status: str, settings: Settings) -> Decimal:
    if status != settings.bonus_status or not amount > settings.bonus_threshold:
        return Decimal("0.00")
    return (amount * settings.bonus_rate).quantize(CENT, ROUND_HALF_UP)


def expected_deals(folder: Path, settings: Settings) -> Expected:
    """The deals the view must hold, keyed by order id, computed from the CSV files."""
    customers = {row["id"]: row for row in _rows(folder, "raw_customers")}
    orders = _rows(folder, "raw_orders")
    payments: dict[str, list[Decimal]] = defaultdict(list)
    for row in _rows(folder, "raw_payments"):
        payments[row["order_id"]].append(_money(row["amount"]))
    deals = {}
    for order in orders:
        customer = customers.get(order["user_id"])
        if customer is None:
            continue
        amounts = payments.get(order["id"], [])
        amount = sum(amounts, Decimal("0.00"))
        bonus = sum((_bonus(a, order["status"], settings) for a in amounts), Decimal("0.00"))
        deals[order["id"]] = {
            "order_id": order["id"],
            "customer_id": customer["id"],
            "first_name": customer["first_name"],
            "last_name": customer["last_name"],
            "title": f"{customer['last_name']} {customer['first_name']}",
            "order_date": order["order_date"],
            "status": order["status"],
            "payment_count": len(amounts),
            "amount": amount,
            "bonus": bonus,
            "value": amount + bonus,
            "currency": settings.deal_currency,
        }
    order_ids = {order["id"] for order in orders}
    orphan_payments = sum(len(amounts) for order_id, amounts in payments.items() if order_id not in order_ids)
    return Expected(deals, len(orders) - sum(order["user_id"] in customers for order in orders), orphan_payments)


# ---------------------------------------------------------------- reading the view back


def read_deals(settings: Settings, engine: sa.Engine) -> dict[str, dict]:
    """The built deals relation, keyed by order id, with ids and dates as the CSV writes them."""
    with engine.connect() as conn:
        relation = deals_relation(settings, reflect_staging(settings, conn))
        rows = conn.execute(sa.select(relation)).mappings().all()
    deals = {}
    for row in rows:
        deal = dict(row)
        for money in MONEY_COLUMNS:
            assert isinstance(deal[money], Decimal), f"{money} read back as {type(deal[money]).__name__}"
            assert deal[money] == deal[money].quantize(CENT), f"{money}={deal[money]} is not whole cents"
        deal.update(order_id=str(deal["order_id"]), customer_id=str(deal["customer_id"]))
        deal["order_date"] = str(deal["order_date"])
        deals[deal["order_id"]] = deal
    assert len(deals) == len(rows), "one row per order"
    return deals


def assert_same_deals(actual: dict[str, dict], expected: dict[str, dict]) -> None:
    assert sorted(actual) == sorted(expected)
    for order_id, deal in expected.items():
        assert actual[order_id] == deal, f"order {order_id}"


def assert_report_matches(report: TransformReport, expected: Expected) -> None:
    deals = expected.deals.values()
    assert report.deals == len(expected.deals)
    assert report.total_value == sum(deal["value"] for deal in deals)
    assert report.bonus_deals == sum(deal["bonus"] != 0 for deal in deals)
    assert (report.orphan_orders, report.orphan_payments) == (expected.orphan_orders, expected.orphan_payments)


def relation_kind(engine: sa.Engine, name: str) -> str | None:
    inspector = sa.inspect(engine)
    if name in inspector.get_view_names():
        return "view"
    return "table" if name in inspector.get_table_names() else None


@pytest.fixture
def staged(db_url, engine_of, make_settings) -> Callable[..., tuple[Settings, sa.Engine]]:
    """staged(folder, column_types=None, **settings) -> (settings, engine) with the folder staged."""

    def stage(folder: Path = SAMPLE, column_types: dict[str, str] | None = None, **fields) -> tuple:
        engine = engine_of(db_url)
        pinned = tuple((*key.split("."), spec) for key, spec in (column_types or {}).items())
        staging = make_settings(
            dest_sql=db_url,
            src_data_folder=str(folder),
            src_file_name=("raw_*.csv",),
            column_types=pinned,
            full_refresh=True,
        )
        report = load(staging)  # the project's loader, as a run stages the files
        assert report.exit_code == 0, report.lines()
        return make_settings(dest_sql=db_url, **fields), engine

    return stage


@pytest.fixture
def built(staged) -> Callable[..., tuple[Settings, sa.Engine, TransformReport, Expected]]:
    """built(folder, column_types=None, **settings): stage, build, and check rows and report against Python."""

    def build(folder: Path = SAMPLE, column_types: dict[str, str] | None = None, **fields) -> tuple:
        settings, engine = staged(folder, column_types, **fields)
        report = build_deals(settings, engine)
        expected = expected_deals(folder, settings)
        assert_same_deals(read_deals(settings, engine), expected.deals)
        assert_report_matches(report, expected)
        return settings, engine, report, expected

    return build


@pytest.fixture
def sample(built) -> tuple[dict[str, dict], TransformReport]:
    """The bundled sample staged and built with default settings: (deals read back, report)."""
    settings, engine, report, _ = built()
    return read_deals(settings, engine), report


# ---------------------------------------------------------------- whole views against Python


def test_sample_matches_python(built):
    _, _, report, _ = built()
    assert (report.orphan_orders, report.orphan_payments) == (1, 1)
    assert any(f"{report.deals:,} deals" in line for line in report.lines())


@pytest.mark.slow
def test_random_dataset_matches_python(built, tmp_path):
    folder = tmp_path / "data"
    write_dataset(folder, customers=400, orders=3000, seed=4242)
    assert built(folder)[2].deals > 2500


def test_jaffle_shop_seed_files_match_python(built):
    built(JAFFLE_SHOP)


# ---------------------------------------------------------------- the named edge cases of the sample


def test_payment_of_exactly_the_threshold_earns_no_bonus(sample):
    deal = sample[0]["1"]
    assert (deal["status"], deal["amount"]) == ("completed", Decimal("2000"))
    assert deal["bonus"] == 0 and deal["value"] == Decimal("2000")


def test_payment_just_above_the_threshold_earns_the_bonus(sample):
    deal = sample[0]["2"]
    assert deal["amount"] == Decimal("2001")
    assert deal["bonus"] == Decimal("2001") * Decimal("0.20")
    assert deal["value"] == Decimal("2001") * Decimal("1.20")


def test_high_payment_on_an_order_not_completed_earns_no_bonus(sample):
    deal = sample[0]["3"]
    assert (deal["status"], deal["amount"], deal["bonus"], deal["value"]) == ("shipped", 5000, 0, 5000)


def test_several_payments_are_summed_and_only_the_one_above_the_threshold_earns(sample):
    deal = sample[0]["4"]
    assert deal["payment_count"] == 3
    assert deal["amount"] == Decimal(2500 + 100 + 0)
    assert deal["bonus"] == Decimal(2500) * Decimal("0.20")


def test_a_zero_payment_is_counted_and_adds_nothing(sample):
    deal = sample[0]["4"]
    assert deal["payment_count"] == 3
    assert deal["value"] == Decimal(2600) + Decimal(500)


def test_order_without_payment_is_a_deal_worth_zero(sample):
    deal = sample[0]["5"]
    assert (deal["payment_count"], deal["amount"], deal["bonus"], deal["value"]) == (0, 0, 0, 0)


def test_order_whose_customer_is_missing_is_left_out_and_counted(sample):
    deals, report = sample
    assert "6" not in deals
    assert report.orphan_orders == 1


def test_payment_whose_order_is_missing_is_left_out_and_counted(sample):
    deals, report = sample
    assert str(ORPHAN_ORDER_ID) not in deals
    assert report.orphan_payments == 1


@pytest.mark.parametrize(
    ("order_id", "title"),
    [("1", "O'Brien Aoife"), ("2", "Łukasiewicz-Müller Zoë"), ("3", "D'Ángelo José")],
    ids=["apostrophe", "non-ascii", "both"],
)
def test_title_is_last_name_space_first_name(sample, order_id, title):
    assert sample[0][order_id]["title"] == title


def test_customer_without_orders_has_no_deal(sample):
    last_customer = max(int(row["id"]) for row in _rows(SAMPLE, "raw_customers"))
    assert str(last_customer) not in {deal["customer_id"] for deal in sample[0].values()}


def test_view_has_exactly_the_deal_columns(built):
    _, engine, _, _ = built()
    assert [column["name"] for column in sa.inspect(engine).get_columns("deals")] == list(DEAL_COLUMNS)


def test_currency_is_the_setting(built):
    settings, engine, _, _ = built(deal_currency="CHF")
    assert {deal["currency"] for deal in read_deals(settings, engine).values()} == {"CHF"}


# ---------------------------------------------------------------- the rule's parameters


@pytest.mark.parametrize(
    ("fields", "changed_orders"),
    [
        ({"bonus_threshold": Decimal("1999.99")}, {"1"}),
        ({"bonus_threshold": Decimal("2001")}, {"2"}),
        ({"bonus_rate": Decimal("0.125")}, {"2", "4"}),
        ({"bonus_status": "shipped"}, {"2", "3", "4"}),
    ],
    ids=["threshold-below-2000", "threshold-2001", "rate-with-rounding", "status-shipped"],
)
def test_rule_parameters_change_the_view(built, fields, changed_orders):
    settings, engine, _, _ = built(**fields)
    deals = read_deals(settings, engine)
    default = expected_deals(
        SAMPLE, settings.replace(bonus_rate=Decimal("0.20"), bonus_threshold=Decimal("2000"), bonus_status="completed")
    )
    assert changed_orders <= {
        order_id for order_id in deals if deals[order_id]["bonus"] != default.deals[order_id]["bonus"]
    }


# ---------------------------------------------------------------- exact money and widened columns


def write_hostile(folder: Path) -> None:
    """Cent amounts whose float sums drift, half-cent bonuses, statuses that differ only in case or spacing, and text ids."""
    folder.mkdir(parents=True, exist_ok=True)
    payments = [(1, "0.10")] * 10 + [(1, "0.20"), (2, "2000.01"), (2, "2000.00"), (2, "2000.04"), (3, "0.07")]
    payments += [(4, "2500.50"), (5, "2500.50"), (6, "9999999.99"), (6, "0.01"), (7, "3333.33")] + [(8, "0.03")] * 333
    tables = {
        "raw_customers": (("id", "first_name", "last_name"), [(1, "Ann", "Lee"), (2, "Bo", "Ng")]),
        "raw_orders": (
            ("id", "user_id", "order_date", "status"),
            [(1, 1, "2020-01-01", "completed"), (2, 2, "2020-01-02", "completed"), (3, 1, "2020-01-03", "completed")]
            + [(4, 1, "2020-01-04", "Completed"), (5, 2, "2020-01-05", "completed "), (6, 2, "2020-01-06", "completed")]
            + [(7, 1, "2020-01-07", "completed"), (8, 2, "2020-01-08", "placed")],
        ),
        "raw_payments": (
            ("id", "order_id", "payment_method", "amount"),
            [(i, o, "coupon", a) for i, (o, a) in enumerate(payments, 1)],
        ),
    }
    for name, (header, rows) in tables.items():
        with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)


@pytest.mark.parametrize("amount_type", ["decimal", "double", "numeric(12,3)", "text"])
def test_money_is_exact_whatever_the_amount_was_staged_as(built, tmp_path, amount_type):
    folder = tmp_path / "hostile"
    write_hostile(folder)
    _, engine, _, expected = built(folder, {"raw_payments.amount": amount_type}, bonus_rate=Decimal("0.125"))
    with engine.connect() as conn:  # what any client sees, without SQLAlchemy's Numeric conversion
        raw = conn.execute(sa.text("SELECT order_id, amount, bonus, value FROM deals")).all()
    for order_id, *money in raw:
        deal = expected.deals[str(order_id)]
        assert [Decimal(str(value)) for value in money] == [deal[column] for column in MONEY_COLUMNS]


@pytest.mark.parametrize(
    "column_types",
    [
        {"raw_orders.user_id": "text", "raw_payments.order_id": "text"},
        {"raw_customers.id": "text", "raw_orders.id": "text"},
        {"raw_payments.order_id": "double"},
    ],
    ids=["foreign-keys-text", "primary-keys-text", "order-id-double"],
)
def test_widened_join_keys_still_join(built, tmp_path, column_types):
    folder = tmp_path / "data"
    write_dataset(folder, customers=30, orders=200, seed=5)
    built(folder, column_types)


# ---------------------------------------------------------------- view, table, replacement


def test_materialize_builds_a_table_with_the_same_rows(built):
    _, engine, report, _ = built(deals_materialize=True)
    assert report.kind == "table" and relation_kind(engine, "deals") == "table"


def test_rebuilding_switches_cleanly_between_view_and_table(staged):
    settings, engine = staged()
    steps = [settings, settings.replace(deals_materialize=True, bonus_threshold=Decimal("100")), settings, settings]
    for step in steps:
        report = build_deals(step, engine)
        expected = expected_deals(SAMPLE, step)
        assert relation_kind(engine, "deals") == ("table" if step.deals_materialize else "view")
        assert_same_deals(read_deals(step, engine), expected.deals)
        assert_report_matches(report, expected)
    names = set(sa.inspect(engine).get_table_names()) | set(sa.inspect(engine).get_view_names())
    assert names - {"_processor_files", "_processor_rejects"} == {
        "raw_customers",
        "raw_orders",
        "raw_payments",
        "deals",
    }


def test_a_failed_rebuild_keeps_the_previous_deals(staged, monkeypatch):
    settings, engine = staged()
    build_deals(settings, engine)
    before = read_deals(settings, engine)

    def broken(settings, tables):
        return sa.select(sa.literal_column("no_such_column").label("order_id")).select_from(tables.orders)

    monkeypatch.setattr(transform, "deals_select", broken)
    with pytest.raises(TransformError, match="building the deals table deals failed"):
        build_deals(settings.replace(deals_materialize=True), engine)
    monkeypatch.undo()
    assert relation_kind(engine, "deals") == "view"
    assert read_deals(settings, engine) == before


def test_join_keys_are_indexed_once(staged):
    settings, engine = staged()
    first = build_deals(settings, engine)
    second = build_deals(settings, engine)
    inspector = sa.inspect(engine)
    indexed = {
        (table, index["column_names"][0])
        for table in ("raw_customers", "raw_orders", "raw_payments")
        for index in inspector.get_indexes(table)
    }
    keys = {("raw_customers", "id"), ("raw_orders", "id"), ("raw_orders", "user_id"), ("raw_payments", "order_id")}
    assert keys <= indexed
    assert len(first.indexes_created) == 4 and second.indexes_created == ()


def test_text_keys_are_indexed_except_on_mysql(staged):
    settings, engine = staged(column_types={"raw_orders.user_id": "text", "raw_customers.id": "text"})
    report = build_deals(settings, engine)
    text_indexes = {"ix_raw_orders_user_id", "ix_raw_customers_id"} & set(report.indexes_created)
    expected = set() if dialect_family(engine) == "mysql" else {"ix_raw_orders_user_id", "ix_raw_customers_id"}
    assert text_indexes == expected
    assert "ix_raw_payments_order_id" in report.indexes_created


# ---------------------------------------------------------------- errors


def test_missing_table_names_the_file_and_the_setting(staged):
    settings, engine = staged()
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE raw_orders"))
    with pytest.raises(TransformError, match="raw_orders not found: load raw_orders.csv first or set ORDERS_TABLE"):
        build_deals(settings, engine)


def test_missing_column_names_the_column(staged):
    settings, engine = staged(payments_table="raw_customers")
    with pytest.raises(TransformError, match="raw_customers has no column order_id, amount .*PAYMENTS_TABLE"):
        build_deals(settings, engine)


def test_deals_view_may_not_replace_a_staging_table(staged):
    settings, engine = staged(deals_view="raw_orders")
    with pytest.raises(ConfigError, match="DEALS_VIEW='raw_orders' is the staging table of ORDERS_TABLE"):
        build_deals(settings, engine)
    assert relation_kind(engine, "raw_orders") == "table"


def test_a_rate_too_fine_for_cent_arithmetic_is_refused(staged):
    settings, engine = staged(bonus_rate=Decimal("0.1234567"))
    with pytest.raises(TransformError, match="BONUS_RATE=0.1234567 is out of range"):
        build_deals(settings, engine)


# ---------------------------------------------------------------- pure pieces


@given(
    threshold=st.decimals(min_value=-10_000, max_value=10_000, places=4, allow_nan=False),
    cents=st.integers(min_value=-1_000_000, max_value=1_000_000),
)
def test_threshold_in_cents_keeps_strictly_greater(threshold, cents):
    assert (cents > threshold_cents(threshold)) == (Decimal(cents) / 100 > threshold)
