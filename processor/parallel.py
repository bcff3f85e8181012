"""The executor: runs per-file tasks inline, in a local process pool, or on a Dask cluster.

Task functions take one picklable task and return a result; they never raise for a bad file.
The executor is the only difference between the three: same tasks, same results.
Each worker process builds its own database engine on first use (see `db.engine_for`), so no
connection is ever shared across processes. Workers ignore Ctrl-C: the parent decides, and on
an interrupt it terminates them, so their open transactions roll back in the database.

Workers never outlive the run: SIGTERM unwinds the task in flight (its transaction rolls back,
its named pipe is removed) and ends the process; and a worker whose parent dies gets that SIGTERM
from the kernel (PR_SET_PDEATHSIG on Linux) or, failing that, from a thread that watches the parent.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
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


STOP_GRACE_SECONDS = 3  # a stopped worker that cannot unwind by then (a driver waiting on its server) exits anyway
WATCH_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


class WorkerStopped(BaseException):
    """Raised in a worker by SIGTERM: unwinds the task in flight (never caught as a file's failure)."""


_in_task = False
_stopped_by: int | None = None  # the signal that stopped this worker
_on_stop: list[Callable[[], None]] = []


def on_stop(cleanup: Callable[[], None]) -> None:
    """Run `cleanup` first thing when this worker is stopped (before its stack unwinds, which may hang)."""
    _on_stop.append(cleanup)


def _worker_init(
    level: int, secrets: list[str], environment: dict[str, str], log_format: str, counter, parent: int | None = None
) -> None:
    """Workers ignore Ctrl-C (the parent stops them), stop on SIGTERM and with their parent, see the parent's
    environment as it is now (the fork server started earlier), log like the parent, secrets masked, and count
    the bytes they load."""
    from .feedback import configure_logging

    os.environ.update(environment)
    # A worker runs only processor's tasks, and none uses numpy: without it pyarrow (the value verifier)
    # loads ~15 MB less in each worker (it imports numpy only when it can).
    sys.modules.setdefault("numpy", None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    configure_logging(logging.getLevelName(level), secrets, log_format, "load")
    meter.install(counter)
    if parent is not None:
        _die_with(parent)


def stopped_by() -> int | None:
    """The signal that stopped this worker, if one did: a driver error raised since is the stop unwinding
    (psycopg2 reports a COPY whose read was interrupted as a failed query), not the database."""
    return _stopped_by


def _stop(signum: int, _frame) -> None:
    global _stopped_by
    _stopped_by = signum
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    timer = threading.Timer(STOP_GRACE_SECONDS, os._exit, (128 + signum,))
    timer.daemon = True
    timer.start()
    for cleanup in _on_stop:
        cleanup()
    if not _in_task:
        os._exit(128 + signum)  # idle: nothing to undo
    raise WorkerStopped(signum)


def _die_with(parent: int) -> None:
    """SIGTERM this worker when `parent` (the run's process) dies."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # when the process that forked us dies
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watch below still works
            pass
    watch = threading.Thread(target=_watch, args=(parent, os.getppid()), name="parent-watch", daemon=True)
    watch.start()


def _watch(parent: int, forker: int) -> None:
    # A pool worker's parent is the fork server, which outlives the run while workers live: so the
    # run's own process is watched, through a pidfd where there is one (readable the moment it exits).
    try:
        handle = os.pidfd_open(parent)
    except (AttributeError, OSError):
        handle = None
    if handle is not None:
        select.select([handle], [], [])
    else:
        while process_alive(parent) and os.getppid() == forker:
            time.sleep(WATCH_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs (one of another user counts; a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _in_worker(function: Callable[[T], R], task: T) -> R:
    """Run one task in a pool worker; a stopped worker unwinds the task, then exits."""
    global _in_task
    _in_task = True
    try:
        return function(task)
    except WorkerStopped as stopped:
        os._exit(128 + stopped.args[0])
    finally:
        _in_task = False


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
            os.getpid(),
        ),
    )
    try:
        futures: dict[Future, Any] = {pool.submit(_in_worker, function, task): task for task in pending}
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
