"""SQLite's bulk path: the lean first attempt (fields as they are) and what sends a file back to the guarded one."""

import logging

import pytest
import sqlalchemy as sa
from helpers import ledger_rows, reject_rows, run_load, write_bytes

from processor.schema import DATE, TEXT, TIMESTAMP, ColumnType
from processor.staging import sqlite
from processor.staging.target import Target

INTEGER = ColumnType("integer", 19, 0)
DOUBLE = ColumnType("double")
GIVEN_UP = "loading it again with every field checked"


def _load(tmp_path, make_settings, body: bytes, **fields):
    url = f"sqlite:///{tmp_path / 'lean.db'}"
    write_bytes(tmp_path / "src" / "t.csv", body)
    report = run_load(make_settings, tmp_path / "src", url, **fields)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text("SELECT i, d, day, stamp FROM t ORDER BY i"))]
    return report, engine, rows


@pytest.mark.parametrize("null", ["", "NA"])
def test_a_null_the_sample_missed_is_loaded_as_null_after_the_lean_attempt(null, tmp_path, make_settings, caplog):
    body = (
        "i,d,day,stamp\n1,1.5,2020-01-01,2020-01-01 10:00:00\n"
        f"2,{null},2020-01-02,2020-01-02\n3,2.5,{null},2020-01-03T11:00:00\n4,3.5,2020-01-04,{null}\n"
    ).encode()
    with caplog.at_level(logging.INFO):
        report, engine, rows = _load(tmp_path, make_settings, body, sample_rows=2, null_values=("NA",))
    assert report.exit_code == 0
    assert rows == [
        (1, 1.5, "2020-01-01", "2020-01-01 10:00:00"),
        (2, None, "2020-01-02", "2020-01-02"),
        (3, 2.5, None, "2020-01-03T11:00:00"),
        (4, 3.5, "2020-01-04", None),
    ]
    entry = ledger_rows(engine)["t.csv"]
    assert (entry["status"], entry["rows_loaded"], entry["rows_rejected"]) == ("loaded", 4, 0)
    assert reject_rows(engine) == []
    assert GIVEN_UP in caplog.text


def test_a_file_the_sample_told_right_loads_lean_once(tmp_path, make_settings, caplog):
    body = b"i,d,day,stamp\n1,1.5,2020-01-01,2020-01-01 10:00:00\n2,2.5,2020-01-02,2020-01-02\n"
    with caplog.at_level(logging.INFO):
        report, _engine, rows = _load(tmp_path, make_settings, body, sample_rows=2)
    assert report.exit_code == 0
    assert rows == [(1, 1.5, "2020-01-01", "2020-01-01 10:00:00"), (2, 2.5, "2020-01-02", "2020-01-02")]
    assert GIVEN_UP not in caplog.text


def _target(nullish, null_values=(), types=(INTEGER, DOUBLE, DATE, TIMESTAMP, TEXT)):
    columns = tuple(f"c{i}" for i in range(len(types)))
    return Target("t", "t.csv", columns, types, null_values, False, tuple(frozenset(n) for n in nullish))


def test_lean_takes_as_they_are_only_checked_columns_whose_sample_held_no_null():
    target = _target([(), ("",), (), (), ()])
    assert sqlite._unguarded(target) == {0, 2, 3}  # not the double whose sample held '', nor text
    assert sqlite.lean(target)
    assert not sqlite.lean(_target([("",), ("",), ("",), ("",), ()]))
    assert not sqlite.lean(_target([(), (), (), (), ()], null_values=("-999",)))  # a marker reads as a number
    assert not sqlite.lean(Target("t", "t.csv", ("a",), (INTEGER,)))  # no sample told


def test_a_lean_double_keeps_its_guard_against_rounding():
    target = _target([(), (), (), (), ()])
    assert (
        sqlite._value(2, target, "double", bare=True) == "CASE WHEN length(?2) > 17 THEN CAST(?2 AS BLOB) ELSE ?2 END"
    )
    assert sqlite._value(1, target, "integer", bare=True) == "?1"
    assert sqlite._value(1, target, "integer") == "NULLIF(?1, '')"


@pytest.mark.parametrize("kind", ["date", "stamp"])
@pytest.mark.parametrize("value", ["", "NA"])
def test_in_a_lean_column_an_empty_field_or_marker_is_no_date(kind, value):
    nulls = frozenset(["", "NA"])
    dates, stamps = ([0], []) if kind == "date" else ([], [0])
    rows = [["2020-01-01"], [value]]
    assert list(sqlite._checked(iter(rows), dates, stamps, nulls)) == rows  # guarded: a null
    with pytest.raises(sqlite._BadValue):
        list(sqlite._checked(iter(rows), dates, stamps, nulls, bare=frozenset({0})))
