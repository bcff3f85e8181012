"""Where every row came from: a file is known by its source (folder, URL or SOURCE_NAME) and its path.

Loading a second folder never removes the rows of the first; a dump that moves keeps its name with
SOURCE_NAME; files gone from the source are listed and removed only when asked; a ledger written
when files were known by path alone is upgraded in place; a file deleted mid-run and a path of any
length never leave the ledger saying `failed` for ever. On SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa
from conftest import SHARED_DATA
from helpers import count, lineage, meddle_mid_run, read_table, write_csv
from test_cli import run_index

from processor import ledger
from processor.config import Settings
from processor.db import create_engine, dialect_family
from processor.schema import ColumnType
from processor.staging.files import HashingReader
from processor.staging.loader import load
from processor.staging.tables import table_object
from processor.status import ledger_status

HEADER = ["lmk_key", "energy"]


def env_for(folder, db_url: str, **extra: str) -> dict[str, str]:
    return {"SRC_DATA_FOLDER": str(folder), "DEST_SQL": db_url, "LOAD_WORKERS": "1", **extra}


def ledger_of(engine) -> list[tuple]:
    """(source, path, lineage, status, rows_loaded) of every ledger entry, sorted."""
    rows = read_table(engine, "_processor_files")
    found = [(r["source"], r["path"], r["lineage"], r["status"], r["rows_loaded"]) for r in rows]
    return sorted(found, key=lambda entry: (entry[0] or "", entry[1]))


def energy_by_lineage(engine, table: str = "certificates") -> list[tuple]:
    return sorted((r["_source_file"], r["lmk_key"], r["energy"]) for r in read_table(engine, table))


def test_a_second_folder_never_removes_the_rows_of_the_first(tmp_path, db_url, engine_of):
    north = write_csv(tmp_path / "north" / "certificates.csv", HEADER, [["n1", "A"], ["n2", "B"]]).parent
    south = write_csv(tmp_path / "south" / "certificates.csv", HEADER, [["s1", "C"]]).parent
    for folder in (north, south):
        done = run_index(tmp_path, "load", env=env_for(folder, db_url, DEST_TABLE="certificates"))
        assert done.returncode == 0, done.stderr
        assert "files: 1 loaded, 0 skipped" in done.stdout
    engine = engine_of(db_url)
    north_file, south_file = lineage(north, "certificates.csv"), lineage(south, "certificates.csv")
    assert energy_by_lineage(engine) == [(north_file, "n1", "A"), (north_file, "n2", "B"), (south_file, "s1", "C")]
    assert ledger_of(engine) == [
        (north.as_posix(), "certificates.csv", north_file, "loaded", 2),
        (south.as_posix(), "certificates.csv", south_file, "loaded", 1),
    ]
    # each folder again: unchanged, nothing twice; a changed north replaces north's rows and no others
    assert (
        "0 loaded, 1 skipped"
        in run_index(tmp_path, "load", env=env_for(south, db_url, DEST_TABLE="certificates")).stdout
    )
    write_csv(north / "certificates.csv", HEADER, [["n3", "D"]])
    done = run_index(tmp_path, "load", env=env_for(north, db_url, DEST_TABLE="certificates"))
    assert done.returncode == 0 and "1 loaded" in done.stdout, done.stderr
    assert energy_by_lineage(engine) == [(north_file, "n3", "D"), (south_file, "s1", "C")]


def test_a_file_routed_to_another_table_moves_there_and_says_so(tmp_path, db_url, engine_of):
    folder = write_csv(tmp_path / "north" / "certificates.csv", HEADER, [["n1", "A"], ["n2", "B"]]).parent
    assert run_index(tmp_path, "load", env=env_for(folder, db_url, DEST_TABLE="first")).returncode == 0
    done = run_index(tmp_path, "load", env=env_for(folder, db_url, DEST_TABLE="second"))
    assert done.returncode == 0 and "1 loaded" in done.stdout, done.stderr
    assert "certificates.csv (first -> second)" in done.stderr and "their rows move" in done.stderr
    engine = engine_of(db_url)
    assert count(engine, "first") == 0 and count(engine, "second") == 2  # in one table, never in both or none
    assert [row[3] for row in ledger_of(engine)] == ["loaded"]


def test_source_name_follows_a_dump_that_moves_and_gone_files_are_removed_only_when_asked(tmp_path, db_url, engine_of):
    q1, q2 = tmp_path / "2024-q1", tmp_path / "2024-q2"
    write_csv(q1 / "certificates.csv", HEADER, [["a", "A"], ["b", "B"]])
    write_csv(q1 / "recommendations.csv", ["lmk_key", "item"], [["a", "1"]])
    write_csv(q2 / "certificates.csv", HEADER, [["a", "A+"], ["b", "B"], ["c", "C"]])
    assert run_index(tmp_path, "load", env=env_for(q1, db_url, SOURCE_NAME="epc")).returncode == 0

    done = run_index(tmp_path, "load", env=env_for(q2, db_url, SOURCE_NAME="epc"))
    assert done.returncode == 0, done.stderr
    assert "gone from the source: 1 file(s), their 1 row(s) kept (REMOVE_GONE=1 removes them)" in done.stdout
    engine = engine_of(db_url)
    # the new dump's file replaced the old one's rows: same source, same path
    named = "epc/certificates.csv"
    assert energy_by_lineage(engine) == [(named, "a", "A+"), (named, "b", "B"), (named, "c", "C")]
    assert count(engine, "recommendations") == 1
    assert ledger_of(engine) == [
        ("epc", "certificates.csv", named, "loaded", 3),
        ("epc", "recommendations.csv", "epc/recommendations.csv", "gone", 1),
    ]
    status = run_index(tmp_path, "status", env=env_for(q2, db_url, SOURCE_NAME="epc"))
    assert status.returncode == 0, status.stdout
    assert (
        "gone from the source" in status.stdout
        and "epc/recommendations.csv: 1 row(s) in recommendations" in status.stdout
    )

    done = run_index(tmp_path, "load", env=env_for(q2, db_url, SOURCE_NAME="epc", REMOVE_GONE="1"))
    assert done.returncode == 0, done.stderr
    assert "gone from the source: 1 file(s), their 1 row(s) removed" in done.stdout
    assert count(engine, "recommendations") == 0 and count(engine, "certificates") == 3
    assert ledger_of(engine) == [("epc", "certificates.csv", named, "loaded", 3)]
    settings = Settings.from_env(env_for(q2, db_url, SOURCE_NAME="epc"))
    assert ledger_status(engine, settings).gone == []


# The ledger as processor wrote it before files were known by their source: keyed by path alone
# (frozen here, as the upgrade must read what earlier versions left in users' databases).
OLD = sa.MetaData()
OLD_FILES = sa.Table(
    "_processor_files",
    OLD,
    sa.Column("path", sa.String(700), primary_key=True),
    sa.Column("table_name", sa.String(128)),
    sa.Column("size", sa.BigInteger),
    sa.Column("content_hash", sa.String(128)),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False, default=0),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False, default=0),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.DateTime),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("run_id", sa.String(36)),
    mysql_charset="utf8mb4",
)
OLD_REJECTS = sa.Table(
    "_processor_rejects",
    OLD,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("path", sa.String(700), nullable=False, index=True),
    sa.Column("content_hash", sa.String(128)),
    sa.Column("line", sa.BigInteger),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.Text),
    sa.Column("run_id", sa.String(36)),
    sa.Column("created_at", sa.DateTime),
    mysql_charset="utf8mb4",
)


def write_old_ledger(engine, folder) -> None:
    """What a run of the earlier version left: rows stamped with bare paths, the ledger keyed by them."""
    text = ColumnType("text")  # staging tables are made as they always were (with PostgreSQL's lineage default)
    staged = table_object("certificates", {"lmk_key": text, "energy": text}, dialect_family(engine))
    with engine.begin() as conn:
        OLD.create_all(conn)
        staged.create(conn)
        conn.execute(
            sa.insert(staged),
            [
                {"lmk_key": "a", "energy": "A", "_source_file": "certificates.csv"},
                {"lmk_key": "b", "energy": "B", "_source_file": "certificates.csv"},
                {"lmk_key": "o", "energy": "old", "_source_file": "sub/other.csv"},
            ],
        )
        entry = {
            "table_name": "certificates",
            "status": "loaded",
            "rows_rejected": 0,
            "run_id": "old-run",
            "error": None,
        }
        conn.execute(
            sa.insert(OLD_FILES),
            [
                {
                    "path": "certificates.csv",
                    "size": (folder / "certificates.csv").stat().st_size,
                    "content_hash": fingerprint(folder / "certificates.csv"),
                    "rows_loaded": 2,
                    **entry,
                },
                {
                    "path": "sub/other.csv",
                    "size": 1,
                    "content_hash": "sha256:old",
                    "rows_loaded": 1,
                    **entry,
                    "rows_rejected": 1,
                },
                {
                    **entry,
                    "path": "elsewhere.csv",
                    "size": 1,
                    "content_hash": None,
                    "rows_loaded": 0,
                    "status": "failed",
                    "error": "bad",
                },
            ],
        )
        conn.execute(sa.insert(OLD_REJECTS), [{"path": "sub/other.csv", "line": 3, "reason": "old reject", "raw": "x"}])


def fingerprint(path) -> str:
    with path.open("rb") as raw:
        reader = HashingReader(raw)
        reader.drain()
        return reader.fingerprint


def test_a_ledger_keyed_by_path_is_upgraded_in_place_and_its_files_adopted(tmp_path, db_url, engine_of, make_settings):
    folder = write_csv(tmp_path / "north" / "certificates.csv", HEADER, [["a", "A"], ["b", "B"]]).parent
    write_csv(folder / "sub" / "other.csv", HEADER, [["o", "new"]])
    engine = engine_of(db_url)
    write_old_ledger(engine, folder)

    done = run_index(tmp_path, "load", env=env_for(folder, db_url, DEST_TABLE="certificates"))
    assert done.returncode == 0, done.stderr
    assert "files: 1 loaded, 1 skipped" in done.stdout  # certificates.csv is unchanged: not loaded twice
    new = lineage(folder, "sub/other.csv")
    assert energy_by_lineage(engine) == sorted(
        [
            ("certificates.csv", "a", "A"),  # adopted rows keep the lineage they were loaded with
            ("certificates.csv", "b", "B"),
            (new, "o", "new"),  # the changed file replaced its old row, found by its old lineage
        ]
    )
    assert ledger_of(engine) == [
        (None, "elsewhere.csv", "elsewhere.csv", "failed", 0),  # never listed again: still of no known source
        (folder.as_posix(), "certificates.csv", "certificates.csv", "loaded", 2),
        (folder.as_posix(), "sub/other.csv", new, "loaded", 1),
    ]
    assert read_table(engine, "_processor_rejects") == []  # the old version's reject went with its rows
    columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("_processor_rejects")}
    wide = 700 if db_url.startswith("sqlite") else None  # a SQLite VARCHAR has no limit to lift
    assert "file_key" in columns and getattr(columns["path"], "length", None) == wide

    # from now on another folder's certificates.csv is another file
    south = write_csv(tmp_path / "south" / "certificates.csv", HEADER, [["s", "S"]]).parent
    assert load(make_settings(src_data_folder=str(south), dest_sql=db_url, dest_table="certificates")).exit_code == 0
    assert count(engine, "certificates") == 4
    again = load(make_settings(src_data_folder=str(folder), dest_sql=db_url, dest_table="certificates"))
    assert [f.status for f in again.files] == ["skipped", "skipped"]


@pytest.mark.parametrize("when", ["after the listing", "after the profile"])
def test_a_file_deleted_mid_run_is_gone_not_failed_for_ever(when, tmp_path, db_url, make_settings, monkeypatch):
    src = tmp_path / "src"
    write_csv(src / "keep.csv", HEADER, [["k", "K"]])
    doomed = write_csv(src / "doomed.csv", HEADER, [["d", "D"]])
    meddle_mid_run(monkeypatch, when, "doomed.csv", doomed.unlink)
    settings = make_settings(src_data_folder=str(src), dest_sql=db_url, dest_table="certificates")
    report = load(settings)
    assert {f.path: f.status for f in report.files} == {"doomed.csv": "gone", "keep.csv": "loaded"}
    assert report.exit_code == 0
    engine = create_engine(db_url)
    try:
        assert energy_by_lineage(engine) == [(lineage(src, "keep.csv"), "k", "K")]
        assert [(e.path, e.status) for e in sorted(ledger.read(engine).values(), key=lambda e: e.path)] == [
            ("doomed.csv", "gone"),
            ("keep.csv", "loaded"),
        ]
        status = ledger_status(engine, settings)
        assert status.exit_code == 0 and [e.path for e in status.gone] == ["doomed.csv"]
        monkeypatch.undo()
        load(settings.replace(remove_gone=True))
        assert [e.path for e in ledger.read(engine).values()] == ["keep.csv"]
    finally:
        engine.dispose()


def test_a_failed_file_deleted_since_is_listed_gone_and_status_exits_0(tmp_path, db_url, make_settings, engine_of):
    src = tmp_path / "src"
    write_csv(src / "good.csv", HEADER, [["g", "G"]])
    write_csv(src / "bad.csv", HEADER, [["x", "y", "z"]])
    settings = make_settings(src_data_folder=str(src), dest_sql=db_url, max_errors=0)
    assert load(settings).exit_code == 1
    engine = engine_of(db_url)
    assert ledger_status(engine, settings).exit_code == 1
    (src / "bad.csv").unlink()
    status = ledger_status(engine, settings)
    assert status.exit_code == 0 and status.not_in == []
    assert f"  {lineage(src, 'bad.csv')}: 0 row(s) in bad" in status.lines()


def test_a_path_longer_than_700_characters_loads_and_is_listed(tmp_path, db_url, engine_of, make_settings):
    deep = tmp_path / "src" / ("a" * 200) / ("b" * 200) / ("c" * 200) / ("d" * 100)
    relative = f"{'a' * 200}/{'b' * 200}/{'c' * 200}/{'d' * 100}/certificates.csv"
    write_csv(deep / "certificates.csv", HEADER, [["l", "L"], ["bad", "row", "extra"]])
    settings = make_settings(src_data_folder=str(tmp_path / "src"), dest_sql=db_url, dest_table="certificates")
    assert load(settings).exit_code == 0
    engine = engine_of(db_url)
    assert energy_by_lineage(engine) == [(lineage(tmp_path / "src", relative), "l", "L")]
    [entry] = read_table(engine, "_processor_files")
    assert (entry["path"], entry["status"], entry["rows_rejected"]) == (relative, "loaded", 1)
    assert [r["path"] for r in read_table(engine, "_processor_rejects")] == [relative]
    assert [f.status for f in load(settings).files] == ["skipped"]
    status = ledger_status(engine, settings)
    assert status.exit_code == 0 and "  certificates: 1 rows from 1 file(s), 1 rejected" in status.lines()


EPC = SHARED_DATA / "epc"


@pytest.mark.skipif(not EPC.is_dir(), reason="the shared EPC samples are not here (a user's clone has none)")
def test_charnwood_then_hartlepool_into_one_table_keeps_both(tmp_path, db_url, engine_of):
    charnwood = tmp_path / "domestic-E07000130-Charnwood"
    hartlepool = tmp_path / "domestic-E06000001-Hartlepool"
    charnwood.mkdir()
    hartlepool.mkdir()
    shutil.copy(EPC / "domestic-E07000130-Charnwood" / "certificates.csv", charnwood / "certificates.csv")
    shutil.copy(EPC / "hartlepool-filtered" / "test.csv", hartlepool / "certificates.csv")
    for folder in (charnwood, hartlepool):
        env = env_for(folder, db_url, SRC_FILE_NAME="certificates.csv", DEST_TABLE="certificates", LOAD_WORKERS="2")
        done = run_index(tmp_path, "load", env=env)
        assert done.returncode == 0 and "1 loaded" in done.stdout, done.stderr
    engine = engine_of(db_url)
    with engine.connect() as conn:
        per_file = dict(conn.execute(sa.text("SELECT _source_file, COUNT(*) FROM certificates GROUP BY 1")).all())
        authorities = dict(conn.execute(sa.text("SELECT local_authority, COUNT(*) FROM certificates GROUP BY 1")).all())
    assert per_file == {lineage(charnwood, "certificates.csv"): 1000, lineage(hartlepool, "certificates.csv"): 2405}
    assert authorities.get("E07000130") == 1000  # Charnwood's rows are all still there
    assert sorted((r[1], r[3], r[4]) for r in ledger_of(engine)) == [
        ("certificates.csv", "loaded", 1000),
        ("certificates.csv", "loaded", 2405),
    ]
