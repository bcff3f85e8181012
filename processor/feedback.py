"""What the operator sees while a run goes: log format, progress bar or plain lines, secrets masked."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .redact import RedactingFilter

FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
QUIET_LIBRARIES = ("botocore", "aiobotocore", "s3fs", "fsspec", "aiohttp")


def configure_logging(level: str, secrets: list[str | None]) -> None:
    """Log to stderr with secrets masked (called by index.py and by worker processes)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for chatty in QUIET_LIBRARIES:  # their INFO lines (e.g. where AWS credentials were found) are noise here
        logging.getLogger(chatty).setLevel(level if level == "DEBUG" else "WARNING")


def use_bar(setting: str) -> bool:
    """PROGRESS=auto shows a bar only on a terminal."""
    return setting == "on" or (setting == "auto" and sys.stderr.isatty())


class FileProgress:
    """Counts files and rows as results arrive: a tqdm bar on a terminal, a log line per file otherwise."""

    def __init__(self, bar: bool):
        self.bar = bar
        self._tqdm: tqdm | None = None
        self.rows = 0
        self.log = logging.getLogger("processor.progress")

    @contextlib.contextmanager
    def running(self) -> Iterator[FileProgress]:
        if not self.bar:
            yield self
            return
        with logging_redirect_tqdm(), tqdm(unit="file", desc="staging", dynamic_ncols=True) as bar:
            self._tqdm = bar
            yield self
        self._tqdm = None

    def expect(self, total: int) -> None:
        if self._tqdm is not None:
            self._tqdm.total = total
            self._tqdm.refresh()

    def __call__(self, result) -> None:
        self.rows += result.rows_loaded
        if self._tqdm is not None:
            self._tqdm.update(1)
            self._tqdm.set_postfix(rows=f"{self.rows:,}", refresh=False)
            return
        if result.status == "loaded":
            self.log.info(
                "%s -> %s: %d rows (%d rejected) in %.2f s via %s",
                result.path,
                result.table,
                result.rows_loaded,
                result.rows_rejected,
                result.seconds,
                result.method,
            )
        elif result.status == "failed":
            self.log.error("%s failed: %s", result.path, result.error)
        else:
            self.log.info("%s skipped: %s", result.path, result.error or result.status)
