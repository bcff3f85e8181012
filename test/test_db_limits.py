"""A database limit or a name clash fails that one file, never the run, on SQLite, PostgreSQL and MySQL: the file is
recorded failed with one line naming the limit, the clash or the privilege and the fix, and the other files load."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import count, ledger_rows, read_table, run_index, run_load, write_bytes
from test_hostile import backend_of

from processor import ledger
from processor.db import create_engine, normalise_url
from processor.errors import ConfigError, DatabaseError
from processor.pipeline import run
from processor.staging.plan import name_clash

WIDER_THAN_ALLOWED = {"sqlite": 2100, "postgres": 1700, "mysql": 1700}
SHOP = {
    "raw_customers.csv": b"id,first_name,last_name\n1,Ann,Lee\n",
    "raw_orders.csv": b"id,user_id,order_date,status\n10,1,2020-01-01,completed\n",
    "raw_payments.csv": b"id,order_id,payment_method,amount\n1,10,card,10.50\n",
}
DEALS_CSV = b"id,note\n1,a\n2,b\n3,c\n"


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        write_bytes(folder / name, data)
    return folder


def wide_csv(columns: int) -> bytes:
    header = ",".join(f"c{i}" for i in range(1, columns + 1))
    rows = [",".join(f"r{r}v{i}" for i in range(1, columns + 1)) for r in (1, 2)]
    return "\n".join([header, *rows, ""]).encode()


# ---------------------------------------------------------------- name clashes


def test_a_file_named_like_the_deals_view_fails_alone(tmp_path, db_url, make_settings, engine_of):
    folder = write_files(tmp_path / "src", SHOP)
    settings = make_settings(src_data_folder=str(folder), dest_sql=db_url)
    assert run(settings, "all").exit_code == 0  # the deals view exists now
    write_files(folder, {"deals.csv": DEALS_CSV, "notes.csv": b"id,note\n1,x\n"})
    report = run(settings, "all").load
    assert report.exit_code == 1
    outcome = {f.path: (f.status, f.error) for f in report.files}
    assert outcome["notes.csv"] == ("loaded", None)
    status, error = outcome["deals.csv"]
    assert status == "failed" and "deals view (DEALS_VIEW=deals)" in error and "\n" not in error
    engine = engine_of(db_url)
    assert ledger_rows(engine)["deals.csv"]["status"] == "failed"
    assert "deals" in sa.inspect(engine).get_view_names()  # the view is untouched


def test_a_staged_table_is_never_replaced_by_the_deals_view(tmp_path, db_url, make_settings, engine_of):
    """The other order: deals.csv staged under another DEALS_VIEW, then a build with DEALS_VIEW=deals."""
    folder = write_files(tmp_path / "src", {**SHOP, "deals.csv": DEALS_CSV})
    elsewhere = make_settings(src_data_folder=str(folder), dest_sql=db_url, deals_view="shop_deals")
    assert run(elsewhere, "load").exit_code == 0
    engine = engine_of(db_url)
    assert count(engine, "deals") == 3
    settings = elsewhere.replace(deals_view="deals")
    with pytest.raises(ConfigError, match="deals is a staging table") as raised:
        run(settings, "transform")
    assert raised.value.exit_code == 2
    again = run(settings, "load").load  # and a later load says why it will not touch deals.csv
    assert [f.status for f in again.files if f.path == "deals.csv"] == ["failed"]
    assert count(engine, "deals") == 3 and "deals" in sa.inspect(engine).get_table_names()


def test_a_file_named_like_another_view_fails_alone(tmp_path, db_url, make_settings, engine_of):
    engine = engine_of(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE VIEW sales AS SELECT 1 AS x"))
    folder = write_files(tmp_path / "src", {"sales.csv": b"id\n1\n", "stock.csv": b"id\n2\n"})
    report = run_load(make_settings, folder, db_url)
    assert {f.path: f.status for f in report.files} == {"sales.csv": "failed", "stock.csv": "loaded"}
    assert "is the name of a view" in report.failed[0].error and report.exit_code == 1


def test_the_ledger_names_can_never_be_taken(tmp_path, db_url, make_settings, engine_of):
    folder = write_files(tmp_path / "src", {"_processor_files.csv": b"path,status\nx,y\n"})
    report = run_load(make_settings, folder, db_url, dest_table=None)
    assert report.exit_code == 0 and report.files[0].table == "processor_files"
    engine = engine_of(db_url)
    assert set(ledger_rows(engine)) == {"_processor_files.csv"}  # the ledger is the ledger
    assert read_table(engine, "processor_files", columns=["path", "status"]) == [{"path": "x", "status": "y"}]
    with pytest.raises(ConfigError, match="_processor are processor's own tables"):
        run_load(make_settings, folder, db_url, dest_table="_processor_rejects", full_refresh=True)
    assert (
        name_clash("_processor_files", "deals", [])
        and name_clash("Deals", "deals", [])
        and not name_clash("x", "deals", [])
    )


# ---------------------------------------------------------------- too many columns


def test_a_file_wider_than_the_database_allows_fails_alone(tmp_path, db_url, make_settings, engine_of):
    columns = WIDER_THAN_ALLOWED[backend_of(db_url)]
    folder = write_files(tmp_path / "src", {"wide.csv": wide_csv(columns), "narrow.csv": b"id\n1\n"})
    report = run_load(make_settings, folder, db_url)
    assert report.exit_code == 1
    outcome = {f.path: f for f in report.files}
    assert outcome["narrow.csv"].status == "loaded" and outcome["narrow.csv"].rows_loaded == 1
    wide = outcome["wide.csv"]
    assert wide.status == "failed" and f"{columns:,} columns" in wide.error and "WIDE_FILES=json" in wide.error
    assert "\n" not in wide.error
    engine = engine_of(db_url)
    assert ledger_rows(engine)["wide.csv"]["status"] == "failed"
    assert "wide" not in sa.inspect(engine).get_table_names()


def test_wide_files_json_keeps_the_columns_that_fit_and_the_rest_as_json(tmp_path, db_url, make_settings, engine_of):
    columns = WIDER_THAN_ALLOWED[backend_of(db_url)]
    folder = write_files(tmp_path / "src", {"wide.csv": wide_csv(columns)})
    report = run_load(make_settings, folder, db_url, wide_files="json")
    assert report.exit_code == 0, report.lines()
    assert report.files[0].rows_loaded == 2
    assert any("_more_columns (JSON)" in change for change in report.schema_changes)
    engine = engine_of(db_url)
    names = [c["name"] for c in sa.inspect(engine).get_columns("wide")]
    kept = [n for n in names if n.startswith("c")]
    assert kept == [f"c{i}" for i in range(1, len(kept) + 1)] and 10 < len(kept) < columns
    rows = read_table(engine, "wide", order_by="c1")
    for r, row in zip((1, 2), rows, strict=True):
        values = {name: row[name] for name in kept} | json.loads(row["_more_columns"])
        assert values == {f"c{i}": f"r{r}v{i}" for i in range(1, columns + 1)}
    # a changed version of the file in a later run folds the same way, its old rows replaced
    write_bytes(folder / "wide.csv", wide_csv(columns).replace(b"r2v", b"s2v"))
    report = run_load(make_settings, folder, db_url, wide_files="json")
    assert report.exit_code == 0 and count(engine, "wide") == 2
    again = read_table(engine, "wide", order_by="c1")[1]
    assert json.loads(again["_more_columns"])[f"c{columns}"] == f"s2v{columns}"


@pytest.mark.parametrize(
    ("kind", "value"),
    [("integer", lambda r, i: str(r * 100_000_000 + i)), ("text", lambda r, i: f"{r}-{i}".ljust(40, "x"))],
)
def test_wide_files_json_keeps_only_columns_whose_every_row_fits(
    tmp_path, db_url, make_settings, engine_of, kind, value
):
    """The columns kept are those any row of them fits, not only those the database lets a table declare:
    InnoDB creates a table of 991 BIGINTs beside two text columns, then refuses its rows, and values of up to
    40 bytes stay in the row whatever the text columns' declared size."""
    columns = WIDER_THAN_ALLOWED[backend_of(db_url)]
    header = ",".join(f"c{i}" for i in range(1, columns + 1))
    rows = [",".join(value(r, i) for i in range(1, columns + 1)) for r in (1, 2)]
    folder = write_files(tmp_path / "src", {"wide.csv": "\n".join([header, *rows, ""]).encode()})
    report = run_load(make_settings, folder, db_url, wide_files="json")
    assert report.exit_code == 0, report.lines()
    assert report.files[0].status == "loaded" and report.files[0].rows_loaded == 2
    engine = engine_of(db_url)
    kept = [c["name"] for c in sa.inspect(engine).get_columns("wide") if c["name"].startswith("c")]
    assert 10 < len(kept) < columns
    for r, row in zip((1, 2), read_table(engine, "wide", order_by="c1"), strict=True):
        values = {name: str(row[name]) for name in kept} | json.loads(row["_more_columns"])
        assert values == {f"c{i}": value(r, i) for i in range(1, columns + 1)}


