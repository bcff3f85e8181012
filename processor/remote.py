"""Remote sources: list and open files on S3 or an HTTP(S) server, through fsspec.

`SRC_DATA_FOLDER` names one of:

- a local folder (not handled here: `sources.py` walks it without fsspec);
- `s3://bucket/prefix`: every object under the prefix, listed recursively, then globbed like a
  folder by `sources.py`;
- an `http(s)://` base URL: HTTP cannot be listed, so each `SRC_FILE_NAME` is a path under it;
- a comma-separated list of full `http(s)://` or `s3://` URLs, one file each.

The listing (S3) or a HEAD request (HTTP) gives each file's size and ETag, or Last-Modified when
there is no ETag; together they are the file's fingerprint, so the ledger knows an unchanged file
without downloading it. Files are read in ranged requests (at most `BLOCK_BYTES` each), never held
whole; a request that fails is retried with backoff from the byte where it stopped. S3 credentials, region and
endpoint come from the standard AWS environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`). User names, passwords and query strings of URLs never
reach a path, a log line or an error: `public_url` drops them and `url_secrets` lists them for masking.
"""

from __future__ import annotations

import email.utils
import hashlib
import io
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from .errors import ConfigError, SourceError
from .redact import redact

log = logging.getLogger(__name__)

LOCAL, S3, HTTP, URLS = "local", "s3", "http", "urls"
SCHEMES = {"s3": S3, "http": HTTP, "https": HTTP}
BLOCK_BYTES = 16 << 20  # one ranged request while streaming; also the memory a stream holds
RANGE_BYTES = 256 << 10  # one ranged request for scattered reads: a zip's directory, profile windows
FINGERPRINT_LENGTH = 120  # the ledger's content_hash holds 128 characters
GLOB_CHARACTERS = "*?["
# library errors (by name, so this stays pure) that no retry can cure
PERMANENT_ERRORS = frozenset({"FileExpired", "NoCredentialsError", "PartialCredentialsError", "NoRegionError"})

T = TypeVar("T")


@dataclass(frozen=True)
class Root:
    """What SRC_DATA_FOLDER names: a kind (local, s3, http, urls) and its URLs."""

    kind: str
    urls: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return self.urls[0]


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


# ---------------------------------------------------------------- naming (pure)


def parse_root(root: str) -> Root:
    """What kind of source `root` is; raises ConfigError for a URL scheme we cannot read."""
    items = [item.strip() for item in root.split(",") if item.strip()]
    if "://" not in root:
        return Root(LOCAL)
    for item in items:
        scheme = item.split("://", 1)[0].lower() if "://" in item else ""
        if scheme not in SCHEMES:
            raise ConfigError(
                f"SRC_DATA_FOLDER: {public_url(item)!r} is not an s3://, http:// or https:// URL "
                "(a list holds full URLs separated by commas)"
            )
    if len(items) > 1 or root.strip().endswith(","):
        return Root(URLS, tuple(items))
    return Root(SCHEMES[items[0].split("://", 1)[0].lower()], (items[0],))


def is_url(location: str) -> bool:
    """Whether a SourceFile location is a remote URL (anything else is a local path)."""
    return location.split("://", 1)[0].lower() in SCHEMES if "://" in location else False


def public_url(url: str) -> str:
    """The URL without user name, password, query or fragment: safe for lineage, logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def url_secrets(root: str) -> list[str]:
    """The passwords and query strings (signatures, tokens) inside SRC_DATA_FOLDER's URLs, to be masked."""
    found = []
    for item in root.split(","):
        if "://" not in item:
            continue
        parts = urlsplit(item.strip())
        found += [parts.password, parts.query]
    return [secret for secret in found if secret]


def file_url(base: str, relative: str) -> str:
    """The URL of `relative` under an HTTP base URL; the base's query (an access token) is kept."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/") + "/" + quote(relative.lstrip("/"), safe="/~!$&'()*+,;=:@")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def check_http_patterns(patterns: tuple[str, ...]) -> None:
    """HTTP cannot be listed, so patterns must be plain paths; raises ConfigError for a glob."""
    globs = [p for p in patterns if any(c in p for c in GLOB_CHARACTERS)]
    if globs:
        raise ConfigError(
            f"SRC_FILE_NAME {', '.join(globs)}: an http(s) SRC_DATA_FOLDER cannot be listed, so name each file "
            "as a path under it (e.g. SRC_FILE_NAME=raw_customers.csv,raw_orders.csv), or set SRC_DATA_FOLDER "
            "to full file URLs separated by commas (one URL: end it with a comma)"
        )


def s3_split(url: str) -> tuple[str, str]:
    """('bucket', 'key/prefix') of an s3:// URL, without surrounding slashes."""
    path = url.split("://", 1)[1]
    bucket, _, prefix = path.partition("/")
    return bucket, prefix.strip("/")


