"""Our loader against its peers: time ÷ the database's own loader, and what each tool changed.

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/bench_peers.py                      # 20k rows, 3 rounds: a few minutes
    .venv/bin/python bench/bench_peers.py --rows 100000 --hard-rows 2000
    .venv/bin/python bench/bench_peers.py --databases postgres --tools native,processor,dlt

Tools: `processor` (`python index.py load`, as a user runs it), dlt, sling, pgloader (PostgreSQL
only), pandas `read_csv` + `to_sql`, sqlite-utils (SQLite only), and each database's native loader
(`psql \\copy`, MariaDB `LOAD DATA LOCAL INFILE` with NULLIF for typed columns, `sqlite3 .import`),
which load into a table created beforehand with the types our loader chose. Each peer is installed
by this script into its own virtualenv under bench/out/peers/venv (pinned); pgloader is taken from
the PATH or unpacked from Debian's package; a peer that cannot be had here is reported with the
reason and how to install it.

Speed: the wide file of bench_load.py (`--rows` rows × 22 columns); every tool loads it once per
round into a fresh schema, rounds interleave the tools (their order rotates), and each time is
divided by the native loader's on the same database: ratio of the medians, range of the per-round
ratios. Exactness: after the rounds every tool also loads a hard file (bench/peers/hardcsv.py), and
both tables are read back and compared with the file's text value by value
(bench/peers/exact.py says what counts as kept, reformatted and changed).

Databases: BENCH_POSTGRES_URL / BENCH_MYSQL_URL (default: the local test servers); the script
creates and drops the schemas (PostgreSQL) and databases (MariaDB) named bench_peers_*, and keeps
SQLite files under bench/out/peers/sqlite. Results: stdout (Markdown), bench/out/peers/peers.json,
and one log per load under bench/out/peers/logs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out" / "peers"
sys.path.insert(0, str(HERE))
from peers import exact, install, tools  # noqa: E402
from peers.hardcsv import HARD, HUGE, write_hard_csv  # noqa: E402
from peers.report import as_json, markdown  # noqa: E402
from peers.spaces import Spaces  # noqa: E402
from widecsv import write_wide_csv  # noqa: E402

PG = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MY = os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
TEMPLATE = "template"  # our loader's tables, whose columns the native tools and pgloader load into


@dataclass
class Outcome:
    """One tool on one database."""

    times: list[float] = field(default_factory=list)
    error: str | None = None  # why a timed load failed (no more rounds for it)
    checks: dict[str, exact.Check] = field(default_factory=dict)  # file stem -> what came back


def _masked(text: str) -> str:
    return re.sub(r"(://[^:/@\s]+):[^@\s]+@", r"\1:***@", text)


def _tail(text: str) -> str:
    """The line of a tool's output that says what went wrong: the root Python exception (the first
    in a chained traceback), else the last line that speaks of an error, else the last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception|Range)\w*: ", line)]
    errors = [line for line in lines if re.search(r"error|fatal|failed", line, re.I) and "sqlalche.me" not in line]
    chosen = raised[0] if raised else (errors or lines or ["no output"])[-1]
    return _masked(chosen)[:240]


def load(job: tools.Job, servers: tools.Servers, peer, timeout: float, log: Path) -> float | str:
    """Run one load; its seconds, or why it failed."""
    cmd = tools.command(job, servers, peer)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            cmd.argv, env={**os.environ, **cmd.env}, cwd=cmd.cwd, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    except OSError as exc:
        return f"does not start: {exc}"
    seconds = time.perf_counter() - started
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        _masked(f"$ {tools.shown(cmd)}\n# exit {done.returncode}, {seconds:.2f} s\n{done.stdout}\n{done.stderr}")
    )
    if done.returncode != 0:
        return f"exit {done.returncode}: {_tail(done.stderr or done.stdout)}"
    return seconds


def servers() -> tools.Servers:
    return tools.Servers(make_url(PG), make_url(MY), OUT / "sqlite", OUT / "work")