@pytest.mark.parametrize("wide_files", ["fail", "json"])
def test_long_values_in_a_table_the_database_creates_are_folded_by_wide_files_json(
    tmp_path, db_url, make_settings, engine_of, wide_files
):
    """Fewer columns than the database's limit, so the table is created, but rows of long values too big for
    its page: WIDE_FILES=fail fails the file naming WIDE_FILES=json, which then loads it whole."""
    backend = backend_of(db_url)
    if backend == "sqlite":
        pytest.skip("SQLite has no row size limit")
    columns, length = {"postgres": (1000, 200), "mysql": (300, 40)}[backend]

    def value(r: int, i: int) -> str:
        return f"{r}-{i}".ljust(length, "x")

    header = ",".join(f"c{i}" for i in range(1, columns + 1))
    rows = [",".join(value(r, i) for i in range(1, columns + 1)) for r in (1, 2)]
    folder = write_files(tmp_path / "src", {"wide.csv": "\n".join([header, *rows, ""]).encode()})
    report = run_load(make_settings, folder, db_url, wide_files=wide_files)
    engine = engine_of(db_url)
    if wide_files == "fail":
        assert report.exit_code == 1 and report.files[0].status == "failed"
        assert "WIDE_FILES=json" in report.files[0].error and "\n" not in report.files[0].error
        return
    assert report.exit_code == 0, report.lines()
    assert report.files[0].rows_loaded == 2
    kept = [c["name"] for c in sa.inspect(engine).get_columns("wide") if c["name"].startswith("c")]
    assert 10 < len(kept) < columns
    for r, row in zip((1, 2), read_table(engine, "wide", order_by="c1"), strict=True):
        values = {name: row[name] for name in kept} | json.loads(row["_more_columns"])
        assert values == {f"c{i}": value(r, i) for i in range(1, columns + 1)}


