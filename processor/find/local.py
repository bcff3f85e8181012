"""The local walk: every visible regular file under a folder, and nothing outside it.

Hidden and temporary files are skipped, and symlinks that point out of the root are ignored. The
walk is only a listing: a file may be swapped for a symlink to somewhere else before it is read, so
`open_inside` checks again, on the opened descriptor itself, that what it reads is inside the root.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import SourceError
from .patterns import visible
from .source import SourceFile

log = logging.getLogger(__name__)


class OutsideFolder(OSError):
    """A listed file that, when opened, is not a regular file inside SRC_DATA_FOLDER any more."""


def local_files(root: str) -> Iterator[SourceFile]:
    """Every visible file under the folder `root`; raises SourceError when it is missing or not a folder."""
    base = Path(root).expanduser()
    if not base.exists():
        raise SourceError(f"SRC_DATA_FOLDER {root!r} does not exist; point it at the folder that holds the CSV files")
    if not base.is_dir():
        raise SourceError(f"SRC_DATA_FOLDER {root!r} is not a folder")
    real = base.resolve()
    for relative, full in _walk(real):
        info = full.stat()
        yield SourceFile(relative, str(full), info.st_size, info.st_mtime, root=str(real))


def folder_identity(root: str) -> str:
    """What names a local folder as a source: its absolute path as written (a `current` symlink stays itself)."""
    return Path(os.path.abspath(os.path.expanduser(root))).as_posix()


def open_inside(location: str, root: str) -> BinaryIO:
    """Open a listed file for reading, checking on the open descriptor that it is a regular file inside `root`.

    Raises OutsideFolder when it is not (a symlink out of the folder, a device or pipe put in its place),
    FileNotFoundError when it is gone.
    """
    fd = os.open(location, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OutsideFolder("it is no longer a regular file; not read")
        real = _opened_path(fd, location)
        if not _within(real, os.path.realpath(root)):
            raise OutsideFolder("it now resolves outside SRC_DATA_FOLDER (a symlink out of the folder?); not read")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _opened_path(fd: int, location: str) -> str:
    """The real path of an open descriptor (from /proc on Linux); elsewhere the resolved path, if it is that file."""
    proc = f"/proc/self/fd/{fd}"
    if os.path.islink(proc):
        return os.readlink(proc).removesuffix(" (deleted)")
    real = os.path.realpath(location)
    opened, now = os.fstat(fd), os.stat(real)
    if (opened.st_dev, opened.st_ino) != (now.st_dev, now.st_ino):
        raise OutsideFolder("it changed while being opened; not read")
    return real


def _within(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives
        return False


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, absolute path) of every visible regular file inside `root`."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not visible(name):
                continue
            full = Path(folder, name)
            if full.is_symlink() and not _inside(full, root):
                log.warning("skipping %s: it links outside SRC_DATA_FOLDER", full.relative_to(root))
                continue
            if full.is_file():
                yield full.relative_to(root).as_posix(), full


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True
