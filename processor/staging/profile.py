"""Profile one file before loading: its dialect, header and column types from a sample.

The sample is the head of the file plus, for plain (uncompressed) files, windows spread through
the rest (sorted files hide their surprises at the end); a remote file's windows are ranged reads. A window that may have started inside a
quoted field (rows of the wrong width) is dropped rather than trusted.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from dataclasses import dataclass

from ..config import Settings
from ..find import SourceFile
from ..find.streams import open_location
from ..schema import TEXT, ColumnType, column_names, nullish, sampled_values, types_of
from .files import HEAD_BYTES, CsvFormat, csv_reader, detect_format, first_record, open_binary, text_stream

WINDOWS = 8
WINDOW_BYTES = 256 * 1024


@dataclass(frozen=True)
class FileProfile:
    """What the planner needs to know about one file."""

    source: SourceFile
    format: CsvFormat
    header: tuple[str, ...]
    columns: tuple[str, ...]
    types: tuple[ColumnType, ...]
    nullish: tuple[frozenset[str], ...]  # per column: empty fields, null markers or NULL words seen in the sample
    whole: bool = False  # the sample is every row: each value fits its inferred type
    blank_lead: bool = False  # blank lines come before the header: the bulk loaders would read one as the header


def profile_file(source: SourceFile, settings: Settings) -> FileProfile:
    """Read a file's header and a sample; raises OSError, csv.Error or UnicodeError when unreadable."""
    with open_binary(source, settings.load_retries) as raw:
        head = raw.read(HEAD_BYTES)
    fmt = detect_format(head, settings.src_encoding, settings.src_delimiter, settings.src_header)
    header, rows, consumed, whole, blank_lead = _head_sample(
        source, fmt, settings.sample_rows // 2 or 1, settings.load_retries
    )
    columns = tuple(column_names(header)) if fmt.header else tuple(f"column_{i}" for i in range(1, len(header) + 1))
    if not fmt.header:
        rows = [header, *rows]
    if source.compression is None and fmt.ascii_compatible and source.size > consumed:
        budget = settings.sample_rows - len(rows)
        rows += _window_sample(source, fmt, len(columns), (consumed, budget), settings.load_retries)
    nulls = frozenset(settings.null_values)
    values = sampled_values(rows, len(columns))
    types = types_of(values, nulls) if settings.infer_types else [TEXT] * len(columns)
    return FileProfile(
        source,
        fmt,
        tuple(header),
        columns,
        tuple(types),
        tuple(nullish(values, nulls)),
        whole,
        blank_lead and fmt.header,
    )


def _head_sample(
    source: SourceFile, fmt: CsvFormat, limit: int, retries: int
) -> tuple[list[str], list[list[str]], int, bool, bool]:
    """The first record, up to `limit` more rows, about how many bytes they span, whether they are all, and
    whether blank lines came before the first record (they are not rows, and the header is the first record)."""
    with open_binary(source, retries) as raw:
        text = text_stream(raw, fmt, errors="replace")
        reader = csv_reader(text, fmt)
        whole = blank_lead = False
        try:
            header, blank_lead = first_record(reader)
            rows = [row for row in itertools.islice(reader, limit) if row]
            whole = next(reader, None) is None
        except csv.Error:
            rows = []  # the careful path will find and report the broken row
        consumed = raw.tell() if source.compression is None and hasattr(raw, "tell") else source.size
    return header, rows, consumed, whole, blank_lead


def _window_sample(
    source: SourceFile, fmt: CsvFormat, width: int, after: tuple[int, int], retries: int
) -> list[list[str]]:
    """Up to `budget` rows from windows spread between byte `start` and the end of a plain file (`after`)."""
    start, budget = after
    if budget <= 0 or width == 0:
        return []
    span = source.size - start
    offsets = sorted({start + span * (i + 1) // (WINDOWS + 1) for i in range(WINDOWS)} | {source.size - WINDOW_BYTES})
    per_window = max(1, budget // len(offsets))
    rows: list[list[str]] = []
    with open_location(source.location, retries, source.fingerprint, source.root) as handle:
        for offset in offsets:
            if offset <= start:
                continue
            handle.seek(offset)
            rows += _window_rows(handle.read(WINDOW_BYTES), fmt, width)[:per_window]
    return rows


def _window_rows(chunk: bytes, fmt: CsvFormat, width: int) -> list[list[str]]:
    """Whole rows inside a chunk that starts and ends at arbitrary bytes; [] when unsure."""
    first = min((i for i in (chunk.find(b"\n"), chunk.find(b"\r")) if i >= 0), default=-1)
    last = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
    if first < 0 or last <= first:
        return []
    text = codecs.decode(chunk[first + 1 : last + 1], fmt.encoding.replace("-sig", ""), errors="replace")
    try:
        rows = [row for row in csv_reader(io.StringIO(text, newline=""), fmt) if row]
    except csv.Error:
        return []
    if any(len(row) != width for row in rows):
        return []  # the window probably began inside a quoted field
    return rows
