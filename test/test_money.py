"""Money in the deals is never guessed, on SQLite, PostgreSQL and MySQL: a payment amount that is not a plain number
(`2,500.00`, `N/A`) stops the build with exit 5 naming table, column, an example, the payment ids and the count."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_cli import run_index

from processor.errors import TransformError
from processor.pipeline import run
from processor.transform import _plain_amount, max_payment_cents

CUSTOMERS = "id,first_name,last_name\n1,Ann,Lee\n2,Bo,Ng\n"
ORDERS = "id,user_id,order_date,status\n10,1,2020-01-01,completed\n11,2,2020-01-02,completed\n"
PLAIN = re.compile(r"-?[0-9]{1,16}(\.[0-9]+)?")


def write_shop(folder: Path, amounts: list[str]) -> Path:
    """The three linked files; payments 1.. pay `amounts` in turn for orders 10 and 11."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "raw_customers.csv").write_text(CUSTOMERS)
    (folder / "raw_orders.csv").write_text(ORDERS)
    rows = "".join(f'{i},{10 + i % 2},card,"{a}"\n' for i, a in enumerate(amounts, 1))
    (folder / "raw_payments.csv").write_text("id,order_id,payment_method,amount\n" + rows)
    return folder


@pytest.mark.parametrize(
    "amounts, bad, example",
    [
        (["2,500.00", "10.00"], 1, "2,500.00"),
        (["N/A", "3000.00", "N/A"], 2, "N/A"),
        (["1e3", " 10.50", "+5", "10.", "3000"], 4, "1e3"),
        (["12345678901234567", "1"], 1, "12345678901234567"),  # beyond what NUMERIC(18, 2) holds
    ],
    ids=["thousands-separator", "marker", "other-spellings", "too-large"],
)
def test_an_amount_that_is_not_a_plain_number_stops_the_build(
    amounts, bad, example, tmp_path, db_url, make_settings, engine_of
):
    settings = make_settings(src_data_folder=str(write_shop(tmp_path / "src", amounts)), dest_sql=db_url)
    report = run(settings, "load")
    assert report.exit_code == 0
    with pytest.raises(TransformError) as raised:
        run(settings, "transform")
    message = str(raised.value)
    assert raised.value.exit_code == 5 and "\n" not in message
    bad_ids = [str(i) for i, a in enumerate(amounts, 1) if not PLAIN.fullmatch(a)]
    assert f"raw_payments.amount holds {bad} amount(s)" in message
    assert f"e.g. {example!r}, payment id(s) {', '.join(bad_ids)}" in message
    inspector = sa.inspect(engine_of(db_url))
    assert "deals" not in inspector.get_view_names() + inspector.get_table_names()  # nothing was built


def test_corrected_amounts_build_exact_deals(tmp_path, db_url, make_settings, engine_of):
    folder = write_shop(tmp_path / "src", ["2,500.00", "10.50"])
    settings = make_settings(src_data_folder=str(folder), dest_sql=db_url)
    run(settings, "load")
    with pytest.raises(TransformError):
        run(settings, "transform")
    write_shop(folder, ["2500.00", "10.50"])  # the operator fixes the file; amount stays a text column
    report = run(settings, "all")
    assert report.exit_code == 0, report.lines()
    with engine_of(db_url).connect() as conn:
        rows = conn.execute(sa.text("SELECT order_id, amount, bonus FROM deals ORDER BY order_id")).all()
    assert [(int(o), Decimal(str(a)), Decimal(str(b))) for o, a, b in rows] == [
        (10, Decimal("10.50"), Decimal("0.00")),
        (11, Decimal("2500.00"), Decimal("500.00")),
    ]


def test_the_plain_amount_rule_is_the_same_on_every_database(db_url, engine_of):
    values = ["0", "-12.50", "2500", "1234567890123456", "12345678901234567", "0.005", "-0", "2,500.00", "N/A", ""]
    values += [
        " 10",
        "10 ",
        "+5",
        "1e3",
        "10.",
        ".5",
        "-.5",
        "--1",
        "1-2",
        "1.2.3",
        "10\n",
        "٣",
        "-",
        "1234567890123456.99",
    ]
    engine = engine_of(db_url)
    table = sa.Table("amounts", sa.MetaData(), sa.Column("n", sa.Integer), sa.Column("v", sa.Text))
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), [{"n": n, "v": v} for n, v in enumerate(values)])
        got = dict(conn.execute(sa.select(table.c.n, _plain_amount(table.c.v))).all())
    assert {values[n]: bool(plain) for n, plain in got.items()} == {v: bool(PLAIN.fullmatch(v)) for v in values}


def test_a_sync_alone_checks_the_payments_before_any_request(tmp_path, make_settings, pipedrive_fake):
    fake = pipedrive_fake(token="t")
    db = f"sqlite:///{tmp_path / 'p.db'}"
    folder = write_shop(tmp_path / "src", ["10.00", "20.00"])
    settings = make_settings(
        src_data_folder=str(folder), dest_sql=db, pipedrive_api_key="t", pipedrive_base_url=fake.url
    )
    assert run(settings, "load").exit_code == 0
    run(settings, "transform")
    write_shop(folder, ["10.00", "N/A"])  # a later load brings a marker; the view was built before it
    run(settings, "load")
    with pytest.raises(TransformError, match="'N/A'"):
        run(settings, "sync")
    assert fake.requests() == []


def test_index_exits_5_with_one_line(tmp_path):
    folder = write_shop(tmp_path / "src", ["2,500.00", "10.00"])
    done = run_index(tmp_path, env={"SRC_DATA_FOLDER": str(folder)})
    assert done.returncode == 5, done.stderr
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "raw_payments.amount" in errors[0] and "'2,500.00'" in errors[0]


def test_the_largest_payment_keeps_the_bonus_arithmetic_in_64_bits():
    assert max_payment_cents(Decimal("0.20")) == 10**18 - 1
    tight = max_payment_cents(Decimal("999.999999"))  # the rate as 999999999 / 10**6
    assert 2 * tight * 999999999 + 10**6 < 2**63 <= 2 * (tight + 1) * 999999999 + 10**6
