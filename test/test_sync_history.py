"""From staged CSVs to Pipedrive on every database: keys as written, the sync history, status, and the dry run."""

from __future__ import annotations

import json
import os
import signal

import pytest
import sqlalchemy as sa
from helpers import ROOT, read_table, run_index, sample_copy, start_index, wait_until, write_csv

from processor.errors import ConfigError
from processor.pipedrive.fieldmap import parse_field_map
from processor.pipedrive.history import CHANGES_TABLE, RUNS_TABLE
from processor.pipedrive.sync import run_sync
from processor.staging.loader import load
from processor.status import ledger_status
from processor.transform import build_deals

TOKEN = "history-token"


def stage(tmp_path, settings, engine) -> None:
    """Customers 007 (Ann Lee), 7 (Bob Roe) and C-01; orders 007, 7 and SO-1001, one payment each."""
    src = tmp_path / "src"
    write_csv(
        src / "raw_customers.csv",
        ["id", "first_name", "last_name"],
        [["007", "Ann", "Lee"], ["7", "Bob", "Roe"], ["C-01", "Cy", "Doe"]],
    )
    orders = [
        ["007", "007", "2024-01-05", "completed"],
        ["7", "7", "2024-01-06", "completed"],
        ["SO-1001", "C-01", "2024-01-07", "returned"],
    ]
    write_csv(src / "raw_orders.csv", ["id", "user_id", "order_date", "status"], orders)
    write_csv(src / "raw_payments.csv", ["id", "order_id", "amount"], [[1, "007", "10.00"], [2, "7", "2500.00"], [3, "SO-1001", "30.00"]])  # fmt: skip
    staged = settings.replace(src_data_folder=str(src))
    assert load(staged, engine).exit_code == 0
    build_deals(staged, engine)


def test_the_sync_keeps_keys_as_written_and_records_each_run_on_every_database(
    tmp_path, db_url, make_settings, engine_of, pipedrive_fake
):
    fake = pipedrive_fake(token=TOKEN)
    settings = make_settings(dest_sql=db_url, pipedrive_api_key=TOKEN, pipedrive_base_url=fake.url)
    engine = engine_of(db_url)
    stage(tmp_path, settings, engine)

    report = run_sync(settings, engine)
    assert report.exit_code == 0 and report.history is None, report.lines()
    code = {
        entity: fake.field_code(entity, name) for entity, name in (("persons", "customer_id"), ("deals", "order_id"))
    }
    persons = {p["custom_fields"][code["persons"]]: p for p in fake.persons()}
    deals = {d["custom_fields"][code["deals"]]: d for d in fake.deals()}
    assert {key: p["name"] for key, p in persons.items()} == {"007": "Ann Lee", "7": "Bob Roe", "C-01": "Cy Doe"}
    assert {key: (d["person_id"], d["value"]) for key, d in deals.items()} == {
        "007": (persons["007"]["id"], 10.0),
        "7": (persons["7"]["id"], 3000.0),
        "SO-1001": (persons["C-01"]["id"], 30.0),
    }

    [run] = read_table(engine, RUNS_TABLE)
    assert (run["persons_created"], run["deals_created"], run["exit_code"], run["requests"]) == (3, 3, 0, 13)
    assert run["mode"] == "archived=skip; removed=keep; default fields" and run["tokens"] == 2 * 15 + 40 + 6 * 5
    changes = read_table(engine, CHANGES_TABLE, order_by="id")
    assert sorted((c["entity"], c["record_key"], c["action"]) for c in changes) == [
        ("deal", "007", "created"), ("deal", "7", "created"), ("deal", "SO-1001", "created"),
        ("person", "007", "created"), ("person", "7", "created"), ("person", "C-01", "created"),
    ]  # fmt: skip
    by_key = {(c["entity"], c["record_key"]): c for c in changes}
    assert by_key["deal", "7"]["pipedrive_id"] == deals["7"]["id"] and by_key["deal", "7"]["run_id"] == run["id"]
    assert json.loads(by_key["deal", "7"]["fields"]) == {
        "title": [None, "Roe Bob"],
        "value": [None, "3000.00"],
        "currency": [None, "EUR"],
        "person": [None, "7"],
    }

    fake.clear_log()
    again = run_sync(settings, engine)
    assert fake.writes() == [] and again.deals.unchanged == 3
    runs = read_table(engine, RUNS_TABLE, order_by="id")
    assert [(r["deals_created"], r["deals_unchanged"]) for r in runs] == [(3, 0), (0, 3)]
    assert len(read_table(engine, CHANGES_TABLE)) == 6  # an unchanged record is not a change

    lines = ledger_status(engine).lines()
    last = lines.index(next(line for line in lines if line.startswith("last sync: ")))
    assert "exit 0 (archived=skip; removed=keep; default fields)" in lines[last]
    assert lines[last + 1 : last + 3] == [
        "  persons: 0 created, 0 updated, 3 unchanged",
        "  deals: 0 created, 0 updated, 3 unchanged",
    ]
    assert ledger_status(engine).to_dict()["last_sync"]["deals_unchanged"] == 3


