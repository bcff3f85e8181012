"""Whole files or nothing under every fault, opened for real: a big file's ranges stopped half way, a file
rewritten while it loads, the parent killed alone; and the transform refusing to build from a partial load."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import ROOT, index_env, ledger_rows, run_load, session_processes, start_index, wait_until, write_csv

from processor.errors import ConfigError
from processor.lock import LOCK_TABLE
from processor.names import check_names
from processor.staging.plan import name_clash
from processor.staging.ranges import PART_PREFIX

SHOP_TABLES = {"CUSTOMERS_TABLE": "customers", "ORDERS_TABLE": "orders", "PAYMENTS_TABLE": "payments"}


@pytest.fixture(params=["postgres", "mysql"])
def server_url(request):
    return request.getfixturevalue(f"{request.param}_url")


def per_file(engine: sa.Engine, table: str) -> dict[str, tuple[int, int]]:
    """{file name: (rows, sum of ids)} of what a table holds (its rows carry source/path)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT _source_file, COUNT(*), SUM(id) FROM {table} GROUP BY _source_file"))
        return {lineage.rsplit("/", 1)[-1]: (int(n), int(total)) for lineage, n, total in rows}


def part_tables(engine: sa.Engine) -> list[str]:
    return [name for name in sa.inspect(engine).get_table_names() if name.startswith(PART_PREFIX)]


def pipes_left(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith("processor-"))


# ---------------------------------------------------------------- a big file in ranges, stopped half way


def write_shop(folder: Path, orders: int) -> int:
    """customers, payments and a big orders.csv (cut into ranges); returns the sum of the order ids."""
    write_csv(folder / "customers.csv", ["id", "first_name", "last_name"], [[1, "Ann", "Lee"], [2, "Bo", "Ng"]])
    write_csv(folder / "payments.csv", ["id", "order_id", "amount"], [[1, 1, 2500], [2, 2, 10]])
    write_csv(
        folder / "orders.csv",
        ["id", "user_id", "order_date", "status", "note"],
        ([i, 1 + i % 2, f"2024-01-{1 + i % 28:02d}", "completed", f"order {i}, padded"] for i in range(1, orders + 1)),
    )
    return orders * (orders + 1) // 2


