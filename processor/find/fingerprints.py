"""What identifies one version of a file without reading it: a remote ETag or date and size, a zip member's CRC.

A file with such a fingerprint is known by it in the ledger, so a later run tells it unchanged
without downloading or hashing it; other files are known by the hash of their bytes (staging).
"""

from __future__ import annotations

import email.utils
import hashlib
from typing import Any

FINGERPRINT_LENGTH = 120  # the ledger's content_hash holds 128 characters


def fingerprint(info: dict[str, Any]) -> str | None:
    """`etag:<etag>:<size>`, else `modified:<Last-Modified>:<size>`, from listing/HEAD details; None if neither."""
    size = info.get("size")
    etag = str(info.get("ETag") or info.get("etag") or "").strip()
    modified = info.get("LastModified") or info.get("Last-Modified")
    if etag:
        value = f"etag:{etag.strip(chr(34))}:{size}"
    elif modified:
        value = f"modified:{timestamp(modified)}:{size}"
    else:
        return None
    if len(value) > FINGERPRINT_LENGTH:
        value = "etag-sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def timestamp(value: Any) -> float:
    """Seconds since the epoch of a datetime or an HTTP date; 0.0 when unknown."""
    if hasattr(value, "timestamp"):
        return value.timestamp()
    try:
        return email.utils.parsedate_to_datetime(str(value)).timestamp()
    except (TypeError, ValueError):
        return 0.0


def zip_member(crc: int, size: int) -> str:
    """A zip member's fingerprint: its CRC-32 and size, from the archive's directory."""
    return f"zip-crc32:{crc:08x}:{size}"
