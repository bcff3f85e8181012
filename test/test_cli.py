"""index.py as users run it: a bare run on the bundled sample, --help, and clear errors with exit codes."""

import re
import sqlite3
from pathlib import Path

import pytest
from helpers import run_index, sample_copy

from processor.config import OPTIONS

ROOT = Path(__file__).resolve().parent.parent


def test_bare_run_loads_the_bundled_sample_into_sqlite(tmp_path):
    done = run_index(tmp_path)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "processor.db") as db:
        counts = {
            t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("raw_customers", "raw_orders", "raw_payments")
        }
    sample = ROOT / "processor" / "sample_data"
    expected = {t: len((sample / f"{t}.csv").read_text(encoding="utf-8").splitlines()) - 1 for t in counts}
    assert counts == expected
    assert "3 loaded" in done.stdout
    again = run_index(tmp_path)
    assert again.returncode == 0 and "3 skipped" in again.stdout


def test_help_lists_every_variable_with_its_default(tmp_path):
    done = run_index(tmp_path, "--help")
    assert done.returncode == 0
    for option in OPTIONS:
        assert option.env in done.stdout
    assert "default:" in done.stdout
    # and every variable the README's table documents, those read outside Settings too
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", readme, re.MULTILINE)
    assert len(table) > len(OPTIONS) // 2 and [v for v in table if v not in done.stdout] == []


def test_env_file_is_read_and_real_environment_wins(tmp_path):
    (tmp_path / ".env").write_text("DEST_SQL=sqlite:///from_env_file.db\nLOAD_WORKERS=1\n")
    assert run_index(tmp_path, "load").returncode == 0
    assert (tmp_path / "from_env_file.db").exists()
    assert run_index(tmp_path, "load", env={"DEST_SQL": "sqlite:///from_environment.db"}).returncode == 0
    assert (tmp_path / "from_environment.db").exists()


@pytest.mark.parametrize(
    "env, code, message",
    [
        ({"LOAD_WORKERS": "lots"}, 2, "LOAD_WORKERS"),
        ({"DEST_SQL": "nonsense"}, 2, "DEST_SQL"),
        ({"SRC_DATA_FOLDER": "/no/such/folder"}, 3, "does not exist"),
        ({"SRC_FILE_NAME": "*.parquet"}, 3, "no file under"),
        ({"DEST_SQL": "postgresql://someone:pa55word@127.0.0.1:9/db"}, 4, "cannot reach the database"),
    ],
)
def test_user_mistakes_give_one_clear_message_and_an_exit_code(tmp_path, env, code, message):
    done = run_index(tmp_path, env=env, timeout=60)
    assert done.returncode == code
    output = done.stdout + done.stderr
    assert message in output
    assert "Traceback" not in output
    assert "pa55word" not in output


def test_the_whole_job_loads_builds_the_view_and_syncs_to_pipedrive(tmp_path, pipedrive_fake):
    """load -> transform -> sync as one `python index.py`, then a second run that writes nothing."""
    fake = pipedrive_fake(token="cli-token")
    env = {
        "PIPEDRIVE_API_KEY": "cli-token",
        "PIPEDRIVE_BASE_URL": fake.url,
        "SRC_DATA_FOLDER": str(sample_copy(tmp_path)),
    }
    done = run_index(tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "processor.db") as db:
        view = {
            str(order): (title, value) for order, title, value in db.execute("SELECT order_id, title, value FROM deals")
        }
    held = {d["title"] + "|" + str(d["value"]) for d in fake.deals()}
    assert len(fake.deals()) == len(view) > 100
    assert held == {f"{title}|{float(value)}" for title, value in view.values()}
    assert "cli-token" not in done.stdout + done.stderr
    writes_before = len(fake.writes())
    again = run_index(tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert len(fake.writes()) == writes_before  # nothing changed, nothing sent


def test_a_failed_file_stops_the_job_before_pipedrive(tmp_path, pipedrive_fake):
    fake = pipedrive_fake(token="cli-token")
    src = sample_copy(tmp_path)
    (src / "raw_payments.csv").write_bytes(b"id,order_id,payment_method,amount\n1,1,x\n")
    done = run_index(
        tmp_path,
        env={
            "PIPEDRIVE_API_KEY": "cli-token",
            "PIPEDRIVE_BASE_URL": fake.url,
            "SRC_DATA_FOLDER": str(src),
            "MAX_ERRORS": "0",
        },
    )
    assert done.returncode == 1
    assert "skipped" in done.stdout and fake.requests() == []


def test_status_reads_the_ledger_and_names_what_is_not_in(tmp_path):
    assert "nothing has been loaded" in run_index(tmp_path, "status").stdout
    assert not (tmp_path / "processor.db").exists()  # asking leaves no database behind
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.csv").write_text("id,name\n1,a\n2,b\n3,c\n")
    (src / "bad.csv").write_text("id,name\n1,a\n2\n3,c\n")
    env = {"SRC_DATA_FOLDER": str(src), "MAX_ERRORS": "0"}
    assert run_index(tmp_path, "load", env=env).returncode == 1

    status = run_index(tmp_path, "status", env=env)
    assert status.returncode == 1, status.stderr
    assert "2 file(s): 1 failed, 1 loaded" in status.stdout
    assert "good: 3 rows from 1 file(s), 0 rejected" in status.stdout
    [failed] = [line for line in status.stdout.splitlines() if line.strip().startswith(f"{src}/bad.csv:")]
    assert "failed" in failed and "MAX_ERRORS" in failed
    assert "rejected rows: 1," in status.stdout

    (src / "bad.csv").write_text("id,name\n1,a\n2,b\n")
    assert run_index(tmp_path, "load", env=env).returncode == 0
    status = run_index(tmp_path, "status", env=env)
    assert status.returncode == 0 and "not in" not in status.stdout
    assert "2 file(s): 2 loaded" in status.stdout and "bad: 2 rows from 1 file(s)" in status.stdout


def test_transform_without_staging_tables_exits_5_with_the_fix(tmp_path):
    done = run_index(tmp_path, "transform")
    assert done.returncode == 5
    assert "raw_" in done.stderr and "Traceback" not in done.stderr


def test_a_token_pipedrive_refuses_stops_the_sync_with_exit_6(tmp_path, pipedrive_fake):
    fake = pipedrive_fake(token="the-right-token")
    env = {"SRC_DATA_FOLDER": str(sample_copy(tmp_path))}
    assert run_index(tmp_path, "load", env=env).returncode == 0
    assert run_index(tmp_path, "transform", env=env).returncode == 0
    env |= {"PIPEDRIVE_API_KEY": "a-wrong-token", "PIPEDRIVE_BASE_URL": fake.url}
    done = run_index(tmp_path, "sync", env=env)
    assert done.returncode == 6, done.stdout + done.stderr
    assert "a-wrong-token" not in done.stdout + done.stderr
    assert fake.deals() == []
