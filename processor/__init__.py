"""processor: CSV files -> SQL staging tables -> a deals view -> Pipedrive.

The library API is small:

    from processor import load_folder
    report = load_folder("dumps/2024-Q1", patterns="certificates.csv", url="postgresql://...", table="epc")
    for file in report.files:
        print(file.path, file.status, file.rows_loaded, file.rows_rejected, file.error)

`Settings.from_env(mapping)` builds the full configuration (every variable of the README),
`run(settings, step)` runs load, transform and sync as `python index.py` does, and
`build_deals(settings, engine)` / `sync_deals(settings, rows)` run one stage from Python, and
`ledger_status(engine, settings)` reads what the ledger says. With the `pandas` extra, `load_frame(df, table, url)`
stages a DataFrame as a file is staged, and `read_frame(table_or_query, url)` / `read_deals(settings)`
read back with exact types.
"""

from __future__ import annotations

from typing import Any

from .config import DEFAULT_DEST_SQL, Settings
from .errors import ProcessorError
from .pipeline import RunReport, run
from .staging.loader import load
from .staging.report import LoadReport
from .staging.worker import FileResult

__all__ = [
    "FileResult",
    "LedgerStatus",
    "LoadReport",
    "ProcessorError",
    "RunReport",
    "Settings",
    "SyncReport",
    "TransformReport",
    "build_deals",
    "ledger_status",
    "load",
    "load_folder",
    "load_frame",
    "read_deals",
    "read_frame",
    "run",
    "run_sync",
    "sync_deals",
]
_LAZY = {
    "build_deals": "transform",
    "TransformReport": "transform",
    "run_sync": "pipedrive",
    "sync_deals": "pipedrive",
    "SyncReport": "pipedrive",
    "ledger_status": "status",
    "LedgerStatus": "status",
    "load_frame": "frames",
    "read_frame": "frames",
    "read_deals": "frames",
}


def __getattr__(name: str) -> Any:
    """The transform, sync, status and pandas entry points, imported on first use (a load alone starts faster)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_folder(
    folder: str,
    patterns: str | tuple[str, ...] = ("*.csv",),
    url: str = DEFAULT_DEST_SQL,
    table: str | None = None,
    workers: int | None = None,
    **options: Any,
) -> LoadReport:
    """Stage the CSV files under `folder` into `url`; other Settings fields go in `options`.

    Raises ConfigError, SourceError or DatabaseError before loading; a file that fails is
    reported in the result (status 'failed', with its error), not raised.
    """
    if isinstance(patterns, str):
        patterns = tuple(p.strip() for p in patterns.split(",") if p.strip())
    fields: dict[str, Any] = {
        "src_data_folder": str(folder),
        "src_file_name": tuple(patterns),
        "dest_sql": url,
        "dest_table": table,
        "progress": "off",
        **options,
    }
    if workers is not None:
        fields["load_workers"] = workers
    return load(Settings(**fields))
