"""Small test helpers: write CSV files, run a load, read tables back as plain comparable values."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from processor.staging.loader import load

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "processor" / "sample_data"


def write_csv(path: Path, header, rows, **kwargs) -> Path:
    """Write a CSV with the csv module (LF endings unless given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("lineterminator", "\n")
    encoding = kwargs.pop("encoding", "utf-8")
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle, **kwargs)
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def run_load(make_settings, folder: Path, db_url: str, **fields):
    """Load `folder` into `db_url` with test settings; returns the LoadReport."""
    settings = make_settings(src_data_folder=str(folder), dest_sql=db_url, **fields)
    return load(settings)


def load_column(make_settings, folder: Path, db_url: str, engine, values: list[str], **fields):
    """Load a file `id,v` of `values` (ids 0, 1, ...) from `folder` into table v; returns the report and the
    values v holds, in id order, as the driver gives them."""
    write_bytes(folder / "v.csv", ("id,v\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values))).encode())
    report = run_load(make_settings, folder, db_url, **fields)
    with engine.connect() as conn:
        return report, [v for _id, v in conn.execute(sa.text("SELECT id, v FROM v ORDER BY id"))]


def plain(value):
    """A database value as something comparable across dialects."""
    if isinstance(value, float):
        return Decimal(repr(value)).normalize()
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def read_table(engine: sa.Engine, table: str, order_by: str | None = None, columns: list[str] | None = None):
    """Every row of a table as a dict of plain values (in `order_by` order)."""
    meta = sa.MetaData()
    reflected = sa.Table(table, meta, autoload_with=engine)
    selected = [reflected.c[c] for c in columns] if columns else list(reflected.c)
    query = sa.select(*selected)
    if order_by:
        query = query.order_by(*(reflected.c[c] for c in order_by.split(",")))
    with engine.connect() as conn:
        return [{k: plain(v) for k, v in row._mapping.items()} for row in conn.execute(query)]


def count(engine: sa.Engine, table: str, where: str = "") -> int:
    quoted = engine.dialect.identifier_preparer.quote(table)
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {quoted} {where}")).scalar_one()


def lineage(folder: Path, path: str) -> str:
    """The `_source_file` of the rows of `path` loaded from the folder `folder`: where the file is."""
    return f"{Path(folder).as_posix()}/{path}"


def ledger_rows(engine: sa.Engine) -> dict[str, dict]:
    return {row["path"]: row for row in read_table(engine, "_processor_files")}


def reject_rows(engine: sa.Engine, path: str | None = None) -> list[dict]:
    rows = read_table(engine, "_processor_rejects", order_by="path,line")
    return [r for r in rows if path is None or r["path"] == path]


# ---------------------------------------------------------------- the real command, as a process


def index_env(folder: Path | None, url: str, **env: str) -> dict[str, str]:
    """The environment of a `python index.py` run: only what is given (plus PATH and PYTHONPATH)."""
    variables = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "DEST_SQL": url, "PROGRESS": "0"}
    if folder is not None:
        variables["SRC_DATA_FOLDER"] = str(folder)
    return {**variables, **env}


def start_index(step: str, env: dict[str, str]) -> subprocess.Popen:
    """Start `python index.py <step>` in a session of its own (so a test can signal it, or its group)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "index.py"), step],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition, timeout: float = 120.0, what: str = "") -> None:
    """Poll `condition` until it holds (database errors count as not yet); fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except sa.exc.SQLAlchemyError:
            pass  # a table may not exist yet
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def session_processes(session: int) -> list[int]:
    """Live (not zombie) processes of a session, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != b"Z":
            found.append(int(entry))
    return found


def run_index(cwd: Path, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python index.py` in `cwd` with only the given variables (plus PATH) set."""
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "PROGRESS": "0"}
    return subprocess.run(
        [sys.executable, str(ROOT / "index.py"), *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sample_copy(tmp_path: Path) -> Path:
    """The bundled sample's three files in a folder of the test's own (the sample itself never syncs)."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for name in ("raw_customers.csv", "raw_orders.csv", "raw_payments.csv"):
        (src / name).write_bytes((SAMPLE / name).read_bytes())
    return src


def meddle_mid_run(monkeypatch, when: str, path: str, act) -> None:
    """Call `act()` in the middle of a load: `when` is "after the listing" (all files listed, none opened) or
    "after the profile" (the file at `path` was sampled, its load not yet started)."""
    from processor.staging import loader

    if when == "after the listing":
        listing = loader.discover

        def discover_then_act(*args, **kwargs):
            found = listing(*args, **kwargs)
            act()
            return found

        monkeypatch.setattr(loader, "discover", discover_then_act)
    else:
        profiling = loader.profile_source

        def profile_then_act(task):
            profiled = profiling(task)
            if task.source.path == path:
                act()
            return profiled

        monkeypatch.setattr(loader, "profile_source", profile_then_act)
