"""A local file must hold still while it loads: its identity (inode, size, modification time) before and after.

The ledger fingerprints the bytes that streamed past. A file rewritten in place during its load
would be recorded with a mix of two versions, one that never existed, so a local file's stat is
taken before it is opened and again after its last byte was read; a big file's ranges compare
both with the stat of the pass that cut and fingerprinted it. Any difference fails the file alone
(its transaction rolls back) and the next run loads it whole. Remote files are checked by their
own version (ETag) where they are read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..find import SourceFile
from ..find.remote import FileChanged
from ..find.roots import is_url


@dataclass(frozen=True)
class Stamp:
    """What identifies one version of a local file without reading it."""

    inode: int
    size: int
    mtime_ns: int


def stamp_of(source: SourceFile) -> Stamp | None:
    """The file's stamp now (None for a remote file); raises OSError when it is gone."""
    if is_url(source.location):
        return None
    found = os.stat(source.location)
    return Stamp(found.st_ino, found.st_size, found.st_mtime_ns)


def check_steady(source: SourceFile, before: Stamp | None, expected: Stamp | None = None) -> None:
    """Raise FileChanged unless the file is as it was `before` reading it (and as `expected`, when given)."""
    if not steady(source, before, expected):
        raise FileChanged(
            f"{source.path} changed while loading (its size or modification time moved); "
            "nothing of it was kept, the next run loads it whole"
        )


def steady(source: SourceFile, before: Stamp | None, expected: Stamp | None = None) -> bool:
    """Whether the file is as it was `before` reading it (and as `expected`); an uncompressed file must also
    still have the size it was listed with. Always true for a remote file."""
    if before is None:
        return True
    try:
        after = stamp_of(source)
    except OSError:
        return False  # gone
    listed = source.compression is not None or before.size == source.size
    return after == before and listed and (expected is None or before == expected)
