"""Prove the Dockerfile without a Docker engine.

Reads the Dockerfile and plays it into an empty folder standing for the image's filesystem:
every COPY copies exactly what it names (so a module missing from a COPY is missing here too),
ARG takes its default (or --build-arg), the RUN lines run with the image's paths moved under the
folder (so the virtualenv is built as the image builds it: a dependency the package does not
declare is missing here too), `useradd` and `chown` give the image's user its files, ENV,
WORKDIR and USER are honoured. Then the CMD runs as that user (when this script runs as root, as
in CI), with only environment variables: a copy of the bundled sample as the data volume (the
sample itself never syncs) and a fake Pipedrive on loopback, once into the default SQLite file and
once into PostgreSQL (TEST_POSTGRES_URL, a schema of its own). Each time it checks the exit code, the tables and what the fake Pipedrive holds; a
permission the user lacks or a module the image lacks fails here.

    python .ci/prove_container.py                      # exits non-zero with the reason when the image would not work
    python .ci/prove_container.py --build-arg EXTRAS=s3 --build-only   # the size of another build
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
TOKEN = "container-proof-token"
TABLES = ("raw_customers", "raw_orders", "raw_payments", "deals")
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


class Image:
    """A folder standing for the image's root filesystem, and what the Dockerfile said about running in it."""

    def __init__(self, root: Path, build_args: dict[str, str]):
        self.root = root
        self.workdir = "/"
        self.env: dict[str, str] = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
        self.build_args = build_args
        self.args: dict[str, str] = {}
        self.users: dict[str, int] = {"root": 0}
        self.user = "root"

    def path(self, inside: str) -> Path:
        absolute = inside if inside.startswith("/") else f"{self.workdir.rstrip('/')}/{inside}"
        return self.root / absolute.lstrip("/")

    def rewrite(self, text: str) -> str:
        """Absolute image paths in a command or value, moved under the stand-in root."""
        return re.sub(
            r"(?<![\w.$])/(opt|app|tmp|home|usr/local/app)(?=[/\s:\"']|$)",
            lambda m: f"{self.root}/{m.group(1)}",
            text,
        )

    def copy(self, arguments: str) -> None:
        *sources, destination = shlex.split(arguments)
        target = self.path(destination)
        for source in sources:
            origin = REPO / source
            if not origin.exists():
                raise SystemExit(f"Dockerfile: COPY {source} names nothing in the repository")
            if origin.is_dir():
                shutil.copytree(
                    origin, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                final = target / origin.name if destination.endswith("/") or target.is_dir() else target
                final.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, final)

    def arg(self, arguments: str) -> None:
        name, _, default = arguments.partition("=")
        self.args[name] = self.build_args.get(name, default.strip('"'))

    def run(self, command: str) -> None:
        if command.startswith("useradd "):
            self.add_user(command)
            return
        command = self.rewrite(command).replace("python -m venv", f"{python_for_everyone()} -m venv")
        command = re.sub(r"\bchown( -R)? (\S+)", self.chown, command)
        print(f"  RUN {command}")
        subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            check=True,
            cwd=self.path("."),
            env={**os.environ, **self.args, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )

    def add_user(self, command: str) -> None:
        """`useradd --uid N name`: the user is known by its id (no account is made on this machine)."""
        words = shlex.split(command)
        uid = int(words[words.index("--uid") + 1])
        self.users[words[-1]] = uid
        home = self.path(f"/home/{words[-1]}")
        home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(home, uid, uid)
        print(f"  (user {words[-1]} is uid {uid}, home {home})")

    def chown(self, match: re.Match) -> str:
        """chown by name -> by the ids `useradd` gave (and nothing when this script cannot chown)."""
        if os.geteuid() != 0:
            return "true"
        owner = ":".join(str(self.users[name]) for name in match.group(2).split(":"))
        return f"chown{match.group(1) or ''} {owner}"

    def set_env(self, arguments: str) -> None:
        for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', arguments):
            value = value.strip('"').replace("$PATH", self.env.get("PATH", ""))
            self.env[key] = self.rewrite(value)

    @property
    def uid(self) -> int:
        return self.users[self.user]


