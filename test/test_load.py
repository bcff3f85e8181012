"""Staging on SQLite, PostgreSQL and MySQL: values read back, routing, re-runs, atomic files, parallel workers."""

from decimal import Decimal

import sqlalchemy as sa
from helpers import count, ledger_rows, lineage, read_table, run_load, write_csv

from processor.schema import TEXT
from processor.status import ledger_status


def epc_like(root):
    """Three folders with a certificates.csv each; the columns differ in order and membership."""
    write_csv(
        root / "a-north" / "certificates.csv",
        ["LMK_KEY", "POSTCODE", "FLOOR_AREA", "LODGED"],
        [
            ["962345615852014042810151896240515", "LE11 3TU", "85.5", "2019-04-28"],
            ["100000000000000000000000000000001", "LE12 7AA", "102", "2020-01-05"],
        ],
    )
    write_csv(
        root / "b-south" / "certificates.csv",
        ["POSTCODE", "LMK_KEY", "LODGED", "FLOOR_AREA"],
        [["NG1 1AA", "200000000000000000000000000000002", "2018-12-31", "64.25"]],
    )
    write_csv(
        root / "c-east" / "deep" / "certificates.csv",
        ["LMK_KEY", "POSTCODE", "TENURE"],
        [["300000000000000000000000000000003", "PE1 1AA", "owner-occupied"]],
    )
    write_csv(root / "a-north" / "recommendations.csv", ["LMK_KEY", "ITEM"], [["x", "1"]])


def test_nested_folders_into_one_dest_table(tmp_path, db_url, make_settings, engine_of):
    epc_like(tmp_path / "src")
    report = run_load(
        make_settings, tmp_path / "src", db_url, src_file_name=("certificates.csv",), dest_table="certificates"
    )
    assert [f.status for f in report.files] == ["loaded"] * 3
    rows = read_table(engine_of(db_url), "certificates", order_by="lmk_key")
    assert rows == [
        {
            "lmk_key": "100000000000000000000000000000001",
            "postcode": "LE12 7AA",
            "floor_area": Decimal("102"),
            "lodged": "2020-01-05",
            "tenure": None,
            "_source_file": lineage(tmp_path / "src", "a-north/certificates.csv"),
        },
        {
            "lmk_key": "200000000000000000000000000000002",
            "postcode": "NG1 1AA",
            "floor_area": Decimal("64.25"),
            "lodged": "2018-12-31",
            "tenure": None,
            "_source_file": lineage(tmp_path / "src", "b-south/certificates.csv"),
        },
        {
            "lmk_key": "300000000000000000000000000000003",
            "postcode": "PE1 1AA",
            "floor_area": None,
            "lodged": None,
            "tenure": "owner-occupied",
            "_source_file": lineage(tmp_path / "src", "c-east/deep/certificates.csv"),
        },
        {
            "lmk_key": "962345615852014042810151896240515",
            "postcode": "LE11 3TU",
            "floor_area": Decimal("85.5"),
            "lodged": "2019-04-28",
            "tenure": None,
            "_source_file": lineage(tmp_path / "src", "a-north/certificates.csv"),
        },
    ]


def test_one_table_per_file_stem(tmp_path, db_url, make_settings, engine_of):
    epc_like(tmp_path / "src")
    run_load(make_settings, tmp_path / "src", db_url)
    engine = engine_of(db_url)
    assert count(engine, "certificates") == 4
    assert read_table(engine, "recommendations") == [
        {"lmk_key": "x", "item": 1, "_source_file": lineage(tmp_path / "src", "a-north/recommendations.csv")}
    ]


def test_values_read_back_equal_the_csv(tmp_path, db_url, make_settings, engine_of):
    header = [" Code ", "Amount", "Price", "Ratio", "Day", "At", "Note", "Big", "Flag"]
    rows = [
        ["00123", "-42", "1.50", "2.5e3", "2020-02-29", "2020-01-05 10:00:00", 'say "hi", then\nleave', "9" * 25, "Y"],
        ["00456", "9223372036854775807", "0.01", "1e-3", "1999-12-31", "2021-06-30T23:59:59.5", "Zoë Łódź ☃", "1", ""],
        ["", "", "", "", "", "", "", "", "N"],
    ]
    write_csv(tmp_path / "src" / "mixed.csv", header, rows)
    run_load(make_settings, tmp_path / "src", db_url)
    got = read_table(engine_of(db_url), "mixed", order_by="flag")
    assert got == [
        {
            "code": "00456",
            "amount": 9223372036854775807,
            "price": Decimal("0.01"),
            "ratio": Decimal("0.001"),
            "day": "1999-12-31",
            "at": "2021-06-30T23:59:59.500000",
            "note": "Zoë Łódź ☃",
            "big": "1",
            "flag": "",
            "_source_file": lineage(tmp_path / "src", "mixed.csv"),
        },
        {
            "code": "",
            "amount": None,
            "price": None,
            "ratio": None,
            "day": None,
            "at": None,
            "note": "",
            "big": "",
            "flag": "N",
            "_source_file": lineage(tmp_path / "src", "mixed.csv"),
        },
        {
            "code": "00123",
            "amount": -42,
            "price": Decimal("1.5"),
            "ratio": Decimal("2500"),
            "day": "2020-02-29",
            "at": "2020-01-05T10:00:00",
            "note": 'say "hi", then\nleave',
            "big": "9" * 25,
            "flag": "Y",
            "_source_file": lineage(tmp_path / "src", "mixed.csv"),
        },
    ]


