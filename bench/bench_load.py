"""Staging speed against the databases' own tools, timed in the same run, reported as ratios.

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/bench_load.py                 # 500k rows x 22 columns, 3 repeats
    .venv/bin/python bench/bench_load.py --rows 100000 --repeat 1 --skip-big
    .venv/bin/python bench/bench_load.py --big-only --big-gb 1.46    # one big file: time, peak RSS and PSS

Needs `psql`, `mysql` and `sqlite3` on the PATH and the servers of BENCH_POSTGRES_URL /
BENCH_MYSQL_URL (default: the local test servers), in schema / database BENCH_SCHEMA (default
bench_load; another name keeps concurrent runs apart). Each number is the median of the repeats;
the processor side runs `python index.py load` as a user would (interpreter start-up,
inference, ledger and lineage included), and `*_library` rows run the same load through
`processor.load_folder` in the benchmark's own process (everything but start-up). Results go to stdout as a Markdown table and to bench/out/load.json.
The big file (`widecsv.py`'s file repeated to about --big-gb GiB) loads with LOAD_WORKERS=2; its peak memory is
the process tree's, sampled every 50 ms: RSS (a page shared by several processes counted in each) and PSS (shared
pages divided among them: what the tree really holds).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from widecsv import HEADER, repeat_file, write_wide_csv  # noqa: E402

PG = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MY = os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
SCHEMA = os.environ.get("BENCH_SCHEMA", "bench_load")  # another name keeps concurrent runs apart
COLUMNS = ",".join(HEADER)


def sh(command: list[str] | str, env: dict | None = None, quiet: bool = True) -> None:
    result = subprocess.run(
        command, shell=isinstance(command, str), env={**os.environ, **(env or {})}, capture_output=quiet, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"command failed ({result.returncode}): {command}\n{result.stderr}")


def timed(prepare, action, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        prepare()
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def psql(sql: str) -> list[str]:
    url = make_url(PG)
    return [
        "psql",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        url.host,
        "-p",
        str(url.port or 5432),
        "-U",
        url.username,
        "-d",
        url.database,
        "-c",
        sql,
    ]


def pg_url() -> str:
    return f"{PG}?options=-csearch_path%3D{SCHEMA}"


def mysql_cli(sql: str, local: bool = False) -> list[str]:
    url = make_url(MY)
    command = ["mysql", "-h", url.host, "-P", str(url.port or 3306), "-u", url.username]
    if url.password:
        command.append(f"-p{url.password}")
    if local:
        command.append("--local-infile=1")
    return [*command, "-e", sql]


def processor(folder: Path, url: str, workers: int = 1, table: str | None = None) -> None:
    env = {
        "SRC_DATA_FOLDER": str(folder),
        "DEST_SQL": url,
        "LOAD_WORKERS": str(workers),
        "PROGRESS": "0",
        "LOG_LEVEL": "WARNING",
    }
    if table:
        env["DEST_TABLE"] = table
    sh([sys.executable, str(ROOT / "index.py"), "load"], env)


def reset_pg() -> None:
    sh(psql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}"))


def reset_mysql() -> None:
    sh(mysql_cli(f"DROP DATABASE IF EXISTS {SCHEMA}; CREATE DATABASE {SCHEMA} CHARACTER SET utf8mb4"))


def library(folder: Path, url: str) -> None:
    """The same load through the library, in this process (no interpreter start-up or imports)."""
    from processor import load_folder

    report = load_folder(str(folder), url=url, workers=1, log_level="WARNING")
    assert report.exit_code == 0, report.lines()


def bench_postgres(single: Path, folder8: Path, repeat: int) -> dict:
    wide = single / "wide.csv"
    ours = timed(reset_pg, lambda: processor(single, pg_url()), repeat)
    ours_library = timed(reset_pg, lambda: library(single, pg_url()), repeat)
    copy = f"\\copy {SCHEMA}.wide ({COLUMNS}) FROM '{wide}' WITH (FORMAT csv, HEADER true)"
    ref = timed(lambda: sh(psql(f"TRUNCATE {SCHEMA}.wide")), lambda: sh(psql(copy)), repeat)
    ours8 = timed(reset_pg, lambda: processor(folder8, pg_url(), workers=2, table="wide"), repeat)
    copies = [
        f"\\copy {SCHEMA}.wide ({COLUMNS}) FROM '{f}' WITH (FORMAT csv, HEADER true)"
        for f in sorted(folder8.glob("*/wide.csv"))
    ]
    url = make_url(PG)
    sequential = ["psql", "-q", "-h", url.host, "-U", url.username, "-d", url.database]
    for command in copies:
        sequential += ["-c", command]
    ref8 = timed(lambda: sh(psql(f"TRUNCATE {SCHEMA}.wide")), lambda: sh(sequential), repeat)
    return {
        "postgres_one_file": (ours, ref, "psql \\copy"),
        "postgres_one_file_library": (ours_library, ref, "psql \\copy"),
        "postgres_8_files_2_workers": (ours8, ref8, "8 x psql \\copy"),
    }


def bench_mysql(single: Path, repeat: int) -> dict:
    my_url = make_url(MY).set(database=SCHEMA).render_as_string(hide_password=False)
    ours = timed(reset_mysql, lambda: processor(single, my_url), repeat)
    ours_library = timed(reset_mysql, lambda: library(single, my_url), repeat)
    load = (
        f"LOAD DATA LOCAL INFILE '{single / 'wide.csv'}' INTO TABLE {SCHEMA}.wide CHARACTER SET utf8mb4 "
        "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\\n' "
        f"IGNORE 1 LINES ({COLUMNS})"
    )
    ref = timed(lambda: sh(mysql_cli(f"TRUNCATE {SCHEMA}.wide")), lambda: sh(mysql_cli(load, local=True)), repeat)
    # The reference that loads what we load: an empty field of a typed column is NULL (plain LOAD DATA makes it 0,
    # or a zero date, with a warning), as bench_peers.py's native MariaDB load does.
    typed = set(
        _mysql_rows(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"'{SCHEMA}' AND table_name = 'wide' AND data_type NOT IN ('varchar', 'text', 'mediumtext', 'longtext')"
        )
    )
    variables = ",".join(f"@v{i}" for i in range(len(HEADER)))
    assignments = ",".join(
        f"`{name}` = NULLIF(@v{i}, '')" if name in typed else f"`{name}` = @v{i}" for i, name in enumerate(HEADER)
    )
    load_nullif = load.replace(f"({COLUMNS})", f"({variables}) SET {assignments}")
    ref_nullif = timed(
        lambda: sh(mysql_cli(f"TRUNCATE {SCHEMA}.wide")), lambda: sh(mysql_cli(load_nullif, local=True)), repeat
    )
    return {
        "mysql_one_file": (ours, ref, "mysql LOAD DATA LOCAL"),
        "mysql_one_file_library": (ours_library, ref, "mysql LOAD DATA LOCAL"),
        "mysql_one_file_vs_nullif": (ours, ref_nullif, "LOAD DATA LOCAL, NULLIF on typed columns"),
        "mysql_one_file_library_vs_nullif": (ours_library, ref_nullif, "LOAD DATA LOCAL, NULLIF on typed columns"),
    }


def _mysql_rows(sql: str) -> list[str]:
    """The first column of a query's rows, through the mysql client (no header)."""
    result = subprocess.run([*mysql_cli(sql), "--batch", "--skip-column-names"], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"query failed: {sql}\n{result.stderr}")
    return result.stdout.split()


