"""pandas in and out: load_frame stages a DataFrame with a file's guarantees; read_frame / read_deals read exact types.

Every round trip reads the values back from the database (SQLite, PostgreSQL, MariaDB) and
compares them with the frame, value for value.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import sys
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from processor import Settings, build_deals, ledger_status, load_folder, load_frame, read_deals, read_frame
from processor.config import SAMPLE_DATA_FOLDER
from processor.errors import ConfigError, LoadError
from processor.frames.convert import column_type, values_type
from processor.schema import DATE, DOUBLE, TEXT, TIMESTAMP, ColumnType
from processor.staging.tables import reflect

INT64_MAX = 2**63 - 1


def backend(url: str) -> str:
    return sa.make_url(url).get_backend_name()


def hard_frame() -> pd.DataFrame:
    """One column per kind the issue names: NULLs everywhere, leading zeros, big ints, decimals, dates, times."""
    return pd.DataFrame(
        {
            "id": pd.array([1, 2, 3, 4], dtype="Int64"),
            "big": pd.array([INT64_MAX, -INT64_MAX, None, 0], dtype="Int64"),
            "plain_int": np.array([7, -8, 9, 10], dtype="int64"),
            "code": ["007", None, "", "00"],  # leading zeros, NULL and an empty string stay apart
            "digits": ["1", "2", "3", None],  # strings that look like numbers stay text
            "note": ['say "hi"', "a,b\nc\r\nd", "NULL", "back\\slash"],
            "amount": [Decimal("12.50"), None, Decimal("-0.01"), Decimal("99999999.99")],
            "day": [dt.date(2024, 2, 29), None, dt.date(1999, 12, 31), dt.date(2000, 1, 1)],
            "stamp": pd.to_datetime(
                ["2024-01-05 10:00:00.123456", None, "1999-12-31 23:59:59", "2000-01-01 00:00:00"], format="ISO8601"
            ),
            "ratio": [0.1, np.nan, 0.30000000000000004, -1e-300],
        }
    )


def assert_same_values(back: pd.DataFrame, frame: pd.DataFrame, url: str) -> None:
    back = back.sort_values("id").reset_index(drop=True)
    assert list(back.columns) == list(frame.columns)
    assert len(back) == len(frame)
    for column in frame.columns:
        for got, expected in zip(back[column].tolist(), frame[column].tolist(), strict=True):
            if expected is None or (not isinstance(expected, str) and pd.isna(expected)):
                assert got is None or pd.isna(got), (column, got)
            elif column == "amount" and backend(url) == "sqlite":
                # SQLite has no decimal type: up to 15 digits live in a REAL that prints as written
                assert Decimal(repr(got)) == expected, (column, got)
            else:
                assert got == expected, (column, got, expected)
                assert isinstance(got, float) == isinstance(expected, float), (column, got)


def test_a_frame_comes_back_value_for_value(db_url):
    frame = hard_frame()
    result = load_frame(frame, "hard", db_url, source="crm-export")
    assert (result.status, result.rows_loaded, result.table, result.path) == ("loaded", 4, "hard", "crm-export")
    back = read_frame("hard", db_url)
    assert_same_values(back, frame, db_url)
    assert str(back["id"].dtype) == "Int64" and str(back["big"].dtype) == "Int64"
    assert back["day"].map(type).tolist()[0] is dt.date
    assert pd.api.types.is_datetime64_dtype(back["stamp"])
    if backend(db_url) != "sqlite":
        assert {type(v) for v in back["amount"].dropna()} == {Decimal}


def test_lineage_and_the_ledger_name_the_source(db_url, engine_of):
    load_frame(hard_frame(), "hard", db_url, source="crm-export")
    back = read_frame("hard", db_url, lineage=True)
    assert set(back["_source_file"]) == {"crm-export"}
    status = ledger_status(engine_of(db_url))
    (entry,) = [f for f in status.files if f.path == "crm-export"]
    assert (entry.status, entry.table_name, entry.rows_loaded) == ("loaded", "hard", 4)
    assert entry.content_hash.startswith("frame:")


def test_reloading_a_source_replaces_its_rows_and_other_sources_stay(db_url, engine_of):
    first = pd.DataFrame({"id": [1, 2], "name": ["a", "b"]})
    load_frame(first, "people", db_url, source="batch-1")
    load_frame(pd.DataFrame({"id": [3], "name": ["c"]}), "people", db_url, source="batch-2")
    load_frame(pd.DataFrame({"id": [1], "name": ["A"]}), "people", db_url, source="batch-1")
    back = read_frame("SELECT id, name, _source_file FROM people ORDER BY id", db_url)
    assert back.to_dict("list") == {"id": [1, 3], "name": ["A", "c"], "_source_file": ["batch-1", "batch-2"]}
    rows = {f.path: f.rows_loaded for f in ledger_status(engine_of(db_url)).files}
    assert rows == {"batch-1": 1, "batch-2": 1}
    load_frame(pd.DataFrame({"id": [9]}), "people", db_url)  # no name: a lineage of its own, appended
    assert len(read_frame("people", db_url)) == 3


def test_the_table_widens_by_the_rules_of_csv_files(db_url, engine_of):
    load_frame(pd.DataFrame({"id": [1, 2], "n": [10, 20]}), "grow", db_url, source="one")
    load_frame(pd.DataFrame({"id": [3], "n": ["x0"], "extra": [dt.date(2024, 1, 2)]}), "grow", db_url, source="two")
    with engine_of(db_url).connect() as conn:
        types = reflect(conn, "grow")
    assert types["id"].kind == "integer" and types["n"].kind == "text" and types["extra"].kind == "date"
    back = read_frame("grow", db_url).sort_values("id")
    assert back["n"].tolist() == ["10", "20", "x0"]
    assert back["extra"].tolist()[:2] == [None, None] and back["extra"].tolist()[2] == dt.date(2024, 1, 2)


def test_long_decimals_stay_exact_or_stay_text(db_url):
    long = Decimal("12345678901234567890.123456789")
    load_frame(pd.DataFrame({"id": [1], "x": [long]}), "money", db_url, source="m")
    got = read_frame("money", db_url)["x"].tolist()[0]
    # SQLite keeps more than 15 digits as text, as it does for a CSV file; the others as NUMERIC / DECIMAL
    assert got == (str(long) if backend(db_url) == "sqlite" else long)


def test_a_refused_frame_keeps_nothing_and_says_why(db_url, engine_of):
    load_frame(pd.DataFrame({"id": [1]}), "strict", db_url, source="good")
    bad = pd.DataFrame({"id": [2, 3], "n": ["1", "not a number"]})
    with pytest.raises(LoadError, match="bad -> strict"):
        load_frame(bad, "strict", db_url, source="bad", column_types=(("strict", "n", "integer"),))
    assert read_frame("strict", db_url)["id"].tolist() == [1]
    entries = {f.path: f.status for f in ledger_status(engine_of(db_url)).files}
    assert entries == {"good": "loaded", "bad": "failed"}


def test_read_deals_gives_exact_money_integer_ids_and_dates(db_url, engine_of):
    report = load_folder(SAMPLE_DATA_FOLDER, url=db_url, workers=1)
    assert report.exit_code == 0
    settings = Settings(dest_sql=db_url)
    built = build_deals(settings, engine_of(db_url))
    deals = read_deals(settings)
    assert len(deals) == built.deals
    assert str(deals["order_id"].dtype) == "Int64" and str(deals["customer_id"].dtype) == "Int64"
    assert {type(v) for v in deals["value"]} == {Decimal}
    assert sum(deals["value"]) == built.total_value
    assert all(v == v.quantize(Decimal("0.01")) for v in deals["amount"])
    assert {type(v) for v in deals["order_date"].dropna()} == {dt.date}
    assert deals["order_id"].is_monotonic_increasing


def test_read_frame_names_what_it_cannot_find(db_url):
    load_frame(pd.DataFrame({"id": [1]}), "present", db_url, source="p")
    with pytest.raises(ConfigError, match="no table or view 'absent'.*present"):
        read_frame("absent", db_url)


# ---------------------------------------------------------------- pure: dtypes -> staging types


@pytest.mark.parametrize(
    "values, dtype, expected",
    [
        ([1, None], "Int64", ColumnType("integer", 1, 0)),
        ([2**64 - 1], "uint64", TEXT),  # beyond 64 bits, as in a CSV file
        ([0.5, np.nan], "float64", DOUBLE),
        ([1.0, np.inf], "float64", TEXT),
        (["007", "1"], "str", TEXT),
        ([True, False], "bool", TEXT),
        (pd.to_datetime(["2024-01-01 00:00:00"]), None, TIMESTAMP),
        (pd.to_datetime(["2024-01-01 00:00:00.000000001"]).astype("datetime64[ns]"), None, TEXT),
        (pd.to_datetime(["2024-01-01 10:00:00+02:00"]), None, TEXT),  # an offset the column cannot keep
        ([dt.date(2024, 1, 1), None], object, DATE),
        ([Decimal("1.50"), 3], object, ColumnType("decimal", 1, 2)),
        ([Decimal("Infinity")], object, TEXT),
        ([Decimal("NaN"), None], object, ColumnType("empty")),  # pandas counts a NaN as missing: NULL
        ([1, "a"], object, TEXT),
        ([dt.date(2024, 1, 1), dt.datetime(2024, 1, 1, 10)], object, TIMESTAMP),
    ],
    ids=lambda value: repr(value)[:30],
)
def test_a_column_gets_the_type_that_keeps_its_values(values, dtype, expected):
    series = pd.Series(values) if dtype is None else pd.Series(values, dtype=dtype)
    assert column_type(series) == expected


def test_mixed_values_meet_by_the_widening_rules():
    assert values_type([1, 2.5]) == DOUBLE
    assert values_type([10**16, 2.5]) == TEXT  # a long integer and a float have no exact common type
    assert values_type([]).kind == "empty"
    assert math.isnan(float(pd.Series([np.nan]).iloc[0]))


def test_without_pandas_the_message_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ConfigError, match=r"pip install 'processor\[pandas\]'"):
        read_frame("anything", f"sqlite:///{tmp_path / 'x.db'}")


def test_a_dataframe_is_required(tmp_path):
    with pytest.raises(ConfigError, match="needs a pandas DataFrame"):
        load_frame([{"a": 1}], "t", f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigError, match="no columns"):
        load_frame(pd.DataFrame(), "t", f"sqlite:///{tmp_path / 'x.db'}")


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ("Bad-Name", "table='Bad-Name': would be stored as 'bad_name'; set table=bad_name"),
        ("other.schema_t", "schema-qualified"),
    ],
)
def test_a_table_name_is_the_table_or_refused_never_renamed(tmp_path, table, said):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ConfigError, match=re.escape(said)) as refused:
        load_frame(pd.DataFrame({"a": [1]}), table, url)
    assert "DEST_TABLE" not in str(refused.value)  # the caller named it by the argument `table`
    assert not (tmp_path / "x.db").exists() or sa.inspect(sa.create_engine(url)).get_table_names() == []


def test_to_sql_is_not_the_path(db_url, engine_of, monkeypatch):
    """The rows go through the dialect's bulk writer (COPY, LOAD DATA, executemany), not DataFrame.to_sql."""
    monkeypatch.setattr(pd.DataFrame, "to_sql", lambda *a, **k: pytest.fail("to_sql was called"))
    result = load_frame(pd.DataFrame({"id": range(5000)}), "many", db_url, source="many")
    assert result.method == {"sqlite": "insert", "postgresql": "copy", "mysql": "load data"}[backend(db_url)]
    with engine_of(db_url).connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*), SUM(id) FROM many")).one() == (5000, sum(range(5000)))


def test_without_load_data_local_mysql_takes_multi_row_inserts(mysql_url, monkeypatch):
    from processor.staging import mysql

    monkeypatch.setattr(mysql, "can_bulk", lambda conn: False)
    frame = hard_frame()
    assert load_frame(frame, "hard", mysql_url, source="s").rows_loaded == 4
    assert_same_values(read_frame("hard", mysql_url), frame, mysql_url)
