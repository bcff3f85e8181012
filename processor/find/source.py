"""What the find stage yields: one `SourceFile` per CSV to stage, and the `Discovery` of a whole walk."""

from __future__ import annotations

from dataclasses import dataclass


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
