"""Remote sources through fsspec: list an S3 prefix, look up HTTP files, and retry what may pass.

The listing (S3) or a HEAD request (HTTP) gives each file's size and ETag, or Last-Modified when
there is no ETag; together they are the file's fingerprint, so the ledger knows an unchanged file
without downloading it. S3 credentials, region and endpoint come from the standard AWS environment
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`). A request
that fails transiently is retried with backoff; `with_retries` is the one place that retries.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import SourceError
from ..redact import redact
from .fingerprints import fingerprint, timestamp
from .roots import HTTP, Root, check_http_patterns, file_url, public_url, s3_split, url_secrets

log = logging.getLogger(__name__)

# library errors (by name, so this stays pure) that no retry can cure
PERMANENT_ERRORS = frozenset({"FileExpired", "NoCredentialsError", "PartialCredentialsError", "NoRegionError"})

T = TypeVar("T")


@dataclass(frozen=True)
class RemoteFile:
    """One listed remote file: `relative` is its ledger key and lineage, `url` what to open."""

    relative: str
    url: str
    size: int
    mtime: float
    fingerprint: str | None


class DownloadError(OSError):
    """A remote file could not be read (after retries when the failure looked transient)."""


class FileChanged(DownloadError):
    """A remote file no longer has the fingerprint it was listed with (it was replaced meanwhile)."""


def _remote_file(relative: str, url: str, info: dict[str, Any]) -> RemoteFile:
    modified = info.get("LastModified") or info.get("Last-Modified")
    return RemoteFile(relative, url, int(info.get("size") or 0), timestamp(modified), fingerprint(info))


# ---------------------------------------------------------------- errors and retries


def _library_errors() -> tuple[type[BaseException], ...]:
    """The exceptions fsspec, s3fs and aiohttp raise for a failed request."""
    import aiohttp
    import botocore.exceptions

    return (
        OSError,
        ValueError,
        TimeoutError,
        aiohttp.ClientError,
        botocore.exceptions.BotoCoreError,
        botocore.exceptions.ClientError,
    )


def _status(exc: BaseException) -> int | None:
    """The HTTP status behind an error: aiohttp's, or an AWS error response's (fsspec/s3fs put it in the cause)."""
    for error in (exc, exc.__cause__):
        status = getattr(error, "status", None)
        if isinstance(status, int):
            return status
        status = _aws_response(error).get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int):
            return status
    return None


def _aws_response(error: BaseException | None) -> dict[str, Any]:
    response = getattr(error, "response", None)
    return response if isinstance(response, dict) else {}


def _aws_message(exc: BaseException) -> str | None:
    """S3's own words for an error ('The specified bucket does not exist'), when it gave some."""
    for error in (exc, exc.__cause__):
        message = _aws_response(error).get("Error", {}).get("Message")
        if message:
            return str(message)
    return None


def _hidden_cause(exc: BaseException) -> BaseException | None:
    """The real error behind fsspec's FileNotFoundError(url) when the server gave no status (unreachable)."""
    if isinstance(exc, FileNotFoundError) and _status(exc) is None and exc.__cause__ is not None:
        return exc.__cause__
    return None


def transient(exc: BaseException) -> bool:
    """Whether trying again may help: a dropped connection, a timeout, a 5xx, 408 or 429 — not a 404 or 403."""
    cause = _hidden_cause(exc)
    if cause is not None:
        return transient(cause)
    status = _status(exc)
    if status is not None:
        return status in (408, 425, 429) or status >= 500
    permanent = (FileNotFoundError, PermissionError, IsADirectoryError, ValueError, DownloadError)
    return not isinstance(exc, permanent) and type(exc).__name__ not in PERMANENT_ERRORS


def describe(exc: BaseException, url: str) -> str:
    """One line about a failed request, with the URL's credentials and query masked."""
    cause = _hidden_cause(exc)
    if cause is not None:
        return describe(cause, url)
    status = _status(exc)
    message = str(exc).split("\n", 1)[0]
    if isinstance(exc, DownloadError):
        detail = message
    elif type(exc).__name__ == "FileExpired":
        detail = "the file changed while it was being read; run again to load its new content"
    elif _aws_message(exc):
        detail = f"{_aws_message(exc)} (HTTP {status})" if status else str(_aws_message(exc))
    elif status is not None:
        detail = f"HTTP {status}" + (" (not found)" if status in (404, 410) else "")
    elif isinstance(exc, FileNotFoundError):
        detail = "not found"
    else:
        detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return redact(detail.replace(url, public_url(url)), url_secrets(url))