def test_a_rerun_loads_nothing_new(tmp_path, db_url, make_settings, engine_of):
    epc_like(tmp_path / "src")
    first = run_load(make_settings, tmp_path / "src", db_url)
    second = run_load(make_settings, tmp_path / "src", db_url)
    assert len(first.loaded) == 4
    assert [f.status for f in second.files] == ["skipped"] * 4
    assert count(engine_of(db_url), "certificates") == 4


def test_a_changed_file_is_replaced_not_appended(tmp_path, db_url, make_settings, engine_of):
    src = tmp_path / "src"
    write_csv(src / "orders.csv", ["id", "status"], [["1", "placed"], ["2", "placed"], ["3", "placed"]])
    write_csv(src / "other.csv", ["id"], [["7"]])
    run_load(make_settings, src, db_url)
    engine = engine_of(db_url)
    assert source_indexes(engine, "orders") == 0  # a first load pays for no index
    write_csv(src / "orders.csv", ["id", "status"], [["1", "shipped"], ["2", "returned"]])
    report = run_load(make_settings, src, db_url)
    statuses = {f.path: f.status for f in report.files}
    assert statuses == {"orders.csv": "loaded", "other.csv": "skipped"}
    assert read_table(engine, "orders", order_by="id", columns=["id", "status"]) == [
        {"id": 1, "status": "shipped"},
        {"id": 2, "status": "returned"},
    ]
    assert ledger_rows(engine)["orders.csv"]["rows_loaded"] == 2
    # replacing rows looks them up by file from now on, rather than scanning the table each time
    assert (source_indexes(engine, "orders"), source_indexes(engine, "other")) == (1, 0)
    assert any("indexed orders._source_file" in change for change in report.schema_changes)
    write_csv(src / "orders.csv", ["id", "status"], [["3", "placed"]])
    run_load(make_settings, src, db_url)
    assert read_table(engine, "orders", columns=["id", "status"]) == [{"id": 3, "status": "placed"}]
    assert source_indexes(engine, "orders") == 1


def source_indexes(engine, table: str) -> int:
    indexes = sa.inspect(engine).get_indexes(table)
    return sum(1 for index in indexes if index["column_names"][:1] == ["_source_file"])


def test_a_failing_file_leaves_no_rows_and_the_others_load(tmp_path, db_url, make_settings, engine_of):
    src = tmp_path / "src"
    good = [[str(i), f"name {i}"] for i in range(1, 301)]
    write_csv(src / "a_people.csv", ["id", "name"], good)
    broken = [*good[:200], ["201", "x", "unexpected"], *good[201:]]
    write_csv(src / "b_people.csv", ["id", "name"], broken)
    report = run_load(make_settings, src, db_url, dest_table="people", max_errors=0, load_workers=2)
    assert {f.path: f.status for f in report.files} == {"a_people.csv": "loaded", "b_people.csv": "failed"}
    engine = engine_of(db_url)
    assert count(engine, "people") == 300
    assert count(engine, "people", f"WHERE _source_file = '{lineage(src, 'b_people.csv')}'") == 0
    assert count(engine, "people", f"WHERE _source_file = '{lineage(src, 'a_people.csv')}'") == 300
    entry = ledger_rows(engine)["b_people.csv"]
    assert entry["status"] == "failed" and "MAX_ERRORS=0" in entry["error"]
    assert report.exit_code == 1
    # what `python index.py status` tells the operator afterwards, from the ledger alone
    status = ledger_status(engine)
    assert [(f.path, f.status) for f in status.not_in] == [("b_people.csv", "failed")]
    assert status.exit_code == 1 and status.rejects == 1
    assert "  people: 300 rows from 1 file(s), 1 rejected" in status.lines()


