"""No silent defaults, no guessing: `python index.py` as an operator with a typo, a quoted value or a
half-written URL runs it. Every such mistake is exit 2 with one line naming the variable, before
anything is read or written; the bundled sample never reaches Pipedrive; every run says where from
and where to."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa
from helpers import run_index, sample_copy, write_csv

from processor.config import Settings
from processor.errors import ConfigError

# The examples the issue names, as the operator hits them: the real command.
MISTAKES = [
    ({"SRC_DATA_FOLDR": "/data"}, "load", "SRC_DATA_FOLDER"),
    ({"DEST_URL": "sqlite:///elsewhere.db"}, "load", "DEST_SQL"),
    ({"LOG_LEVEL": "verbose"}, "load", "LOG_LEVEL"),
    ({"LOAD_WORKERS": "1000"}, "load", "LOAD_WORKERS"),
    ({"PIPEDRIVE_BASE_URL": "api.pipedrive.com", "PIPEDRIVE_API_KEY": "tok"}, "sync", "PIPEDRIVE_BASE_URL"),
    ({"DEST_SQL": "postgresql://loader:pa55word@127.0.0.1:abc/db"}, "load", "port"),
    ({"DEST_SQL": "sqlite://rel.db"}, "status", "sqlite:///rel.db"),
    # options after '?' that PyMySQL refuses (a PostgreSQL habit, a typo), before it connects
    ({"DEST_SQL": "mysql://loader:pa55word@127.0.0.1:9/db?sslmode=require"}, "load", "DEST_SQL"),
    ({"DEST_SQL": "mysql+pymysql://loader:pa55word@127.0.0.1:9/db?charset=utf-8"}, "status", "DEST_SQL"),
    ({"DEST_SQL": "mysql://loader:pa55word@127.0.0.1:9/db?connect_timeout=10s"}, "transform", "DEST_SQL"),
    ({"DEST_SQL": '"postgresql://loader:pa55word@127.0.0.1/db"'}, "load", "quotes"),
    ({"DEST_SQL": "sqlite:///no-such-folder/processor.db"}, "load", "no-such-folder does not exist"),
    ({"SUMMARY_JSON": "no-such-folder/summary.json"}, "load", "SUMMARY_JSON"),
    ({"SUMMARY_JSON": "."}, "load", "is a folder"),  # was: loaded, then an error and exit 0 with no summary
    # a secret that was not mounted: `sync` asked for by name did nothing and exited 0
    ({"PIPEDRIVE_API_KEY": ""}, "sync", "PIPEDRIVE_API_KEY"),
]


def _first(env: dict) -> str:
    key, value = next(iter(env.items()))
    return f"{key}={value}"[:50]


# The same kinds in other variables: what Settings.from_env (which the command calls first) refuses.
SAME_KINDS = [
    ({"PIPEDRIVE_APIKEY": "tok"}, "PIPEDRIVE_API_KEY"),
    ({"LOAD_WORKER": "4"}, "LOAD_WORKERS"),
    ({"NOTIFY_ULR": "http://127.0.0.1:9/x"}, "NOTIFY_URL"),
    ({"DEALS_TABLE": "x"}, "DEALS_VIEW"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ({"NOTIFY_ON": "sometimes"}, "NOTIFY_ON"),
    ({"SRC_ENCODING": "utf9"}, "SRC_ENCODING"),
    ({"DEAL_CURRENCY": "euros"}, "DEAL_CURRENCY"),
    ({"BONUS_RATE": "20"}, "BONUS_RATE"),
    ({"BONUS_THRESHOLD": "-1"}, "BONUS_THRESHOLD"),
    ({"PIPEDRIVE_TIMEOUT": "nan"}, "PIPEDRIVE_TIMEOUT"),
    ({"PIPEDRIVE_TIMEOUT": "inf"}, "PIPEDRIVE_TIMEOUT"),
    ({"SRC_DATA_FOLDER": ""}, "SRC_DATA_FOLDER"),
    ({"SRC_FILE_NAME": " , "}, "SRC_FILE_NAME"),
    ({"CUSTOMERS_TABLE": " "}, "CUSTOMERS_TABLE"),
    ({"PIPEDRIVE_DEAL_KEY_FIELD": ""}, "PIPEDRIVE_DEAL_KEY_FIELD"),
    ({"PARALLEL_PROCESS_NUMBER": "1000"}, "PARALLEL_PROCESS_NUMBER"),
    ({"SAMPLE_ROWS": "1000000000"}, "SAMPLE_ROWS"),
    ({"LOAD_RETRIES": "100000"}, "LOAD_RETRIES"),
    ({"NOTIFY_URL": "hooks.slack.com/services/T0/B0/abcdefgh"}, "NOTIFY_URL"),
    ({"NOTIFY_URL": "ftp://example.org/x"}, "NOTIFY_URL"),
    ({"PIPEDRIVE_BASE_URL": "https://:443"}, "PIPEDRIVE_BASE_URL"),
    ({"PIPEDRIVE_BASE_URL": "https://api.pipedrive.com:abc"}, "PIPEDRIVE_BASE_URL"),
    ({"DEST_SQL": "mysql://loader:pa55word@127.0.0.1:99999/db"}, "DEST_SQL"),
    ({"DEST_SQL": "mysql://loader:pa55word@[::1:3306/db"}, "DEST_SQL"),
    ({"SRC_DATA_FOLDER": "https://files.example.org:abc/q1"}, "SRC_DATA_FOLDER"),
    ({"SRC_DATA_FOLDER": "https://a.example.org/x.csv, s3:/bucket/y.csv"}, "SRC_DATA_FOLDER"),
    ({"DASK_SCHEDULER_ADDRESS": "scheduler", "EXECUTOR": "dask"}, "DASK_SCHEDULER_ADDRESS"),
    ({"DASK_SCHEDULER_ADDRESS": "tcp://scheduler:port"}, "DASK_SCHEDULER_ADDRESS"),
    ({"SRC_DELIMITER": "';'"}, "SRC_DELIMITER"),
    ({"PIPEDRIVE_API_KEY": '"tok-123456"'}, "PIPEDRIVE_API_KEY"),
    ({"NULL_VALUES": '"N/A"'}, "NULL_VALUES"),
]


@pytest.mark.parametrize("env, named", SAME_KINDS, ids=[_first(env) for env, _ in SAME_KINDS])
def test_the_same_kinds_of_mistake_in_every_other_variable(env, named):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert named in str(raised.value)
    assert "pa55word" not in str(raised.value) and "tok-123456" not in str(raised.value)


def _id(case) -> str:
    env, step, _ = case
    return f"{step}-" + "-".join(f"{k}={v}"[:40] for k, v in env.items())


@pytest.mark.parametrize("env, step, named", MISTAKES, ids=[_id(case) for case in MISTAKES])
def test_a_mistake_is_exit_2_naming_the_variable_before_anything_runs(tmp_path, env, step, named):
    src = write_csv(tmp_path / "src" / "a.csv", ["id"], [[1]]).parent
    done = run_index(tmp_path, step, env={"SRC_DATA_FOLDER": str(src), "LOAD_WORKERS": "1", **env}, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert named in done.stderr
    assert "Traceback" not in output and "pa55word" not in output
    assert list(tmp_path.glob("*.db")) == []  # nothing was loaded anywhere


def test_variables_of_other_tools_and_kubernetes_service_links_are_left_alone(tmp_path):
    env = {
        "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "30s",  # Dask's own configuration
        "PARALLEL_SEQ": "3",  # set by GNU parallel in its jobs
        "SYNC_SERVICE_HOST": "10.0.0.7",  # a Kubernetes service named "sync"
        "SYNC_PORT_443_TCP_ADDR": "10.0.0.7",
        "AWS_REGION": "eu-west-2",
    }
    done = run_index(tmp_path, "status", env=env)
    assert done.returncode == 0, done.stderr


def test_the_bundled_sample_is_never_sent_to_pipedrive(tmp_path, pipedrive_fake):
    fake = pipedrive_fake(token="real-token")
    env = {"PIPEDRIVE_API_KEY": "real-token", "PIPEDRIVE_BASE_URL": fake.url, "LOAD_WORKERS": "1"}
    for step in ("all", "sync"):
        done = run_index(tmp_path, step, env=env)
        assert done.returncode == 2, done.stderr
        assert "SRC_DATA_FOLDER" in done.stderr and "sample" in done.stderr
    assert fake.requests() == []
    assert not (tmp_path / "processor.db").exists()  # refused before the load, not after it
    # named explicitly, the same rows are the user's data and sync
    done = run_index(tmp_path, env={**env, "SRC_DATA_FOLDER": str(sample_copy(tmp_path))})
    assert done.returncode == 0, done.stderr
    assert len(fake.deals()) > 100


def _with_password(url: str, password: str) -> str:
    """The test server's URL with a password the server does not check (PostgreSQL trusts loopback)."""
    return sa.engine.make_url(url).set(password=password).render_as_string(hide_password=False)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_first_lines_and_the_summary_name_source_and_destination(tmp_path, request, backend):
    src = write_csv(tmp_path / "src" / "certificates.csv", ["id", "name"], [[1, "a"]]).parent
    if backend == "sqlite":
        url, shown = "sqlite:///target.db", f"sqlite:///target.db (file {tmp_path / 'target.db'})"
    else:
        url = _with_password(request.getfixturevalue("postgres_url"), "pa55word")
        # shown as a user writes it: the driver processor pins (psycopg2) is left out
        shown = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=True)
    done = run_index(tmp_path, "load", env={"SRC_DATA_FOLDER": str(src), "DEST_SQL": url, "LOAD_WORKERS": "1"})
    assert done.returncode == 0, done.stderr
    first = [line.split(" ", 2)[2].strip() for line in done.stderr.splitlines()[:2]]
    assert first == [f"source: {src} (*.csv)", f"destination: {shown}"]
    assert done.stdout.splitlines()[:2] == first
    assert "pa55word" not in done.stdout + done.stderr


