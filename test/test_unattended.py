"""Runs nobody watches: the loader alone is a complete job, a failing stage keeps the summary of the
stages before it, every run is remembered in `_processor_runs` (and `status` shows the last one),
NOTIFY_URL is told, and LOG_FORMAT=json feeds log collectors. The real command on real databases."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import count, run_index, sample_copy, write_csv


class Hook:
    """A webhook receiver on loopback: keeps every JSON body POSTed to it and answers `status`."""

    def __init__(self, status: int = 200):
        self.bodies: list[dict] = []
        self.status = status
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("Content-Length", 0))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        # A path as long as a Slack webhook's: it is the webhook's password and must never be shown.
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0001/B0001/hooks3cr3t"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    hooks: list[Hook] = []

    def start(status: int = 200) -> Hook:
        hooks.append(Hook(status))
        return hooks[-1]

    yield start
    for one in hooks:
        one.close()


INLINE = {"LOAD_WORKERS": "1"}  # one process: what these tests check does not need a pool, and it starts faster


def _certificates(root: Path, rows_per_area: int = 3, bad_line: bool = False) -> Path:
    """A quarterly dump: one certificates.csv per area folder."""
    for area in ("charnwood", "hartlepool"):
        rows = [[f"{area}-{i}", f"{i} High St", 50 + i] for i in range(rows_per_area)]
        path = write_csv(root / area / "certificates.csv", ["lmk_key", "address", "floor_area"], rows)
        if bad_line and area == "hartlepool":
            with path.open("a") as handle:
                handle.write("only-one-field\n")
    return root


def test_the_loader_alone_is_a_complete_job(tmp_path, db_url, engine_of):
    """The quarterly container's job: one DEST_TABLE of certificates, no deals tables, exit 0 with the summary."""
    src = _certificates(tmp_path / "data")
    env = {
        **INLINE,
        "SRC_DATA_FOLDER": str(src),
        "SRC_FILE_NAME": "certificates.csv",
        "DEST_SQL": db_url,
        "DEST_TABLE": "certificates",
        "SUMMARY_JSON": str(tmp_path / "summary.json"),
    }
    done = run_index(tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert count(engine_of(db_url), "certificates") == 6
    assert "files: 2 loaded, 0 skipped, 0 failed" in done.stdout
    assert "transform and sync: skipped, no table raw_customers, raw_orders, raw_payments" in done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["exit_code"] == 0 and summary["transform"] is None
    assert sorted(f["rows_loaded"] for f in summary["load"]["files"]) == [3, 3]
    # asked for explicitly, the transform still says what is missing
    done = run_index(tmp_path, "transform", env=env)
    assert done.returncode == 5 and "raw_customers not found" in done.stderr


def test_a_stage_that_fails_keeps_the_summary_of_the_stages_before_it(tmp_path, engine_of):
    src = sample_copy(tmp_path)
    write_csv(src / "raw_payments.csv", ["id", "order_id", "payment_method"], [[1, 1, "card"]])  # no amount
    env = {**INLINE, "SRC_DATA_FOLDER": str(src), "SUMMARY_JSON": str(tmp_path / "summary.json")}
    done = run_index(tmp_path, env=env)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "files: 3 loaded, 0 skipped, 0 failed" in done.stdout
    assert "stopped: cannot build the deals: raw_payments has no column amount" in done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["exit_code"] == 5 and "raw_payments has no column amount" in summary["error"]
    assert len(summary["load"]["files"]) == 3 and summary["transform"] is None


def test_status_shows_the_last_run_recorded_in_the_destination(tmp_path, db_url, engine_of):
    src = _certificates(tmp_path / "data")
    env = {**INLINE, "SRC_DATA_FOLDER": str(src), "DEST_SQL": db_url, "DEST_TABLE": "certificates"}
    assert run_index(tmp_path, "load", env=env).returncode == 0
    assert run_index(tmp_path, "transform", env=env).returncode == 5
    with engine_of(db_url).connect() as conn:
        rows = conn.execute(sa.text("SELECT step, exit_code, summary, error FROM _processor_runs ORDER BY id")).all()
    assert [(r.step, r.exit_code) for r in rows] == [("load", 0), ("transform", 5)]
    assert "2 loaded" in rows[0].summary and "6 rows" in rows[0].summary
    assert "raw_customers not found" in rows[1].error

    status = run_index(tmp_path, "status", env=env)
    assert status.returncode == 0, status.stderr
    [last] = [line for line in status.stdout.splitlines() if line.startswith("last run:")]
    assert last.startswith("last run: transform, started ") and "exit 5 (failed)" in last
    assert "error: cannot build the deals" in status.stdout
    with engine_of(db_url).connect() as conn:  # status only reads: no row of its own
        assert conn.execute(sa.text("SELECT COUNT(*) FROM _processor_runs")).scalar_one() == 2


def _secret_url(db_url: str) -> str:
    """The SQLite URL as is; a server URL with a password the loopback server does not check (PostgreSQL)."""
    url = sa.engine.make_url(db_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(password="pa55word")
    return url.render_as_string(hide_password=False)


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_rejected_rows_are_notified_with_the_summary_and_secrets_masked(tmp_path, db_url, hook, engine_of):
    receiver = hook()
    src = _certificates(tmp_path / "data", bad_line=True)
    env = {
        **INLINE,
        "SRC_DATA_FOLDER": str(src),
        "DEST_SQL": _secret_url(db_url),
        "DEST_TABLE": "certificates",
        "NOTIFY_URL": receiver.url,
    }
    done = run_index(tmp_path, "load", env=env)
    assert done.returncode == 0, done.stderr
    assert count(engine_of(db_url), "certificates") == 6
    [body] = receiver.bodies
    assert body["status"] == "rejected rows" and body["exit_code"] == 0 and body["step"] == "load"
    assert "\n" not in body["text"] and "1 rejected" in body["text"]
    [noted] = body["report"]["load"]["files"]  # the file worth a look, not every file
    assert noted["path"] == "hartlepool/certificates.csv" and noted["rows_rejected"] == 1
    assert body["report"]["load"]["files_total"] == 2
    sent = json.dumps(body)
    assert "pa55word" not in sent and "hooks3cr3t" not in sent
    assert "hooks3cr3t" not in done.stdout + done.stderr


def test_a_clean_run_is_notified_only_with_notify_on_always(tmp_path, hook):
    receiver = hook()
    env = {**INLINE, "SRC_DATA_FOLDER": str(_certificates(tmp_path / "data")), "NOTIFY_URL": receiver.url}
    assert run_index(tmp_path, "load", env=env).returncode == 0
    assert receiver.bodies == []
    assert run_index(tmp_path, "load", env={**env, "NOTIFY_ON": "always"}).returncode == 0
    [body] = receiver.bodies
    assert body["status"] == "ok" and "2 skipped" in body["text"]


def test_a_failed_run_is_notified_and_a_failed_notification_changes_nothing(tmp_path, hook):
    down = hook(status=500)
    env = {**INLINE, "SRC_DATA_FOLDER": str(sample_copy(tmp_path)), "NOTIFY_URL": down.url}
    env["CUSTOMERS_TABLE"] = "customers"
    done = run_index(tmp_path, "transform", env=env)
    assert done.returncode == 5, done.stderr  # the transform's own code, not the notification's
    assert len(down.bodies) == 2  # a 5xx is tried once more
    assert down.bodies[0]["status"] == "failed" and "customers not found" in down.bodies[0]["error"]
    assert "could not notify http://127.0.0.1:" in done.stderr and "Traceback" not in done.stderr

    fine = hook()
    env = {**INLINE, "SRC_DATA_FOLDER": str(sample_copy(tmp_path)), "NOTIFY_URL": fine.url}
    assert run_index(tmp_path, "status", env=env).returncode == 0
    assert fine.bodies == []  # status only reads: nothing to tell
    done = run_index(tmp_path, "load", env={**env, "SRC_DATA_FOLDR": "typo"})
    assert done.returncode == 2
    [body] = fine.bodies  # a scheduled run that cannot start is a failed run too
    assert body["exit_code"] == 2 and "SRC_DATA_FOLDR" in body["text"]


def test_a_receiver_that_trickles_its_answer_does_not_hold_the_run(tmp_path):
    """requests' timeout is per socket read: a receiver (or a proxy before it) sending a header line
    every few seconds kept the finished run alive forever. Each attempt now has a deadline in all."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.wait(2):
            conn.sendall(b"X-Still-There: yes\r\n")
        conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/services/T0001/B0001/hooks3cr3t"
    env = {**INLINE, "SRC_DATA_FOLDER": str(_certificates(tmp_path / "data")), "NOTIFY_URL": url}
    try:
        started = time.monotonic()
        done = run_index(tmp_path, "load", env={**env, "NOTIFY_ON": "always"}, timeout=90)
        took = time.monotonic() - started
    finally:
        stop.set()
        server.close()
    assert done.returncode == 0, done.stderr
    assert took < 60, took
    assert "could not notify http://127.0.0.1:" in done.stderr and "no answer within" in done.stderr
    assert "hooks3cr3t" not in done.stdout + done.stderr


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_log_format_json_writes_one_object_per_line(tmp_path, db_url):
    src = _certificates(tmp_path / "data", bad_line=True)
    env = {**INLINE, "SRC_DATA_FOLDER": str(src), "DEST_SQL": _secret_url(db_url), "LOG_FORMAT": "json"}
    env["MAX_ERRORS"] = "0"
    done = run_index(tmp_path, env=env)
    assert done.returncode == 1, done.stderr
    entries = [json.loads(line) for line in done.stderr.splitlines()]
    assert all({"time", "level", "step", "file", "table", "rows", "message"} <= set(e) for e in entries)
    assert entries[0]["message"].startswith("source: ") and entries[1]["message"].startswith("destination: ")
    by_file = {e["file"]: e for e in entries if e["file"]}
    loaded = by_file["charnwood/certificates.csv"]
    assert (loaded["step"], loaded["table"], loaded["rows"], loaded["level"]) == ("load", "certificates", 3, "INFO")
    failed = by_file["hartlepool/certificates.csv"]
    assert failed["level"] == "ERROR" and "MAX_ERRORS" in failed["message"]
    assert "pa55word" not in done.stderr


def test_a_sync_that_stops_says_why_in_the_notification_and_the_last_run(tmp_path, hook, pipedrive_fake):
    fake = pipedrive_fake(token="real-token")
    receiver = hook()
    env = {**INLINE, "SRC_DATA_FOLDER": str(sample_copy(tmp_path)), "NOTIFY_URL": receiver.url}
    env |= {"PIPEDRIVE_API_KEY": "wr0ng-t0ken", "PIPEDRIVE_BASE_URL": fake.url}
    done = run_index(tmp_path, env=env)
    assert done.returncode == 6, done.stderr
    [body] = receiver.bodies
    assert body["error"] and body["error"] in body["text"]  # a webhook's reader sees why, not only "exit 6"
    assert "wr0ng-t0ken" not in json.dumps(body)
    status = run_index(tmp_path, "status", env=env)
    assert f"  error: {body['error']}" in status.stdout, status.stdout


@pytest.mark.parametrize("view", ["missing", "without_key"])
def test_a_sync_without_a_deals_view_to_read_is_exit_5_with_the_fix(tmp_path, pipedrive_fake, view):
    fake = pipedrive_fake(token="real-token")
    env = {**INLINE, "SRC_DATA_FOLDER": str(sample_copy(tmp_path))}
    env |= {"PIPEDRIVE_API_KEY": "real-token", "PIPEDRIVE_BASE_URL": fake.url}
    assert run_index(tmp_path, "load", env=env).returncode == 0
    if view == "without_key":  # a view of another name the operator pointed DEALS_VIEW at by mistake
        env["DEALS_VIEW"] = "raw_customers_view"
        with sa.create_engine(f"sqlite:///{tmp_path / 'processor.db'}").begin() as conn:
            conn.execute(sa.text("CREATE VIEW raw_customers_view AS SELECT id FROM raw_customers"))
    done = run_index(tmp_path, "sync", env=env)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "python index.py transform" in done.stdout + done.stderr
    said = {"missing": "does not exist", "without_key": "has no column 'order_id'"}[view]
    assert said in done.stdout + done.stderr
    assert fake.writes() == []
