"""Real public datasets our users load (EPC certificates, two small dirty sets), when they sit beside the clone."""

import csv
from pathlib import Path

import pytest
from helpers import count, lineage, read_table, run_load

from processor.staging.tables import reflect

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside this clone")


def csv_rows(path: Path, encoding: str = "utf-8") -> list[list[str]]:
    with path.open(newline="", encoding=encoding) as handle:
        return list(csv.reader(handle))[1:]


def test_epc_certificates_from_two_folders_into_one_table(db_url, make_settings, engine_of):
    epc = SHARED / "epc"
    report = run_load(
        make_settings,
        epc,
        db_url,
        src_file_name=("certificates.csv", "hartlepool-filtered/test.csv"),
        dest_table="certificates",
        null_values=("NODATA!", "NO DATA!", "N/A", "INVALID!"),
    )
    assert report.exit_code == 0, report.lines()
    charnwood = csv_rows(epc / "domestic-E07000130-Charnwood" / "certificates.csv")
    hartlepool = csv_rows(epc / "hartlepool-filtered" / "test.csv")
    engine = engine_of(db_url)
    assert count(engine, "certificates") == len(charnwood) + len(hartlepool) == 3405
    assert report.rows_rejected == 0
    with engine.connect() as conn:
        types = reflect(conn, "certificates")
    assert types["lmk_key"].kind == "text"  # 30+ digits: beyond 64 bits
    assert types["lodgement_date"].kind == "date" and types["lodgement_datetime"].kind == "timestamp"
    keys = {row["lmk_key"] for row in read_table(engine, "certificates", columns=["lmk_key"])}
    assert keys == {row[0] for row in charnwood + hartlepool}


def test_optima_crlf_files_with_null_markers(db_url, make_settings, engine_of):
    folder = SHARED / "optima" / "source-data"
    report = run_load(make_settings, folder, db_url, null_values=("null",))
    assert report.exit_code == 0 and report.rows_rejected == 0
    engine = engine_of(db_url)
    assert count(engine, "results") == len(csv_rows(folder / "results.csv"))
    assert count(engine, "results", "WHERE position IS NULL") == 376
    names = {r["name"] for r in read_table(engine, "races", columns=["name"])}
    assert "São Paulo Grand Prix" in names


def test_provectus_hundred_one_row_files_with_spaces_in_the_header(db_url, make_settings, engine_of):
    folder = SHARED / "provectus" / "02-src-data"
    report = run_load(make_settings, folder, db_url, dest_table="users", load_workers=2)
    assert len(report.loaded) == 100
    rows = read_table(engine_of(db_url), "users", columns=["first_name", "last_name", "birthts", "_source_file"])
    assert len(rows) == 100
    assert {r["_source_file"] for r in rows} == {lineage(folder, p.name) for p in folder.glob("*.csv")}