def test_the_default_destination_and_the_sample_source_are_named_as_defaults(tmp_path):
    done = run_index(tmp_path, "load", env={"LOAD_WORKERS": "1"})
    assert done.returncode == 0, done.stderr
    assert "source: the bundled sample data" in done.stdout and "SRC_DATA_FOLDER is not set" in done.stdout
    assert "DEST_SQL is not set" in done.stdout


@pytest.mark.parametrize("step", ["transform", "sync", "load"])
def test_a_login_the_database_refuses_is_exit_4_for_every_step(tmp_path, mysql_url, step):
    """MariaDB checks passwords on loopback (the test PostgreSQL trusts it): a wrong one is exit 4, not 5."""
    url = _with_password(mysql_url, "wrong-pa55word")
    env = {"DEST_SQL": url, "SRC_DATA_FOLDER": str(sample_copy(tmp_path)), "LOAD_WORKERS": "1"}
    if step == "sync":  # a sync asked for needs a token (exit 2 without one); the database is checked first
        env |= {"PIPEDRIVE_API_KEY": "a-token", "PIPEDRIVE_BASE_URL": "http://127.0.0.1:9"}
    done = run_index(tmp_path, step, env=env, timeout=60)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "cannot reach the database" in done.stderr and "wrong-pa55word" not in done.stdout + done.stderr


