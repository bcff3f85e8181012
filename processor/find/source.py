"""What the find stage yields: one `SourceFile` per CSV to stage, and the `Discovery` of a whole walk."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFile:
    """One CSV to stage.

    A file is known by its source and its path: `source` names where it came from (SOURCE_NAME, or the
    folder or URL of SRC_DATA_FOLDER; '' for a list of URLs, whose paths are URLs already) and `path` is
    its name relative to that root. `lineage` joins the two: the `_source_file` of every row it stages.
    `root` is the real path of a local folder, which every open checks the file is still inside.
    """

    path: str
    location: str
    size: int
    mtime: float = 0.0
    compression: str | None = None
    member: str | None = None
    fingerprint: str | None = None
    source: str = ""
    root: str | None = None

    @property
    def lineage(self) -> str:
        return lineage_of(self.source, self.path)


def lineage_of(source: str, path: str) -> str:
    """The `_source_file` value of a file's rows: its source and its path, joined by '/'."""
    return f"{source.rstrip('/')}/{path}" if source else path


@dataclass(frozen=True)
class Discovery:
    """What the walk found: the files in a deterministic order, and matches per pattern."""

    files: tuple[SourceFile, ...]
    matches: dict[str, int]
    source: str = ""
