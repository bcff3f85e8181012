"""The executor: runs per-file tasks inline, in a local process pool, or on a Dask cluster.

Task functions take one picklable task and return a result; they never raise for a bad file.
The executor is the only difference between the three: same tasks, same results.
Each worker process builds its own database engine on first use (see `db.engine_for`), so no
connection is ever shared across processes. Workers ignore Ctrl-C: the parent decides, and on
an interrupt it terminates them, so their open transactions roll back in the database.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from . import meter
from .config import Settings
from .errors import ConfigError
from .extras import require

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def _worker_init(level: int, secrets: list[str], environment: dict[str, str], log_format: str, counter) -> None:
    """Workers ignore Ctrl-C (the parent stops them), see the parent's environment as it is now (the
    fork server started earlier), log like the parent, secrets masked, and count the bytes they load."""
    from .feedback import configure_logging

    os.environ.update(environment)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(logging.getLevelName(level), secrets, log_format, "load")
    meter.install(counter)


def byte_counter():
    """The counter of bytes in flight (see `meter`), created once, in the parent, for its workers too."""
    if meter.counter() is None:
        meter.install(_context().Value("q", 0))
    return meter.counter()


def _context():
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["processor.staging.worker", "processor.staging.profile"])
    return context


def run_tasks(
    function: Callable[[T], R],
    tasks: Iterable[T],
    settings: Settings,
    on_crash: Callable[[T, BaseException], R],
) -> Iterator[R]:
    """Results of `function` over `tasks`, in completion order: inline when LOAD_WORKERS=1, else on the
    local pool or the Dask cluster of EXECUTOR. `on_crash(task, exc)` turns a worker that died into a result."""
    pending = list(tasks)
    byte_counter()
    if settings.executor == "dask" and pending:
        yield from _on_dask(function, pending, settings, on_crash)
    elif settings.load_workers <= 1 or len(pending) <= 1:
        for task in pending:
            yield function(task)
    else:
        yield from _on_pool(function, pending, settings, on_crash)


def _on_pool(function, pending: list, settings: Settings, on_crash) -> Iterator:
    pool = ProcessPoolExecutor(
        max_workers=min(settings.load_workers, len(pending)),
        mp_context=_context(),
        initializer=_worker_init,
        initargs=(
            logging.getLogger().level,
            settings.secrets(),
            dict(os.environ),
            settings.log_format,
            byte_counter(),
        ),
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


def _on_dask(function, pending: list, settings: Settings, on_crash) -> Iterator:
    """The same tasks on a Dask distributed cluster; each worker process builds its own engine."""
    require("dask", "EXECUTOR=dask")
    from distributed import Client, as_completed

    try:
        client = Client(settings.dask_scheduler_address, timeout=30, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {settings.dask_scheduler_address}: {exc}") from None
    futures: list = []
    try:
        keys = [f"processor-{uuid.uuid4().hex}" for _ in pending]
        futures = client.map(function, pending, pure=False, key=keys)
        task_of = dict(zip(keys, pending, strict=True))
        with client.as_current():
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # the worker died (KilledWorker) or the task could not run there
                    yield on_crash(task_of[future.key], exc)
    except BaseException:
        # Tasks already running on the cluster finish (each commits or rolls back whole); the rest never start.
        client.cancel(futures)
        raise
    finally:
        client.close()


def terminate_workers() -> None:
    """Stop every worker process now; the database rolls back their open transactions."""
    for child in multiprocessing.active_children():
        child.terminate()
    for child in multiprocessing.active_children():
        child.join(timeout=5)
