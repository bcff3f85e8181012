"""Find: walk the source root and list the files to stage. Never opens a file for its data.

A pattern without '/' matches file names at any depth (`certificates.csv` finds every
`*/certificates.csv`); a pattern with '/' matches the path relative to the root, where `*`
stays inside one folder and `**` spans folders. Compressed files match by their inner name
(`a.csv.gz` matches `*.csv`), and each member of a `.zip` is a file of its own, inside a folder
named after the archive (`dump.zip/a/certificates.csv`). Hidden and
temporary files are skipped, and nothing outside the root is ever listed: symlinks that point
out of it are ignored and patterns may not contain '..'.

The root may also be remote (see `remote.py`): an `s3://bucket/prefix` is listed and globbed the
same way; an `http(s)://` base URL, which cannot be listed, takes each pattern as a file path under
it; a list of full URLs names its files one by one.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import remote
from .errors import ConfigError, SourceError

log = logging.getLogger(__name__)

COMPRESSIONS = {".gz": "gz", ".bz2": "bz2"}
NAMED_ZIP_MEMBERS = "*.csv"  # the members taken from a zip named by URL or HTTP path
_TEMPORARY = re.compile(r"(^~\$|^\.~lock|~$|\.(tmp|temp|part|partial|crdownload|swp|bak)$)", re.IGNORECASE)


@dataclass(frozen=True)
class SourceFile:
    """One CSV to stage: `path` is its name relative to the root (the ledger key and lineage)."""

    path: str
    location: str
    size: int
    mtime: float = 0.0
    compression: str | None = None
    member: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class Discovery:
    """What the walk found: the files in a deterministic order, and matches per pattern."""

    files: tuple[SourceFile, ...]
    matches: dict[str, int]


def discover(root: str, patterns: tuple[str, ...], retries: int = 3) -> Discovery:
    """Files under `root` (a folder or remote source) matching any of `patterns`; raises SourceError or ConfigError."""
    _check_patterns(patterns)
    where = remote.parse_root(root)
    if where.kind == remote.LOCAL:
        found, matches = _select(_local_files(root), patterns, retries)
    elif where.kind == remote.S3:
        listed = (_remote_source(f) for f in remote.list_prefix(where, retries) if _visible(f.relative))
        found, matches = _select(listed, patterns, retries)
    else:
        found, matches = _named(remote.head_files(where, patterns, retries), patterns, where, retries)
    for pattern, count in matches.items():
        log.info("pattern %r matched %d file(s)", pattern, count)
    if not found:
        raise SourceError(_nothing_found(root, where, patterns))
    return Discovery(tuple(found[key] for key in sorted(found)), matches)


def _nothing_found(root: str, where: remote.Root, patterns: tuple[str, ...]) -> str:
    if where.kind in (remote.LOCAL, remote.S3):
        shown = root if where.kind == remote.LOCAL else remote.public_url(root)
        return f"no file under {shown!r} matches {', '.join(patterns)}; check SRC_DATA_FOLDER and SRC_FILE_NAME"
    if where.kind == remote.HTTP:
        return f"none of {', '.join(patterns)} exists under {remote.public_url(where.url)!r}; check SRC_FILE_NAME"
    return f"none of the URLs in SRC_DATA_FOLDER exists: {', '.join(map(remote.public_url, where.urls))}"


def _check_patterns(patterns: tuple[str, ...]) -> None:
    if not patterns:
        raise ConfigError("SRC_FILE_NAME is empty; give a pattern such as *.csv")
    for pattern in patterns:
        if ".." in pattern.replace("\\", "/").split("/") or pattern.startswith("/"):
            raise ConfigError(f"SRC_FILE_NAME pattern {pattern!r} must stay inside SRC_DATA_FOLDER (no '..' or '/')")


def _select(sources: Iterable[SourceFile], patterns: tuple[str, ...], retries: int):
    """The files (zip members expanded) that match a pattern, by path, and the matches per pattern."""
    matches = dict.fromkeys(patterns, 0)
    found: dict[str, SourceFile] = {}
    for listed in sources:
        for source in _expand(listed, retries):
            hits = [p for p in patterns if _matches(p, _match_name(source))]
            for pattern in hits:
                matches[pattern] += 1
            if hits:
                found.setdefault(source.path, source)
    return found, matches


def _named(files: list[remote.RemoteFile], patterns: tuple[str, ...], where: remote.Root, retries: int):
    """Files named one by one (HTTP paths, URLs): each is taken; of a zip, its members named *.csv."""
    keys = patterns if where.kind == remote.HTTP else tuple(map(remote.public_url, where.urls))
    matches = dict.fromkeys(keys, 0)
    found: dict[str, SourceFile] = {}
    for listed in files:
        for source in _expand(_remote_source(listed), retries):
            if source.member is not None and not _matches(NAMED_ZIP_MEMBERS, _match_name(source)):
                continue
            matches[listed.relative] = matches.get(listed.relative, 0) + 1
            found.setdefault(source.path, source)
    return found, matches


def _local_files(root: str) -> Iterator[SourceFile]:
    base = Path(root).expanduser()
    if not base.exists():
        raise SourceError(f"SRC_DATA_FOLDER {root!r} does not exist; point it at the folder that holds the CSV files")
    if not base.is_dir():
        raise SourceError(f"SRC_DATA_FOLDER {root!r} is not a folder")
    for relative, full in _walk(base.resolve()):
        stat = full.stat()
        yield SourceFile(relative, str(full), stat.st_size, stat.st_mtime)


def _remote_source(listed: remote.RemoteFile) -> SourceFile:
    return SourceFile(listed.relative, listed.url, listed.size, listed.mtime, fingerprint=listed.fingerprint)


def _visible(relative: str) -> bool:
    """Not hidden (no part starts with '.') and not a temporary file."""
    parts = relative.split("/")
    return not any(part.startswith(".") for part in parts) and not _TEMPORARY.search(parts[-1])


def _walk(root: Path):
    """(relative posix path, absolute path) of every visible regular file inside `root`."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not _visible(name):
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


