"""Settings: one frozen dataclass built once from a mapping (the environment plus `.env`).

`Settings.from_env(mapping)` is the only way configuration enters the package; tests pass a
dict, `index.py` passes `os.environ` merged over `.env`. Every problem is collected and
reported in one `ConfigError` that names the variable and what was expected.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .names import name_problems
from .validation import quote_problem, quoted, unknown_variables, url_problem

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


def _number(kind: type, noun: str, minimum: float, maximum: float | None, why: str) -> Callable[[str], Any]:
    def parse(raw: str):
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ValueError(f"expected {noun}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"expected {noun}, not {raw.strip()}")
        if value < minimum:
            raise ValueError(f"expected {noun} of at least {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"expected at most {maximum}{why}")
        return value

    return parse


def _int(minimum: int, maximum: int | None = None, why: str = "") -> Callable[[str], int]:
    return _number(int, "a whole number", minimum, maximum, why)


def _float(minimum: float, maximum: float | None = None, why: str = "") -> Callable[[str], float]:
    return _number(float, "a number", minimum, maximum, why)


def _decimal(raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ValueError("expected a decimal number such as 0.20") from None
    if not value.is_finite():
        raise ValueError("expected a finite decimal number")
    return value


def _rate(raw: str) -> Decimal:
    value = _decimal(raw)
    if not 0 <= value <= 1:
        raise ValueError("expected a share from 0 to 1, such as 0.20 for 20%")
    return value


def _threshold(raw: str) -> Decimal:
    value = _decimal(raw)
    if value < 0:
        raise ValueError("expected an amount of 0 or more")
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


# ---------------------------------------------------------------- values checked, never guessed

MAX_WORKERS = 64
_WORKERS_WHY = (
    ": each worker holds a database connection (PostgreSQL allows 100 by default), "
    "and more workers than cores load no faster"
)
MAX_PIPEDRIVE_THREADS = 64
MAX_SAMPLE_ROWS = 1_000_000
MAX_RETRIES = 100
MAX_TIMEOUT = 3600.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _text(raw: str) -> str:
    """A name that must not be empty (an empty value is a mistake, not a request for the default)."""
    value = raw.strip()
    if not value:
        raise ValueError("is empty; set a value or unset the variable for its default")
    return value


def _patterns(raw: str) -> tuple[str, ...]:
    patterns = _list(raw)
    if not patterns:
        raise ValueError("names no pattern; set e.g. *.csv or certificates.csv, or unset it for *.csv")
    return patterns


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


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in LOG_LEVELS:
        raise ValueError(f"expected {', '.join(LOG_LEVELS)}")
    return value


def _encoding(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError("is not an encoding Python knows; expected e.g. utf-8, cp1252, latin-1 or utf-16") from None
    return value


def _currency(raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"[A-Za-z]{3}", value):
        raise ValueError("expected a 3-letter ISO 4217 code such as EUR, GBP or USD")
    return value.upper()


def _source(raw: str) -> str:
    value = _text(raw)
    for item in value.split(","):
        item = item.strip()
        if "://" in item or item.lower().startswith(("http:", "https:", "s3:")):
            problem = url_problem(item, ("s3", "http", "https"), "s3://bucket/prefix or https://host/path")
            if problem:
                raise ValueError(problem)
    return value


def _dest_sql(raw: str) -> str:
    from .db import normalise_url  # SQLAlchemy is imported only when a URL is checked

    value = raw.strip()
    normalise_url(value)  # raises ConfigError, reported with the others
    return value


def _http_url(raw: str, example: str) -> str:
    value = raw.strip()
    problem = url_problem(value, ("https", "http"), example)
    if problem:
        raise ValueError(problem)
    return value


def _pipedrive_url(raw: str) -> str:
    return _http_url(raw.strip().rstrip("/"), DEFAULT_PIPEDRIVE_URL)


def parse_notify_url(raw: str) -> str | None:
    """NOTIFY_URL: an http(s) URL, or None when empty; raises ValueError."""
    return _http_url(raw, "https://hooks.slack.com/services/...") if raw.strip() else None


def _dask_address(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    full = value if "://" in value else f"tcp://{value}"
    problem = url_problem(full, ("tcp", "tls", "ws", "wss", "ucx"), "tcp://scheduler:8786")
    if problem is None and urlsplit(full).port is None:
        problem = "names no port; expected e.g. tcp://scheduler:8786"
    if problem:
        raise ValueError(problem)
    return value


def public_part(url: str) -> str:
    """A URL cut before any user name, password or query, for a message."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rsplit('@', 1)[-1].split('?', 1)[0]}" if rest else url.split("?", 1)[0]


