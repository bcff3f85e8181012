"""Optional features and the pip extra that brings each one's packages.

The default install runs the default job (CSV files on disk into SQLite, PostgreSQL or MySQL,
then the deals view and the sync). S3 and HTTP sources, the Dask executor and the pandas
functions need more; when their packages are missing, the run stops before it starts with a
ConfigError (exit 2) that names the extra to install, never an ImportError traceback.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from .errors import ConfigError

# extra -> the modules it must make importable
EXTRAS: dict[str, tuple[str, ...]] = {
    "http": ("fsspec", "aiohttp", "botocore"),
    "s3": ("fsspec", "aiohttp", "s3fs", "aiobotocore", "botocore"),
    "dask": ("dask", "distributed"),
    "pandas": ("pandas",),
}


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The modules that cannot be imported here."""
    return [name for name in modules if not _importable(name)]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return False


def require(extra: str, feature: str) -> None:
    """Raise ConfigError naming `pip install 'processor[extra]'` when the extra's packages are missing."""
    missing = missing_modules(EXTRAS[extra])
    if missing:
        raise ConfigError(
            f"{feature} needs the {extra!r} extra ({', '.join(missing)} not installed): "
            f"pip install 'processor[{extra}]'"
        )


def needed(src_data_folder: str, executor: str) -> list[tuple[str, str]]:
    """(extra, feature) pairs that a run with these settings needs (pure)."""
    out: list[tuple[str, str]] = []
    schemes = {item.strip().split("://", 1)[0].lower() for item in src_data_folder.split(",") if "://" in item}
    if "s3" in schemes:
        out.append(("s3", "SRC_DATA_FOLDER=s3://..."))
    if schemes & {"http", "https"}:
        out.append(("http", "SRC_DATA_FOLDER=http(s)://..."))
    if executor == "dask":
        out.append(("dask", "EXECUTOR=dask"))
    return out


def check(src_data_folder: str, executor: str) -> None:
    """Raise ConfigError for the first extra these settings need that is not installed."""
    for extra, feature in needed(src_data_folder, executor):
        require(extra, feature)
