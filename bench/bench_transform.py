"""Benchmark the deals view: build it, build it as a table, read it fully, on PostgreSQL and SQLite.

    python bench/bench_transform.py                                  # 1M orders, 100k customers
    python bench/bench_transform.py --orders 100000 --customers 10000 --backends sqlite,mysql

PostgreSQL comes from --postgresql-url (default: BENCH_POSTGRES_URL or TEST_POSTGRES_URL) and is used
in a schema of its own, MySQL (optional) from --mysql-url (BENCH_MYSQL_URL or TEST_MYSQL_URL) in a
database of its own, both dropped afterwards; SQLite is a file under bench/out/. The data comes from
`write_dataset` (fixed seed) and is staged with COPY on PostgreSQL and executemany elsewhere; the
project loader will replace that staging once it lands. Not a test: prints a table of timings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from processor.config import Settings  # noqa: E402
from processor.db import create_engine, normalise_url  # noqa: E402
from processor.staging.loader import load  # noqa: E402
from processor.transform import TransformReport, build_deals, deals_relation, reflect_staging  # noqa: E402
from scripts.make_sample_data import write_dataset  # noqa: E402

OUT = ROOT / "bench" / "out"
NAMESPACE = "bench_transform"


def timed(step: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result


def dataset(customers: int, orders: int, seed: int) -> Path:
    """The CSV files for these sizes, written once and reused."""
    folder = OUT / f"transform-{customers}-{orders}-{seed}"
    if not (folder / "raw_payments.csv").exists():
        write_dataset(folder, customers, orders, seed)
    return folder


@contextmanager
def fresh_engine(backend: str, url: str | None) -> Iterator[sa.Engine]:
    """An engine on an empty namespace: a schema (PostgreSQL), a database (MySQL) or a file (SQLite)."""
    if backend == "sqlite":
        for leftover in OUT.glob("transform.db*"):
            leftover.unlink()
        url, create, drop = f"sqlite:///{OUT / 'transform.db'}", None, None
    elif not url:
        sys.exit(f"no URL for {backend}: set --{backend}-url (or BENCH_/TEST_{backend.upper()}_URL)")
    elif backend == "postgresql":
        create, drop = f'CREATE SCHEMA "{NAMESPACE}"', f'DROP SCHEMA IF EXISTS "{NAMESPACE}" CASCADE'
    else:
        create, drop = f"CREATE DATABASE `{NAMESPACE}` CHARACTER SET utf8mb4", f"DROP DATABASE IF EXISTS `{NAMESPACE}`"
    admin = create_engine(url)
    if create:
        with admin.begin() as conn:
            conn.exec_driver_sql(drop)
            conn.exec_driver_sql(create)
        base = normalise_url(url)
        isolated = (
            base.update_query_dict({"options": f"-csearch_path={NAMESPACE}"})
            if backend == "postgresql"
            else base.set(database=NAMESPACE)
        )
        url = isolated.render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        if drop:
            with admin.begin() as conn:
                conn.exec_driver_sql(drop)
        admin.dispose()


def stage(settings: Settings, folder: Path) -> str:
    """Stage the three files with the project loader (PostgreSQL COPY, MySQL LOAD DATA, SQLite inserts)."""
    report = load(
        settings.replace(
            src_data_folder=str(folder), src_file_name=("raw_*.csv",), load_workers=2, progress="off", full_refresh=True
        )
    )
    if report.exit_code:
        sys.exit("\n".join(report.lines()))
    return f"{report.rows_loaded} rows"


def read_fully(settings: Settings, engine: sa.Engine) -> int:
    """Stream every row of the deals relation through SQLAlchemy (money as Decimal); returns the row count."""
    rows = 0
    with engine.connect() as conn:
        relation = deals_relation(settings, reflect_staging(settings, conn))
        result = conn.execution_options(yield_per=10_000).execute(sa.select(relation))
        for partition in result.partitions():
            rows += len(partition)
    return rows


def describe(outcome: object) -> str:
    if isinstance(outcome, TransformReport):
        return f"{outcome.deals} deals worth {outcome.total_value}, {outcome.bonus_deals} with a bonus"
    if isinstance(outcome, str):
        return outcome
    return f"{outcome} rows" if isinstance(outcome, int) else ""


def run(backend: str, engine: sa.Engine, folder: Path) -> list[tuple[str, str, float, str]]:
    settings = Settings(dest_sql=engine.url.render_as_string(hide_password=False))
    table = settings.replace(deals_materialize=True)
    results = []
    steps = [
        ("stage the CSV files (the project loader)", lambda: stage(settings, folder)),
        ("first build of the view (creates the key indexes)", lambda: build_deals(settings, engine)),
        ("rebuild the view (indexes exist)", lambda: build_deals(settings, engine)),
        ("read the view fully", lambda: read_fully(settings, engine)),
        ("build the materialised table", lambda: build_deals(table, engine)),
        ("read the table fully", lambda: read_fully(table, engine)),
        ("switch back to the view", lambda: build_deals(settings, engine)),
    ]
    for name, step in steps:
        seconds, outcome = timed(step)
        detail = describe(outcome)
        results.append((backend, name, seconds, detail))
        print(f"  {backend:<10} {name:<52} {seconds:8.2f} s  {detail}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20240101)
    parser.add_argument("--backends", default="postgresql,sqlite")
    for backend, env in (("postgresql", "POSTGRES"), ("mysql", "MYSQL")):
        default = os.environ.get(f"BENCH_{env}_URL") or os.environ.get(f"TEST_{env}_URL")
        parser.add_argument(f"--{backend}-url", default=default)
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    seconds, folder = timed(lambda: dataset(args.customers, args.orders, args.seed))
    counts = {
        name: sum(1 for _ in (folder / f"{name}.csv").open()) - 1
        for name in ("raw_customers", "raw_orders", "raw_payments")
    }
    print(f"dataset {folder.name}: {counts} ({seconds:.1f} s)", flush=True)

    urls = {"postgresql": args.postgresql_url, "mysql": args.mysql_url, "sqlite": None}
    results = []
    for backend in args.backends.split(","):
        if backend not in urls:
            sys.exit(f"unknown backend {backend!r}: use postgresql, sqlite and/or mysql")
        with fresh_engine(backend, urls[backend]) as engine:
            results += run(backend, engine, folder)

    print("\n| backend | step | seconds |\n|---|---|---:|")
    for backend, name, seconds, _ in results:
        print(f"| {backend} | {name} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