def notify_secrets(url: str | None) -> list[str]:
    """The parts of NOTIFY_URL to mask: a webhook's path is its password (hooks.slack.com/services/T/B/secret)."""
    if not url:
        return []
    parts = urlsplit(url)
    path = parts.path.strip("/")
    return [s for s in (parts.password, parts.query, path if len(path) >= 8 else None) if s]


def _environment_problems(env: Mapping[str, str]) -> list[str]:
    """What is wrong with the environment as a whole: variables that look like ours but are not."""
    return unknown_variables(env, (option.env for option in OPTIONS))


def sample_sync_problem(settings: Settings) -> str | None:
    """Why this sync must not run: the bundled sample is never sent to a real CRM (None when it may; a dry
    run only reads from Pipedrive, so it may plan from the sample)."""
    if not settings.pipedrive_api_key or settings.sync_dry_run:
        return None
    folder = settings.src_data_folder
    if "://" in folder or os.path.realpath(folder) != os.path.realpath(SAMPLE_DATA_FOLDER):
        return None
    return (
        "the source is the bundled sample data (SRC_DATA_FOLDER is not set?), and the sample is never sent "
        "to Pipedrive; set SRC_DATA_FOLDER to your data (or unset PIPEDRIVE_API_KEY to try the sample)"
    )


