"""Find: list the files to stage under SRC_DATA_FOLDER. Never opens a file for its data.

`discover(root, patterns)` is the one entry point. The root is a local folder (`local.py`), an
`s3://bucket/prefix` listed and globbed the same way, an `http(s)://` base URL whose files are named
by the patterns (HTTP cannot be listed), or a list of full URLs (`remote.py`, `roots.py`). Patterns
and the files never taken (hidden, temporary) are in `patterns.py`; compressed files and zip members
in `archives.py`; what identifies a file's version without reading it in `fingerprints.py`. Nothing
outside the root is ever listed, and a local file is checked to be inside it again when opened.
`streams.open_location` is how later stages read a found file; `presence.missing` tells which files
the ledger knows are gone from their source.

A file is known by its source and its path under the root (`source.SourceFile`): the source is
SOURCE_NAME when set, else the folder or URL itself, so two folders that each hold
`certificates.csv` are two sources, never one file.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

from ..errors import SourceError
from . import remote, roots
from .archives import expand, inner_name
from .local import folder_identity, local_files
from .patterns import check_patterns, matches, visible
from .source import Discovery, SourceFile

__all__ = ["Discovery", "SourceFile", "discover", "source_identity"]

log = logging.getLogger(__name__)

NAMED_ZIP_MEMBERS = "*.csv"  # the members taken from a zip named by URL or HTTP path


def discover(root: str, patterns: tuple[str, ...], retries: int = 3, name: str | None = None) -> Discovery:
    """Files under `root` (a folder or remote source) matching any of `patterns`, each known as a file of the
    source `name` (SOURCE_NAME) or, without one, of the root; raises SourceError or ConfigError."""
    check_patterns(patterns)
    where = roots.parse_root(root)
    if where.kind == roots.LOCAL:
        found, matched = _select(local_files(root), patterns, retries)
    elif where.kind == roots.S3:
        listed = (_remote_source(f) for f in remote.list_prefix(where, retries) if visible(f.relative))
        found, matched = _select(listed, patterns, retries)
    else:
        found, matched = _named(remote.head_files(where, patterns, retries), patterns, where, retries)
    for pattern, count in matched.items():
        log.info("pattern %r matched %d file(s)", pattern, count)
    if not found:
        raise SourceError(_nothing_found(root, where, patterns))
    source = source_identity(root, name)
    files = tuple(dataclasses.replace(found[key], source=source) for key in sorted(found))
    return Discovery(files, matched, source)


def source_identity(root: str, name: str | None = None) -> str:
    """What the files of a run are known by, beside their paths: SOURCE_NAME, else the folder's absolute path
    or the prefix or base URL (without credentials); '' for a list of URLs, whose paths are whole URLs."""
    if name:
        return name
    where = roots.parse_root(root)
    if where.kind == roots.LOCAL:
        return folder_identity(root)
    if where.kind == roots.URLS:
        return ""
    return roots.public_url(where.url).rstrip("/")


def _nothing_found(root: str, where: roots.Root, patterns: tuple[str, ...]) -> str:
    if where.kind in (roots.LOCAL, roots.S3):
        shown = root if where.kind == roots.LOCAL else roots.public_url(root)
        return f"no file under {shown!r} matches {', '.join(patterns)}; check SRC_DATA_FOLDER and SRC_FILE_NAME"
    if where.kind == roots.HTTP:
        return f"none of {', '.join(patterns)} exists under {roots.public_url(where.url)!r}; check SRC_FILE_NAME"
    return f"none of the URLs in SRC_DATA_FOLDER exists: {', '.join(map(roots.public_url, where.urls))}"


def _select(sources: Iterable[SourceFile], patterns: tuple[str, ...], retries: int):
    """The files (zip members expanded) that match a pattern, by path, and the matches per pattern."""
    matched = dict.fromkeys(patterns, 0)
    found: dict[str, SourceFile] = {}
    for listed in sources:
        for source in expand(listed, retries):
            hits = [p for p in patterns if matches(p, inner_name(source.path))]
            for pattern in hits:
                matched[pattern] += 1
            if hits:
                found.setdefault(source.path, source)
    return found, matched


def _named(files: list[remote.RemoteFile], patterns: tuple[str, ...], where: roots.Root, retries: int):
    """Files named one by one (HTTP paths, URLs): each is taken; of a zip, its members named *.csv."""
    keys = patterns if where.kind == roots.HTTP else tuple(map(roots.public_url, where.urls))
    matched = dict.fromkeys(keys, 0)
    found: dict[str, SourceFile] = {}
    for listed in files:
        for source in expand(_remote_source(listed), retries):
            if source.member is not None and not matches(NAMED_ZIP_MEMBERS, inner_name(source.path)):
                continue
            matched[listed.relative] = matched.get(listed.relative, 0) + 1
            found.setdefault(source.path, source)
    return found, matched


def _remote_source(listed: remote.RemoteFile) -> SourceFile:
    return SourceFile(listed.relative, listed.url, listed.size, listed.mtime, fingerprint=listed.fingerprint)