def test_a_role_postgresql_does_not_know_is_exit_4_for_transform(tmp_path, postgres_url):
    url = sa.engine.make_url(postgres_url).set(username="no_such_role_here").render_as_string(hide_password=False)
    done = run_index(tmp_path, "transform", env={"DEST_SQL": url}, timeout=60)
    assert done.returncode == 4, done.stdout + done.stderr


def test_status_on_a_sqlite_file_that_does_not_exist_says_so_and_creates_nothing(tmp_path):
    (tmp_path / "data").mkdir()
    done = run_index(tmp_path, "status", env={"DEST_SQL": "sqlite:///data/warehouse.db"})
    assert done.returncode == 0, done.stderr
    assert "ledger: none yet" in done.stdout and "data/warehouse.db" in done.stdout
    assert list((tmp_path / "data").iterdir()) == []


def test_a_quoted_value_in_an_env_file_is_refused_with_the_hint(tmp_path):
    """`docker --env-file` keeps quotes; python-dotenv strips them, so a .env file with quotes works."""
    (tmp_path / ".env").write_text('DEST_SQL="sqlite:///from_env_file.db"\n')
    assert run_index(tmp_path, "status").returncode == 0
    done = run_index(tmp_path, "status", env={"DEST_SQL": '"sqlite:///quoted.db"'})
    assert done.returncode == 2 and "wrapped in quotes" in done.stderr


def test_a_notify_url_secret_never_reaches_the_logs(tmp_path):
    hook = "http://127.0.0.1:9/services/T000/B000/s3cr3tt0k3n"
    env = {"NOTIFY_URL": hook, "NOTIFY_ON": "always", "DEST_SQL": "sqlite:///x.db", "LOAD_WORKERS": "1"}
    done = run_index(tmp_path, "load", env=env)
    assert done.returncode == 0, done.stderr
    assert "could not notify http://127.0.0.1:9/..." in done.stderr
    assert "s3cr3tt0k3n" not in done.stdout + done.stderr
    with sqlite3.connect(tmp_path / "x.db") as db:
        assert db.execute("SELECT exit_code FROM _processor_runs").fetchall() == [(0,)]


@pytest.mark.parametrize("step", ["load", "transform"])
def test_a_search_path_naming_no_schema_is_one_line_and_exit_4(tmp_path, postgres_url, step):
    src = write_csv(tmp_path / "src" / "certificates.csv", ["id", "name"], [[1, "a"]]).parent
    url = sa.engine.make_url(postgres_url).update_query_dict({"options": "-csearch_path=no_such_schema_here"})
    env = {"SRC_DATA_FOLDER": str(src), "DEST_SQL": url.render_as_string(hide_password=False), "LOAD_WORKERS": "1"}
    done = run_index(tmp_path, step, env=env)
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    assert "CREATE SCHEMA" in done.stderr and "options=-csearch_path" in done.stderr
    assert "psycopg2" not in done.stderr  # the URL as the user writes it


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        # YAML habit: the line sets nothing, and the load would go to the default sqlite:///processor.db.
        (b"LOAD_WORKERS=1\nDEST_SQL: postgresql://loader:s3cr3t@db/warehouse\n", ".env line 2 is not NAME=value"),
        (b"LOAD_WORKERS=1\nSOURCE_NAME=caf\xe9\n", ".env is not UTF-8 text"),
    ],
)
def test_an_env_file_line_that_cannot_be_read_is_exit_2_not_a_default(tmp_path, content, expected):
    """A .env line python-dotenv cannot parse would only be warned about and skipped: the run then loaded
    into the default destination. It is a configuration error naming the line, never showing its text."""
    (tmp_path / ".env").write_bytes(content)
    done = run_index(tmp_path, "load")
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert "s3cr3t" not in done.stdout + done.stderr
    assert not (tmp_path / "processor.db").exists()
