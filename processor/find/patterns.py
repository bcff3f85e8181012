"""Which listed paths a run takes: SRC_FILE_NAME's globs, and the hidden and temporary files it never takes (pure).

A pattern without '/' matches file names at any depth (`certificates.csv` finds every
`*/certificates.csv`); a pattern with '/' matches the path relative to the root, where `*` stays
inside one folder and `**` spans folders. Compressed files match by their inner name (`a.csv.gz`
matches `*.csv`). Patterns may not leave the root ('..' or a leading '/').
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache

from ..errors import ConfigError

_TEMPORARY = re.compile(r"(^~\$|^\.~lock|~$|\.(tmp|temp|part|partial|crdownload|swp|bak)$)", re.IGNORECASE)


def check_patterns(patterns: tuple[str, ...]) -> None:
    """Raises ConfigError for no pattern, or one that reaches outside the root."""
    if not patterns:
        raise ConfigError("SRC_FILE_NAME is empty; give a pattern such as *.csv")
    for pattern in patterns:
        if ".." in pattern.replace("\\", "/").split("/") or pattern.startswith("/"):
            raise ConfigError(f"SRC_FILE_NAME pattern {pattern!r} must stay inside SRC_DATA_FOLDER (no '..' or '/')")


def visible(relative: str) -> bool:
    """Not hidden (no part starts with '.') and not a temporary file."""
    parts = relative.split("/")
    return not any(part.startswith(".") for part in parts) and not _TEMPORARY.search(parts[-1])


def matches(pattern: str, relative: str) -> bool:
    if "/" not in pattern:
        return fnmatch.fnmatchcase(relative.rsplit("/", 1)[-1], pattern)
    return _path_regex(pattern).match(relative) is not None


@lru_cache(maxsize=64)
def _path_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a path glob: '*' and '?' stay in one folder, '**/' spans any number of folders."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                body = pattern[i + 1 : end]
                out.append("[^" + re.escape(body[1:]) + "]" if body.startswith("!") else "[" + re.escape(body) + "]")
                i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")
