"""Prove the Dockerfile without a Docker engine.

Reads the Dockerfile and plays it into an empty folder standing for the image's filesystem:
every COPY copies exactly what it names (so a module missing from a COPY is missing here too),
the RUN that builds the virtualenv builds it from requirements.txt (so a dependency missing from
requirements.txt is missing here too), ENV and WORKDIR are honoured, and the CMD runs with only
environment variables: SQLite destination, the bundled sample data, and a fake Pipedrive on
loopback. Then it checks the exit code, the tables, and what the fake Pipedrive holds.

    python .ci/prove_container.py        # exits non-zero with the reason when the image would not work
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOKEN = "container-proof-token"


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
    """A folder standing for the image's root filesystem."""

    def __init__(self, root: Path):
        self.root = root
        self.workdir = "/"
        self.env: dict[str, str] = {"PATH": "/usr/local/bin:/usr/bin:/bin"}

    def path(self, inside: str) -> Path:
        absolute = inside if inside.startswith("/") else f"{self.workdir.rstrip('/')}/{inside}"
        return self.root / absolute.lstrip("/")

    def rewrite(self, text: str) -> str:
        """Absolute image paths in a command or value, moved under the stand-in root."""
        return re.sub(
            r"(?<![\w.$])/(opt|app|tmp|usr/local/app)(?=[/\s:\"']|$)", lambda m: f"{self.root}/{m.group(1)}", text
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

    def run(self, command: str) -> None:
        if "venv" not in command and "pip" not in command:
            print(f"  (not played here: RUN {command})")
            return
        command = self.rewrite(command).replace("python -m venv", f"{sys.executable} -m venv")
        print(f"  RUN {command}")
        subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            check=True,
            cwd=self.path("."),
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )

    def set_env(self, arguments: str) -> None:
        for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', arguments):
            value = value.strip('"').replace("$PATH", self.env.get("PATH", ""))
            self.env[key] = self.rewrite(value)


def build(dockerfile: Path, root: Path) -> tuple[Image, list[str]]:
    image, cmd = Image(root), None
    for word, arguments in instructions(dockerfile):
        if word == "COPY":
            image.copy(arguments)
        elif word == "RUN":
            image.run(arguments)
        elif word == "ENV":
            image.set_env(arguments)
        elif word == "WORKDIR":
            image.workdir = arguments
            image.path(".").mkdir(parents=True, exist_ok=True)
        elif word == "CMD":
            cmd = json.loads(arguments)
    if not cmd:
        raise SystemExit("Dockerfile: no CMD in exec form")
    return image, cmd


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


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="image-") as folder:
        image, cmd = build(REPO / "Dockerfile", Path(folder))
        port = free_port()
        fake = subprocess.Popen(
            [sys.executable, str(REPO / "test" / "pipedrive_fake.py"), "--port", str(port), "--token", TOKEN],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.0)
            env = {
                **image.env,
                "PIPEDRIVE_API_KEY": TOKEN,
                "PIPEDRIVE_BASE_URL": f"http://127.0.0.1:{port}",
                "PROGRESS": "0",
            }
            program = shutil.which(cmd[0], path=env["PATH"]) or cmd[0]
            print(f"  CMD {cmd} in {image.workdir} with {sorted(env)}")
            done = subprocess.run(
                [program, *cmd[1:]], cwd=image.path("."), env=env, capture_output=True, text=True, timeout=600
            )
            print(done.stdout)
            if done.returncode != 0:
                raise SystemExit(f"the container's CMD exited {done.returncode}:\n{done.stderr}")
            database = image.path("processor.db")
            with sqlite3.connect(database) as db:
                counts = {
                    t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                    for t in ("raw_customers", "raw_orders", "raw_payments", "deals")
                }
            held = fake_deals(port)
        finally:
            fake.terminate()
            fake.wait()
    if min(counts.values()) == 0:
        raise SystemExit(f"empty tables after the container's run: {counts}")
    if len(held) != counts["deals"]:
        raise SystemExit(f"the fake Pipedrive holds {len(held)} deals, the view has {counts['deals']}")
    print(f"container proof: ok, tables {counts}, {len(held)} deals in the fake Pipedrive")


if __name__ == "__main__":
    main()
