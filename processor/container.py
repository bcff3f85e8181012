"""A SQLite destination that a container takes with it when it is removed (`docker run --rm`).

Inside a container, a file written outside any volume lives in the container's own layer and is
gone with it: the default `DEST_SQL` (processor.db in the working directory) included. The command
line warns about it. "In a container" means the project's image (it sets PROCESSOR_IN_CONTAINER=1)
or the marker files Docker and Podman leave; "on a volume" means on a mount other than the root that
outlives the container (not a tmpfs).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

CONTAINER_ENV = "PROCESSOR_IN_CONTAINER"  # set by the project's Dockerfile
MARKER_FILES = ("/.dockerenv", "/run/.containerenv")  # Docker's, Podman's
MOUNTINFO = "/proc/self/mountinfo"
VOLUME_EXAMPLE = "-v processor-db:/app/db -e DEST_SQL=sqlite:////app/db/processor.db"
EPHEMERAL_TYPES = frozenset({"tmpfs", "ramfs", "overlay", "aufs"})  # mounts that end with the container


def in_container(env: Mapping[str, str], exists: Callable[[str], bool] = os.path.exists) -> bool:
    """Whether this process runs in a container."""
    if env.get(CONTAINER_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    return any(exists(path) for path in MARKER_FILES)


def sqlite_file(dest_sql: str, cwd: str) -> str | None:
    """The absolute path of a SQLite destination's file, or None for a server (or an unparseable URL)."""
    try:
        url = make_url(dest_sql)
    except (ArgumentError, ValueError):  # the database step refuses it, with the fix
        return None
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    return os.path.normpath(os.path.join(cwd, url.database))


def mount_of(path: str, mounts: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """The (mount point, file system type) holding `path`: the longest mount point it lies under."""
    holding = [m for m in mounts if m[0] == "/" or path == m[0] or path.startswith(m[0].rstrip("/") + "/")]
    return max(holding, key=lambda m: len(m[0]), default=("/", ""))


def lost_with_container(
    dest_sql: str, cwd: str, env: Mapping[str, str], mounts: Iterable[tuple[str, str]], exists: Callable[[str], bool]
) -> str | None:
    """A warning when the destination is a SQLite file in a container and not on a volume; None otherwise."""
    path = sqlite_file(dest_sql, cwd)
    if path is None or not in_container(env, exists):
        return None
    point, kind = mount_of(os.path.dirname(path), mounts)
    if point != "/" and kind not in EPHEMERAL_TYPES:
        return None
    return (
        f"the database {path} is inside this container and not on a volume: it is lost when the container "
        f"is removed (docker run --rm). Put it on a volume ({VOLUME_EXAMPLE}) or set DEST_SQL to a database server"
    )


def read_mounts(mountinfo: str = MOUNTINFO) -> list[tuple[str, str]]:
    """This process's mounts as (mount point, file system type); none when the system does not say."""
    try:
        with open(mountinfo, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    mounts = []
    for line in lines:
        fields, _, rest = line.partition(" - ")
        fields = fields.split(" ")
        if len(fields) > 4 and rest:  # the fifth field is the mount point (spaces as \040); after " - " the type
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            mounts.append((point, rest.split(" ", 1)[0]))
    return mounts


def warning(dest_sql: str, env: Mapping[str, str]) -> str | None:
    """`lost_with_container` for this process: its working directory, environment and mounts."""
    return lost_with_container(dest_sql, os.getcwd(), env, read_mounts(), os.path.exists)
