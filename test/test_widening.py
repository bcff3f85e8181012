"""Widening never changes values already loaded, on SQLite, PostgreSQL and MySQL: after a column becomes text,
every earlier value reads back exactly as its file wrote it (`3`, not `3.0` or `3.00`)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa
from helpers import ledger_rows, read_table, reject_rows, run_load, write_bytes

FIRST = b"id,amount,at,day,n,e\n1,3,2020-01-05T10:00:00,2020-01-05,7,1E5\n2,10.50,2020-01-06 11:00:00.5,2020-01-06,8,2.5E-3\n"
FIRST_ROWS = [
    {"id": 1, "amount": "3", "at": "2020-01-05T10:00:00", "day": "2020-01-05", "n": "7", "e": "1E5"},
    {"id": 2, "amount": "10.50", "at": "2020-01-06 11:00:00.5", "day": "2020-01-06", "n": "8", "e": "2.5E-3"},
]
LATER = b"id,amount,at,day,n,e\n3,N/A,soon,someday,x,1e-400\n"
LATER_ROW = {"id": 3, "amount": "N/A", "at": "soon", "day": "someday", "n": "x", "e": "1e-400"}
COLUMNS = ["id", "amount", "at", "day", "n", "e"]


def rows(engine: sa.Engine) -> list[dict]:
    return read_table(engine, "x", order_by="id", columns=COLUMNS)


def typed_first(engine: sa.Engine) -> None:
    """The first file staged its columns typed (so a later text value must widen them)."""
    kinds = {c["name"]: type(c["type"]).__name__.lower() for c in sa.inspect(engine).get_columns("x")}
    assert not any(word in kinds["amount"] for word in ("text", "char")), kinds


def test_a_later_run_widens_and_earlier_values_read_back_as_written(tmp_path, db_url, make_settings, engine_of):
    """The issue's example: a.csv in run 1, b.csv with N/A in run 2, one table."""
    src = tmp_path / "src"
    write_bytes(src / "a.csv", FIRST)
    assert run_load(make_settings, src, db_url, dest_table="x").exit_code == 0
    engine = engine_of(db_url)
    typed_first(engine)
    write_bytes(src / "b.csv", LATER)
    report = run_load(make_settings, src, db_url, dest_table="x")
    assert report.exit_code == 0, report.lines()
    assert rows(engine) == [*FIRST_ROWS, LATER_ROW]
    assert {p: (r["status"], r["rows_loaded"]) for p, r in ledger_rows(engine).items()} == {
        "a.csv": ("loaded", 2),
        "b.csv": ("loaded", 1),
    }
    assert reject_rows(engine) == []
    assert run_load(make_settings, src, db_url, dest_table="x").files[0].status == "skipped"  # and it settles


def test_a_value_past_the_sample_widens_and_other_files_read_back_as_written(
    tmp_path, db_url, make_settings, engine_of
):
    """A worker finds N/A after its sample, while other files of the same run and an earlier run hold values."""
    src = tmp_path / "src"
    write_bytes(src / "a.csv", FIRST)
    assert run_load(make_settings, src, db_url, dest_table="x").exit_code == 0
    write_bytes(src / "b.csv", b"id,amount,at,day,n,e\n4,7.25,2021-01-01T00:00:00,2021-01-01,9,3E1\n")
    write_bytes(src / "c.csv", b"id,amount,at,day,n,e\n5,1,2021-01-02T00:00:00,2021-01-02,1,1E1\n" + LATER[21:])
    report = run_load(make_settings, src, db_url, dest_table="x", sample_rows=2, load_workers=2)
    assert report.exit_code == 0, report.lines()
    engine = engine_of(db_url)
    assert rows(engine) == [
        *FIRST_ROWS,
        LATER_ROW,
        {"id": 4, "amount": "7.25", "at": "2021-01-01T00:00:00", "day": "2021-01-01", "n": "9", "e": "3E1"},
        {"id": 5, "amount": "1", "at": "2021-01-02T00:00:00", "day": "2021-01-02", "n": "1", "e": "1E1"},
    ]
    assert sorted((f.path, f.status, f.rows_loaded) for f in report.files) == [
        ("a.csv", "loaded", 2),
        ("b.csv", "loaded", 1),
        ("c.csv", "loaded", 2),
    ]