def python_for_everyone() -> str:
    """A Python of this version that any user may run: the image's user runs the virtualenv's interpreter,
    which links to it (this one may live where only root can reach, e.g. under /root)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    for candidate in (base, f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"):
        if os.path.exists(candidate) and _reachable_by_all(Path(os.path.realpath(candidate))):
            return candidate
    print(f"  (no Python {version} that every user may run: the image's user may be refused its interpreter)")
    return sys.executable


def _reachable_by_all(path: Path) -> bool:
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in [path, *path.parents])


def build(dockerfile: Path, root: Path, build_args: dict[str, str]) -> tuple[Image, list[str]]:
    image, cmd = Image(root, build_args), None
    for word, arguments in instructions(dockerfile):
        if word == "COPY":
            image.copy(arguments)
        elif word == "ARG":
            image.arg(arguments)
        elif word == "RUN":
            image.run(arguments)
        elif word == "ENV":
            image.set_env(arguments)
        elif word == "WORKDIR":
            image.workdir = arguments
            image.path(".").mkdir(parents=True, exist_ok=True)
        elif word == "USER":
            image.user = arguments
        elif word == "CMD":
            cmd = json.loads(arguments)
    if not cmd:
        raise SystemExit("Dockerfile: no CMD in exec form")
    return image, cmd


def megabytes(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fake_deals(port: int) -> list[dict]:
    deals, cursor = [], None
    while True:
        query = f"?limit=500{'&cursor=' + cursor if cursor else ''}"
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2/deals{query}", headers={"x-api-token": TOKEN})
        with urllib.request.urlopen(request, timeout=10) as answer:
            page = json.load(answer)
        deals += page["data"]
        cursor = (page.get("additional_data") or {}).get("next_cursor")
        if not cursor:
            return deals


def run_cmd(image: Image, cmd: list[str], variables: dict[str, str]) -> subprocess.CompletedProcess:
    """The CMD in the WORKDIR with only the image's environment and `variables`, as the image's user."""
    env = {**image.env, "HOME": str(image.path(f"/home/{image.user}")), **variables}
    program = shutil.which(cmd[0], path=env["PATH"]) or cmd[0]
    as_user: dict = {}
    if os.geteuid() == 0:
        as_user = {"user": image.uid, "group": image.uid, "extra_groups": []}
    else:
        print(f"  (not root: the CMD runs as uid {os.geteuid()}, not as {image.user})")
    print(f"  CMD {cmd} in {image.workdir} as {image.user} with {sorted(env)}")
    return subprocess.run(
        [program, *cmd[1:]], cwd=image.path("."), env=env, capture_output=True, text=True, timeout=600, **as_user
    )


def prove(image: Image, cmd: list[str], variables: dict[str, str], count: Callable[[], dict[str, int]]) -> str:
    """Run the CMD against a fresh fake Pipedrive; check exit code, tables and deals; returns its stderr."""
    port = free_port()
    fake = subprocess.Popen(
        [sys.executable, str(REPO / "test" / "pipedrive_fake.py"), "--port", str(port), "--token", TOKEN],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # The data comes in as a volume (`-v /srv/dumps:/data:ro`): the bundled sample itself never syncs.
    volume = image.path("/data")
    if not volume.exists():
        shutil.copytree(REPO / "processor" / "sample_data", volume)
    try:
        time.sleep(1.0)
        done = run_cmd(
            image,
            cmd,
            {
                **variables,
                "SRC_DATA_FOLDER": str(volume),
                "PIPEDRIVE_API_KEY": TOKEN,
                "PIPEDRIVE_BASE_URL": f"http://127.0.0.1:{port}",
                "PROGRESS": "0",
            },
        )
        print(done.stdout)
        if done.returncode != 0:
            raise SystemExit(f"the container's CMD exited {done.returncode}:\n{done.stderr}")
        counts = count()
        held = fake_deals(port)
    finally:
        fake.terminate()
        fake.wait()
    if min(counts.values()) == 0:
        raise SystemExit(f"empty tables after the container's run: {counts}")
    if len(held) != counts["deals"]:
        raise SystemExit(f"the fake Pipedrive holds {len(held)} deals, the view has {counts['deals']}")
    print(f"  ok: tables {counts}, {len(held)} deals in the fake Pipedrive")
    return done.stderr


def prove_sqlite(image: Image, cmd: list[str]) -> None:
    """The default destination: processor.db in the WORKDIR, written by the image's user, with the warning."""
    database = image.path("processor.db")

    def count() -> dict[str, int]:
        with sqlite3.connect(database) as db:
            return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}

    stderr = prove(image, cmd, {}, count)
    if os.geteuid() == 0 and database.stat().st_uid != image.uid:
        raise SystemExit(f"processor.db belongs to uid {database.stat().st_uid}, not to the image's user")
    sys.path.insert(0, str(REPO))  # the warning's own rule, to know whether it is due on this machine's mounts
    from processor.container import lost_with_container, read_mounts

    due = lost_with_container("sqlite:///processor.db", str(image.path(".")), image.env, read_mounts(), os.path.exists)
    if due and "not on a volume" not in stderr:
        raise SystemExit("no warning that the default SQLite file is lost with the container")


@contextmanager
def postgres_schema(base: str) -> Iterator[str]:
    """A URL of a schema of its own on the PostgreSQL server, dropped afterwards."""
    import sqlalchemy as sa

    from processor.db import create_engine

    name = f"container_proof_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    except sa.exc.DBAPIError as exc:
        raise SystemExit(f"PostgreSQL at {base} does not answer ({exc.orig}); set TEST_POSTGRES_URL") from None
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options={quote(f'-csearch_path={name}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


def prove_postgres(image: Image, cmd: list[str]) -> None:
    """DEST_SQL on PostgreSQL, in a schema of its own: the server path, as the image's user."""
    sys.path.insert(0, str(REPO))  # this script's own database access (the image has its own copy)
    import sqlalchemy as sa

    from processor.db import create_engine

    with postgres_schema(os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES)) as url:

        def count() -> dict[str, int]:
            engine = create_engine(url)
            try:
                with engine.connect() as conn:
                    return {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TABLES}
            finally:
                engine.dispose()

        stderr = prove(image, cmd, {"DEST_SQL": url}, count)
        if "not on a volume" in stderr:
            raise SystemExit("a warning about a lost SQLite file, with DEST_SQL on PostgreSQL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE", help="as docker build's")
    parser.add_argument("--build-only", action="store_true", help="build and measure, do not run the CMD")
    args = parser.parse_args()
    build_args = dict(item.split("=", 1) for item in args.build_arg)
    with tempfile.TemporaryDirectory(prefix="image-") as folder:
        root = Path(folder)
        root.chmod(0o755)  # the image's user must reach its files
        image, cmd = build(REPO / "Dockerfile", root, build_args)
        print(f"image: the virtualenv (/opt/venv) takes {megabytes(image.path('/opt/venv')):.0f} MB")
        if args.build_only:
            return
        print("== the CMD, SQLite (the default destination)")
        prove_sqlite(image, cmd)
        print("== the CMD, PostgreSQL")
        prove_postgres(image, cmd)
    print("container proof: ok")


if __name__ == "__main__":
    main()
