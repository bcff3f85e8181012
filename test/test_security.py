"""Nothing read from outside the folder, no name forging a line, no secret printed, names that mean what they say.

Each fault is provoked for real: files swapped for symlinks between the listing and the open, file
names holding newlines, database URLs with passwords in every form SQLAlchemy reads driven into every
error path of `python index.py`, and table-name variables that would have loaded somewhere else.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import count, lineage, meddle_mid_run, read_table, write_csv
from test_cli import ROOT, run_index

from processor import ledger
from processor.config import Settings
from processor.errors import ConfigError
from processor.staging.loader import load

HEADER = ["lmk_key", "energy"]

# ---------------------------------------------------------------- 4. nothing outside the folder


def swap_out(src: Path, outside: Path, what: str) -> None:
    """Replace src/sub/certificates.csv (the file, or its folder) by a symlink to the same name outside."""
    if what == "file":
        (src / "sub" / "certificates.csv").unlink()
        (src / "sub" / "certificates.csv").symlink_to(outside / "certificates.csv")
    else:
        shutil.rmtree(src / "sub")
        (src / "sub").symlink_to(outside, target_is_directory=True)


@pytest.mark.parametrize("what", ["file", "folder"])
@pytest.mark.parametrize("when", ["after the listing", "after the profile"])
def test_a_file_swapped_for_a_symlink_out_of_the_folder_is_not_read(
    when, what, tmp_path, db_url, make_settings, monkeypatch, engine_of
):
    src, outside = tmp_path / "src", tmp_path / "outside"
    write_csv(src / "sub" / "certificates.csv", HEADER, [["in", "inside"]])
    write_csv(src / "other.csv", HEADER, [["ok", "fine"]])
    write_csv(outside / "certificates.csv", HEADER, [["out", "SECRET"]])
    meddle_mid_run(monkeypatch, when, "sub/certificates.csv", lambda: swap_out(src, outside, what))
    report = load(make_settings(src_data_folder=str(src), dest_sql=db_url, dest_table="certificates"))
    results = {f.path: f for f in report.files}
    swapped = results["sub/certificates.csv"]
    assert (swapped.status, results["other.csv"].status) == ("failed", "loaded")
    assert "outside SRC_DATA_FOLDER" in swapped.error and "\n" not in swapped.error
    assert report.exit_code == 1
    engine = engine_of(db_url)
    assert [(r["lmk_key"], r["energy"]) for r in read_table(engine, "certificates")] == [("ok", "fine")]
    entry = ledger.read(engine)[ledger.file_key(src.as_posix(), "sub/certificates.csv")]
    assert entry.status == "failed" and entry.rows_loaded == 0


FORGED = "ok\n12:00:00 ERROR   forged line.csv"
FORGED_BAD = "bad\r\n12:00:00 INFO    all files loaded.csv"
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def test_a_newline_in_a_file_name_forges_no_line(tmp_path, db_url, engine_of):
    src = tmp_path / "src"
    write_csv(src / FORGED, HEADER, [["a", "A"]])
    write_csv(src / FORGED_BAD, HEADER, [["b", "B", "extra"]])
    env = {"SRC_DATA_FOLDER": str(src), "DEST_SQL": db_url, "MAX_ERRORS": "0", "LOG_LEVEL": "DEBUG"}
    loaded = run_index(tmp_path, "load", env=env)
    status = run_index(tmp_path, "status", env=env)
    assert (loaded.returncode, status.returncode) == (1, 1), loaded.stderr
    for output in (loaded.stderr, status.stderr):
        assert all(LOG_LINE.match(line) for line in output.splitlines()), output
    for output in (loaded.stdout, status.stdout):
        assert not any(re.match(r"\s*12:00:00", line) for line in output.splitlines()), output
    assert "ok\\n12:00:00 ERROR   forged line.csv" in loaded.stderr
    assert "bad\\r\\n12:00:00 INFO    all files loaded.csv: more than MAX_ERRORS=0" in loaded.stdout
    assert "bad\\r\\n12:00:00 INFO    all files loaded.csv: failed" in status.stdout
    # the data keeps the real names
    assert {r["path"] for r in read_table(engine_of(db_url), "_processor_files")} == {FORGED, FORGED_BAD}


# ---------------------------------------------------------------- 5. no secret printed


def with_query(url: str, **query: str) -> str:
    return sa.engine.make_url(url).update_query_dict(query).render_as_string(hide_password=False)


def sample_copy(tmp_path: Path) -> Path:
    src = tmp_path / "sample"
    shutil.copytree(ROOT / "processor" / "sample_data", src)
    return src


# (id, step, expected exit code, DEST_SQL or a function of the test's PostgreSQL URL, the secrets in it)
UNREACHABLE = [
    ("password in the query", "load", 4, "postgresql://loader@127.0.0.1:9/db?password=S3cr3t-Query", ["S3cr3t-Query"]),
    (
        "unescaped @ in the password",
        "load",
        2,
        "postgresql://loader:S3cr3t@Passw0rd@127.0.0.1:9/db",
        ["S3cr3t", "Passw0rd"],
    ),
    ("unescaped @ and : in the password", "load", 2, "postgresql://loader:S3cr3t@Pass:w0rd@127.0.0.1/db", ["w0rd"]),
    ("percent-encoded @", "load", 4, "mariadb+pymysql://root:S3cr%40tPw@127.0.0.1:9/db", ["S3cr@tPw", "S3cr%40tPw"]),
    ("mysql query password", "load", 4, "mysql+pymysql://root@127.0.0.1:9/db?password=S3cr3t-My", ["S3cr3t-My"]),
    ("mysql wrong password", "load", 4, "mysql+pymysql://root:Wr0ng-Passw0rd@127.0.0.1:3306/test", ["Wr0ng-Passw0rd"]),
    ("wrong database", "load", 4, "postgresql://postgres:S3cr3t-Db@127.0.0.1:5432/no_such_database_x", ["S3cr3t-Db"]),
    ("driver not supported", "load", 2, "postgresql+nosuch://loader:S3cr3t-Drv@127.0.0.1/db", ["S3cr3t-Drv"]),
    ("status, unreachable", "status", 4, "postgresql://loader:S3cr3t-St@127.0.0.1:9/db", ["S3cr3t-St"]),
]


def grep_secrets(texts: list[str], secrets: list[str]) -> None:
    everything = "\n".join(texts)
    for secret in secrets:
        assert secret not in everything, f"{secret!r} was printed"


@pytest.mark.parametrize(
    ("step", "code", "url", "secrets"), [case[1:] for case in UNREACHABLE], ids=[c[0] for c in UNREACHABLE]
)
def test_a_password_never_shows_when_the_database_refuses(step, code, url, secrets, tmp_path):
    summary = tmp_path / "summary.json"
    env = {
        "DEST_SQL": url,
        "LOG_LEVEL": "DEBUG",
        "SUMMARY_JSON": str(summary),
        "SRC_DATA_FOLDER": str(sample_copy(tmp_path)),
    }
    done = run_index(tmp_path, step, env=env)
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    grep_secrets([done.stdout, done.stderr, summary.read_text() if summary.exists() else ""], secrets)
    if code == 2 and "@" in url.split("://")[1].rsplit("@", 1)[0].split(":", 1)[-1]:
        assert "%40" in done.stderr  # the message says how to write it


def test_a_password_never_shows_through_a_working_run_and_its_failures(
    tmp_path, postgres_url, pipedrive_fake, engine_of
):
    """load with a failing file, transform, sync refused by Pipedrive, status: every output, the ledger, the JSON."""
    password, token = "S3cr3t-W0rking", "pd-token-S3cr3t-0123"
    url = with_query(postgres_url, password=password)  # the form that leaked; a password in the user part: test_faults
    src = sample_copy(tmp_path)
    (src / "broken.csv").write_text("id,name\n1,a\n2\n")
    fake = pipedrive_fake(token="the-right-token")
    outputs = []
    for step, code, extra in [
        ("transform", 5, {}),  # no staging tables yet
        ("load", 1, {}),
        ("transform", 0, {}),
        ("sync", 6, {"PIPEDRIVE_API_KEY": token, "PIPEDRIVE_BASE_URL": fake.url}),
        ("status", 1, {}),
        ("load", 1, {"PROGRESS": "1"}),  # the progress bar's logging redirect masks too
    ]:
        summary = tmp_path / f"{step}.json"
        env = {
            "DEST_SQL": url,
            "SRC_DATA_FOLDER": str(src),
            "MAX_ERRORS": "0",
            "LOG_LEVEL": "DEBUG",
            "SUMMARY_JSON": str(summary),
            **extra,
        }
        done = run_index(tmp_path, step, env=env)
        assert done.returncode == code, f"{step}: {done.stdout}{done.stderr}"
        outputs += [done.stdout, done.stderr, summary.read_text() if summary.exists() else ""]
    engine = engine_of(postgres_url)
    stored = json.dumps(read_table(engine, "_processor_files"), default=str)
    stored += json.dumps(read_table(engine, "_processor_rejects"), default=str)
    assert "broken.csv" in stored and "deals" in "".join(outputs)
    grep_secrets([*outputs, stored], [password, token])


def test_display_and_secrets_cover_every_form():
    from processor.db import display_url, url_secrets
    from processor.redact import redact

    cases = {
        "postgresql://loader@host:5432/db?password=S3cr3tQ&application_name=x": ["S3cr3tQ"],
        "postgresql://loader:S3cr3t@Passw0rd@host/db": ["S3cr3t", "Passw0rd"],
        "mysql+pymysql://u:p%40ss%2Fw0rd@h:3306/db?ssl_key=/k&passwd=Zz9-secret": [
            "p@ss/w0rd",
            "p%40ss%2Fw0rd",
            "Zz9-secret",
        ],
        "mariadb://u:S3cr3t-Maria@h/db": ["S3cr3t-Maria"],
    }
    for url, secrets in cases.items():
        shown = display_url(url)
        masked = redact(f"error at {url}: {secrets}", url_secrets(url))
        for secret in secrets:
            assert secret not in shown and secret not in masked, (url, secret)
    assert display_url("postgresql://loader@host:5432/db?password=x1&application_name=job") == (
        "postgresql://loader@host:5432/db?password=***&application_name=job"
    )


# ---------------------------------------------------------------- 6. names mean what they say


REFUSED = [
    ({"DEST_TABLE": "staging.certificates"}, "schema-qualified name is not supported"),
    ({"DEALS_VIEW": "_processor_files"}, "processor's own tables"),
    ({"DEST_TABLE": "Certificates"}, "would be stored as 'certificates'"),
    ({"CUSTOMERS_TABLE": "_processor_rejects"}, "processor's own tables"),
    ({"ORDERS_TABLE": "sales.raw_orders"}, "schema-qualified"),
    ({"PAYMENTS_TABLE": "p" * 64}, "longer than the 63 bytes"),
    ({"DEALS_VIEW": "raw_payments"}, "the staging table of PAYMENTS_TABLE"),
    ({"DEALS_VIEW": "certificates", "DEST_TABLE": "certificates"}, "the staging table of DEST_TABLE"),
    ({"COLUMN_TYPES": "staging.certificates.uprn:text"}, "schema-qualified"),
]


@pytest.mark.parametrize(("variables", "message"), REFUSED[:2], ids=["schema-qualified", "the ledger's name"])
def test_a_table_name_that_would_not_mean_what_it_says_is_refused(variables, message, tmp_path, db_url, engine_of):
    src = write_csv(tmp_path / "src" / "certificates.csv", HEADER, [["a", "A"]]).parent
    done = run_index(tmp_path, env={"SRC_DATA_FOLDER": str(src), "DEST_SQL": db_url, **variables})
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert sa.inspect(engine_of(db_url)).get_table_names() == []  # nothing was created anywhere


@pytest.mark.parametrize(("variables", "message"), REFUSED, ids=lambda v: str(v))
def test_every_table_name_variable_is_checked(variables, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env(variables)


def test_the_deals_view_never_replaces_a_loaded_table(tmp_path, db_url, engine_of, make_settings):
    write_csv(tmp_path / "src" / "certificates.csv", HEADER, [["a", "A"], ["b", "B"]])
    assert load(make_settings(src_data_folder=str(tmp_path / "src"), dest_sql=db_url)).exit_code == 0
    env = {"DEST_SQL": db_url, "DEALS_VIEW": "certificates"}
    done = run_index(tmp_path, "transform", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "certificates is a staging table" in done.stderr
    assert "\\n" not in done.stdout + done.stderr  # one line, not an escaped line break
    assert count(engine_of(db_url), "certificates") == 2


def test_the_library_refuses_the_same_names():
    with pytest.raises(ConfigError, match="schema-qualified"):
        load(Settings(dest_table="staging.certificates"))
    assert Settings.from_env({"DEST_TABLE": "certificates", "DEALS_VIEW": "deals"}).dest_table == "certificates"


def test_the_schema_is_chosen_in_the_url_as_the_refusal_says(tmp_path, postgres_url, engine_of):
    """PostgreSQL: `?options=-csearch_path%3D<schema>` puts the table, the ledger and the lineage in that schema."""
    schema = sa.engine.make_url(postgres_url).query["options"].split("=", 1)[1]
    base = sa.engine.make_url(postgres_url).difference_update_query(["options"]).render_as_string(hide_password=False)
    src = write_csv(tmp_path / "src" / "certificates.csv", HEADER, [["a", "A"]]).parent
    url = f"{base}&options=-csearch_path%3D{schema}" if "?" in base else f"{base}?options=-csearch_path%3D{schema}"
    done = run_index(tmp_path, "load", env={"SRC_DATA_FOLDER": str(src), "DEST_SQL": url, "DEST_TABLE": "certificates"})
    assert done.returncode == 0, done.stderr
    engine = engine_of(postgres_url)
    with engine.connect() as conn:
        tables = set(
            conn.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}
            ).scalars()
        )
    assert {"certificates", "_processor_files", "_processor_rejects"} <= tables
    assert [r["_source_file"] for r in read_table(engine, "certificates")] == [lineage(src, "certificates.csv")]
