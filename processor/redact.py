"""Text safe to print: secrets masked, and every message kept to one line.

`redact` masks secrets in a message, `shown` escapes the control characters of a name (a newline in a
file name must not forge a log line), `clean` does both to a line, `clean_tree` masks every string of
a summary before it is written as JSON, and `RedactingFilter` cleans every log record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET = 3  # shorter values would mask ordinary text
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret (as written, or percent-encoded as it would be in a URL) replaced by ***."""
    for secret in sorted(_forms(secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _forms(secrets: Iterable[str | None]) -> set[str]:
    forms = set()
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET:
            encoded = quote(secret, safe="", errors="surrogateescape")
            forms.update({secret, encoded, quote_plus(secret, safe="", errors="surrogateescape")})
    return {form for form in forms if len(form) >= MIN_SECRET}


def shown(text: str) -> str:
    """`text` on one line: newlines and other control characters written as escapes (\\n, \\x1b)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def clean(text: str, secrets: Iterable[str | None]) -> str:
    """A line to print: secrets masked, control characters escaped."""
    return shown(redact(text, secrets))


def clean_tree(value: Any, secrets: Iterable[str | None]) -> Any:
    """Every string inside lists and dicts (a JSON summary) with its secrets masked; values kept otherwise."""
    secrets = list(secrets)
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {clean_tree(k, secrets): clean_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_tree(v, secrets) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """A handler filter that masks the given secrets and escapes control characters in every record."""

    def __init__(self, secrets: Iterable[str | None]):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: the handler reports it as logging always does
            return True
        cleaned = clean(message, self.secrets)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
        return True
