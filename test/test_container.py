"""The warning that a container takes its SQLite file with it: when it is due, and that the command gives it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from processor.container import in_container, lost_with_container, mount_of, read_mounts, warning

ROOT = Path(__file__).resolve().parent.parent
ROOT_ONLY = [("/", "overlay"), ("/proc", "proc")]
WITH_VOLUME = [*ROOT_ONLY, ("/app/db", "ext4"), ("/scratch", "tmpfs")]


def nothing(_path: str) -> bool:
    return False


@pytest.mark.parametrize(
    "dest, cwd, env, mounts, due",
    [
        ("sqlite:///processor.db", "/app", {"PROCESSOR_IN_CONTAINER": "1"}, ROOT_ONLY, True),
        ("sqlite:///processor.db", "/app", {"PROCESSOR_IN_CONTAINER": "1"}, [], True),  # mounts unknown
        ("sqlite:////app/db/processor.db", "/app", {"PROCESSOR_IN_CONTAINER": "1"}, WITH_VOLUME, False),
        ("sqlite:///db/processor.db", "/app", {"PROCESSOR_IN_CONTAINER": "1"}, WITH_VOLUME, False),
        ("sqlite:////scratch/p.db", "/app", {"PROCESSOR_IN_CONTAINER": "1"}, WITH_VOLUME, True),  # tmpfs ends too
        ("sqlite:///processor.db", "/app", {}, ROOT_ONLY, False),  # not in a container
        ("postgresql://u:secret@db/w", "/app", {"PROCESSOR_IN_CONTAINER": "1"}, ROOT_ONLY, False),
    ],
    ids=["default", "mounts-unknown", "on-volume", "relative-on-volume", "tmpfs", "no-container", "server"],
)
def test_the_warning_is_due_for_a_sqlite_file_outside_any_volume_in_a_container(dest, cwd, env, mounts, due):
    found = lost_with_container(dest, cwd, env, mounts, nothing)
    assert (found is not None) == due
    if due:
        assert "not on a volume" in found and "-v processor-db:/app/db" in found


def test_a_container_is_told_by_the_image_variable_or_the_marker_files():
    assert in_container({"PROCESSOR_IN_CONTAINER": "1"}, nothing)
    assert not in_container({}, nothing)
    assert in_container({}, lambda path: path == "/.dockerenv")
    assert in_container({}, lambda path: path == "/run/.containerenv")


def test_mounts_are_read_with_their_types(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 0:21 / / rw,relatime - overlay overlay rw\n"
        "30 22 8:1 /vol /app/my\\040db rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    )
    mounts = read_mounts(str(info))
    assert mounts == [("/", "overlay"), ("/app/my db", "ext4")]
    assert mount_of("/app/my db/x", mounts) == ("/app/my db", "ext4")
    assert mount_of("/app/my dbx", mounts) == ("/", "overlay")
    assert read_mounts(str(tmp_path / "absent")) == []


def test_the_command_warns_when_the_rule_says_so(tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "PROCESSOR_IN_CONTAINER": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "index.py"), "status"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0
    expected = lost_with_container("sqlite:///processor.db", str(tmp_path), env, read_mounts(), os.path.exists)
    assert ("not on a volume" in done.stderr) == (expected is not None)
    server = {**env, "DEST_SQL": "postgresql://u@127.0.0.1:9/db"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "index.py"), "status"], cwd=tmp_path, env=server, capture_output=True, text=True
    )
    assert "not on a volume" not in done.stderr
    assert warning("postgresql://u@127.0.0.1:9/db", server) is None