def part_rows(engine: sa.Engine) -> int:
    quote = engine.dialect.identifier_preparer.quote
    with engine.connect() as conn:
        return sum(conn.execute(sa.text(f"SELECT COUNT(*) FROM {quote(t)}")).scalar() for t in part_tables(engine))


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["kill -9 of the whole run", "sigterm"])
def test_no_row_of_a_big_file_is_seen_until_all_of_it_is_in(stop, tmp_path, server_url, engine_of):
    orders = 150_000
    total = write_shop(tmp_path / "src", orders)
    (tmp_path / "tmp").mkdir()
    env = index_env(
        tmp_path / "src",
        server_url,
        **SHOP_TABLES,
        SPLIT_MIN_BYTES="500000",
        LOAD_WORKERS="2",
        TMPDIR=str(tmp_path / "tmp"),
    )
    engine = engine_of(server_url)
    run = start_index("load", env)
    wait_until(lambda: part_rows(engine) > 0, what="ranges of orders.csv committed in its private table")
    if stop == "sigterm":
        os.kill(run.pid, signal.SIGTERM)
        _, errors = run.communicate(timeout=60)
        assert run.returncode == 143
        assert "retrying" not in errors, errors  # the stop, as the driver reports it, is no lost connection
        assert pipes_left(tmp_path / "tmp") == []  # the stopped MySQL loads removed their named pipes
    else:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    assert per_file(engine, "orders") == {}  # whatever the ranges had committed, no reader sees it
    assert ledger_rows(engine)["orders.csv"]["status"] in ("loading", "interrupted")
    refused = subprocess.run(
        [sys.executable, str(ROOT / "index.py"), "transform"], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 5 and "orders.csv" in refused.stderr, refused.stderr
    rerun = subprocess.run(
        [sys.executable, str(ROOT / "index.py")], env=env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    assert per_file(engine, "orders") == {"orders.csv": (orders, total)}
    assert part_tables(engine) == []  # the killed run's private table is gone too
    assert pipes_left(tmp_path / "tmp") == []  # and so are the pipes kill -9 left (swept by the next load)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM deals")).scalar() == orders


def test_the_transform_refuses_while_an_input_file_is_not_loaded(tmp_path, db_url, engine_of):
    write_shop(tmp_path / "src", 4)
    write_csv(
        tmp_path / "src" / "more" / "orders.csv", ["id", "user_id", "order_date", "status"], [[9, 1, "x", "y", "z"]]
    )
    env = index_env(
        tmp_path / "src",
        db_url,
        **SHOP_TABLES,
        MAX_ERRORS="0",
        LOAD_WORKERS="1",
    )
    loaded = subprocess.run([sys.executable, str(ROOT / "index.py"), "load"], env=env, capture_output=True, text=True)
    assert loaded.returncode == 1
    assert ledger_rows(engine_of(db_url))["more/orders.csv"]["status"] == "failed"
    refused = subprocess.run(
        [sys.executable, str(ROOT / "index.py"), "transform"], env=env, capture_output=True, text=True
    )
    assert refused.returncode == 5
    assert "more/orders.csv (failed)" in refused.stderr and "Traceback" not in refused.stderr
    assert not sa.inspect(engine_of(db_url)).has_table("deals")


def test_a_run_killed_once_its_tables_exist_leaves_the_transform_refusing(tmp_path, db_url, engine_of):
    """Killed after creating its tables, before a worker reached any file: the empty tables are not data."""
    orders = 2_000
    total = write_shop(tmp_path / "src", orders)
    env = index_env(
        tmp_path / "src",
        db_url,
        **SHOP_TABLES,
        LOAD_WORKERS="2",
    )
    run = start_index("load", env)
    for line in run.stderr:  # the tables are created in name order: payments is the last
        if "created table payments" in line:
            os.killpg(run.pid, signal.SIGKILL)
            break
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL
    engine = engine_of(db_url)
    assert sa.inspect(engine).has_table("payments")
    assert {entry["status"] for entry in ledger_rows(engine).values()} <= {"loading", "loaded"}
    refused = subprocess.run(
        [sys.executable, str(ROOT / "index.py"), "transform"], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 5 and "not loaded" in refused.stderr, refused.stderr  # not 0 deals, exit 0
    rerun = subprocess.run(
        [sys.executable, str(ROOT / "index.py")], env=env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    assert per_file(engine, "orders") == {"orders.csv": (orders, total)}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM deals")).scalar() == orders


# ---------------------------------------------------------------- a file rewritten while it loads


def numbered(version: int, rows: int) -> bytes:
    """A CSV whose ids and text depend on `version` (and whose length too)."""
    lines = ["id,note"] + [
        f"{version * 10_000_000 + i},version {version} row {i} padded" for i in range(rows + version)
    ]
    return ("\n".join(lines) + "\n").encode()


def facts(data: bytes) -> tuple[int, int]:
    ids = [int(line.split(b",")[0]) for line in data.splitlines()[1:]]
    return len(ids), sum(ids)


class Rewriter(threading.Thread):
    """Once the ledger says the file is loading, rewrites it in place, again and again, until stopped."""

    def __init__(self, path: Path, engine: sa.Engine, versions: list[bytes]):
        super().__init__(daemon=True)
        self.path, self.engine, self.versions = path, engine, versions
        self.stop, self.rewrites = threading.Event(), 0

    def loading(self) -> bool:
        with self.engine.connect() as conn:
            status = conn.execute(
                sa.text("SELECT status FROM _processor_files WHERE path = :p"), {"p": self.path.name}
            ).scalar()
        return status == "loading"

    def run(self) -> None:
        while not self.stop.is_set() and not self.loading():
            time.sleep(0.005)
        while not self.stop.is_set():
            with open(self.path, "r+b") as handle:  # in place: same inode, as an editor or a copy over it does
                handle.write(self.versions[self.rewrites % len(self.versions)])
                handle.truncate()
            self.rewrites += 1
            time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("split", [False, True], ids=["whole", "ranges"])
def test_a_file_rewritten_while_it_loads_fails_alone_then_loads_whole(
    split, tmp_path, db_url, make_settings, engine_of
):
    if split and db_url.startswith("sqlite"):
        pytest.skip("SQLite loads files whole")
    rows = 120_000
    src = tmp_path / "src"
    moving = src / "moving.csv"
    first = numbered(1, rows)
    write_csv(src / "still.csv", ["id", "note"], [[1, "a"], [2, "b"]])
    moving.write_bytes(first)
    options = {"split_min_bytes": 400_000, "load_workers": 2} if split else {}
    engine = engine_of(db_url)
    assert run_load(make_settings, src, db_url, dest_table="data", **options).exit_code == 0
    moving.write_bytes(numbered(2, rows))
    rewriter = Rewriter(moving, engine, [numbered(3, rows), numbered(4, rows)])
    rewriter.start()
    try:
        report = run_load(make_settings, src, db_url, dest_table="data", **options)
    finally:
        rewriter.stop.set()
        rewriter.join()
    assert rewriter.rewrites > 0
    result = {f.path: f for f in report.files}["moving.csv"]
    assert result.status == "failed" and "changed while loading" in result.error, result.error
    assert per_file(engine, "data")["moving.csv"] == facts(first)  # the version loaded before, whole
    assert ledger_rows(engine)["moving.csv"]["content_hash"] == "sha256:" + hashlib.sha256(first).hexdigest()
    final = moving.read_bytes()
    again = run_load(make_settings, src, db_url, dest_table="data", **options)
    assert {f.path: f.status for f in again.files}["moving.csv"] == "loaded"
    assert per_file(engine, "data") == {"moving.csv": facts(final), "still.csv": (2, 3)}
    assert ledger_rows(engine)["moving.csv"]["content_hash"] == "sha256:" + hashlib.sha256(final).hexdigest()


# ---------------------------------------------------------------- the parent killed alone


@pytest.mark.slow
def test_the_parent_killed_alone_then_an_immediate_rerun_loads_each_file_once(tmp_path, db_url, engine_of):
    src = tmp_path / "src"
    expected = {}
    for number in range(5):  # one file long enough that the others are loaded while it still loads
        ids = range(number * 1_000_000, number * 1_000_000 + (300_000 if number == 0 else 20_000))
        write_csv(src / f"part-{number}.csv", ["id", "note"], ([i, f"row {i}, of {number}"] for i in ids))
        expected[f"part-{number}.csv"] = (len(ids), sum(ids))
    (tmp_path / "tmp").mkdir()
    env = index_env(src, db_url, DEST_TABLE="parts", LOAD_WORKERS="2", TMPDIR=str(tmp_path / "tmp"))
    engine = engine_of(db_url)
    run = start_index("load", env)

    def some_loaded_some_loading() -> bool:
        found = {entry["status"] for entry in ledger_rows(engine).values()}
        return {"loaded", "loading"} <= found

    wait_until(some_loaded_some_loading, what="a file loaded while another loads")
    os.kill(run.pid, signal.SIGKILL)  # the parent only: its workers are not told
    run.wait(timeout=30)
    rerun = start_index("load", env)  # at once, while the workers may still be alive
    wait_until(lambda: session_processes(run.pid) == [], timeout=10, what="the killed run's workers to stop")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert per_file(engine, "parts") == expected
    assert {entry["status"] for entry in ledger_rows(engine).values()} == {"loaded"}
    assert pipes_left(tmp_path / "tmp") == []


def test_pipe_folders_of_dead_processes_are_swept_and_live_ones_kept(tmp_path, monkeypatch):
    from processor.staging import mysql

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for owner in (dead.pid, os.getpid()):
        folder = tmp_path / f"processor-{owner}-x1"
        folder.mkdir()
        os.mkfifo(folder / "data.csv")
    (tmp_path / "processor-notapid").mkdir()
    monkeypatch.setattr(mysql.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(mysql, "_swept", False)
    mysql.sweep_pipes()
    assert pipes_left(tmp_path) == [f"processor-{os.getpid()}-x1", "processor-notapid"]


def test_a_zombie_parent_counts_as_dead():
    from processor.parallel import process_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_until(lambda: not process_alive(child.pid), timeout=30, what="the exited child to read as dead")
    assert os.path.exists(f"/proc/{child.pid}")  # not reaped yet: a zombie
    child.wait()
    assert process_alive(os.getpid())


@pytest.mark.parametrize("name", [LOCK_TABLE, f"{PART_PREFIX}0123456789ab_1a2b3c4d"], ids=["lock", "private"])
def test_the_lock_table_and_private_tables_are_processors_own(name, make_settings):
    """No configured table and no file's table may take their names."""
    with pytest.raises(ConfigError, match="processor's own tables"):
        check_names(make_settings(dest_table=name))
    assert "kept for the ledger" in name_clash(name, "deals", [])


@pytest.mark.parametrize(
    ("staged", "private", "deferred"),
    [
        ("double", "integer", {}),  # the staging table holds it as it is
        ("integer", "text", {}),  # integers read back the same as text
        ("double", "text", {"v": "text"}),  # other files' doubles would read back as 3.0
        ("text", "double", {"v": "double"}),  # this file's doubles, cast to text on the way in
    ],
)
def test_a_big_file_does_not_move_in_when_that_would_change_values_as_they_read_back(staged, private, deferred):
    from processor.schema import ColumnType
    from processor.staging.ranges import _rewrites

    found = _rewrites({"v": ColumnType(staged), "w": ColumnType("text")}, {"v": ColumnType(private)}, "postgresql")
    assert {column: t.kind for column, t in found.items()} == deferred