def with_retries(action: Callable[[], T], url: str, retries: int, what: str) -> T:
    """`action()`, retried with exponential backoff while it fails transiently; raises DownloadError."""
    errors = _library_errors()
    for attempt in range(retries + 1):
        try:
            return action()
        except errors as exc:
            if not transient(exc) or attempt == retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise DownloadError(f"{what} {public_url(url)} failed{tries}: {describe(exc, url)}") from exc
            delay = min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.5)
            log.warning("%s %s failed (%s); retrying in %.1f s", what, public_url(url), describe(exc, url), delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- listing (I/O)


def filesystem(url: str):
    """fsspec's filesystem for a URL (one per process and protocol; S3 listings never cached)."""
    import fsspec

    protocol = url.split("://", 1)[0].lower()
    if protocol == "s3":
        # One attempt per call, in botocore and in s3fs alike: `with_retries` is the one place that
        # retries (with the run's LOAD_RETRIES, and a log line), rather than three layers multiplying.
        fs = fsspec.filesystem("s3", use_listings_cache=False, config_kwargs={"retries": _ONE_ATTEMPT})
        fs.retries = 1
        return fs
    return fsspec.filesystem(protocol)


_ONE_ATTEMPT = {"mode": "standard", "total_max_attempts": 1}  # botocore: max_attempts counts retries


def is_s3(url: str) -> bool:
    return url.lower().startswith("s3://")


def fs_path(url: str) -> str:
    """What the filesystem calls a file: the whole URL for HTTP, 'bucket/key' for S3."""
    return url.split("://", 1)[1] if is_s3(url) else url


def list_prefix(root: Root, retries: int) -> list[RemoteFile]:
    """Every object under an s3:// prefix (or the one object it names); raises SourceError."""
    bucket, prefix = s3_split(root.url)
    fs = filesystem(root.url)
    target = f"{bucket}/{prefix}".rstrip("/")
    try:
        listed = with_retries(lambda: fs.find(target, detail=True), root.url, retries, "listing")
    except DownloadError as exc:
        raise SourceError(f"SRC_DATA_FOLDER: {exc}") from exc
    if not listed:
        raise SourceError(f"SRC_DATA_FOLDER {public_url(root.url)!r} holds no files (is the prefix right?)")
    files = []
    for name, info in sorted(listed.items()):
        if name.endswith("/"):
            continue
        relative = name[len(target) + 1 :] if name != target else name.rsplit("/", 1)[-1]
        files.append(_remote_file(relative, f"s3://{name}", info))
    return files


def head_files(root: Root, patterns: tuple[str, ...], retries: int) -> list[RemoteFile]:
    """The named files of an HTTP base URL, or the files of a URL list; raises SourceError or ConfigError."""
    if root.kind == HTTP:
        check_http_patterns(patterns)
        named = [(pattern.lstrip("/"), file_url(root.url, pattern)) for pattern in patterns]
    else:
        named = [(public_url(url), url) for url in root.urls]
    files = []
    for relative, url in named:
        info = _head(url, retries)
        if info is None:
            log.warning("%s: not found", public_url(url))
            continue
        files.append(_remote_file(relative, url, info))
    return files


def _head(url: str, retries: int) -> dict[str, Any] | None:
    """A file's details (size, ETag, Last-Modified) without its content; None when it does not exist."""
    fs = filesystem(url)
    try:
        return with_retries(lambda: fs.info(fs_path(url)), url, retries, "looking up")
    except DownloadError as exc:
        cause = exc.__cause__
        if isinstance(cause, FileNotFoundError) and _status(cause) in (None, 404, 410) and not transient(cause):
            return None
        raise SourceError(f"SRC_DATA_FOLDER: {exc}") from exc


def exists(url: str, retries: int) -> bool:
    """Whether a remote file is still there (one HEAD request); raises SourceError when the server cannot tell."""
    return _head(url, retries) is not None
