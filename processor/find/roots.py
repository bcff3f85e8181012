"""What SRC_DATA_FOLDER names, and URLs made safe to print (pure).

`SRC_DATA_FOLDER` is one of:

- a local folder (walked by `local.py`);
- `s3://bucket/prefix`: every object under the prefix, listed recursively, then globbed like a folder;
- an `http(s)://` base URL: HTTP cannot be listed, so each `SRC_FILE_NAME` is a path under it;
- a comma-separated list of full `http(s)://` or `s3://` URLs, one file each.

User names, passwords and query strings of URLs never reach a path, a log line or an error:
`public_url` drops them and `url_secrets` lists them for masking.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from ..errors import ConfigError

LOCAL, S3, HTTP, URLS = "local", "s3", "http", "urls"
SCHEMES = {"s3": S3, "http": HTTP, "https": HTTP}
GLOB_CHARACTERS = "*?["


@dataclass(frozen=True)
class Root:
    """What SRC_DATA_FOLDER names: a kind (local, s3, http, urls) and its URLs."""

    kind: str
    urls: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return self.urls[0]


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
