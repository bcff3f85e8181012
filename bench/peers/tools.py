"""How each tool loads one CSV file into one database: the command line a user would type.

Every tool writes into its own namespace: the schema `bench_peers_<tool>` on PostgreSQL, the
database of that name on MariaDB, the file `<tool>.db` on SQLite. The table is named after the
file (`wide`, `hard`). The native tools and pgloader need the table to exist; it is created
beforehand (untimed) with the columns and types our loader chose for the same file.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL

ROOT = Path(__file__).resolve().parents[2]
DATABASES = {"postgres": "PostgreSQL", "mysql": "MariaDB", "sqlite": "SQLite"}
TOOLS = ["native", "processor", "dlt", "sling", "pgloader", "pandas", "sqlite-utils"]
ONLY_ON = {"pgloader": {"postgres"}, "sqlite-utils": {"sqlite"}}
NEEDS_TABLE = {"native", "pgloader"}


def runs_on(tool: str, family: str) -> bool:
    return family in ONLY_ON.get(tool, {family})


def namespace(tool: str) -> str:
    return "bench_peers_" + tool.replace("-", "_")


@dataclass(frozen=True)
class Servers:
    postgres: URL
    mysql: URL
    sqlite_dir: Path
    work: Path  # working folders of the tools (dlt pipelines, pgloader files, sling home)

    def sqlite_file(self, tool: str) -> Path:
        return self.sqlite_dir / f"{tool}.db"


@dataclass(frozen=True)
class Job:
    tool: str
    family: str
    csv: Path
    columns: list[str]  # the file's header
    typed: frozenset[str] = frozenset()  # columns our loader typed (natives: NULL for an empty field)

    @property
    def table(self) -> str:
        return self.csv.stem

    @property
    def space(self) -> str:
        return namespace(self.tool)


@dataclass
class Command:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


def _url(url: URL, **changes) -> str:
    return url.set(**changes).render_as_string(hide_password=False)


def _plain(url: URL, database: str | None = None, query: dict | None = None) -> str:
    """scheme://user:password@host:port/database, for tools with their own drivers."""
    scheme = "postgresql" if url.get_backend_name() == "postgresql" else "mysql"
    return _url(url, drivername=scheme, database=database or url.database, query=query or {})


def processor(job: Job, servers: Servers, _peer) -> Command:
    folder = job.csv.parent
    if job.family == "postgres":
        url = _plain(servers.postgres, query={"options": f"-csearch_path={job.space}"})
    elif job.family == "mysql":
        url = _plain(servers.mysql, database=job.space)
    else:
        url = f"sqlite:///{servers.sqlite_file(job.tool)}"
    env = {"SRC_DATA_FOLDER": str(folder), "DEST_SQL": url, "PROGRESS": "0", "LOG_LEVEL": "WARNING"}
    return Command([sys.executable, str(ROOT / "index.py"), "load"], env)


def native(job: Job, servers: Servers, _peer) -> Command:
    columns = ", ".join(job.columns)
    if job.family == "postgres":
        url = servers.postgres
        copy = f"\\copy {job.space}.{job.table} ({columns}) FROM {_sql_string(job.csv)} WITH (FORMAT csv, HEADER true)"
        argv = ["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-h", url.host, "-p", str(url.port or 5432)]
        argv += ["-U", url.username, "-d", url.database, "-c", copy]
        return Command(argv, {"PGPASSWORD": url.password or ""})
    if job.family == "mysql":
        return Command(_mysql_client(servers.mysql, _load_data(job)), {"MYSQL_PWD": servers.mysql.password or ""})
    target = servers.sqlite_file(job.tool)
    return Command(["sqlite3", str(target), f".import --csv --skip 1 {_dot_arg(job.csv)} {job.table}"])