def test_earlier_files_no_longer_among_the_sources_keep_their_values(tmp_path, db_url, make_settings, engine_of):
    """They cannot be read again: the file that needs the widening fails with the fix, and every earlier value
    still reads back as written (columns whose text is exact may widen in place; the others stay typed)."""
    write_bytes(tmp_path / "q1" / "a.csv", FIRST)
    assert run_load(make_settings, tmp_path / "q1", db_url, dest_table="x").exit_code == 0
    engine = engine_of(db_url)
    write_bytes(tmp_path / "q2" / "b.csv", LATER)
    write_bytes(tmp_path / "q2" / "c.csv", b"id,amount,at,day,n,e\n6,4.5,2022-01-01T00:00:00,2022-01-01,3,2E2\n")
    report = run_load(make_settings, tmp_path / "q2", db_url, dest_table="x")
    assert report.exit_code == 1
    outcome = {f.path: f for f in report.files}
    assert outcome["c.csv"].status == "loaded"
    failed = outcome["b.csv"]
    assert failed.status == "failed" and "a.csv" in failed.error and "\n" not in failed.error
    assert "NULL_VALUES" in failed.error and "COLUMN_TYPES" in failed.error
    assert ledger_rows(engine)["b.csv"]["status"] == "failed"
    kinds = {c["name"]: type(c["type"]).__name__.lower() for c in sa.inspect(engine).get_columns("x")}
    assert "text" not in kinds["e"] and "char" not in kinds["e"]  # a double would read 0.0025 as text
    for stored, written in zip(rows(engine)[:2], FIRST_ROWS, strict=True):
        assert all(reads_as(stored[c], written[c]) for c in COLUMNS), (stored, written)


def reads_as(stored, written) -> bool:
    """The very text in a text column; the same number or instant in a typed one."""
    if stored == written:
        return True
    if isinstance(stored, str) and "T" in stored and ":" in stored:  # read_table gives instants in ISO form
        return dt.datetime.fromisoformat(stored) == dt.datetime.fromisoformat(written)
    return not isinstance(stored, str) and Decimal(str(stored)) == Decimal(written)


@pytest.mark.parametrize("value", ["7", "2020-01-05"], ids=["integer", "date"])
def test_kinds_whose_text_is_exact_widen_in_place(value, tmp_path, db_url, make_settings, engine_of):
    src = tmp_path / "src"
    write_bytes(src / "a.csv", f"id,v\n1,{value}\n".encode())
    run_load(make_settings, src, db_url, dest_table="x")
    write_bytes(src / "b.csv", b"id,v\n2,later\n")
    report = run_load(make_settings, src, db_url, dest_table="x")
    assert [f.path for f in report.loaded] == ["b.csv"]  # a.csv was not loaded again
    assert read_table(engine_of(db_url), "x", order_by="id", columns=["v"]) == [{"v": value}, {"v": "later"}]


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_a_range_of_a_big_file_defers_its_widening_and_the_whole_file_loads_as_written(
    backend, tmp_path, request, make_settings, engine_of
):
    """Cut into ranges for two workers, a range that meets N/A late cannot widen alone: the file loads again whole."""
    url = request.getfixturevalue(f"{backend}_url")
    lines = [f"{i},{i if i % 2 else f'{i}.50'},2020-01-05T10:{i % 60:02d}:00" for i in range(1999)]
    lines.append("1999,N/A,soon")
    write_bytes(tmp_path / "src" / "big.csv", ("id,amount,at\n" + "\n".join(lines) + "\n").encode())
    report = run_load(make_settings, tmp_path / "src", url, sample_rows=10, split_min_bytes=4000, load_workers=2)
    [result] = report.files
    assert (result.status, result.rows_loaded) == ("loaded", 2000), report.lines()
    assert "ranges" in result.method and any("widened big.at" in c for c in report.schema_changes)
    got = read_table(engine_of(url), "big", order_by="id", columns=["id", "amount", "at"])
    assert [(r["amount"], r["at"]) for r in got] == [tuple(line.split(",")[1:]) for line in lines]
