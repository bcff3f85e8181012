"""The project as a user installs it: a wheel in a fresh virtualenv outside the checkout, and the extras.

The wheel is built from a copy of what the package declares (pyproject.toml, README.md, processor/),
without network: setuptools comes from the test environment. The fresh virtualenv sees exactly the
distributions the wheel requires, and theirs, linked from the test environment (so it installs in
seconds and offline): a module the code imports without declaring it fails here as it would for a user.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from processor import extras
from processor.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, sqlite3, sys
import pandas as pd
import processor
from processor import load_folder, load_frame, read_frame
from processor.config import SAMPLE_DATA_FOLDER

# a sample smaller than the files: the value check runs, with pyarrow
report = load_folder(SAMPLE_DATA_FOLDER, url="sqlite:///script.db", workers=1, sample_rows=10)
frame = pd.DataFrame({"id": pd.array([1, None], dtype="Int64"), "code": ["007", None]})
result = load_frame(frame, "from_frame", "sqlite:///script.db", source="script")
back = read_frame("from_frame", "sqlite:///script.db")
print(json.dumps({
    "module": processor.__file__,
    "files": sorted(f.status for f in report.files),
    "exit_code": report.exit_code,
    "frame": [result.status, result.rows_loaded],
    "back": [[None if pd.isna(v) else v for v in back[c].tolist()] for c in back.columns],
    "id_dtype": str(back["id"].dtype),
    "verified": "pyarrow" in sys.modules,
}))
"""