def test_a_bad_map_is_recorded_as_a_failed_run(tmp_path, make_settings, engine_of, pipedrive_fake):
    fake = pipedrive_fake(token=TOKEN)
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    settings = make_settings(dest_sql=url, pipedrive_api_key=TOKEN, pipedrive_base_url=fake.url)
    engine = engine_of(url)
    stage(tmp_path, settings, engine)
    bad = settings.replace(sync_field_map=parse_field_map('{"deal": {"stage": {"value": 2}}}'))
    with pytest.raises(ConfigError, match="deal.stage: no such deal field"):
        run_sync(bad, engine)
    [run] = read_table(engine, RUNS_TABLE)
    assert run["exit_code"] == 2 and "deal.stage" in run["error"] and fake.writes() == []


def test_the_view_dates_are_dates_on_every_database(tmp_path, db_url, make_settings, engine_of, pipedrive_fake):
    """SQLite hands a date column back as text: a date mapped to an amount must still stop before any write."""
    fake = pipedrive_fake(token=TOKEN)
    settings = make_settings(dest_sql=db_url, pipedrive_api_key=TOKEN, pipedrive_base_url=fake.url)
    engine = engine_of(db_url)
    stage(tmp_path, settings, engine)
    bad = settings.replace(sync_field_map=parse_field_map('{"deal": {"value": "order_date"}}'))
    with pytest.raises(ConfigError, match="deal.value: type mismatch: column order_date holds date values"):
        run_sync(bad, engine)
    assert fake.writes() == []

    dated = settings.replace(sync_field_map=parse_field_map('{"deal": {"expected_close_date": "order_date"}}'))
    assert run_sync(dated, engine).exit_code == 0
    code = fake.field_code("deals", "order_id")
    assert {d["custom_fields"][code]: d["expected_close_date"] for d in fake.deals()} == {
        "007": "2024-01-05",
        "7": "2024-01-06",
        "SO-1001": "2024-01-07",
    }
    fake.clear_log()
    assert run_sync(dated, engine).exit_code == 0 and fake.writes() == []


def test_a_whole_number_key_keeps_its_text_when_the_id_column_turns_to_text(
    tmp_path, db_url, make_settings, engine_of, pipedrive_fake
):
    """Order ids 10.5 and 20 stage as numbers (SQLite and MariaDB return 20.0); once an id such as SO-1
    turns the column to text, order 20 is still the deal keyed 20: nothing is created twice."""
    fake = pipedrive_fake(token=TOKEN)
    src = tmp_path / "src"
    settings = make_settings(
        dest_sql=db_url, pipedrive_api_key=TOKEN, pipedrive_base_url=fake.url, src_data_folder=str(src)
    )
    engine = engine_of(db_url)
    write_csv(src / "raw_customers.csv", ["id", "first_name", "last_name"], [["1", "Ann", "Lee"], ["2", "Bob", "Roe"]])
    write_csv(src / "raw_payments.csv", ["id", "order_id", "amount"], [[1, "10.5", "10.00"], [2, "20", "20.00"]])
    orders = [["10.5", "1", "2024-01-05", "completed"], ["20", "2", "2024-01-06", "completed"]]
    code = None
    for more in ([], [["SO-1", "2", "2024-01-07", "completed"]]):
        write_csv(src / "raw_orders.csv", ["id", "user_id", "order_date", "status"], orders + more)
        assert load(settings, engine).exit_code == 0
        build_deals(settings, engine)
        assert run_sync(settings, engine).exit_code == 0
        code = code or fake.field_code("deals", "order_id")
        assert sorted(d["custom_fields"][code] for d in fake.deals()) == sorted(["10.5", "20", *(m[0] for m in more)])