class Bench:
    def __init__(self, args: argparse.Namespace, peers: dict) -> None:
        self.args = args
        self.peers = peers
        self.servers = servers()
        self.spaces = Spaces(self.servers)
        self.servers.work.mkdir(parents=True, exist_ok=True)
        self.outcomes: dict[tuple[str, str], Outcome] = {}

    def tools_on(self, family: str) -> list[str]:
        chosen = [t for t in self.args.tools if tools.runs_on(t, family)]
        return [t for t in chosen if t in ("native", "processor") or not isinstance(self.peers.get(t), str)]

    def job(self, tool: str, family: str, csv: Path) -> tools.Job:
        header = _header(csv)
        typed = self.spaces.typed_columns(family, TEMPLATE, csv.stem) if tool in tools.NEEDS_TABLE else frozenset()
        return tools.Job(tool, family, csv, header, typed)

    def prepare(self, tool: str, family: str, csv: Path, fresh: bool) -> None:
        if fresh:
            self.spaces.reset(family, tool)
        if tool in tools.NEEDS_TABLE:
            self.spaces.copy_table(family, csv.stem, TEMPLATE, tool)

    def run(self, tool: str, family: str, csv: Path, fresh: bool, label: str) -> float | str:
        self.prepare(tool, family, csv, fresh)
        job = self.job(tool, family, csv)
        peer = self.peers.get(tool)
        log = OUT / "logs" / f"{family}-{tool}-{label}.log"
        return load(job, self.servers, peer, self.args.timeout, log)

    def template(self, family: str, files: list[Path]) -> None:
        self.spaces.reset(family, TEMPLATE)
        for csv in files:
            job = tools.Job(TEMPLATE, family, csv, _header(csv))
            result = load(
                job, self.servers, None, self.args.timeout, OUT / "logs" / f"{family}-template-{csv.stem}.log"
            )
            if isinstance(result, str):
                raise SystemExit(f"{tools.DATABASES[family]}: our loader failed on {csv.name}: {result}")

    def rounds(self, family: str, wide: Path) -> None:
        names = self.tools_on(family)
        for number in range(self.args.rounds):
            shift = number % len(names)
            for tool in names[shift:] + names[:shift]:
                outcome = self.outcomes.setdefault((family, tool), Outcome())
                if outcome.error:
                    continue
                result = self.run(tool, family, wide, fresh=True, label=f"wide-{number + 1}")
                shown = f"{result:.2f} s" if isinstance(result, float) else result
                print(
                    f"round {number + 1}/{self.args.rounds} {tools.DATABASES[family]:10} {tool:12} {shown}", flush=True
                )
                if isinstance(result, str):
                    outcome.error = result
                else:
                    outcome.times.append(result)

    def exactness(self, family: str, files: list[Path], wide: Path) -> None:
        """Every tool loads each exactness file; then its tables are read back and compared."""
        for tool in self.tools_on(family):
            outcome = self.outcomes.setdefault((family, tool), Outcome())
            fresh = outcome.error is not None or not outcome.times
            for csv in files:
                result = self.run(tool, family, csv, fresh=fresh, label=csv.stem)
                fresh = False
                check = self.check(family, tool, csv)
                if isinstance(result, str):
                    check.error = result
                    print(f"exactness {tools.DATABASES[family]:10} {tool:12} {csv.name}: {result}", flush=True)
                outcome.checks[csv.stem] = check
            if self.args.check_timed and not outcome.error:
                outcome.checks[wide.stem] = self.check(family, tool, wide)

    def check(self, family: str, tool: str, csv: Path) -> exact.Check:
        header, rows = exact.read_file(csv)
        try:
            columns, table_rows = self.spaces.read(family, tool, csv.stem)
        except Exception as exc:  # noqa: BLE001 (a table never created: every value is missing)
            print(f"read back {tools.DATABASES[family]} {tool} {csv.stem}: {_tail(str(exc))}", flush=True)
            columns, table_rows = [], []
        return exact.compare(header, rows, columns, table_rows)


CLIENTS = {"postgres": ["psql"], "mysql": ["mariadb", "mysql"], "sqlite": ["sqlite3"]}


def preflight(spaces: Spaces, families: list[str]) -> None:
    """Each database answers and its native client is installed; else one line saying what to do."""
    for family in families:
        name = tools.DATABASES[family]
        if not any(shutil.which(client) for client in CLIENTS[family]):
            raise SystemExit(
                f"{name}: the native client ({' or '.join(CLIENTS[family])}) is not on the PATH; install it"
            )
        if family == "sqlite":
            continue
        try:
            with spaces.engine(family).connect():
                pass
        except Exception as exc:  # noqa: BLE001 (any driver error: say it in one line)
            variable = "BENCH_POSTGRES_URL" if family == "postgres" else "BENCH_MYSQL_URL"
            raise SystemExit(
                f"{name} does not answer ({_tail(str(exc))}); start it, set {variable}, "
                f"or leave it out with --databases"
            ) from None