# ---------------------------------------------------------------- a user without CREATE rights


@pytest.fixture
def limited_user(db_url, engine_of):
    """limited_user() -> the test's URL for a new user who may read and write but not create; dropped after."""
    backend = backend_of(db_url)
    if backend == "sqlite":
        pytest.skip("SQLite has no users or privileges")
    admin = engine_of(db_url)
    name, secret = f"u_{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex[:12]}"
    url = normalise_url(db_url)
    with admin.begin() as conn:
        if backend == "postgres":
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            conn.execute(sa.text(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{secret}'"))
            conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{name}"'))
        else:
            database = url.database
            for host in ("%", "localhost"):
                conn.execute(sa.text(f"CREATE USER '{name}'@'{host}' IDENTIFIED BY '{secret}'"))
                conn.execute(sa.text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{database}`.* TO '{name}'@'{host}'"))
    limited = url.set(username=name, password=secret).render_as_string(hide_password=False)

    def grant_tables(*tables: str) -> None:
        if backend == "postgres":
            with admin.begin() as conn:
                for table in tables:
                    conn.execute(sa.text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{table}" TO "{name}"'))
                conn.execute(sa.text(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{name}"'))

    yield limited, grant_tables
    from processor.db import release_engines

    release_engines()
    with admin.begin() as conn:
        if backend == "postgres":
            conn.execute(sa.text(f'DROP OWNED BY "{name}"'))
            conn.execute(sa.text(f'DROP ROLE "{name}"'))
        else:
            for host in ("%", "localhost"):
                conn.execute(sa.text(f"DROP USER '{name}'@'{host}'"))


def test_a_user_who_may_create_nothing_stops_the_run_at_once(tmp_path, limited_user, make_settings):
    url, _ = limited_user
    folder = write_files(tmp_path / "src", {"a.csv": b"id\n1\n"})
    with pytest.raises(DatabaseError) as raised:
        run_load(make_settings, folder, url)
    message = str(raised.value)
    assert raised.value.exit_code == 4 and "\n" not in message
    assert "ledger tables" in message and "grant" in message and normalise_url(url).password not in message


def test_the_command_run_by_a_user_who_may_create_nothing_says_to_grant_create(tmp_path, limited_user):
    """The run's lock records its holder in a table of ours: the first thing a run creates."""
    url, _ = limited_user
    folder = write_files(tmp_path / "src", {"a.csv": b"id\n1\n"})
    done = run_index(tmp_path, "load", env={"DEST_SQL": url, "SRC_DATA_FOLDER": str(folder), "LOAD_WORKERS": "1"})
    assert done.returncode == 4, done.stdout + done.stderr
    assert "needs CREATE" in done.stderr and "Traceback" not in done.stderr
    assert normalise_url(url).password not in done.stdout + done.stderr


def test_a_user_without_create_rights_fails_only_the_files_that_need_them(
    tmp_path, db_url, limited_user, make_settings, engine_of
):
    url, grant_tables = limited_user
    folder = write_files(tmp_path / "src", {"kept.csv": b"id,v\n1,a\n", "grown.csv": b"id\n1\n"})
    assert run_load(make_settings, folder, db_url).exit_code == 0  # the owner stages two tables
    grant_tables(ledger.FILES_TABLE, ledger.REJECTS_TABLE, "kept", "grown")
    write_files(
        folder,
        {
            "kept.csv": b"id,v\n1,a\n2,b\n",  # changed: its rows are replaced, which needs no CREATE
            "grown.csv": b"id,extra\n1,x\n",  # a new column: the table must change
            "new.csv": b"id\n7\n",  # a new table
        },
    )
    report = run_load(make_settings, folder, url)
    assert report.exit_code == 1
    outcome = {f.path: f for f in report.files}
    assert outcome["kept.csv"].status == "loaded" and outcome["kept.csv"].rows_loaded == 2
    for path in ("grown.csv", "new.csv"):
        assert outcome[path].status == "failed"
        assert "may not create or change table" in outcome[path].error and "grant" in outcome[path].error
    owner = engine_of(db_url)
    assert read_table(owner, "kept", order_by="id", columns=["id", "v"]) == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
    assert {p: r["status"] for p, r in ledger_rows(owner).items()} == {
        "kept.csv": "loaded",
        "grown.csv": "failed",
        "new.csv": "failed",
    }
    user = create_engine(url)
    try:
        assert "new" not in sa.inspect(user).get_table_names()
    finally:
        user.dispose()