def bench_sqlite(single: Path, repeat: int) -> dict:
    db = OUT / "bench.db"
    ref_db = OUT / "reference.db"

    def reset(path: Path) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    ours = timed(lambda: reset(db), lambda: processor(single, f"sqlite:///{db}"), repeat)
    ours_library = timed(lambda: reset(db), lambda: library(single, f"sqlite:///{db}"), repeat)
    schema = subprocess.run(["sqlite3", str(db), ".schema wide"], capture_output=True, text=True).stdout
    # The reference loads the file's 22 columns; left in, the lineage column would make `.import` warn
    # about a short row for every row (and time writing 500,000 warnings).
    schema = re.sub(r",\s*_source_file TEXT", "", schema)

    def prepare_reference() -> None:
        reset(ref_db)
        sh(["sqlite3", str(ref_db), schema])

    def reference() -> None:
        command = ["sqlite3", str(ref_db), f".import --csv --skip 1 {single / 'wide.csv'} wide"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or result.stderr:
            raise SystemExit(f"the reference load failed or warned: {result.stderr[:500]}")

    ref = timed(prepare_reference, reference, repeat)
    return {
        "sqlite_one_file": (ours, ref, "sqlite3 .import"),
        "sqlite_one_file_library": (ours_library, ref, "sqlite3 .import"),
    }


def bench_pandas(single: Path) -> dict:
    import pandas as pd
    from sqlalchemy import create_engine

    engine = create_engine(PG.replace("postgresql://", "postgresql+psycopg2://"))
    reset_pg()
    started = time.perf_counter()
    pd.read_csv(single / "wide.csv").to_sql("wide_pandas", engine, schema=SCHEMA, index=False)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"pandas_to_sql": seconds}