def test_a_dry_run_loads_nothing_and_lists_every_planned_record(tmp_path, pipedrive_fake):
    fake = pipedrive_fake(token=TOKEN)
    env = {"PIPEDRIVE_API_KEY": TOKEN, "PIPEDRIVE_BASE_URL": fake.url, "LOAD_WORKERS": "1"}
    env["SRC_DATA_FOLDER"] = str(sample_copy(tmp_path))  # the bundled sample itself never syncs
    assert run_index(tmp_path, "load", env=env).returncode == 0  # staged, no view built yet
    summary = tmp_path / "summary.json"
    dry = run_index(tmp_path, env={**env, "SYNC_DRY_RUN": "1", "SUMMARY_JSON": str(summary)})
    assert dry.returncode == 0, dry.stderr
    assert fake.writes() == []
    assert "load and transform: skipped, SYNC_DRY_RUN=1 plans from what is already staged" in dry.stdout
    data = json.loads(summary.read_text())
    assert data["load"] is None and data["transform"] is None
    planned = data["sync"]["changes"]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'processor.db'}")
    assert not sa.inspect(engine).has_table("deals")  # planned from what is staged; nothing built
    assert run_index(tmp_path, "transform", env=env).returncode == 0
    with engine.connect() as conn:
        view = conn.execute(sa.text("SELECT order_id, title FROM deals")).all()
    engine.dispose()
    assert sorted(c["key"] for c in planned if c["entity"] == "deal") == sorted(str(o) for o, _ in view)
    assert {c["action"] for c in planned} == {"create"}
    first = next(c for c in planned if c["entity"] == "deal" and c["key"] == str(view[0][0]))
    assert first["fields"]["title"] == [None, view[0][1]]
    assert f"planned changes ({len(planned)}):" in dry.stdout
    assert f"  create deal {view[0][0]}: title: - -> {json.dumps(view[0][1], ensure_ascii=False)}" in dry.stdout
    assert "last sync: none recorded" in run_index(tmp_path, "status", env=env).stdout  # a dry run is not recorded

    assert run_index(tmp_path, "sync", env=env).returncode == 0
    status = run_index(tmp_path, "status", env=env).stdout
    assert f"  deals: {len(view)} created, 0 updated, 0 unchanged" in status and TOKEN not in status


def test_a_sync_stopped_by_sigterm_records_what_it_wrote(tmp_path, pipedrive_fake):
    """SIGTERM mid-sync (docker stop) was recorded as a run that wrote nothing (0 created, no changes) while
    Pipedrive held what it had created, and the summary said files were rolled back. Now the history holds
    each record written before the stop."""
    fake = pipedrive_fake(token=TOKEN, write_latency=0.2)
    env = {"PIPEDRIVE_API_KEY": TOKEN, "PIPEDRIVE_BASE_URL": fake.url, "LOAD_WORKERS": "1", "PROGRESS": "0"}
    env["SRC_DATA_FOLDER"] = str(sample_copy(tmp_path))
    env["DEST_SQL"] = f"sqlite:///{tmp_path / 'processor.db'}"
    assert run_index(tmp_path, "load", env=env).returncode == 0
    assert run_index(tmp_path, "transform", env=env).returncode == 0
    run = start_index("sync", {**env, "PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"]})
    wait_until(lambda: len(fake.writes()) >= 8, timeout=60, what="some writes")
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 143, out + err
    assert "rolled back" not in out + err  # nothing is rolled back in Pipedrive
    created = {name: len(fake.collections[name].records) for name in ("persons", "deals")}
    assert 0 < sum(created.values()) < 100  # stopped part-way
    engine = sa.create_engine(env["DEST_SQL"])
    try:
        [last] = read_table(engine, RUNS_TABLE)
        changes = read_table(engine, CHANGES_TABLE)
    finally:
        engine.dispose()
    assert last["exit_code"] == 143 and last["error"] == "stopped by signal 15"
    assert (last["persons_created"], last["deals_created"]) == (created["persons"], created["deals"])
    assert sum(c["action"] == "created" for c in changes) == sum(created.values())
