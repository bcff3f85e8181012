"""A wide, mixed CSV for benchmarks (fixed seed): ids, codes with leading zeros, text with commas
and quotes, integers, decimals, dates, timestamps, flags, sparse notes and ten numeric measures."""

from __future__ import annotations

import csv
import random
import shutil
from datetime import date, timedelta
from pathlib import Path

HEADER = [
    "id",
    "code",
    "name",
    "city",
    "amount",
    "price",
    "qty",
    "created",
    "updated_at",
    "flag",
    "note",
    *[f"m{i}" for i in range(11)],
]
WORDS = ["alpha", "beta", "gamma", "delta", "Zoë", "O'Brien", "a, b", 'x "q" y']


def write_wide_csv(path: Path, rows: int, seed: int = 42) -> Path:
    """Write `rows` rows of 22 columns; returns the path."""
    rng = random.Random(seed)
    base = date(2015, 1, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for i in range(rows):
            day = base + timedelta(days=rng.randrange(3000))
            writer.writerow(
                [
                    i + 1,
                    f"{rng.randrange(100000):05d}",
                    f"{rng.choice(WORDS)} {rng.randrange(1000)}",
                    rng.choice(["Leeds", "York", "Bath"]),
                    rng.randrange(-100000, 100000),
                    f"{rng.random() * 1000:.2f}",
                    rng.randrange(100),
                    day.isoformat(),
                    f"{day.isoformat()} {rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}",
                    rng.choice("YN"),
                    rng.choice(["", "some note", "another, with comma"]),
                    *[rng.randrange(10**6) if j % 2 == 0 else f"{rng.random() * 100:.3f}" for j in range(11)],
                ]
            )
    return path


def repeat_file(source: Path, target: Path, times: int) -> Path:
    """`source` concatenated `times` times under one header (a big file without the generation cost)."""
    with source.open("rb") as first:
        header = first.readline()
        body_start = first.tell()
    with target.open("wb") as out:
        out.write(header)
        for _ in range(times):
            with source.open("rb") as handle:
                handle.seek(body_start)
                shutil.copyfileobj(handle, out, 1 << 22)
    return target