def test_parallel_workers_load_many_files(tmp_path, db_url, make_settings, engine_of):
    src = tmp_path / "src"
    for part in range(12):
        write_csv(
            src / f"part-{part:02d}" / "events.csv",
            ["id", "part", "at"],
            [[str(part * 1000 + i), str(part), f"2024-01-{1 + i % 28:02d}"] for i in range(500)],
        )
    report = run_load(make_settings, src, db_url, load_workers=2, dest_table="events")
    assert len(report.loaded) == 12 and report.rows_loaded == 6000
    engine = engine_of(db_url)
    assert count(engine, "events") == 6000
    rows = read_table(engine, "events", columns=["part", "_source_file"])
    assert all(r["_source_file"] == lineage(src, f"part-{r['part']:02d}/events.csv") for r in rows)
    assert {r["path"]: r["rows_loaded"] for r in ledger_rows(engine).values()} == {
        f"part-{p:02d}/events.csv": 500 for p in range(12)
    }


def test_files_that_disagree_widen_to_the_common_type(tmp_path, db_url, make_settings, engine_of):
    src = tmp_path / "src"
    write_csv(src / "a" / "m.csv", ["v", "w"], [["1", "2020-01-01"], ["2", "2020-01-02"]])
    write_csv(src / "b" / "m.csv", ["v", "w"], [["2.5", "2020-01-03 12:00:00"]])
    write_csv(src / "c" / "m.csv", ["v", "w"], [["7", ""]])
    run_load(make_settings, src, db_url)
    rows = read_table(engine_of(db_url), "m", order_by="v", columns=["v", "w"])
    assert rows == [
        {"v": Decimal("1"), "w": "2020-01-01T00:00:00"},
        {"v": Decimal("2"), "w": "2020-01-02T00:00:00"},
        {"v": Decimal("2.5"), "w": "2020-01-03T12:00:00"},
        {"v": Decimal("7"), "w": None},
    ]


def test_a_later_run_adds_columns_and_widens_types(tmp_path, db_url, make_settings, engine_of):
    src = tmp_path / "src"
    write_csv(src / "q1" / "sales.csv", ["id", "amount"], [["1", "10"]])
    run_load(make_settings, src, db_url)
    write_csv(src / "q2" / "sales.csv", ["id", "amount", "region"], [["2", "n/a", "north"]])
    report = run_load(make_settings, src, db_url)
    assert any("region" in change for change in report.schema_changes)
    rows = read_table(engine_of(db_url), "sales", order_by="id", columns=["id", "amount", "region"])
    assert rows == [{"id": 1, "amount": "10", "region": None}, {"id": 2, "amount": "n/a", "region": "north"}]


def test_ledger_records_every_file(tmp_path, db_url, make_settings, engine_of):
    epc_like(tmp_path / "src")
    report = run_load(make_settings, tmp_path / "src", db_url)
    entries = ledger_rows(engine_of(db_url))
    assert set(entries) == {f.path for f in report.files}
    entry = entries["a-north/certificates.csv"]
    assert entry["status"] == "loaded" and entry["table_name"] == "certificates" and entry["rows_loaded"] == 2
    assert entry["content_hash"].startswith("sha256:") and entry["size"] > 0
    assert entry["started_at"] <= entry["finished_at"] and entry["run_id"] == report.run_id


def test_full_refresh_reloads_everything(tmp_path, db_url, make_settings, engine_of):
    epc_like(tmp_path / "src")
    run_load(make_settings, tmp_path / "src", db_url)
    report = run_load(make_settings, tmp_path / "src", db_url, full_refresh=True)
    assert len(report.loaded) == 4
    assert count(engine_of(db_url), "certificates") == 4


def test_infer_types_off_stages_text(tmp_path, db_url, make_settings, engine_of):
    write_csv(tmp_path / "src" / "t.csv", ["n"], [["1"], ["2"]])
    run_load(make_settings, tmp_path / "src", db_url, infer_types=False)
    from processor.staging.tables import reflect

    with engine_of(db_url).connect() as conn:
        assert reflect(conn, "t") == {"n": TEXT}


def test_a_rerun_skips_unchanged_compressed_files_and_zip_members(tmp_path, db_url, make_settings):
    import gzip
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv.gz").write_bytes(gzip.compress(b"id\n1\n2\n"))
    with zipfile.ZipFile(src / "dump.zip", "w") as archive:
        archive.writestr("q1/b.csv", "id\n3\n")
    first = run_load(make_settings, src, db_url)
    second = run_load(make_settings, src, db_url)
    assert [f.status for f in first.files] == ["loaded", "loaded"]
    assert [f.status for f in second.files] == ["skipped", "skipped"]
