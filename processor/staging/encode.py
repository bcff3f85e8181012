"""Rows our own code produced (a DataFrame's values), as CSV bytes for COPY and LOAD DATA.

Unlike a user's file, these rows say exactly which fields are NULL: every string is quoted and
NULL is written unquoted, as each loader reads it (an empty field for PostgreSQL's COPY, the
word NULL for MySQL's LOAD DATA). So a NULL and an empty string stay apart in every column.
Values arrive in chunks of columns (a list of values per column); None is NULL.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

Chunk = Sequence[Sequence[Any]]  # columns of equal length


def rows_of(chunks: Iterable[Chunk]) -> Iterator[tuple]:
    """The rows of chunks of columns."""
    return itertools.chain.from_iterable(zip(*chunk, strict=True) for chunk in chunks)


def encode_column(values: Sequence[Any], null: str) -> list[str]:
    """One column's fields: strings quoted (quotes doubled), numbers as Python writes them, None as `null`."""
    return [
        null
        if value is None
        else '"' + value.replace('"', '""') + '"'
        if value.__class__ is str
        else repr(value)
        if value.__class__ is float
        else str(value)
        for value in values
    ]


def encode_chunk(chunk: Chunk, null: str) -> bytes:
    """A chunk of columns as CSV lines."""
    fields = [encode_column(column, null) for column in chunk]
    return "".join(",".join(row) + "\n" for row in zip(*fields, strict=True)).encode("utf-8")


class ChunkStream(io.RawIOBase):
    """A read-only byte stream of chunks encoded by `encode_chunk`, produced as the loader reads it."""

    def __init__(self, chunks: Iterable[Chunk], null: str):
        super().__init__()
        self._chunks: Iterator[bytes] = (encode_chunk(chunk, null) for chunk in chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            following = next(self._chunks, None)
            if following is None:
                return 0
            self._pending = memoryview(following)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
