"""Bytes read by the files being loaded right now, counted across worker processes for the progress bar.

The executor (`parallel`) creates one shared counter, installs it in the parent and hands it
to every worker process (`install`, from the pool's initializer); a worker loading a file opens a `FileMeter` for it
(`loading`), and every byte the load reads adds to the counter, at most the file's size, so
a retry or the careful path reading it again never counts past it. When the file's load ends
its bytes leave the counter: the parent counts finished files by their size. Without a counter
(on a Dask cluster) nothing is counted and the bar moves file by file.

The counter is shared by every worker behind one lock, so a meter publishes in steps of at least
`STEP` bytes (and at the file's end), not on every read: sixteen workers reading 8 KB at a time
would otherwise take that lock some twenty thousand times a second between them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

STEP = 1 << 20  # bytes a meter gathers before it publishes them
_counter: Any = None  # a multiprocessing.Value('q') shared by the parent and its workers
_local = threading.local()  # .current: the FileMeter of the load this thread runs


def install(counter: Any) -> None:
    """Count into this shared counter (in the parent, and in each worker process as it starts)."""
    global _counter
    _counter = counter


def counter() -> Any:
    """The counter this process counts into (None until one is installed)."""
    return _counter


def in_flight() -> int:
    """Bytes read so far by the loads that have not finished."""
    return _counter.value if _counter is not None else 0


def _add(delta: int) -> None:
    if _counter is not None and delta:
        with _counter.get_lock():
            _counter.value += delta


class FileMeter:
    """One file's (or byte range's) share of the counter: what its current read has reached, up to its size;
    and the spans of wall-clock time (time.time()) in which it was writing to its table."""

    def __init__(self, size: int):
        self.size = max(size, 0)
        self.read = 0
        self.counted = 0
        self.spans: list[tuple[float, float]] = []

    def restart(self) -> None:
        """A new read of the file begins (a retry, or the careful path): count again from its start."""
        self.read = 0

    def add(self, count: int) -> None:
        self.read += count
        reached = min(self.read, self.size)
        if reached - self.counted >= STEP or (reached == self.size and reached > self.counted):
            _add(reached - self.counted)
            self.counted = reached

    def close(self) -> None:
        _add(-self.counted)
        self.counted = 0


@contextlib.contextmanager
def loading(size: int) -> Iterator[FileMeter]:
    """Meter one load task in this thread while it runs."""
    meter = FileMeter(size)
    _local.current = meter
    try:
        yield meter
    finally:
        _local.current = None
        meter.close()


def current() -> FileMeter | None:
    """The meter of the load this thread runs now (None outside a load task)."""
    return getattr(_local, "current", None)


def reading() -> FileMeter | None:
    """The current meter, restarted for a new read of its file (None outside a load task)."""
    meter = current()
    if meter is not None:
        meter.restart()
    return meter