def run(command: list, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "processor", source / "processor", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    done = run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"), str(source)],
        tmp_path,
        dict(os.environ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("processor-*.whl")
    return wheel


def requirements_of(wheel: Path, extra_names: set[str]) -> list[Requirement]:
    """The wheel's Requires-Dist that apply with these extras."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(name).decode().splitlines()
    found = [Requirement(line.split(":", 1)[1].strip()) for line in lines if line.startswith("Requires-Dist:")]
    return [r for r in found if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in extra_names | {""})]


def closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """The installed distributions these requirements need, transitively (extras of other packages ignored)."""
    found: dict[str, metadata.Distribution] = {}
    pending = [r for r in requirements if r.name.lower() != "processor"]
    while pending:
        requirement = pending.pop()
        key = requirement.name.lower().replace("_", "-")
        if key in found:
            continue
        distribution = metadata.distribution(requirement.name)
        assert distribution.version in requirement.specifier, (
            f"{requirement} excludes the pinned {distribution.version}"
        )
        found[key] = distribution
        for line in distribution.requires or []:
            child = Requirement(line)
            if child.marker is None or child.marker.evaluate({"extra": ""}):
                pending.append(child)
    return found


def link_distributions(distributions: dict[str, metadata.Distribution], folder: Path) -> None:
    """A site folder holding (as links) only these distributions' top-level files."""
    folder.mkdir()
    for distribution in distributions.values():
        tops = {Path(str(f)).parts[0] for f in distribution.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            origin = Path(distribution.locate_file(top))
            if origin.exists() and not (folder / top).exists():
                (folder / top).symlink_to(origin)


def fresh_venv(tmp_path: Path, wheel: Path, extra_names: set[str]) -> Path:
    venv = tmp_path / "venv"
    done = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, dict(os.environ))
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path, {})
    link_distributions(closure(requirements_of(wheel, extra_names)), tmp_path / "deps")
    (Path(purelib.stdout.strip()) / "deps.pth").write_text(str(tmp_path / "deps") + "\n")
    install = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python), "install"]
    done = run([*install, "--no-deps", "--no-index", f"{wheel}[{','.join(sorted(extra_names))}]"], tmp_path, {})
    assert done.returncode == 0, done.stdout + done.stderr
    return venv


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_virtualenv_and_runs_a_load(tmp_path):
    wheel = build_wheel(tmp_path)
    names = {n.split("/", 1)[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert names == {"processor", "processor-0.1.0.dist-info"}  # no bench/, test/ or scripts/
    assert "processor/sample_data/raw_orders.csv" in zipfile.ZipFile(wheel).namelist()
    venv = fresh_venv(tmp_path, wheel, {"pandas"})
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "PROGRESS": "0", "LOAD_WORKERS": "1"}

    done = run([str(venv / "bin" / "python"), "-c", SCRIPT], work, env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["module"].startswith(str(venv))  # the installed copy, not the checkout
    assert (out["files"], out["exit_code"], out["frame"]) == (["loaded"] * 3, 0, ["loaded", 2])
    assert (out["back"], out["id_dtype"], out["verified"]) == ([[1, None], ["007", None]], "Int64", True)

    done = run(["processor", "load"], work, env)
    assert done.returncode == 0, done.stderr
    assert "3 loaded" in done.stdout and (work / "processor.db").exists()
    done = run(["processor", "status"], work, env)
    assert done.returncode == 0 and "3 file(s): 3 loaded" in done.stdout, done.stdout + done.stderr
    assert run(["processor", "--help"], work, env).stdout.startswith("usage: processor")
    (work / "map.yaml").write_text("deal:\n  title: title\n")  # the sync's field map, in YAML
    done = run(["processor", "status"], work, {**env, "SYNC_FIELD_MAP": "map.yaml"})
    assert done.returncode == 0, done.stdout + done.stderr

    # installed without the s3 extra: one line naming it, exit 2
    done = run(["processor", "load"], work, {**env, "SRC_DATA_FOLDER": "s3://bucket/dumps"})
    assert done.returncode == 2
    assert "pip install 'processor[s3]'" in done.stderr and "Traceback" not in done.stderr

    check = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(venv / "bin" / "python")]
    done = run([*check, "check"], work, {})
    assert done.returncode == 0, done.stdout  # what the wheel declares is what the pinned set provides


def imported_modules() -> dict[str, str]:
    """The top-level modules the package imports that are not its own nor the standard library's -> a file."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "processor").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return {name: path for name, path in found.items() if name not in sys.stdlib_module_names | {"processor"}}


def test_every_module_the_package_imports_comes_with_the_default_install_or_its_extra():
    """A module outside the default dependencies is imported only behind `extras.require`, which names it (numpy
    comes with pandas, and is imported only by the pandas functions, after their check)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    installed = set(closure([Requirement(r) for r in project["dependencies"]]))
    provided = {
        module
        for module, names in metadata.packages_distributions().items()
        if any(name.lower().replace("_", "-") in installed for name in names)
    }
    guarded = {module for modules in extras.EXTRAS.values() for module in modules} | {"numpy"}
    undeclared = {name: path for name, path in imported_modules().items() if name not in provided | guarded}
    assert undeclared == {}, "imported, but the default install does not bring it, nor does an extra's check name it"


# ---------------------------------------------------------------- extras, in this environment


@pytest.mark.parametrize(
    "env, module, extra",
    [
        ({"SRC_DATA_FOLDER": "s3://bucket/dumps"}, "s3fs", "s3"),
        ({"SRC_DATA_FOLDER": "https://files.example.org/q1"}, "aiohttp", "http"),
        ({"EXECUTOR": "dask", "DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:9"}, "distributed", "dask"),
    ],
    ids=["s3", "http", "dask"],
)
def test_a_missing_extra_is_one_line_naming_it_and_exit_2(tmp_path, env, module, extra):
    hide = f"import sys; sys.modules[{module!r}] = None; from processor.cli import main; sys.exit(main())"
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "PROGRESS": "0"}
    done = run([sys.executable, "-c", hide, "load"], tmp_path, {**base, **env}, timeout=60)
    assert done.returncode == 2
    assert f"pip install 'processor[{extra}]'" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # stopped before it started: no database, no lock


def test_extras_follow_the_settings():
    assert extras.needed("/data/dumps", "local") == []
    assert [e for e, _ in extras.needed("s3://a/b, https://h/x.csv", "dask")] == ["s3", "http", "dask"]


def test_require_passes_when_installed_and_names_the_extra_when_not(monkeypatch):
    extras.require("pandas", "read_frame")
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ConfigError, match=r"EXECUTOR=dask needs the 'dask' extra \(distributed not installed\)"):
        extras.require("dask", "EXECUTOR=dask")


def test_python_m_processor_is_the_same_command(tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    done = run([sys.executable, "-m", "processor", "--help"], tmp_path, env, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m processor")
