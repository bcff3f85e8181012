"""What the operator sees while a run goes: log format (text or JSON), progress bar or plain lines,
where the data comes from and goes to; secrets masked everywhere."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from . import meter
from .redact import RedactingFilter, redact

FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
QUIET_LIBRARIES = ("botocore", "aiobotocore", "s3fs", "fsspec", "aiohttp")
# The step a logger's lines belong to, by module; lines of other modules belong to the step that runs.
STEP_OF_LOGGER = (
    ("processor.staging", "load"),
    ("processor.find", "load"),
    ("processor.progress", "load"),
    ("processor.ledger", "load"),
    ("processor.parallel", "load"),
    ("processor.transform", "transform"),
    ("processor.pipedrive", "sync"),
    ("processor.status", "status"),
)
JSON_FIELDS = ("file", "table", "rows")  # passed as `extra=` by the lines about one file


def configure_logging(level: str, secrets: list[str | None], log_format: str = "text", step: str = "all") -> None:
    """Log to stderr, as text or one JSON object per line, secrets masked (called by the CLI and by workers)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(step, secrets))
    else:
        handler.setFormatter(TextFormatter(secrets))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for chatty in QUIET_LIBRARIES:  # their INFO lines (e.g. where AWS credentials were found) are noise here
        logging.getLogger(chatty).setLevel(level if level == "DEBUG" else "WARNING")


class TextFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL message`, secrets masked in the finished line (the progress bar's handler keeps the
    formatter but not the handler's filters)."""

    def __init__(self, secrets: list[str | None]):
        super().__init__(FORMAT, "%H:%M:%S")
        self.secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, step, file, table, rows, message, logger."""

    def __init__(self, step: str, secrets: list[str | None]):
        super().__init__()
        self.step = step
        self.secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "step": step_of(record.name, self.step),
            **{name: getattr(record, name, None) for name in JSON_FIELDS},
            "message": redact(record.getMessage(), self.secrets),
            "logger": record.name,
        }
        if record.exc_info:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["error"] = redact(record.exc_text, self.secrets)
        if isinstance(entry["file"], str):
            entry["file"] = redact(entry["file"], self.secrets)
        return json.dumps(entry, ensure_ascii=False, default=str)


def step_of(logger: str, running: str) -> str:
    """The step a log line belongs to: by the module that wrote it, else the step that runs."""
    for prefix, step in STEP_OF_LOGGER:
        if logger == prefix or logger.startswith(prefix + "."):
            return step
    return running


def use_bar(setting: str) -> bool:
    """PROGRESS=auto shows a bar only on a terminal."""
    return setting == "on" or (setting == "auto" and sys.stderr.isatty())


class FileProgress:
    """Counts bytes, files and rows as a load goes: a tqdm bar of bytes on a terminal (moving inside a big
    file as workers read it), a log line per file otherwise."""

    POLL_SECONDS = 0.5

    def __init__(self, bar: bool):
        self.bar = bar
        self._tqdm: tqdm | None = None
        self.rows = 0
        self.files = 0
        self.total_files = 0
        self.done_bytes = 0
        self.log = logging.getLogger("processor.progress")
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def running(self) -> Iterator[FileProgress]:
        if not self.bar:
            yield self
            return
        stop = threading.Event()
        with (
            logging_redirect_tqdm(),
            tqdm(desc="staging", unit="B", unit_scale=True, unit_divisor=1024, dynamic_ncols=True) as bar,
        ):
            self._tqdm = bar
            poller = threading.Thread(target=self._poll, args=(stop,), name="progress", daemon=True)
            poller.start()
            try:
                yield self
            finally:
                stop.set()
                poller.join()
                self._tqdm = None

    def _poll(self, stop: threading.Event) -> None:
        while not stop.wait(self.POLL_SECONDS):
            self._show()

    def _show(self) -> None:
        with self._lock:
            bar = self._tqdm
            if bar is None:
                return
            reached = self.done_bytes + meter.in_flight()
            if bar.total:
                reached = min(reached, bar.total)
            if reached > bar.n:
                bar.update(reached - bar.n)
            bar.set_postfix(files=f"{self.files}/{self.total_files}", rows=f"{self.rows:,}", refresh=False)
            bar.refresh()

    def expect(self, files: int, size: int) -> None:
        self.total_files = files
        if self._tqdm is not None:
            self._tqdm.total = size
            self._show()

    def __call__(self, result) -> None:
        self.rows += result.rows_loaded
        self.files += 1
        self.done_bytes += result.size or 0
        if self._tqdm is not None:
            self._show()
            return
        extra = {"file": result.path, "table": result.table, "rows": result.rows_loaded}
        if result.status == "loaded":
            self.log.info(
                "%s -> %s: %d rows (%d rejected) in %.2f s via %s",
                result.path,
                result.table,
                result.rows_loaded,
                result.rows_rejected,
                result.seconds,
                result.method,
                extra=extra,
            )
        elif result.status == "failed":
            self.log.error("%s failed: %s", result.path, result.error, extra=extra)
        else:
            self.log.info("%s skipped: %s", result.path, result.error or result.status, extra=extra)


# ---------------------------------------------------------------- where from, where to


def describe_source(settings) -> str:
    """SRC_DATA_FOLDER and its patterns as the operator should read them (URLs without secrets)."""
    from .config import SAMPLE_DATA_FOLDER
    from .find.roots import public_url

    folder = settings.src_data_folder
    patterns = ", ".join(settings.src_file_name)
    if "://" not in folder:
        if os.path.realpath(folder) == os.path.realpath(SAMPLE_DATA_FOLDER):
            return f"the bundled sample data ({patterns}; SRC_DATA_FOLDER is not set)"
        return f"{os.path.abspath(folder)} ({patterns})"
    urls = [public_url(item.strip()) for item in folder.split(",") if item.strip()]
    shown = ", ".join(urls[:3]) + (f" and {len(urls) - 3} more" if len(urls) > 3 else "")
    return f"{shown} ({patterns})" if len(urls) == 1 and not folder.strip().endswith(",") else shown


def describe_destination(settings) -> str:
    """DEST_SQL (password masked; a SQLite file with its full path) and DEST_TABLE."""
    from .config import DEFAULT_DEST_SQL
    from .db import display_url, normalise_url

    url = normalise_url(settings.dest_sql)
    text = display_url(settings.dest_sql)  # as the user wrote it, password masked
    if url.get_backend_name() == "sqlite" and url.database:
        text += f" (file {os.path.abspath(url.database)})"
    if settings.dest_sql == DEFAULT_DEST_SQL:
        text += ", the default: DEST_SQL is not set"
    if settings.dest_table:
        text += f", every file into table {settings.dest_table}"
    return text
