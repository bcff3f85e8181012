"""The executor: runs per-file tasks inline, in a local process pool, or (later) on a Dask cluster.

Task functions take one picklable task and return a result; they never raise for a bad file.
Each worker process builds its own database engine on first use (see `db.engine_for`), so no
connection is ever shared across processes. Workers ignore Ctrl-C: the parent decides, and on
an interrupt it terminates them, so their open transactions roll back in the database.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def _worker_init(level: int, secrets: list[str]) -> None:
    """Workers ignore Ctrl-C (the parent stops them) and log like the parent, secrets masked."""
    from .feedback import configure_logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(logging.getLevelName(level), secrets)


def _context():
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["processor.staging.worker", "processor.staging.profile"])
    return context


def run_tasks(
    function: Callable[[T], R],
    tasks: Iterable[T],
    workers: int,
    on_crash: Callable[[T, BaseException], R],
    secrets: list[str] | None = None,
) -> Iterator[R]:
    """Results of `function` over `tasks`, in completion order; `workers <= 1` runs inline.

    `on_crash(task, exc)` turns a worker that died (killed, out of memory) into a result.
    """
    pending = list(tasks)
    if workers <= 1 or len(pending) <= 1:
        for task in pending:
            yield function(task)
        return
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(pending)),
        mp_context=_context(),
        initializer=_worker_init,
        initargs=(logging.getLogger().level, secrets or []),
    )
    try:
        futures: dict[Future, Any] = {pool.submit(function, task): task for task in pending}
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                task = futures.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool as exc:
                    yield on_crash(task, exc)
    except BaseException:
        terminate_workers()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def terminate_workers() -> None:
    """Stop every worker process now; the database rolls back their open transactions."""
    for child in multiprocessing.active_children():
        child.terminate()
    for child in multiprocessing.active_children():
        child.join(timeout=5)
