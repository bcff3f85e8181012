"""Hostile files on SQLite, PostgreSQL and MySQL: every data row is loaded or rejected, values exactly kept."""

import gzip
from decimal import Decimal

import pytest
import sqlalchemy as sa
from helpers import count, ledger_rows, read_table, reject_rows, run_load, write_bytes
from hostile import CASES, HEAD_ONLY_SAMPLE, TOO_MANY_REJECTS

from processor.find import SourceFile
from processor.staging.profile import profile_file


def backend_of(db_url: str) -> str:
    return {"sqlite": "sqlite", "postgresql": "postgres"}.get(db_url.split(":")[0].split("+")[0], "mysql")


def text_of(value):
    """Values compared as the text they stand for: 10, Decimal('10.0') and '10' are all '10'."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_file(case, tmp_path, db_url, make_settings, engine_of):
    backend = backend_of(db_url)
    write_bytes(tmp_path / "src" / case.file, case.data)
    engine = engine_of(db_url)
    if case.name == "sql_in_header_and_name":
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE users (id INTEGER)"))
    report = run_load(make_settings, tmp_path / "src", db_url, **case.settings)

    [result] = report.files
    assert result.status == case.status, result.error
    expected_rows = case.expected_rows(backend)
    expected_rejects = case.rejects_on(backend)
    # the accounting invariant, from three places: the result, the ledger, the tables
    assert (result.rows_loaded, result.rows_rejected) == (len(expected_rows), len(expected_rejects))
    entry = ledger_rows(engine)[result.path]
    assert (entry["rows_loaded"], entry["rows_rejected"]) == (len(expected_rows), len(expected_rejects))
    assert count(engine, case.table_name) == len(expected_rows)
    rejects = reject_rows(engine, result.path)
    assert tuple(r["line"] for r in rejects) == expected_rejects
    assert all(r["reason"] and r["raw"] is not None for r in rejects)

    got = read_table(engine, case.table_name, order_by=case.order_by or case.columns[0], columns=list(case.columns))
    assert [tuple(text_of(row[c]) for c in case.columns) for row in got] == [
        tuple(text_of(v) for v in row) for row in expected_rows
    ]
    if case.name == "sql_in_header_and_name":
        assert count(engine, "users") == 0


def test_too_many_rejects_fail_the_file_and_keep_the_rejects(tmp_path, db_url, make_settings, engine_of):
    case = TOO_MANY_REJECTS
    write_bytes(tmp_path / "src" / case.file, case.data)
    write_bytes(tmp_path / "src" / "fine.csv", b"a,b\n1,x\n")
    report = run_load(make_settings, tmp_path / "src", db_url, **case.settings)
    statuses = {f.path: f.status for f in report.files}
    assert statuses == {case.file: "failed", "fine.csv": "loaded"}
    assert report.exit_code == 1
    engine = engine_of(db_url)
    assert count(engine, case.table_name) == 0
    assert [r["line"] for r in reject_rows(engine, case.file)] == list(case.rejected)
    entry = ledger_rows(engine)[case.file]
    assert entry["status"] == "failed" and "MAX_ERRORS=2" in entry["error"] and entry["rows_rejected"] == 3


def test_rejects_carry_the_raw_line_and_reason(tmp_path, db_url, make_settings, engine_of):
    write_bytes(tmp_path / "src" / "r.csv", b'a,b\n1,x\n2,y,z\n3,"open\n4,w\n')
    run_load(make_settings, tmp_path / "src", db_url)
    rejects = reject_rows(engine_of(db_url), "r.csv")
    assert [(r["line"], r["raw"]) for r in rejects] == [(3, "2,y,z"), (4, '3,"open')]
    assert "expected 2 fields, found 3" in rejects[0]["reason"]
    assert "never closed" in rejects[1]["reason"]
    assert all(r["content_hash"].startswith("sha256:") for r in rejects)


def test_an_empty_file_is_skipped_and_recorded(tmp_path, db_url, make_settings, engine_of):
    write_bytes(tmp_path / "src" / "empty.csv", b"")
    write_bytes(tmp_path / "src" / "full.csv", b"a\n1\n")
    report = run_load(make_settings, tmp_path / "src", db_url)
    assert {f.path: f.status for f in report.files} == {"empty.csv": "empty", "full.csv": "loaded"}
    assert report.exit_code == 0
    assert ledger_rows(engine_of(db_url))["empty.csv"]["status"] == "empty"


def test_schema_drift_between_runs_adds_columns_and_leaves_missing_ones_null(
    tmp_path, db_url, make_settings, engine_of
):
    src = tmp_path / "src"
    write_bytes(src / "q1" / "d.csv", b"id,a\n1,x\n")
    run_load(make_settings, src, db_url)
    write_bytes(src / "q2" / "d.csv", b"b,id\n2020-01-01,2\n")
    run_load(make_settings, src, db_url)
    rows = read_table(engine_of(db_url), "d", order_by="id", columns=["id", "a", "b"])
    assert rows == [{"id": 1, "a": "x", "b": None}, {"id": 2, "a": None, "b": "2020-01-01"}]


# (what the sample saw, what a later row holds): the database's parser would take the later value
# into the sampled type and give back something else, so the column must widen to text instead.
CHANGED_BY_THE_PARSER = [
    ("5", "007"),
    ("5", "+7"),
    ("5", "-0"),
    ("5", " 8"),
    ("5", "8 "),
    ("1.5", "01.5"),
    ("1.5", "+1.5"),
    ("1.5", ".5"),
    ("1.5", "1."),
    ("1.5", "-0.0"),
    ("1.5", "NaN"),
    ("1.5e3", "1.23456789012345678"),
    ("2020-01-05", "2020-1-5"),
    ("2020-01-05", "01/02/2020"),
    ("2020-01-05", "20200105"),
    ("2020-01-05", "today"),
    ("2020-01-05", "Jan 5 2020"),
    ("2020-01-05 10:00:00", "2020-01-05T10:00:00+02:00"),
    ("2020-01-05 10:00:00", "2020-01-05 10:00"),
    ("2020-01-05 10:00:00", "now"),
    ("2020-01-05 10:00:00", "epoch"),
]


@pytest.mark.parametrize(("sampled", "later"), CHANGED_BY_THE_PARSER, ids=lambda v: repr(v))
def test_a_later_value_the_database_would_change_widens_its_column(
    sampled, later, tmp_path, db_url, make_settings, engine_of
):
    data = f"a,b\n1,{sampled}\n2,{later}\n".encode()
    write_bytes(tmp_path / "src" / "later.csv.gz", gzip.compress(data))  # compressed: sampled from its head
    report = run_load(make_settings, tmp_path / "src", db_url, **HEAD_ONLY_SAMPLE)

    [result] = report.files
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("loaded", 2, 0), result.error
    assert "widened later.b to text" in result.changes
    rows = read_table(engine_of(db_url), "later", order_by="a")
    assert [row["b"] for row in rows] == [sampled, later]


def test_a_later_value_a_pinned_column_would_change_is_rejected(tmp_path, db_url, make_settings, engine_of):
    write_bytes(tmp_path / "src" / "pinned.csv", b"a,b\n1,5\n2,007\n3,9\n")
    report = run_load(make_settings, tmp_path / "src", db_url, column_types=(("pinned", "b", "integer"),))

    [result] = report.files
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("loaded", 2, 1), result.error
    engine = engine_of(db_url)
    assert [(r["line"], r["raw"]) for r in reject_rows(engine, "pinned.csv")] == [(3, "2,007")]
    assert [row["b"] for row in read_table(engine, "pinned", order_by="a")] == [5, 9]


@pytest.mark.parametrize(("rows", "whole"), [(3, True), (4, True), (5, False)])
def test_the_profile_knows_when_its_sample_read_every_row(rows, whole, tmp_path, make_settings):
    """A file the sample read whole needs no second parse: its types were inferred from every value."""
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(rows)))
    source = SourceFile("f.csv", str(path), path.stat().st_size)
    settings = make_settings(sample_rows=8)  # the head takes half: four rows
    assert profile_file(source, settings).whole is whole


def test_verify_values_off_trusts_the_database_parser(tmp_path, db_url, make_settings, engine_of):
    """The opt-out does what the README says: the parser's reading of 007 is kept (and nothing widens)."""
    write_bytes(tmp_path / "src" / "trusted.csv.gz", gzip.compress(b"a,b\n1,5\n2,007\n"))
    report = run_load(make_settings, tmp_path / "src", db_url, verify_values=False, **HEAD_ONLY_SAMPLE)

    [result] = report.files
    assert (result.status, result.rows_loaded, result.changes) == ("loaded", 2, [])
    assert [row["b"] for row in read_table(engine_of(db_url), "trusted", order_by="a")] == [5, 7]