def _header(csv: Path) -> list[str]:
    with csv.open(encoding="utf-8") as handle:
        return handle.readline().rstrip("\n").split(",")


def _files(args: argparse.Namespace) -> tuple[Path, list[Path]]:
    """The timed file, and the exactness files (each in its own folder, as our loader reads folders)."""
    wide = OUT / "data" / f"wide-{args.rows}" / "wide.csv"
    if not wide.exists():
        print(f"writing {wide} ({args.rows:,} rows) ...", flush=True)
        write_wide_csv(wide, args.rows)
    hard = write_hard_csv(OUT / "data" / "hard" / "hard.csv", args.hard_rows, HARD)
    huge = write_hard_csv(OUT / "data" / "huge" / "huge.csv", args.hard_rows, HUGE)
    return wide, [hard, huge]


def _number(text: str) -> str:
    found = re.search(r"[0-9]+\.[0-9.]+", text)
    return found.group(0) if found else "?"


def _versions(peers: dict) -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    commit = first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    client = "mariadb" if tools._which("mariadb") else "mysql"
    mariadb = re.search(r"Distrib ([0-9.]+)", first_line([client, "--version"]))
    found = {
        "processor": f"commit {commit}",
        "native:postgres": "psql " + _number(first_line(["psql", "--version"])),
        "native:mysql": f"{client} {mariadb.group(1) if mariadb else '?'}",
        "native:sqlite": "sqlite3 " + first_line(["sqlite3", "--version"]).split(" ")[0],
    }
    for name, peer in peers.items():
        found[name] = peer if isinstance(peer, str) else peer.version
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the timed file (default 20,000)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--hard-rows", type=int, default=1000, help="rows of the exactness files (default 1,000)")
    parser.add_argument("--databases", default="postgres,mysql,sqlite", help="comma-separated (default: all three)")
    parser.add_argument("--tools", default=",".join(tools.TOOLS), help="comma-separated (default: all)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds one load may take (default 900)")
    parser.add_argument(
        "--no-check-timed", dest="check_timed", action="store_false", help="check only the hard file's values"
    )
    parser.add_argument("--keep", action="store_true", help="keep the schemas, databases and files afterwards")
    args = parser.parse_args()
    args.tools = [t for t in args.tools.split(",") if t]
    families = [f for f in args.databases.split(",") if f]
    unknown = [t for t in args.tools if t not in tools.TOOLS] + [f for f in families if f not in tools.DATABASES]
    if unknown:
        raise SystemExit(f"unknown tool or database: {', '.join(unknown)}; tools: {', '.join(tools.TOOLS)}")

    OUT.mkdir(parents=True, exist_ok=True)
    preflight(Spaces(servers()), families)
    peers = install.prepare(
        [t for t in args.tools if t not in ("native", "processor")], OUT, os.environ.get("SLING_BINARY")
    )
    wide, checked = _files(args)
    bench = Bench(args, peers)
    load_before = os.getloadavg()
    started = time.perf_counter()
    phases = {}
    try:
        for family in families:
            bench.template(family, [wide, *checked])
        phases["rounds"] = time.perf_counter()
        for family in families:
            bench.rounds(family, wide)
        phases["exactness"] = time.perf_counter()
        for family in families:
            bench.exactness(family, checked, wide)
        phases["end"] = time.perf_counter()
    finally:
        if not args.keep:
            for family in families:
                for tool in [TEMPLATE, *tools.TOOLS]:
                    bench.spaces.drop(family, tool)
        bench.spaces.dispose()
    facts = {
        "rows": args.rows,
        "wide_mb": round(wide.stat().st_size / 2**20, 1),
        "rounds": args.rounds,
        "hard_rows": args.hard_rows,
        "hard_kinds": len(HARD),
        "cores": os.cpu_count(),
        "load_average_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "seconds": round(time.perf_counter() - started),
        "rounds_seconds": round(phases["exactness"] - phases["rounds"]),
        "exactness_seconds": round(phases["end"] - phases["exactness"]),
        "python": platform.python_version(),
        "tools": args.tools,
    }
    versions = _versions(peers)
    missing = {name: reason for name, reason in peers.items() if isinstance(reason, str)}
    text = markdown(bench.outcomes, versions, facts, families, missing)
    print("\n" + text)
    (OUT / "peers.md").write_text(text)
    (OUT / "peers.json").write_text(json.dumps(as_json(bench.outcomes, versions, facts), indent=2, default=str))


if __name__ == "__main__":
    main()