def tree_memory(root: psutil.Process) -> tuple[int, int]:
    """Resident (RSS) and proportional (PSS) memory of a process and its descendants, in bytes.

    RSS counts a page shared by several processes (the interpreter and libraries a forked worker
    shares with its parent) once per process; PSS divides it among them, so the sum over a tree
    is what the tree really holds. PSS comes from /proc/<pid>/smaps_rollup (Linux); without it,
    PSS reads as RSS.
    """
    rss = pss = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            resident = process.memory_info().rss
        except psutil.Error:
            continue
        rss += resident
        try:
            with open(f"/proc/{process.pid}/smaps_rollup") as rollup:
                pss += next(int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:"))
        except (OSError, StopIteration, ValueError):
            pss += resident
    return rss, pss


def peak_memory(big_folder: Path) -> dict:
    """Peak RSS and PSS of the whole process tree while staging one big file into PostgreSQL with 2 workers,
    sampled every 50 ms (each sum taken over the tree at one moment; the two peaks may be moments apart)."""
    reset_pg()
    env = {
        **os.environ,
        "SRC_DATA_FOLDER": str(big_folder),
        "DEST_SQL": pg_url(),
        "PROGRESS": "0",
        "LOG_LEVEL": "WARNING",
        "LOAD_WORKERS": "2",
    }
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(ROOT / "index.py"), "load"], env=env)
    peak_rss = peak_pss = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_rss, peak_pss
        parent = psutil.Process(process.pid)
        while not stop.is_set():
            try:
                rss, pss = tree_memory(parent)
            except psutil.Error:
                rss = pss = 0
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    process.wait()
    stop.set()
    sampler.join()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"the big-file load failed (exit {process.returncode})")
    copy = f"\\copy {SCHEMA}.wide ({COLUMNS}) FROM '{big_folder / 'wide.csv'}' WITH (FORMAT csv, HEADER true)"
    ref = timed(lambda: sh(psql(f"TRUNCATE {SCHEMA}.wide")), lambda: sh(psql(copy)), 1)
    size = (big_folder / "wide.csv").stat().st_size
    return {
        "big_file_bytes": size,
        "big_file_peak_rss_mb": peak_rss / 2**20,
        "big_file_peak_pss_mb": peak_pss / 2**20,
        "big_file_seconds": seconds,
        "big_file_copy_seconds": ref,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big-gb", type=float, default=2.0)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--big-only", action="store_true", help="time only the big file (peak memory)")
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument(
        "--only", default="postgres,mysql,sqlite", help="databases to time, comma-separated (default: all three)"
    )
    args = parser.parse_args()
    only = set(args.only.split(","))

    single = OUT / ("one" if args.rows == 500_000 else f"one-{args.rows}")  # a quick run keeps the full file
    wide = single / "wide.csv"
    if not wide.exists() or wide.stat().st_mtime < Path(__file__).stat().st_mtime:
        write_wide_csv(wide, args.rows)
    folder8 = OUT / "eight"
    for part in range(0 if args.big_only else 8):
        target = folder8 / f"part-{part}" / "wide.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.stat().st_size != wide.stat().st_size:
            target.write_bytes(wide.read_bytes())

    results: dict = {}
    if args.big_only:
        only, args.skip_pandas, args.skip_big = {"postgres"}, True, False
    if "postgres" in only and not args.big_only:
        results.update(bench_postgres(single, folder8, args.repeat))
    if "mysql" in only and not args.big_only:
        results.update(bench_mysql(single, args.repeat))
    if "sqlite" in only and not args.big_only:
        results.update(bench_sqlite(single, args.repeat))
    if not args.skip_pandas and "postgres" in only:
        results.update(bench_pandas(single))
    if not args.skip_big and "postgres" in only:
        big = OUT / "big"
        big.mkdir(parents=True, exist_ok=True)
        times = max(1, round(args.big_gb * 2**30 / wide.stat().st_size))
        # one header, then the body `times` times (the header is far under 1 KB)
        if not (big / "wide.csv").exists() or (big / "wide.csv").stat().st_size < (wide.stat().st_size - 1024) * times:
            repeat_file(wide, big / "wide.csv", times)
        results.update(peak_memory(big))

    print(
        f"\n{args.rows:,} rows x {len(HEADER)} columns ({wide.stat().st_size / 2**20:.0f} MB), "
        f"median of {args.repeat}\n"
    )
    print("| case | processor (s) | reference | reference (s) | ratio |")
    print("|---|---:|---|---:|---:|")
    for name, value in results.items():
        if isinstance(value, tuple):
            ours, ref, tool = value
            print(f"| {name} | {ours:.2f} | {tool} | {ref:.2f} | {ours / ref:.2f} |")
    if "pandas_to_sql" in results and "postgres_one_file" in results:
        ours, ref, _ = results["postgres_one_file"]
        print(
            f"| pandas read_csv + to_sql, PostgreSQL | {results['pandas_to_sql']:.2f} | psql \\copy | {ref:.2f} | "
            f"{results['pandas_to_sql'] / ref:.2f} |"
        )
    if "big_file_peak_rss_mb" in results:
        print(
            f"\nbig file: {results['big_file_bytes'] / 2**30:.2f} GB into PostgreSQL in "
            f"{results['big_file_seconds']:.1f} s (psql \\copy {results['big_file_copy_seconds']:.1f} s); "
            f"peak memory of the process tree: RSS {results['big_file_peak_rss_mb']:.0f} MB, "
            f"PSS {results['big_file_peak_pss_mb']:.0f} MB"
        )
    OUT.mkdir(exist_ok=True)
    (OUT / "load.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
