"""Each peer in its own virtualenv (pinned) or found on the machine; a peer that cannot be had is
reported with the reason and how to install it, never a crash."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

VENVS = {
    "dlt": [
        "dlt[postgres,sqlalchemy,filesystem]==1.31.0",
        "pandas==3.1.1",
        "SQLAlchemy==2.1.9",
        "psycopg2-binary==2.9.13",
        "PyMySQL==1.2.4",
    ],
    "pandas": ["pandas==3.1.1", "SQLAlchemy==2.1.9", "psycopg2-binary==2.9.13", "PyMySQL==1.2.4"],
    "sqlite-utils": ["sqlite-utils==4.2.1"],
    # the `sling` package (1.6.5) downloads its binary from the internet when first imported;
    # this wheel ships the binary itself
    "sling": ["sling-linux-amd64==1.4.11"],
}


class Unavailable(Exception):
    """A peer that cannot run here; the message says why and how to install it."""


@dataclass(frozen=True)
class Peer:
    name: str
    version: str
    program: Path  # the binary, or the venv's python for Python peers


def _run(argv: list, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip() and "is ignored" not in line]
    return lines[-1].strip() if lines else "no output"


def venv(name: str, root: Path) -> Path:
    """The venv for `name` with its pins installed (reused while the pins are unchanged); its python."""
    pins = VENVS[name]
    home = root / "venv" / name
    python = home / "bin" / "python"
    stamp = home / "pins.txt"
    if python.exists() and stamp.exists() and stamp.read_text() == "\n".join(pins):
        return python
    shutil.rmtree(home, ignore_errors=True)
    print(f"installing {name} into {home} ({', '.join(pins)}) ...", flush=True)
    made = _run([sys.executable, "-m", "venv", home])
    if made.returncode != 0:
        raise Unavailable(f"no virtualenv: {_last_line(made.stderr)}")
    installed = _run([python, "-m", "pip", "install", "-q", *pins])
    if installed.returncode != 0:
        raise Unavailable(f"pip install {' '.join(pins)} failed: {_last_line(installed.stderr)}")
    stamp.write_text("\n".join(pins))
    return python


def python_peer(name: str, root: Path) -> Peer:
    """dlt, pandas or sqlite-utils, each in its own venv."""
    python = venv(name, root)
    version = VENVS[name][0].split("==")[1]
    if name == "sqlite-utils":
        return Peer(name, version, python.parent / "sqlite-utils")
    return Peer(name, version, python)


def _version(binary: Path, flag: str = "--version") -> str:
    try:
        shown = _run([binary, flag], timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{binary} does not start: {exc}") from None
    if shown.returncode != 0:
        raise Unavailable(f"{binary} does not start: {_last_line(shown.stderr or shown.stdout)}")
    return _last_line(shown.stdout.splitlines()[0] if shown.stdout else shown.stderr)


def sling(root: Path, env_binary: str | None) -> Peer:
    """SLING_BINARY, a `sling` on the PATH, or the binary wheel for Linux x86-64."""
    found = env_binary or shutil.which("sling")
    if not found:
        if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
            raise Unavailable("not installable here: install sling and set SLING_BINARY")
        python = venv("sling", root)
        wheel = list(python.parent.parent.glob("lib/python*/site-packages/sling_linux_amd64/bin/sling-linux-amd64"))
        if not wheel:
            raise Unavailable("not installable here: the sling-linux-amd64 wheel holds no binary; set SLING_BINARY")
        found = str(wheel[0])
    version = _version(Path(found)).removeprefix("Version: ")
    return Peer("sling", f"{version} (CLI)", Path(found))


def pgloader(root: Path) -> Peer:
    """`pgloader` on the PATH, or Debian's package unpacked under bench/out (no root needed)."""
    found = shutil.which("pgloader")
    if not found:
        unpacked = root / "pgloader" / "usr" / "bin" / "pgloader"
        if not unpacked.exists():
            _unpack_pgloader(root / "pgloader")
        found = str(unpacked)
    version = _version(Path(found)).removeprefix("pgloader version ").strip('"')
    debs = sorted((root / "pgloader").glob("pgloader_*.deb"))
    package = debs[-1].name.split("_")[1] if debs and not shutil.which("pgloader") else _dpkg_version("pgloader")
    return Peer("pgloader", f"{version} (Debian package {package})" if package else version, Path(found))


def _dpkg_version(name: str) -> str | None:
    if not shutil.which("dpkg-query"):
        return None
    shown = _run(["dpkg-query", "-W", "-f", "${Version}", name], timeout=30)
    return shown.stdout.strip() or None if shown.returncode == 0 else None


def _unpack_pgloader(folder: Path) -> None:
    how = "install it with `apt-get install pgloader` (Debian, Ubuntu) or see pgloader's install guide"
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise Unavailable(f"not installed: {how}")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"fetching Debian's pgloader package into {folder} ...", flush=True)
    fetched = subprocess.run(["apt-get", "download", "pgloader"], cwd=folder, capture_output=True, text=True)
    debs = sorted(folder.glob("pgloader_*.deb"))
    if fetched.returncode != 0 or not debs:
        raise Unavailable(f"not installed ({_last_line(fetched.stderr)}): {how}")
    unpacked = _run(["dpkg-deb", "-x", debs[-1], folder])
    if unpacked.returncode != 0:
        raise Unavailable(f"not installed ({_last_line(unpacked.stderr)}): {how}")


def prepare(names: list[str], root: Path, env_sling: str | None) -> dict[str, Peer | str]:
    """Each named peer, or the reason it cannot run here."""
    peers: dict[str, Peer | str] = {}
    for name in names:
        try:
            if name == "sling":
                peers[name] = sling(root, env_sling)
            elif name == "pgloader":
                peers[name] = pgloader(root)
            else:
                peers[name] = python_peer(name, root)
        except (Unavailable, OSError, subprocess.TimeoutExpired) as exc:
            peers[name] = str(exc)
            print(f"{name}: {exc}", flush=True)
    return peers
