"""Files gone from their source since they were loaded: found, noted in the ledger, and removed when asked.

A file of this run's source that the listing no longer holds is looked up once more (`find.presence`):
only a file really missing is gone, never one another SRC_FILE_NAME would match. Its rows stay, and
`status` lists it, until a run with REMOVE_GONE=1 removes its rows and its ledger entry together.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from .. import ledger
from ..config import Settings
from ..db import writing
from ..errors import SourceError
from ..find.presence import missing
from .tables import delete_file_rows

log = logging.getLogger(__name__)


@dataclass
class Gone:
    """What a run found gone from its source, and what it removed of them."""

    files: list[ledger.Entry] = field(default_factory=list)
    removed_rows: int = 0
    removed: bool = False
    unknown: str | None = None  # why the source could not be asked

    @property
    def rows(self) -> int:
        return sum(entry.rows_loaded for entry in self.files)


def find_gone(settings: Settings, source: str, entries: Iterable[ledger.Entry], listed: Collection[str] = ()) -> Gone:
    """The entries of `source` whose file is no longer there (not `listed`, and missing when looked up)."""
    candidates = [e for e in entries if e.source == source and e.path not in listed]
    if not candidates:
        return Gone()
    try:
        absent = missing(settings.src_data_folder, [e.path for e in candidates], settings.load_retries)
    except SourceError as exc:
        log.warning("cannot tell which loaded files are gone from the source: %s", exc)
        return Gone(unknown=str(exc))
    return Gone(sorted((e for e in candidates if e.path in absent), key=lambda e: e.path))


def settle_gone(engine: Engine, settings: Settings, gone: Gone, run_id: str) -> Gone:
    """Mark gone files in the ledger; with REMOVE_GONE, remove their rows and entries (one transaction each)."""
    ledger.mark_gone(engine, [e for e in gone.files if e.status != ledger.GONE], run_id)
    if not settings.remove_gone:
        for entry in gone.files:
            log.warning(
                "%s is gone from the source; its %d row(s) stay (REMOVE_GONE=1 removes them)",
                entry.path,
                entry.rows_loaded,
            )
        return gone
    for entry in gone.files:
        with writing(engine) as conn:
            removed = delete_file_rows(conn, entry.table_name, entry.lineage or entry.path) if entry.table_name else 0
            ledger.remove(conn, entry)
        log.warning("%s is gone from the source: removed its %d row(s) from %s", entry.path, removed, entry.table_name)
        gone.removed_rows += removed
    gone.removed = True
    return gone
