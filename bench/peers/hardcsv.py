"""A CSV whose values are easy to change by accident, one kind per column (fixed seed).

Every column but `id` holds one kind of value that loaders are known to change: codes with
leading zeros, integers past 2**53 and past 64 bits, decimals with trailing zeros and with more
digits than a float keeps, integers and dates with empty fields, timestamps with and without
offsets, words that look like NULL next to empty fields, quoted commas, quotes and newlines, and
non-ASCII text. The rows are shuffled so that no kind only shows up after a tool's sample.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from pathlib import Path

KINDS = {
    "code": "codes with leading zeros (007)",
    "big": "integers past 2**53, a few empty",
    "huge": "integers past 64 bits",
    "amount": "decimals with trailing zeros (10.50)",
    "precise": "decimals with 19 significant digits",
    "qty": "small integers, some empty",
    "day": "dates, some empty",
    "at": "timestamps with offsets (+02:00)",
    "ts": "timestamps without offset",
    "note": "empty fields and words like NULL, NA, None",
    "text": "quoted commas, quotes, newlines, padding",
    "name": "non-ASCII text",
}
HARD = [kind for kind in KINDS if kind != "huge"]
HUGE = ["huge"]  # its own file: some tools fail on it as a whole, which would hide the other kinds
QUOTED_EMPTY = object()  # written as "" (a quoted empty field), read back as an empty string
NULL_WORDS = ["NULL", "null", "NA", "N/A", "n/a", "None", "nan", "NaN", "#N/A", "-", "\\N"]
TEXTS = [
    "a, b",
    'say "hi"',
    "line one\nline two",
    "windows\r\nline",
    "  padded  ",
    "tab\there",
    "trailing comma,",
    '"quoted"',
    "plain words",
]
NAMES = ["Zoë", "Łódź", "日本語", "Straße", "emoji 🎉", "e\u0301cole", "Ñandú", "שלום", "Ünïcödé", "O'Brien"]
OFFSETS = ["+02:00", "-05:30", "+00:00", "+05:45", "-08:00", "+01:00"]


def _code(rng: random.Random) -> str:
    width = rng.choice([3, 4, 5, 6])
    return f"{rng.randrange(10 ** (width - 1)):0{width}d}" if rng.random() < 0.7 else str(rng.randrange(10**5))


def _amount(rng: random.Random) -> str:
    cents = rng.randrange(-(10**7), 10**7)
    if rng.random() < 0.5:
        cents -= cents % 10  # 10.50, 3.00: a trailing zero
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _precise(rng: random.Random) -> str:
    return f"{rng.randrange(10**9, 10**10)}.{rng.randrange(10**9):09d}"


def _timestamp(rng: random.Random, base: datetime) -> datetime:
    return base + timedelta(seconds=rng.randrange(10**9))


def _row(i: int, rng: random.Random) -> dict:
    moment = _timestamp(rng, datetime(1995, 1, 1))
    fraction = f".{rng.randrange(10**6):06d}" if rng.random() < 0.3 else ""
    leap = rng.choice([date(2024, 2, 29), date(2000, 2, 29), date(1900, 3, 1)])
    day = leap if rng.random() < 0.1 else date(1970, 1, 1) + timedelta(days=rng.randrange(30000))
    values = [
        _code(rng),
        "" if rng.random() < 0.03 else str(rng.choice([1, -1]) * rng.randrange(2**53 + 1, 2**63)),
        str(rng.randrange(10**19, 10**30)),
        _amount(rng),
        _precise(rng),
        "" if rng.random() < 0.1 else str(rng.randrange(1000)),
        "" if rng.random() < 0.05 else day.isoformat(),
        moment.isoformat(sep=rng.choice("T ")) + rng.choice(OFFSETS),
        moment.isoformat(sep=" ") + fraction,
        rng.choice(["", QUOTED_EMPTY, *NULL_WORDS, "ok", "see file", "paid"]),
        rng.choice(TEXTS),
        rng.choice(NAMES),
    ]
    return {"id": str(i), **dict(zip(KINDS, values, strict=True))}


def _field(value) -> str:
    if value is QUOTED_EMPTY:
        return '""'
    if any(c in value for c in ',"\r\n') or value != value.strip():
        return '"' + value.replace('"', '""') + '"'
    return value


def write_hard_csv(path: Path, rows: int = 2000, kinds: list[str] = HARD, seed: int = 7) -> Path:
    """Write `rows` rows of `id` and the given kinds' columns, LF between rows; returns the path."""
    rng = random.Random(seed)
    columns = ["id", *kinds]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        handle.write(",".join(columns) + "\n")
        for i in range(1, rows + 1):
            row = _row(i, rng)
            handle.write(",".join(_field(row[c]) for c in columns) + "\n")
    return path