OPTIONS: tuple[Option, ...] = (
    # Find
    Option(
        "SRC_DATA_FOLDER",
        "src_data_folder",
        SAMPLE_DATA_FOLDER,
        "root folder to walk (or s3://bucket/prefix, an http(s):// base URL, or a comma-separated list of URLs)",
        _source,
        shown_default="the bundled sample data",
    ),
    Option(
        "SRC_FILE_NAME",
        "src_file_name",
        ("*.csv",),
        "glob pattern(s), comma-separated; without '/' a pattern matches file names at any depth; '**' works",
        _patterns,
        shown_default="*.csv",
    ),
    Option(
        "SRC_ENCODING",
        "src_encoding",
        None,
        "file encoding; detected from BOM and content when unset",
        _encoding,
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
        _dest_sql,
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
        f"worker processes for loading (at most {MAX_WORKERS})",
        _int(1, MAX_WORKERS, _WORKERS_WHY),
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
    Option(
        "SAMPLE_ROWS",
        "sample_rows",
        10000,
        f"rows per file read to infer column types (at most {MAX_SAMPLE_ROWS:,}: the sample is held in memory)",
        _int(1, MAX_SAMPLE_ROWS, " (the sample is held in memory)"),
    ),
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
        _int(0, MAX_RETRIES),
    ),
    Option(
        "SPLIT_MIN_BYTES",
        "split_min_bytes",
        256 * 1024 * 1024,
        "files at least this large are split into byte ranges loaded in parallel (0: never split)",
        _int(0),
    ),
    Option(
        "LOCK_TIMEOUT",
        "lock_timeout",
        300.0,
        "seconds a run waits for another run writing to the same destination to finish (then exit 7)",
        _float(0),
    ),
    Option("EXECUTOR", "executor", "local", "local (process pool) or dask", _executor),
    Option(
        "DASK_SCHEDULER_ADDRESS",
        "dask_scheduler_address",
        None,
        "tcp://host:port of a Dask scheduler",
        _dask_address,
        shown_default="unset",
    ),
    # Transform
    Option("CUSTOMERS_TABLE", "customers_table", "raw_customers", "staging table of customers", _text),
    Option("ORDERS_TABLE", "orders_table", "raw_orders", "staging table of orders", _text),
    Option("PAYMENTS_TABLE", "payments_table", "raw_payments", "staging table of payments", _text),
    Option("DEALS_VIEW", "deals_view", "deals", "name of the deals view (or table)", _text),
    Option(
        "DEALS_MATERIALIZE", "deals_materialize", False, "1 builds a table instead of a view", _bool, shown_default="0"
    ),
    Option("DEAL_CURRENCY", "deal_currency", "EUR", "currency of every deal (a 3-letter ISO code)", _currency),
    Option("BONUS_RATE", "bonus_rate", Decimal("0.20"), "bonus share of a qualifying payment (0 to 1)", _rate),
    Option(
        "BONUS_THRESHOLD",
        "bonus_threshold",
        Decimal("2000"),
        "a payment earns the bonus when its amount is strictly greater than this",
        _threshold,
    ),
    Option("BONUS_STATUS", "bonus_status", "completed", "order status that earns the bonus", _text),
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
        _pipedrive_url,
    ),
    Option(
        "PARALLEL_PROCESS_NUMBER",
        "parallel_process_number",
        4,
        f"parallel Pipedrive requests (at most {MAX_PIPEDRIVE_THREADS})",
        _int(1, MAX_PIPEDRIVE_THREADS, " (Pipedrive's rate limit is shared by every request)"),
    ),
    Option(
        "PIPEDRIVE_PERSON_KEY_FIELD",
        "pipedrive_person_key_field",
        "customer_id",
        "name of the person custom field that holds the customer id",
        _text,
    ),
    Option(
        "PIPEDRIVE_DEAL_KEY_FIELD",
        "pipedrive_deal_key_field",
        "order_id",
        "name of the deal custom field that holds the order id",
        _text,
    ),
    Option(
        "PIPEDRIVE_TIMEOUT",
        "pipedrive_timeout",
        30.0,
        "seconds before a Pipedrive request times out",
        _float(0.1, MAX_TIMEOUT),
    ),
    Option(
        "PIPEDRIVE_MAX_RETRIES",
        "pipedrive_max_retries",
        5,
        "retries of a failed Pipedrive request",
        _int(0, MAX_RETRIES),
    ),
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
    Option("LOG_LEVEL", "log_level", "INFO", "DEBUG, INFO, WARNING or ERROR", _log_level),
    Option(
        "LOG_FORMAT",
        "log_format",
        "text",
        "text, or json: one JSON object per log line (time, level, step, file, table, rows, message)",
        _choice("text", "json"),
    ),
    Option(
        "NOTIFY_URL",
        "notify_url",
        None,
        "at the end of a run, POST its summary as JSON here (a Slack or Teams incoming webhook works)",
        parse_notify_url,
        secret=True,
        shown_default="unset",
    ),
    Option(
        "NOTIFY_ON",
        "notify_on",
        "problems",
        "problems (the run failed, stopped or rejected rows) or always",
        _choice("problems", "always"),
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
    lock_timeout: float = 300.0
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
    log_format: str = "text"
    notify_url: str | None = field(default=None, repr=False)
    notify_on: str = "problems"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from a mapping of environment variables; raises ConfigError."""
        values: dict[str, Any] = {}
        problems: list[str] = _environment_problems(env)
        for option in OPTIONS:
            raw = env.get(option.env)
            if raw is None:
                continue
            if quoted(raw):
                problems.append(quote_problem(option.env))
                continue
            try:
                values[option.attr] = option.parse(raw)
            except ConfigError as exc:
                problems.append(str(exc))
            except ValueError as exc:
                shown = "(hidden)" if option.secret else repr(public_part(raw) if "://" in raw else raw)
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

        found = [
            *database_secrets(self.dest_sql),
            self.pipedrive_api_key,
            *url_secrets(self.src_data_folder),
            *notify_secrets(self.notify_url),
        ]
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
