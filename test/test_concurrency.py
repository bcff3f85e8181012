"""One run at a time, and no file loaded twice: two real runs at once, the lock's timeout, two syncs at once,
and two library loads that bypass the lock (issue: safe to operate unattended)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import ROOT, index_env, ledger_rows, sample_copy, start_index, wait_until, write_csv

from processor import ledger
from processor.lock import Holder, destination_lock

ROWS = 3_000


def write_parts(folder: Path, numbers: range, version: int = 1, rows: int = ROWS) -> dict[str, tuple[int, int]]:
    """Files part-NN.csv; `version` changes their content and length. Returns {path: (rows, sum of ids)}."""
    expected = {}
    for number in numbers:
        count = rows + version * number  # a changed file has another length too
        ids = range(number * 100_000, number * 100_000 + count)
        write_csv(
            folder / f"part-{number:02d}.csv",
            ["id", "payload"],
            ([i, f"v{version} row {i}, quoted"] for i in ids),
        )
        expected[f"part-{number:02d}.csv"] = (count, sum(ids))
    return expected


def staged(engine: sa.Engine) -> dict[str, tuple[int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT _source_file, COUNT(*), SUM(id) FROM parts GROUP BY _source_file"))
        return {lineage.rsplit("/", 1)[-1]: (int(n), int(total)) for lineage, n, total in rows}


def versions(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return {row[0].split(" ")[0] for row in conn.execute(sa.text("SELECT DISTINCT payload FROM parts"))}


def summary(run: subprocess.CompletedProcess) -> tuple[int, int]:
    """(files loaded, files skipped) from a run's summary line."""
    line = next(line for line in run.stdout.splitlines() if line.startswith("files: "))
    loaded, skipped = re.match(r"files: (\d+) loaded, (\d+) skipped", line).groups()
    return int(loaded), int(skipped)


def two_at_once(step: str, env: dict[str, str], apart: float = 0.3) -> list[subprocess.CompletedProcess]:
    first = start_index(step, env)
    time.sleep(apart)
    second = start_index(step, env)
    done = []
    for run in (first, second):
        out, err = run.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(run.args, run.returncode, out, err))
    return done