def _expand(source: SourceFile, retries: int) -> Iterator[SourceFile]:
    """The SourceFiles one listed file stands for (a zip holds several)."""
    suffix = os.path.splitext(source.path)[1].lower()
    if suffix == ".zip":
        yield from _zip_members(source, retries)
        return
    yield dataclasses.replace(source, compression=COMPRESSIONS.get(suffix))


def _zip_members(archive_file: SourceFile, retries: int) -> Iterator[SourceFile]:
    relative = archive_file.path
    try:
        with (
            remote.open_location(archive_file.location, retries, archive_file.fingerprint) as handle,
            zipfile.ZipFile(handle) as archive,
        ):
            members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        log.warning("skipping %s: not a readable zip file (%s)", relative, exc)
        return
    for info in sorted(members, key=lambda i: i.filename):
        if not _visible(info.filename.rsplit("/", 1)[-1]) or info.filename.startswith("__MACOSX/"):
            continue
        fingerprint = f"zip-crc32:{info.CRC:08x}:{info.file_size}"
        yield SourceFile(
            f"{relative}/{info.filename}",
            archive_file.location,
            info.file_size,
            archive_file.mtime,
            "zip",
            info.filename,
            fingerprint,
        )


def _match_name(source: SourceFile) -> str:
    """The path patterns see: compression suffixes dropped; a zip's members sit in a folder named after it."""
    for suffix in COMPRESSIONS:
        if source.path.lower().endswith(suffix):
            return source.path[: -len(suffix)]
    return source.path


def _matches(pattern: str, relative: str) -> bool:
    if "/" not in pattern:
        return fnmatch.fnmatchcase(relative.rsplit("/", 1)[-1], pattern)
    return _path_regex(pattern).match(relative) is not None


@lru_cache(maxsize=64)
def _path_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a path glob: '*' and '?' stay in one folder, '**/' spans any number of folders."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                body = pattern[i + 1 : end]
                out.append("[^" + re.escape(body[1:]) + "]" if body.startswith("!") else "[" + re.escape(body) + "]")
                i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")
