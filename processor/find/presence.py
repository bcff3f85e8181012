"""Which files the ledger knows are gone from their source: the listing as it is now, never the data.

A path is present when its file is still under the root (a zip member: when its archive still holds
it). Paths a run no longer matches (another SRC_FILE_NAME) are not gone: only what is really missing is.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

from ..errors import SourceError
from . import remote, roots
from .source import SourceFile

log = logging.getLogger(__name__)


def missing(root: str, paths: Iterable[str], retries: int = 3) -> set[str]:
    """The paths (relative to `root`) that no longer exist there; raises SourceError when the root cannot be read.

    For a list of URLs, only the URLs still in the list are looked up: the others cannot be asked for.
    """
    wanted = sorted(set(paths))
    if not wanted:
        return set()
    where = roots.parse_root(root)
    if where.kind == roots.LOCAL:
        base = Path(root).expanduser()
        if not base.is_dir():
            raise SourceError(f"SRC_DATA_FOLDER {root!r} is not a folder")
        return {path for path in wanted if not _present_locally(base, path)}
    if where.kind == roots.S3:
        listed = {listed.relative for listed in remote.list_prefix(where, retries)}
        return {path for path in wanted if container(path) not in listed}
    if where.kind == roots.HTTP:
        return {path for path in wanted if not remote.exists(roots.file_url(where.url, container(path)), retries)}
    urls = {roots.public_url(url): url for url in where.urls}
    return {path for path in wanted if container(path) in urls and not remote.exists(urls[container(path)], retries)}


def container(path: str) -> str:
    """The listed file a path stands for: the archive of a zip member, else the path itself."""
    parts = path.split("/")
    for index, part in enumerate(parts[:-1]):
        if part.lower().endswith(".zip"):
            return "/".join(parts[: index + 1])
    return path


def _present_locally(base: Path, path: str) -> bool:
    if (base / path).is_file():
        return True
    archive = container(path)
    if archive == path or not (base / archive).is_file():
        return False
    member = path[len(archive) + 1 :]
    try:
        with zipfile.ZipFile(base / archive) as opened:
            return member in opened.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        log.debug("cannot read %s to look for %s: %s", archive, member, exc)
        return True  # cannot tell: never call a file gone on a guess


VANISHED = "it disappeared from the source after the listing; not loaded"


def vanished(file: SourceFile, exc: BaseException) -> bool:
    """Whether reading a listed file failed because it is no longer there (deleted after the listing)."""
    if not any(isinstance(e, FileNotFoundError) for e in (exc, exc.__cause__, exc.__context__)):
        return False
    return roots.is_url(file.location) or not os.path.lexists(file.location)