def _sql_string(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _dot_arg(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _load_data(job: Job) -> str:
    """LOAD DATA as a careful user writes it: an empty field is NULL in a typed column."""
    names = [f"@v{i}" for i in range(len(job.columns))]
    sets = ", ".join(
        f"`{column}` = NULLIF({var}, '')" if column in job.typed else f"`{column}` = {var}"
        for column, var in zip(job.columns, names, strict=True)
    )
    return (
        f"LOAD DATA LOCAL INFILE {_sql_string(job.csv)} INTO TABLE `{job.space}`.`{job.table}` "
        "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
        f"LINES TERMINATED BY '\\n' IGNORE 1 LINES ({', '.join(names)}) SET {sets}"
    )


def _mysql_client(url: URL, sql: str) -> list[str]:
    client = "mariadb" if _which("mariadb") else "mysql"
    return [client, "--local-infile=1", "-h", url.host, "-P", str(url.port or 3306), "-u", url.username, "-e", sql]


def _which(name: str) -> bool:
    return any((Path(p) / name).exists() for p in os.environ.get("PATH", "").split(os.pathsep) if p)


def pandas(job: Job, servers: Servers, peer) -> Command:
    """pd.read_csv(file).to_sql(table, engine): the defaults, as most scripts call them."""
    url, schema = _sqlalchemy_target(job, servers)
    inside = str(Path(__file__).with_name("inside.py"))
    return Command([str(peer.program), inside, "pandas", str(job.csv), url, schema, job.table])


def dlt(job: Job, servers: Servers, peer) -> Command:
    """dlt's filesystem source with read_csv into the destination, write_disposition=replace."""
    if job.family == "postgres":
        # dlt insists on a password; a server that trusts loopback ignores this one
        url = servers.postgres if servers.postgres.password else servers.postgres.set(password="unused")
        destination, credentials, dataset = "postgres", _plain(url), job.space
    elif job.family == "mysql":
        destination, dataset = "sqlalchemy", job.space
        credentials = _url(servers.mysql, drivername="mysql+pymysql", database=job.space, query={"charset": "utf8mb4"})
    else:
        destination, dataset = "sqlalchemy", "main"
        credentials = f"sqlite:///{servers.sqlite_file(job.tool)}"
    work = servers.work / "dlt" / job.family
    inside = str(Path(__file__).with_name("inside.py"))
    argv = [str(peer.program), inside, "dlt", str(job.csv), destination, credentials, dataset, job.table, str(work)]
    env = {"RUNTIME__DLTHUB_TELEMETRY": "false", "DLT_DATA_DIR": str(work / "home")}
    return Command(argv, env, cwd=servers.work)


def _sqlalchemy_target(job: Job, servers: Servers) -> tuple[str, str]:
    if job.family == "postgres":
        return _url(servers.postgres, drivername="postgresql+psycopg2"), job.space
    if job.family == "mysql":
        url = _url(servers.mysql, drivername="mysql+pymysql", database=job.space, query={"charset": "utf8mb4"})
        return url, ""
    return f"sqlite:///{servers.sqlite_file(job.tool)}", ""


def sling(job: Job, servers: Servers, peer) -> Command:
    """sling run from the file into the table, full refresh, its type inference as shipped."""
    if job.family == "postgres":
        target, obj = _plain(servers.postgres, query={"sslmode": "disable"}), f"{job.space}.{job.table}"
    elif job.family == "mysql":
        target, obj = _plain(servers.mysql, database=job.space), f"{job.space}.{job.table}"
    else:
        target, obj = f"sqlite://{servers.sqlite_file(job.tool)}", f"main.{job.table}"
    argv = [str(peer.program), "run", "--src-stream", f"file://{job.csv}", "--tgt-conn", "BENCH_TARGET"]
    argv += ["--tgt-object", obj, "--mode", "full-refresh"]
    env = {
        "BENCH_TARGET": target,
        "SLING_HOME_DIR": str(servers.work / "sling"),
        "SLING_SEND_ANON_USAGE": "false",
    }
    return Command(argv, env, cwd=servers.work)


def pgloader(job: Job, servers: Servers, peer) -> Command:
    """A load command file as pgloader's CSV guide writes one, into the existing table."""
    work = servers.work / "pgloader"
    work.mkdir(parents=True, exist_ok=True)
    script = work / f"{job.table}.load"
    columns = ", ".join(job.columns)
    script.write_text(
        f"LOAD CSV\n  FROM {_sql_string(job.csv)} HAVING FIELDS ({columns})\n"
        f"  INTO {_plain(servers.postgres)}\n  TARGET TABLE {job.space}.{job.table}\n  TARGET COLUMNS ({columns})\n"
        "  WITH skip header = 1, fields optionally enclosed by '\"', fields escaped by double-quote,\n"
        "       fields terminated by ',';\n"
    )
    return Command([str(peer.program), "--root-dir", str(work / "root"), str(script)], cwd=work)


def sqlite_utils(job: Job, servers: Servers, peer) -> Command:
    target = servers.sqlite_file(job.tool)
    return Command([str(peer.program), "insert", str(target), job.table, str(job.csv), "--csv", "--silent"])


COMMANDS = {
    "native": native,
    "processor": processor,
    "template": processor,  # our loader's tables, whose columns the native tools and pgloader load into
    "dlt": dlt,
    "sling": sling,
    "pgloader": pgloader,
    "pandas": pandas,
    "sqlite-utils": sqlite_utils,
}


def command(job: Job, servers: Servers, peer) -> Command:
    return COMMANDS[job.tool](job, servers, peer)


def shown(cmd: Command) -> str:
    """The command line, for the log."""
    return shlex.join(cmd.argv)
