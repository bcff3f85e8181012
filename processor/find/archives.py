"""Compressed files and zip archives: a `.gz`/`.bz2` is one file read through its decompressor, a `.zip`
holds one file per member, inside a folder named after the archive (`dump.zip/a/certificates.csv`).

Only the zip's directory is read (in small ranges for a remote archive), never a member's data.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import zipfile
from collections.abc import Iterator

from . import fingerprints
from .patterns import visible
from .source import SourceFile
from .streams import open_location

log = logging.getLogger(__name__)

COMPRESSIONS = {".gz": "gz", ".bz2": "bz2"}


def expand(source: SourceFile, retries: int) -> Iterator[SourceFile]:
    """The SourceFiles one listed file stands for (a zip holds several)."""
    suffix = os.path.splitext(source.path)[1].lower()
    if suffix == ".zip":
        yield from _zip_members(source, retries)
        return
    yield dataclasses.replace(source, compression=COMPRESSIONS.get(suffix))


def inner_name(path: str) -> str:
    """The path patterns see: compression suffixes dropped (a zip's members sit in a folder named after it)."""
    for suffix in COMPRESSIONS:
        if path.lower().endswith(suffix):
            return path[: -len(suffix)]
    return path


def _zip_members(archive_file: SourceFile, retries: int) -> Iterator[SourceFile]:
    relative = archive_file.path
    try:
        with (
            open_location(archive_file.location, retries, archive_file.fingerprint, archive_file.root) as handle,
            zipfile.ZipFile(handle) as archive,
        ):
            members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        log.warning("skipping %s: not a readable zip file (%s)", relative, exc)
        return
    for info in sorted(members, key=lambda i: i.filename):
        if not visible(info.filename.rsplit("/", 1)[-1]) or info.filename.startswith("__MACOSX/"):
            continue
        yield SourceFile(
            f"{relative}/{info.filename}",
            archive_file.location,
            info.file_size,
            archive_file.mtime,
            "zip",
            info.filename,
            fingerprints.zip_member(info.CRC, info.file_size),
            root=archive_file.root,
        )
