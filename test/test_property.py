"""Property: any table of strings written as CSV reads back with the same values (SQLite, PostgreSQL, MySQL)."""

import csv
import itertools
from datetime import date, datetime
from decimal import Decimal

import pytest
from helpers import read_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.staging.loader import load
from processor.staging.tables import reflect

TRICKY = ['"', ",", ";", "\n", "\r", "\r\n", " ", "0", "00", "-", ".", "e", "'", "\\", "N", "NULL", "\t", "|"]
value = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
    st.lists(st.sampled_from(TRICKY), max_size=6).map("".join),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.from_regex(r"0[0-9]{1,8}", fullmatch=True),  # codes with leading zeros
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**6), max_value=10**6).map(str),
    st.dates().map(date.isoformat),
)
tables = st.integers(min_value=1, max_value=4).flatmap(
    lambda width: st.lists(st.lists(value, min_size=width, max_size=width), max_size=15).map(lambda rows: (width, rows))
)
counter = itertools.count()


def expected_value(text: str, kind: str):
    if text == "" and kind != "text":
        return None
    if kind in ("integer", "decimal", "double"):
        return Decimal(text)
    if kind == "date":
        return date.fromisoformat(text).isoformat()
    if kind == "timestamp":
        return datetime.fromisoformat(text).isoformat()
    return text


def got_value(stored, kind: str):
    if stored is None or kind not in ("integer", "decimal", "double"):
        return stored
    return Decimal(str(stored))


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def property_db(request, tmp_path_factory, server_engines):
    from conftest import _isolated_url

    url, drop = _isolated_url(request.param, tmp_path_factory.mktemp("db"), server_engines)
    yield url
    drop()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=tables)
def test_any_strings_read_back_unchanged(table, property_db, make_settings, tmp_path_factory, engine_of):
    width, rows = table
    name = f"t{next(counter)}"
    folder = tmp_path_factory.mktemp("src")
    header = [f"c{i}" for i in range(width)]
    with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)  # CRLF rows, so that any field holding \r or \n is quoted
        writer.writerow(header)
        writer.writerows(rows)
    report = load(make_settings(src_data_folder=str(folder), dest_sql=property_db))
    [result] = report.files
    assert result.status == "loaded" and result.rows_rejected == 0, result.error
    assert result.rows_loaded == len(rows)
    engine = engine_of(property_db)
    with engine.connect() as conn:
        kinds = {c: t.kind for c, t in reflect(conn, name).items()}
    got = read_table(engine, name, columns=header)
    expected = sorted(
        ([expected_value(v, kinds[c]) for c, v in zip(header, row, strict=True)] for row in rows), key=repr
    )
    assert sorted(([got_value(r[c], kinds[c]) for c in header] for r in got), key=repr) == expected