def fingerprint(info: dict[str, Any]) -> str | None:
    """`etag:<etag>:<size>`, else `modified:<Last-Modified>:<size>`, from listing/HEAD details; None if neither."""
    size = info.get("size")
    etag = str(info.get("ETag") or info.get("etag") or "").strip()
    modified = info.get("LastModified") or info.get("Last-Modified")
    if etag:
        value = f"etag:{etag.strip(chr(34))}:{size}"
    elif modified:
        value = f"modified:{_timestamp(modified)}:{size}"
    else:
        return None
    if len(value) > FINGERPRINT_LENGTH:
        value = "etag-sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def _timestamp(value: Any) -> float:
    """Seconds since the epoch of a datetime or an HTTP date; 0.0 when unknown."""
    if hasattr(value, "timestamp"):
        return value.timestamp()
    try:
        return email.utils.parsedate_to_datetime(str(value)).timestamp()
    except (TypeError, ValueError):
        return 0.0


def _remote_file(relative: str, url: str, info: dict[str, Any]) -> RemoteFile:
    modified = info.get("LastModified") or info.get("Last-Modified")
    return RemoteFile(relative, url, int(info.get("size") or 0), _timestamp(modified), fingerprint(info))


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


def _filesystem(url: str):
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


def _is_s3(url: str) -> bool:
    return url.lower().startswith("s3://")


def _fs_path(url: str) -> str:
    """What the filesystem calls a file: the whole URL for HTTP, 'bucket/key' for S3."""
    return url.split("://", 1)[1] if _is_s3(url) else url


def list_prefix(root: Root, retries: int) -> list[RemoteFile]:
    """Every object under an s3:// prefix (or the one object it names); raises SourceError."""
    bucket, prefix = s3_split(root.url)
    fs = _filesystem(root.url)
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
    fs = _filesystem(url)
    try:
        return with_retries(lambda: fs.info(_fs_path(url)), url, retries, "looking up")
    except DownloadError as exc:
        cause = exc.__cause__
        if isinstance(cause, FileNotFoundError) and _status(cause) in (None, 404, 410) and not transient(cause):
            return None
        raise SourceError(f"SRC_DATA_FOLDER: {exc}") from exc


# ---------------------------------------------------------------- reading (I/O)


class RemoteStream(io.RawIOBase):
    """A seekable, read-only view of a remote file, fetched in ranged requests; a failed request is retried in place.

    Read-ahead starts at RANGE_BYTES and doubles while reads follow each other, up to BLOCK_BYTES: a header
    costs a small request, a whole-file stream a few large ones. After a seek (a zip's directory, a profile
    window) the next read fetches just what it asks for. Every (re)open looks the file up again and, given
    the fingerprint it was listed with, fails with FileChanged rather than read another version.
    """

    def __init__(self, url: str, retries: int, expected: str | None = None):
        super().__init__()
        self._url, self._retries, self._expected = url, retries, expected
        self._file: Any = None
        self._size = 0
        self._position = 0
        self._block = RANGE_BYTES
        self._file = with_retries(self._open, url, retries, "opening")

    def _open(self) -> Any:
        fs = _filesystem(self._url)
        options: dict[str, Any] = {"block_size": self._block, "cache_type": "readahead"}
        if _is_s3(self._url):
            handle = fs.open(_fs_path(self._url), "rb", **options)  # s3fs pins every read to this ETag
            info = handle.details
        else:
            info = fs.info(self._url)
            handle = fs.open(self._url, "rb", size=info.get("size"), **options)
        if self._expected and fingerprint(info) != self._expected:
            handle.close()
            raise FileChanged(f"{public_url(self._url)} changed since it was listed; run again to load its new content")
        self._size = int(info.get("size") or 0)
        if self._position:
            handle.seek(self._position)
        return handle

    def _read(self, size: int) -> bytes:
        if self._file is None:
            self._file = self._open()
        try:
            data = self._file.read(size)
        except BaseException:
            self._drop()
            raise
        self._grow(min(BLOCK_BYTES, max(RANGE_BYTES, self._block * 2)))
        return data

    def _grow(self, block: int) -> None:
        """Set the read-ahead of the open file (fsspec's readahead cache reads its `blocksize` on every fetch)."""
        self._block = block
        cache = getattr(self._file, "cache", None)
        if cache is not None and hasattr(cache, "blocksize"):
            cache.blocksize = block

    def _drop(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            try:
                handle.close()
            except Exception:  # closing a broken connection may fail again; it is gone either way
                log.debug("closing %s failed", public_url(self._url), exc_info=True)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = with_retries(lambda: self._read(len(buffer)), self._url, self._retries, "downloading")
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        position = max(0, base + offset)
        if position != self._position:
            self._position = position
            self._grow(0)
            if self._file is not None:
                self._file.seek(position)
        return position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        self._drop()
        super().close()


def open_location(location: str, retries: int, expected: str | None = None) -> BinaryIO:
    """A seekable byte stream of a local path or a remote URL (read in ranges); raises OSError or DownloadError.

    `expected` is the fingerprint a remote file was listed with: a file that no longer has it raises FileChanged.
    """
    if not is_url(location):
        return open(location, "rb")
    return io.BufferedReader(RemoteStream(location, retries, expected), buffer_size=RANGE_BYTES)
