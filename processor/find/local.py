"""The local walk: every visible regular file under a folder, and nothing outside it.

Hidden and temporary files are skipped, and symlinks that point out of the root are ignored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import SourceError
from .patterns import visible
from .source import SourceFile

log = logging.getLogger(__name__)


def local_files(root: str) -> Iterator[SourceFile]:
    """Every visible file under the folder `root`; raises SourceError when it is missing or not a folder."""
    base = Path(root).expanduser()
    if not base.exists():
        raise SourceError(f"SRC_DATA_FOLDER {root!r} does not exist; point it at the folder that holds the CSV files")
    if not base.is_dir():
        raise SourceError(f"SRC_DATA_FOLDER {root!r} is not a folder")
    for relative, full in _walk(base.resolve()):
        stat = full.stat()
        yield SourceFile(relative, str(full), stat.st_size, stat.st_mtime)


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
