"""Checks of the environment as a whole, and of URL syntax (pure): no silent defaults, no guessing.

A misspelt variable must not fall back to a default without a word (`SRC_DATA_FOLDR` would load
the bundled sample), so every variable that starts like ours (`SRC_`, `DEST_`, `LOAD_`, ...: the
first words of the variables we know) must be one we know. Two families are left alone because
other software in the same environment owns them: `DASK_` (Dask's own configuration) and
`PARALLEL_` (set by GNU parallel in its jobs); so are the service links Kubernetes injects
(`<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT_5432_TCP`, ...).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

NOT_OURS = frozenset({"DASK", "PARALLEL"})
_KUBERNETES_LINK = re.compile(r"_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_\w+)?)?)$")
_QUOTES = ('"', "'")


def prefixes(known: Iterable[str]) -> tuple[str, ...]:
    """The first words of the known variables (`SRC_`, `DEST_`, ...), less the families others own."""
    words = {name.split("_", 1)[0] for name in known}
    return tuple(sorted(f"{word}_" for word in words - NOT_OURS))


def closest(name: str, known: Iterable[str]) -> str:
    """The known variable most like `name`, among those of its family (`DEALS_...`) when there are any."""
    known = sorted(known)
    family = [k for k in known if k.split("_", 1)[0] == name.split("_", 1)[0]]
    found = difflib.get_close_matches(name, family or known, n=1, cutoff=0.0)
    return found[0] if found else known[0]


def unknown_variables(env: Mapping[str, str], known: Iterable[str]) -> list[str]:
    """One problem per variable that starts like ours but is not one of ours."""
    known = set(known)
    ours = prefixes(known)
    problems = []
    for name in sorted(env):
        if name in known or not name.startswith(ours) or _KUBERNETES_LINK.search(name):
            continue
        family = name.split("_", 1)[0] + "_"
        problems.append(
            f"{name} is not a variable processor knows; did you mean {closest(name, known)}? "
            f"(every variable starting with {family} is read as ours: rename or unset it)"
        )
    return problems


def quoted(value: str) -> bool:
    """Whether a value is wrapped in a pair of quotes (`docker --env-file` keeps them as part of the value)."""
    value = value.strip()
    return len(value) >= 2 and value[0] == value[-1] and value[0] in _QUOTES


def quote_problem(name: str) -> str:
    return (
        f"{name} is wrapped in quotes, which became part of its value (docker --env-file and Kubernetes "
        "keep them); write the value without quotes"
    )


def url_problem(value: str, schemes: Iterable[str], example: str) -> str | None:
    """Why `value` is not a URL with one of `schemes`, a host and a numeric port (None when it is)."""
    schemes = tuple(schemes)
    if any(char.isspace() for char in value):
        return f"a URL has no spaces; expected e.g. {example}"
    if "://" not in value:
        return f"has no scheme; expected {' or '.join(s + '://' for s in schemes)}..., e.g. {example}"
    parts = urlsplit(value)
    if parts.scheme.lower() not in schemes:
        return f"scheme {parts.scheme!r} is not {' or '.join(schemes)}; expected e.g. {example}"
    try:
        port = parts.port
    except ValueError:
        return f"the port after ':' is not a number from 1 to 65535; expected e.g. {example}"
    if port == 0:
        return f"port 0 cannot be reached; expected e.g. {example}"
    if not parts.hostname:
        return f"names no host; expected e.g. {example}"
    return None