@pytest.mark.slow
def test_two_runs_at_once_load_every_file_once(tmp_path, db_url, engine_of):
    """Started 0.3 s apart into one database and folder: the second waits for the first, then skips."""
    src = tmp_path / "src"
    expected = write_parts(src, range(5))
    env = index_env(src, db_url, DEST_TABLE="parts", LOAD_WORKERS="1", LOCK_TIMEOUT="120")
    engine = engine_of(db_url)
    runs = two_at_once("load", env)
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr and "IntegrityError" not in run.stderr
    assert sorted(summary(run) for run in runs) == [(0, 5), (5, 0)]  # one loaded all, the other waited
    assert staged(engine) == expected
    assert {p: (e["status"], e["rows_loaded"]) for p, e in ledger_rows(engine).items()} == {
        p: ("loaded", n) for p, (n, _) in expected.items()
    }
    # Changed files (other content, other lengths) and a new one, again two runs at once.
    expected = write_parts(src, range(2), version=2) | {p: v for p, v in expected.items() if p >= "part-02"}
    expected |= write_parts(src, range(5, 6), version=2)
    runs = two_at_once("load", env)
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert sorted(summary(run) for run in runs) == [(0, 6), (3, 3)]
    assert staged(engine) == expected
    assert {p: e["rows_loaded"] for p, e in ledger_rows(engine).items()} == {p: n for p, (n, _) in expected.items()}
    assert versions(engine) == {"v1", "v2"}
    status = subprocess.run(
        [sys.executable, str(ROOT / "index.py"), "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0 and f"{sum(n for n, _ in expected.values()):,} rows" in status.stdout


def test_a_run_that_cannot_get_the_lock_exits_7_naming_the_holder(tmp_path, db_url, engine_of):
    src = tmp_path / "src"
    write_parts(src, range(1), rows=10)
    env = index_env(src, db_url, DEST_TABLE="parts", LOAD_WORKERS="1", LOCK_TIMEOUT="1")
    engine = engine_of(db_url)
    with destination_lock(engine, timeout=0) as holder:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(ROOT / "index.py"), "load"], env=env, capture_output=True, text=True, timeout=60
        )
        waited = time.monotonic() - started
        status = subprocess.run(
            [sys.executable, str(ROOT / "index.py"), "status"], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 7, done.stderr
    assert f"host {socket.gethostname()}, pid {os.getpid()}, started {holder.started_at:%Y-%m-%d %H:%M:%S}" in (
        done.stderr
    )
    assert "LOCK_TIMEOUT" in done.stderr and "Traceback" not in done.stderr
    assert waited >= 1
    assert status.returncode == 0  # reading the ledger takes no lock
    assert not sa.inspect(engine).has_table("parts")  # nothing was written


def test_the_lock_is_per_schema_on_postgresql(tmp_path, postgres_url, engine_of):
    """Another schema of the same database is another destination: its run does not wait."""
    engine = engine_of(postgres_url)
    other = f"{sa.engine.make_url(postgres_url).query['options'].split('=')[1]}_b"
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{other}"')
    other_url = (
        sa.engine.make_url(postgres_url)
        .update_query_dict({"options": f"-csearch_path={other}"})
        .render_as_string(hide_password=False)
    )
    src = tmp_path / "src"
    expected = write_parts(src, range(1), rows=10)
    try:
        with destination_lock(engine, timeout=0):
            done = subprocess.run(
                [sys.executable, str(ROOT / "index.py"), "load"],
                env=index_env(src, other_url, DEST_TABLE="parts", LOAD_WORKERS="1", LOCK_TIMEOUT="0"),
                capture_output=True,
                text=True,
                timeout=60,
            )
        assert done.returncode == 0, done.stderr
        assert staged(engine_of(other_url)) == expected
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{other}" CASCADE')


@pytest.mark.slow
def test_two_syncs_at_once_create_nothing_twice(tmp_path, pipedrive_fake):
    fake = pipedrive_fake(token="sync-token")
    src = tmp_path / "jaffle"
    shutil.copytree(ROOT / "processor" / "sample_data", src)
    env = index_env(src, f"sqlite:///{tmp_path / 'deals.db'}", LOAD_WORKERS="1")
    built = subprocess.run([sys.executable, str(ROOT / "index.py")], env=env, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    with sa.create_engine(f"sqlite:///{tmp_path / 'deals.db'}").connect() as conn:
        orders = {str(row[0]) for row in conn.exec_driver_sql("SELECT order_id FROM deals")}
        customers = {str(row[0]) for row in conn.exec_driver_sql("SELECT DISTINCT customer_id FROM deals")}
    env |= {"PIPEDRIVE_API_KEY": "sync-token", "PIPEDRIVE_BASE_URL": fake.url, "LOCK_TIMEOUT": "120"}
    for run in two_at_once("sync", env, apart=0.1):
        assert run.returncode == 0, run.stderr
    for entity, key, wanted in (("persons", "customer_id", customers), ("deals", "order_id", orders)):
        fields = [f for f in fake.collections[entity].fields if f["is_custom_field"] and f["field_name"] == key]
        assert len(fields) == 1  # one key field, not one per run
        held = [str(record["custom_fields"][fields[0]["field_code"]]) for record in getattr(fake, entity)()]
        assert sorted(held) == sorted(wanted)  # each once


LIBRARY_LOAD = """
import json, os, sys, time
from processor import load_folder
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
report = load_folder(sys.argv[1], url=sys.argv[2], table="parts", workers=1, progress="off")
print(json.dumps({f.path: [f.status, f.error] for f in report.files}))
"""


def library_loads_at_once(src: Path, url: str, go: Path) -> list[dict]:
    """Two processes calling load_folder() on the same folder and database at the same moment (no run lock)."""
    go.unlink(missing_ok=True)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", LIBRARY_LOAD, str(src), url, str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(1.0)  # both are waiting for the signal
    go.touch()
    reports = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        assert "IntegrityError" not in err and "Traceback" not in err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


@pytest.mark.slow
def test_two_library_loads_that_bypass_the_lock_never_load_a_file_twice(tmp_path, db_url, engine_of):
    src = tmp_path / "src"
    expected = write_parts(src, range(5))
    engine = engine_of(db_url)
    reports = library_loads_at_once(src, db_url, tmp_path / "go")
    assert staged(engine) == expected
    assert {e["status"] for e in ledger_rows(engine).values()} == {ledger.LOADED}
    for path in expected:  # each file: loaded by one, and loaded or skipped by the other
        outcomes = sorted(report[path][0] for report in reports)
        assert "loaded" in outcomes and set(outcomes) <= {"loaded", "skipped"}, outcomes
    expected = write_parts(src, range(5), version=2)
    library_loads_at_once(src, db_url, tmp_path / "go")
    assert staged(engine) == expected
    assert versions(engine) == {"v2"}
    assert {p: e["rows_loaded"] for p, e in ledger_rows(engine).items()} == {p: n for p, (n, _) in expected.items()}


@pytest.mark.parametrize(
    "claim, skip",
    [
        (ledger.Claim("loaded", "parts", "sha256:a", "run-1"), True),  # another run put this content in
        (ledger.Claim("loaded", "parts", "sha256:a", "run-2"), False),  # this run's own row
        (ledger.Claim("loaded", "parts", "sha256:b", "run-1"), False),  # another version: replace it
        (ledger.Claim("loaded", "other", "sha256:a", "run-1"), False),  # routed elsewhere now: load it here
        (ledger.Claim("loading", "parts", "sha256:a", "run-1"), False),  # not committed by anyone
        (ledger.Claim(), False),
    ],
    ids=["same content by another", "own run", "other content", "other table", "not loaded", "no row"],
)
def test_a_load_steps_back_only_for_the_same_content_committed_by_another_run(claim, skip):
    assert claim.loaded_by_another("parts", "sha256:a", "run-2") is skip


def _open_at(path: str, start: float) -> str:
    """Open a SQLite file at `start` (spinning for the last moment, so that several open within microseconds)."""
    from processor.db import check_connection, create_engine

    engine = create_engine(f"sqlite:///{path}")
    while time.time() < start:
        pass
    try:
        check_connection(engine)
        return "ok"
    except Exception as exc:
        return str(exc)
    finally:
        engine.dispose()


def test_processes_opening_a_new_sqlite_file_at_once_all_get_in(tmp_path):
    # The first to open a new file switches it to WAL; SQLite answered the others "database is locked"
    # at once (no busy wait there), which failed a load that merely started beside another.
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(4) as pool:
        for attempt in range(40):
            start = time.time() + 0.2
            opened = pool.starmap(_open_at, [(str(tmp_path / f"new-{attempt}.db"), start)] * 4)
            assert opened == ["ok"] * 4


def _lose_the_lock_mid_load(run_env: dict[str, str], src: Path, engine: sa.Engine, other=None):
    """Start `python index.py` with raw_payments locked (so it waits in its load, holding the run lock), close the
    connection holding its run lock as a DBA or an idle timeout would, let `other` take the lock, then let it go on."""
    from processor.lock import _ServerLock

    payments = src / "raw_payments.csv"
    lines = len(payments.read_text().splitlines())
    with payments.open("a") as handle:
        handle.write(f"{9000 + lines},1,credit_card,100\n")  # a changed file: the load must write raw_payments
    probe = _ServerLock(engine, "postgresql")  # only to know the lock's key
    high, low = (probe.key & 0xFFFFFFFFFFFFFFFF) >> 32, probe.key & 0xFFFFFFFF
    probe.close()
    with engine.connect() as blocker:
        blocker.exec_driver_sql("LOCK TABLE raw_payments IN ACCESS EXCLUSIVE MODE")
        run = start_index("all", run_env)
        holders = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = :h AND objid = :l"

        def held() -> bool:
            with engine.connect() as conn:
                return conn.execute(sa.text(holders), {"h": high, "l": low}).first() is not None

        wait_until(held, what="the run holding its lock")
        waiting = "SELECT 1 FROM pg_locks WHERE relation = 'raw_payments'::regclass AND NOT granted"

        def loading() -> bool:  # in its load, so past taking the lock and writing its holder row
            with engine.connect() as conn:
                return conn.execute(sa.text(waiting)).first() is not None

        wait_until(loading, what="the run's load waiting for raw_payments")
        with engine.connect() as conn:
            conn.execute(sa.text(f"SELECT pg_terminate_backend(pid) FROM ({holders}) AS h"), {"h": high, "l": low})
        wait_until(lambda: not held(), what="the lock released with its connection")
        if other is not None:
            assert other.try_acquire()
            other.announce(Holder.me())
        blocker.rollback()  # the run's load goes on
    out, err = run.communicate(timeout=120)
    return subprocess.CompletedProcess(run.args, run.returncode, out, err)


def test_a_run_whose_lock_connection_was_closed_takes_the_lock_again_before_the_next_stage(
    tmp_path, postgres_url, engine_of
):
    """A server-side lock goes with its connection, and the run's lock connection idles for the whole load: a
    pg_terminate_backend, an idle_session_timeout or a proxy dropping it released the lock while the run went on,
    so a second run could transform or sync beside it. The run now checks before each stage: it takes the lock
    again, or (another run has it) waits LOCK_TIMEOUT and stops with exit 7."""
    from processor.lock import _ServerLock

    src = sample_copy(tmp_path)
    env = index_env(src, postgres_url, LOAD_WORKERS="1", LOCK_TIMEOUT="1")
    engine = engine_of(postgres_url)
    assert (
        subprocess.run(
            [sys.executable, str(ROOT / "index.py"), "load"], env=env, capture_output=True, timeout=120
        ).returncode
        == 0
    )

    other = _ServerLock(engine, "postgresql")
    try:
        done = _lose_the_lock_mid_load(env, src, engine, other)
    finally:
        other.close()
    assert done.returncode == 7, done.stdout + done.stderr
    assert "was closed; taking the lock again before the transform" in done.stderr
    assert f"pid {os.getpid()}" in done.stderr and "Traceback" not in done.stderr
    assert not sa.inspect(engine).has_table("deals") and "deals" not in sa.inspect(engine).get_view_names()

    done = _lose_the_lock_mid_load(env, src, engine)  # nobody took it meanwhile: the run goes on
    assert done.returncode == 0, done.stdout + done.stderr
    assert "was closed; taking the lock again before the transform" in done.stderr
    assert "deals" in sa.inspect(engine).get_view_names() and "Traceback" not in done.stderr
