"""Settings: one frozen dataclass built once from a mapping (the environment plus `.env`).

`Settings.from_env(mapping)` is the only way configuration enters the package; tests pass a
dict, `index.py` passes `os.environ` merged over `.env`. Every problem is collected and
reported in one `ConfigError` that names the variable and what was expected.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .names import name_problems

if TYPE_CHECKING:
    from .pipedrive.fieldmap import FieldMap

SAMPLE_DATA_FOLDER = str(Path(__file__).resolve().parent / "sample_data")
DEFAULT_DEST_SQL = "sqlite:///processor.db"
DEFAULT_PIPEDRIVE_URL = "https://api.pipedrive.com"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Option:
    """What one environment variable means, for parsing and for `--help`."""

    env: str
    attr: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    secret: bool = False
    shown_default: str | None = None


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected 1/0, true/false, yes/no or on/off")


def _number(kind: type, noun: str, minimum: float) -> Callable[[str], Any]:
    def parse(raw: str):
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ValueError(f"expected {noun}") from None
        if value < minimum:
            raise ValueError(f"expected {noun} of at least {minimum}")
        return value

    return parse


def _int(minimum: int) -> Callable[[str], int]:
    return _number(int, "a whole number", minimum)


def _float(minimum: float) -> Callable[[str], float]:
    return _number(float, "a number", minimum)


def _decimal(raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ValueError("expected a decimal number such as 0.20") from None
    if not value.is_finite():
        raise ValueError("expected a finite decimal number")
    return value


def _list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _raw_list(raw: str) -> tuple[str, ...]:
    """Comma-separated values kept verbatim (null markers may carry spaces)."""
    return tuple(item for item in raw.split(",") if item != "")


def _optional(raw: str) -> str | None:
    return raw.strip() or None


def _delimiter(raw: str) -> str | None:
    value = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(raw, raw)
    if value == "":
        return None
    if len(value) != 1 or value in '"\r\n':
        raise ValueError("expected one character such as , ; | or \\t")
    return value


def _column_types(raw: str) -> tuple[tuple[str, str, str], ...]:
    from .schema import normalise_name, parse_type_spec

    out = []
    for item in re.split(r",(?![^(]*\))", raw):
        if not item.strip():
            continue
        target, sep, spec = item.strip().partition(":")
        table, dot, column = target.rpartition(".")
        if not sep or not dot or not table or not column:
            raise ValueError(f"{item.strip()!r} is not table.column:type")
        if "." in table:
            raise ValueError(
                f"{item.strip()!r}: schema-qualified table names are not supported; give table.column:type"
            )
        parse_type_spec(spec)
        out.append((normalise_name(table), normalise_name(column), spec.strip().lower()))
    return tuple(out)


def _source_name(raw: str) -> str | None:
    """SOURCE_NAME: printable text naming a source; trailing '/' dropped (the name and a path join with one)."""
    value = raw.strip().rstrip("/")
    if any(not char.isprintable() for char in value):
        raise ValueError("expected printable text without control characters")
    return value or None


def _executor(raw: str) -> str:
    value = raw.strip().lower() or "local"
    if value not in ("local", "dask"):
        raise ValueError("expected local or dask")
    return value


def _wide_files(raw: str) -> str:
    value = raw.strip().lower() or "fail"
    if value not in ("fail", "json"):
        raise ValueError("expected fail or json")
    return value


def _progress(raw: str) -> str:
    value = raw.strip().lower() or "auto"
    if value in _TRUE:
        return "on"
    if value in _FALSE - {""}:
        return "off"
    if value != "auto":
        raise ValueError("expected auto, 1 or 0")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower() or allowed[0]
        if value not in allowed:
            raise ValueError(f"expected {' or '.join(allowed)}")
        return value

    return parse


def _percent(raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip().removesuffix("%").strip())
    except InvalidOperation:
        raise ValueError("expected a percentage such as 10 or 10%") from None
    if not value.is_finite() or not 0 <= value <= 100:
        raise ValueError("expected a percentage from 0 to 100")
    return value


def _field_map(raw: str):
    from .pipedrive.fieldmap import parse_field_map

    return parse_field_map(raw)


OPTIONS: tuple[Option, ...] = (
    # Find
    Option(
        "SRC_DATA_FOLDER",
        "src_data_folder",
        SAMPLE_DATA_FOLDER,
        "root folder to walk (or s3://bucket/prefix, an http(s):// base URL, or a comma-separated list of URLs)",
        str.strip,
        shown_default="the bundled sample data",
    ),
    Option(
        "SRC_FILE_NAME",
        "src_file_name",
        ("*.csv",),
        "glob pattern(s), comma-separated; without '/' a pattern matches file names at any depth; '**' works",
        _list,
        shown_default="*.csv",
    ),
    Option(
        "SRC_ENCODING",
        "src_encoding",
        None,
        "file encoding; detected from BOM and content when unset",
        _optional,
        shown_default="detected",
    ),
    Option(
        "SRC_DELIMITER",
        "src_delimiter",
        None,
        "field delimiter; sniffed among , ; tab | when unset",
        _delimiter,
        shown_default="sniffed",
    ),
    Option(
        "SRC_HEADER",
        "src_header",
        True,
        "0 when files have no header row (columns become column_1..N)",
        _bool,
        shown_default="1",
    ),
    # Stage
    Option(
        "DEST_SQL",
        "dest_sql",
        DEFAULT_DEST_SQL,
        "SQLAlchemy URL of the destination (sqlite, postgresql, mysql)",
        str.strip,
        secret=True,
        shown_default="sqlite:///processor.db (in the working directory)",
    ),
    Option(
        "DEST_TABLE",
        "dest_table",
        None,
        "load every file into this one table; unset: one table per file stem",
        _optional,
        shown_default="unset",
    ),
    Option(
        "SOURCE_NAME",
        "source_name",
        None,
        "what this run's files are known by, beside their paths (keep it when a dump moves between folders)",
        _source_name,
        shown_default="the folder's absolute path, or the prefix or base URL",
    ),
    Option(
        "REMOVE_GONE",
        "remove_gone",
        False,
        "1 removes the rows and ledger entries of files gone from the source since their load",
        _bool,
        shown_default="0",
    ),
    Option(
        "LOAD_WORKERS",
        "load_workers",
        os.cpu_count() or 1,
        "worker processes for loading",
        _int(1),
        shown_default="CPU count",
    ),
    Option(
        "FULL_REFRESH",
        "full_refresh",
        False,
        "1 drops the target staging tables and reloads every file",
        _bool,
        shown_default="0",
    ),
    Option("MAX_ERRORS", "max_errors", 100, "rejected rows a file may have before it fails as a whole", _int(0)),
    Option(
        "NULL_VALUES",
        "null_values",
        (),
        "extra null markers, comma-separated (e.g. null,NULL,N/A)",
        _raw_list,
        shown_default="none",
    ),
    Option(
        "NULL_VALUES_IN_TEXT",
        "null_values_in_text",
        False,
        "1 also turns empty fields and null markers into NULL in text columns",
        _bool,
        shown_default="0",
    ),
    Option(
        "COLUMN_TYPES",
        "column_types",
        (),
        "per-column types, e.g. certificates.uprn:text,raw_payments.amount:numeric",
        _column_types,
        shown_default="none",
    ),
    Option("INFER_TYPES", "infer_types", True, "0 stages every column as text", _bool, shown_default="1"),
    Option("SAMPLE_ROWS", "sample_rows", 10000, "rows per file read to infer column types", _int(1)),
    Option(
        "VERIFY_VALUES",
        "verify_values",
        True,
        "0 trusts the database's parser for typed columns (faster; 007 may be stored as 7)",
        _bool,
        shown_default="1",
    ),
    Option(
        "WIDE_FILES",
        "wide_files",
        "fail",
        "a file with more columns than a table can take: fail, or json (the leading columns that fit, "
        "the others in one JSON column _more_columns)",
        _wide_files,
    ),
    Option(
        "LOAD_RETRIES",
        "load_retries",
        3,
        "retries of a file whose database connection dropped, and of each failed download request",
        _int(0),
    ),
    Option(
        "SPLIT_MIN_BYTES",
        "split_min_bytes",
        256 * 1024 * 1024,
        "files at least this large are split into byte ranges loaded in parallel (0: never split)",
        _int(0),
    ),
    Option("EXECUTOR", "executor", "local", "local (process pool) or dask", _executor),
    Option(
        "DASK_SCHEDULER_ADDRESS",
        "dask_scheduler_address",
        None,
        "tcp://host:port of a Dask scheduler",
        _optional,
        shown_default="unset",
    ),
    # Transform
    Option("CUSTOMERS_TABLE", "customers_table", "raw_customers", "staging table of customers"),
    Option("ORDERS_TABLE", "orders_table", "raw_orders", "staging table of orders"),
    Option("PAYMENTS_TABLE", "payments_table", "raw_payments", "staging table of payments"),
    Option("DEALS_VIEW", "deals_view", "deals", "name of the deals view (or table)"),
    Option(
        "DEALS_MATERIALIZE", "deals_materialize", False, "1 builds a table instead of a view", _bool, shown_default="0"
    ),
    Option("DEAL_CURRENCY", "deal_currency", "EUR", "currency of every deal", str.strip),
    Option("BONUS_RATE", "bonus_rate", Decimal("0.20"), "bonus share of a qualifying payment", _decimal),
    Option(
        "BONUS_THRESHOLD",
        "bonus_threshold",
        Decimal("2000"),
        "a payment earns the bonus when its amount is strictly greater than this",
        _decimal,
    ),
    Option("BONUS_STATUS", "bonus_status", "completed", "order status that earns the bonus", str.strip),
    # Sync
    Option(
        "PIPEDRIVE_API_KEY",
        "pipedrive_api_key",
        None,
        "Pipedrive API token; unset: the sync is skipped",
        _optional,
        secret=True,
        shown_default="unset",
    ),
    Option(
        "PIPEDRIVE_BASE_URL",
        "pipedrive_base_url",
        DEFAULT_PIPEDRIVE_URL,
        "Pipedrive API base URL (a company domain, or a local fake)",
        lambda raw: raw.strip().rstrip("/"),
    ),
    Option("PARALLEL_PROCESS_NUMBER", "parallel_process_number", 4, "parallel Pipedrive requests", _int(1)),
    Option(
        "PIPEDRIVE_PERSON_KEY_FIELD",
        "pipedrive_person_key_field",
        "customer_id",
        "name of the person custom field that holds the customer id",
    ),
    Option(
        "PIPEDRIVE_DEAL_KEY_FIELD",
        "pipedrive_deal_key_field",
        "order_id",
        "name of the deal custom field that holds the order id",
    ),
    Option("PIPEDRIVE_TIMEOUT", "pipedrive_timeout", 30.0, "seconds before a Pipedrive request times out", _float(0.1)),
    Option("PIPEDRIVE_MAX_RETRIES", "pipedrive_max_retries", 5, "retries of a failed Pipedrive request", _int(0)),
    Option(
        "PIPEDRIVE_DAILY_BUDGET",
        "pipedrive_daily_budget",
        30000,
        "tokens the sync may spend when Pipedrive sends no x-daily-ratelimit-token-remaining header "
        "(30,000 x plan multiplier x seats)",
        _int(1),
    ),
    Option(
        "SYNC_DRY_RUN",
        "sync_dry_run",
        False,
        "1 lists the planned changes without writing (and loads and rebuilds nothing)",
        _bool,
        shown_default="0",
    ),
    Option(
        "SYNC_ARCHIVED",
        "sync_archived",
        "skip",
        "a deal archived in Pipedrive that differs from the view: skip (report it) or unarchive (and update)",
        _choice("skip", "unarchive"),
    ),
    Option(
        "SYNC_REMOVED",
        "sync_removed",
        "keep",
        "deals whose order left the view: keep, archive or delete (persons follow when they have no other deal)",
        _choice("keep", "archive", "delete"),
    ),
    Option(
        "SYNC_REMOVED_MAX",
        "sync_removed_max",
        Decimal("10"),
        "most deals (percent of those carrying the key) one run may archive or delete",
        _percent,
        shown_default="10%",
    ),
    Option(
        "SYNC_REMOVED_FORCE",
        "sync_removed_force",
        False,
        "1 archives or deletes past SYNC_REMOVED_MAX",
        _bool,
        shown_default="0",
    ),
    Option(
        "SYNC_FIELD_MAP",
        "sync_field_map",
        None,
        "view columns -> Pipedrive deal/person fields: a JSON or YAML file, or inline JSON",
        _field_map,
        shown_default="title, value, currency, person; person name",
    ),
    # Feedback
    Option("PROGRESS", "progress", "auto", "progress bar: auto (on a terminal), 1 or 0", _progress),
    Option(
        "SUMMARY_JSON",
        "summary_json",
        None,
        "also write the run summary as JSON to this path",
        _optional,
        shown_default="unset",
    ),
    Option(
        "LOG_LEVEL", "log_level", "INFO", "DEBUG, INFO, WARNING or ERROR", lambda raw: raw.strip().upper() or "INFO"
    ),
)


@dataclass(frozen=True)
class Settings:
    """Everything a run needs. Picklable, so worker processes receive it as is."""

    src_data_folder: str = SAMPLE_DATA_FOLDER
    src_file_name: tuple[str, ...] = ("*.csv",)
    src_encoding: str | None = None
    src_delimiter: str | None = None
    src_header: bool = True
    dest_sql: str = field(default=DEFAULT_DEST_SQL, repr=False)
    dest_table: str | None = None
    source_name: str | None = None
    remove_gone: bool = False
    load_workers: int = os.cpu_count() or 1
    full_refresh: bool = False
    max_errors: int = 100
    null_values: tuple[str, ...] = ()
    null_values_in_text: bool = False
    column_types: tuple[tuple[str, str, str], ...] = ()
    infer_types: bool = True
    verify_values: bool = True
    wide_files: str = "fail"
    sample_rows: int = 10000
    load_retries: int = 3
    split_min_bytes: int = 256 * 1024 * 1024
    executor: str = "local"
    dask_scheduler_address: str | None = None
    customers_table: str = "raw_customers"
    orders_table: str = "raw_orders"
    payments_table: str = "raw_payments"
    deals_view: str = "deals"
    deals_materialize: bool = False
    deal_currency: str = "EUR"
    bonus_rate: Decimal = Decimal("0.20")
    bonus_threshold: Decimal = Decimal("2000")
    bonus_status: str = "completed"
    pipedrive_api_key: str | None = field(default=None, repr=False)
    pipedrive_base_url: str = DEFAULT_PIPEDRIVE_URL
    parallel_process_number: int = 4
    pipedrive_person_key_field: str = "customer_id"
    pipedrive_deal_key_field: str = "order_id"
    pipedrive_timeout: float = 30.0
    pipedrive_max_retries: int = 5
    pipedrive_daily_budget: int = 30000
    sync_dry_run: bool = False
    sync_archived: str = "skip"
    sync_removed: str = "keep"
    sync_removed_max: Decimal = Decimal("10")
    sync_removed_force: bool = False
    sync_field_map: FieldMap | None = None
    progress: str = "auto"
    summary_json: str | None = None
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from a mapping of environment variables; raises ConfigError."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for option in OPTIONS:
            raw = env.get(option.env)
            if raw is None:
                continue
            try:
                values[option.attr] = option.parse(raw)
            except ValueError as exc:
                shown = "(hidden)" if option.secret else repr(raw)
                problems.append(f"{option.env}={shown}: {exc}")
        if values.get("executor") == "dask" and not values.get("dask_scheduler_address"):
            problems.append("EXECUTOR=dask needs DASK_SCHEDULER_ADDRESS (tcp://host:port of the scheduler)")
        problems += name_problems(cls(**values))
        if problems:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
        return cls(**values)

    def secrets(self) -> list[str]:
        """The values that must never be shown: passwords (database, source URLs), URL query strings, the token."""
        from .db import url_secrets as database_secrets
        from .find.roots import url_secrets

        found = [*database_secrets(self.dest_sql), self.pipedrive_api_key, *url_secrets(self.src_data_folder)]
        return [s for s in found if s]

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (settings are frozen)."""
        return dataclasses.replace(self, **changes)


def describe_options() -> str:
    """The environment variables with their defaults, for `--help` and the README."""
    lines = []
    for option in OPTIONS:
        default = option.shown_default
        if default is None:
            default = "(hidden)" if option.secret else str(option.default)
        lines.append(f"  {option.env:<28} {option.help} [default: {default}]")
    return "\n".join(lines)
