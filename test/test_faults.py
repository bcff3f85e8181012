"""Crashes and faults, for real: kill -9 mid-load, SIGTERM and Ctrl-C, a dropped connection, secrets."""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import index_env, ledger_rows, read_table, run_load, start_index, wait_until, write_csv

from processor.db import dialect_family

ROOT = Path(__file__).resolve().parent.parent
ROWS = 60_000


def write_files(folder: Path, files: int, rows: int = ROWS) -> dict[str, tuple[int, int]]:
    """Files of `rows` rows each; returns {path: (rows, sum of ids)} computed here, not by the loader."""
    expected = {}
    for number in range(files):
        ids = range(number * rows, (number + 1) * rows)
        write_csv(
            folder / f"part-{number:02d}.csv",
            ["id", "payload", "day"],
            ([i, f"row {i} of file {number}, quoted", f"2024-01-{1 + i % 28:02d}"] for i in ids),
        )
        expected[f"part-{number:02d}.csv"] = (rows, sum(ids))
    return expected


def staged(engine: sa.Engine, table: str = "parts") -> dict[str, tuple[int, int]]:
    """{file name: (rows, sum of ids)} as the table holds them (every file sits in the one source folder)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT _source_file, COUNT(*), SUM(id) FROM {table} GROUP BY _source_file"))
        return {lineage.rsplit("/", 1)[-1]: (int(n), int(total)) for lineage, n, total in rows}


def start_run(folder: Path, url: str, **env) -> subprocess.Popen:
    """`python index.py load` of `folder` into one table on two workers, in a session of its own."""
    return start_index("load", index_env(folder, url, **{"DEST_TABLE": "parts", "LOAD_WORKERS": "2", **env}))


def statuses(engine: sa.Engine) -> dict[str, str]:
    return {path: row["status"] for path, row in ledger_rows(engine).items()}


def loading_after_one_loaded(engine: sa.Engine) -> bool:
    found = list(statuses(engine).values())
    return "loaded" in found and "loading" in found


@pytest.mark.slow
def test_kill_9_mid_load_then_rerun_equals_a_clean_run(tmp_path, db_url, engine_of):
    expected = write_files(tmp_path / "src", files=8)
    engine = engine_of(db_url)
    run = start_run(tmp_path / "src", db_url)
    wait_until(lambda: loading_after_one_loaded(engine), what="a file loaded while another loads")
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    assert run.returncode == -signal.SIGKILL
    before = statuses(engine)
    assert "loading" in before.values()  # the crash left work half done
    rerun = start_run(tmp_path / "src", db_url)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert staged(engine) == expected  # no duplicates, nothing missing
    assert set(statuses(engine).values()) == {"loaded"}


@pytest.mark.slow
@pytest.mark.parametrize("how, code", [("sigterm to the parent", 143), ("ctrl-c to the group", 130)])
def test_stopping_rolls_back_in_flight_files_and_the_ledger_shows_what_finished(
    how, code, tmp_path, postgres_url, engine_of
):
    expected = write_files(tmp_path / "src", files=8)
    engine = engine_of(postgres_url)
    run = start_run(tmp_path / "src", postgres_url)
    wait_until(lambda: loading_after_one_loaded(engine), what="a file loaded while another loads")
    with engine.connect() as holder, holder.begin():
        # Hold the files in flight: once the loads that already write have committed, every other one waits
        # for this lock at its first write, so however fast the machine, the signal lands mid-run.
        holder.execute(sa.text("LOCK TABLE parts IN SHARE MODE"))
        assert list(statuses(engine).values()).count("loaded") < len(expected)
        wait_until(lambda: "loading" in statuses(engine).values(), what="a file held in flight")
        if how.startswith("sigterm"):
            os.kill(run.pid, signal.SIGTERM)
        else:
            os.killpg(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == code, err
    found = statuses(engine)
    assert set(found.values()) <= {"loaded", "interrupted"}
    assert "interrupted" in found.values()
    have = staged(engine)
    assert have == {path: expected[path] for path, status in found.items() if status == "loaded"}
    rerun = start_run(tmp_path / "src", postgres_url)
    assert rerun.wait(timeout=300) == 0
    assert staged(engine) == expected


def test_a_stop_signal_that_lands_inside_a_log_line_still_stops_the_run():
    """A logging handler takes any Exception raised in it for its own failure: the stop must not be one."""
    from processor.cli import _raise_interrupted
    from processor.errors import Interrupted

    class Emitting(logging.Handler):
        def emit(self, record):
            try:
                os.kill(os.getpid(), signal.SIGTERM)  # delivered here, inside the handler
                self.format(record)
            except Exception:
                self.handleError(record)

    logger, handler = logging.getLogger("test.stop"), Emitting()
    logger.addHandler(handler)
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        with pytest.raises(Interrupted) as stopped:
            logger.warning("a file loaded")
        assert stopped.value.exit_code == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
        logger.removeHandler(handler)


def _killer(admin: sa.Engine, family: str, stop: threading.Event, killed: list) -> None:
    """Terminate the first bulk load it sees in this test's own namespace (PostgreSQL or MariaDB).

    Only this test's sessions: its own application name (PostgreSQL) or database (MariaDB), never
    another load that shares the server.
    """
    if family == "postgresql":
        own = admin.url.query["application_name"]
        find = (
            f"SELECT pid FROM pg_stat_activity WHERE application_name = '{own}' AND state = 'active' "
            "AND query ILIKE 'COPY%%'"
        )
        kill = "SELECT pg_terminate_backend({})"
    else:
        find = "SELECT id FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO LIKE 'LOAD DATA%%'"
        kill = "KILL {}"
    while not stop.is_set() and not killed:
        with admin.connect() as conn:
            ids = [row[0] for row in conn.exec_driver_sql(find)]
            for backend in ids[:1]:
                conn.exec_driver_sql(kill.format(int(backend)))
                killed.append(backend)
        time.sleep(0.01)


@pytest.fixture(params=["postgres", "mysql"])
def server_url(request):
    return request.getfixturevalue(f"{request.param}_url")


@pytest.mark.slow
@pytest.mark.parametrize("retries", [3, 0])
def test_a_dropped_connection_is_retried_then_recorded(retries, tmp_path, server_url, make_settings, engine_of):
    expected = write_files(tmp_path / "src", files=2, rows=150_000)
    admin = engine_of(server_url)
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_killer, args=(admin, dialect_family(admin), stop, killed))
    killer.start()
    try:
        report = run_load(make_settings, tmp_path / "src", server_url, dest_table="parts", load_retries=retries)
    finally:
        stop.set()
        killer.join()
    assert killed, "the test never caught a load in flight"
    results = {f.path: f for f in report.files}
    hit = [f for f in results.values() if f.attempts > 1 or f.status == "failed"]
    assert len(hit) == 1
    if retries:
        assert hit[0].status == "loaded" and hit[0].attempts == 2
        assert staged(admin) == expected
    else:
        assert hit[0].status == "failed" and "connection" in hit[0].error
        assert staged(admin) == {p: v for p, v in expected.items() if p != hit[0].path}  # the other file loaded
        assert report.exit_code == 1


def test_secrets_never_show(tmp_path, postgres_url, engine_of):
    """A password in DEST_SQL and the Pipedrive token appear in no output, ledger, summary or error."""
    password, token = "Sup3r-Secret-pw", "pd-token-0123456789abcdef"
    url = sa.engine.make_url(postgres_url).set(password=password).render_as_string(hide_password=False)
    write_csv(tmp_path / "src" / "good.csv", ["id"], [[1], [2]])
    write_csv(tmp_path / "src" / "bad.csv", ["id", "v"], [[1, "x"], [2, "y", "z"], [3]])
    summary = tmp_path / "summary.json"
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "SRC_DATA_FOLDER": str(tmp_path / "src"),
        "DEST_SQL": url,
        "PIPEDRIVE_API_KEY": token,
        "MAX_ERRORS": "0",
        "LOG_LEVEL": "DEBUG",
        "PROGRESS": "0",
        "SUMMARY_JSON": str(summary),
        "PIPEDRIVE_BASE_URL": "http://127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "index.py"), "load"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1  # bad.csv failed
    helped = subprocess.run(
        [sys.executable, str(ROOT / "index.py"), "--help"], env=env, capture_output=True, text=True, timeout=60
    )
    unreachable = subprocess.run(
        [sys.executable, str(ROOT / "index.py"), "load"],
        capture_output=True,
        text=True,
        env={**env, "DEST_SQL": url.replace(":5432", ":9")},
        timeout=60,
    )
    assert unreachable.returncode == 4
    engine = engine_of(postgres_url)
    stored = json.dumps(read_table(engine, "_processor_files")) + json.dumps(read_table(engine, "_processor_rejects"))
    everything = done.stdout + done.stderr + helped.stdout + unreachable.stdout + unreachable.stderr + stored
    everything += summary.read_text()
    assert "bad.csv" in everything and "cannot reach the database" in everything
    assert password not in everything and token not in everything
