"""load_frame: a DataFrame into a staging table, with the guarantees of a file.

The table is created or widened by the same planner as CSV files (the frame's dtypes play the
sample's part, COLUMN_TYPES still pins), then the rows go in through the database's bulk path
(COPY, LOAD DATA LOCAL, executemany) in one transaction together with the ledger entry. The
caller names the lineage (`source`, stored in `_source_file` and the ledger); loading under the
same name again replaces that name's rows, as a changed file replaces its own.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import extras, ledger
from ..config import DEFAULT_DEST_SQL, Settings
from ..db import check_connection, create_engine, describe_db_error, dialect_family, writing
from ..errors import ConfigError, LoadError
from ..find import SourceFile
from ..names import name_problems
from ..redact import redact
from ..schema import normalise_name
from ..staging.plan import TablePlan, overrides_by_table, plan_table
from ..staging.tables import apply_plan, drop_tables, reflect
from ..staging.target import DataProblem, Disconnected, Refused, Target
from ..staging.worker import WRITERS, FileResult, claim_file

log = logging.getLogger(__name__)


def load_frame(frame: Any, table: str, url: str = DEFAULT_DEST_SQL, *, source: str | None = None, **options: Any):
    """Stage a pandas DataFrame into `table` at `url`; returns a FileResult.

    `source` is the lineage value (default: one of its own per call, `frame:<table>:<UTC time>`);
    other Settings fields go in `options` (`column_types`, `full_refresh`, ...). The index is not
    stored (`reset_index()` first to keep it). Raises ConfigError (not a DataFrame, bad options),
    DatabaseError (unreachable) or LoadError (the database refused the rows: nothing was kept).
    """
    extras.require("pandas", "load_frame")
    import pandas as pd

    from .convert import chunks, shape_of

    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"load_frame needs a pandas DataFrame, not {type(frame).__name__}")
    if frame.shape[1] == 0:
        raise ConfigError("load_frame: the DataFrame has no columns")
    settings = Settings(dest_sql=url, dest_table=table, progress="off", **options)
    problems = name_problems(settings)  # the table is the one named, as for DEST_TABLE: never a silent rename
    if problems:  # worded for the caller, who named the table by the argument `table`
        raise ConfigError("load_frame: " + "; ".join(p.replace("DEST_TABLE", "table") for p in problems))
    name = normalise_name(table) or "data"
    lineage = source or f"frame:{name}:{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%fZ}"
    shape = shape_of(frame)
    engine = create_engine(settings.dest_sql)
    started = time.monotonic()
    try:
        check_connection(engine)
        ledger.ensure(engine)
        if settings.full_refresh:
            drop_tables(engine, [name])
            ledger.forget(engine, [name])
        plan = _plan(engine, settings, name, shape)
        changes = apply_plan(engine, plan, settings.deals_view)
        types = tuple(plan.types[column] for column in shape.columns)
        target = Target(name, lineage, shape.columns, types)
        run_id = str(uuid.uuid4())
        size = int(frame.memory_usage(index=False).sum())
        file = SourceFile(lineage, "", size)  # known to the ledger by its lineage alone
        ledger.mark_loading(engine, file, name, size, run_id)
        try:
            loaded = _write(engine, target, file, chunks(frame, types), _fingerprint(frame), run_id)
        except BaseException as exc:
            reason = _reason(exc, settings)
            _record_failure(engine, target, file, run_id, exc, reason)
            if isinstance(exc, DataProblem | Disconnected | Refused | sa.exc.DBAPIError):
                raise LoadError(f"{lineage} -> {name}: {reason}", path=lineage, table=name) from None
            raise
    finally:
        engine.dispose()
    seconds = time.monotonic() - started
    log.info("%s: %d rows into %s in %.2f s", lineage, loaded, name, seconds)
    return FileResult(
        lineage, name, ledger.LOADED, loaded, 0, size, seconds, WRITERS[dialect_family(engine)].NAME, None, changes
    )


def _plan(engine: Engine, settings: Settings, name: str, shape) -> TablePlan:
    with engine.connect() as conn:
        existing = reflect(conn, name)
    overrides = overrides_by_table(settings.column_types).get(name, {})
    plan = plan_table(name, [shape], existing, overrides, dialect_family(engine))
    for note in plan.notes:
        log.warning("%s", note)
    return plan


def _write(engine: Engine, target: Target, file: SourceFile, values, fingerprint: str, run_id: str) -> int:
    """Replace the lineage's rows with the frame's and record it, in one transaction."""
    writer = WRITERS[dialect_family(engine)]
    previous = ledger.read(engine).get(ledger.key_of(file))
    with writing(engine) as conn:
        writer.begin(conn, target)
        held = (previous.table_name, previous.lineage) if previous else (None, None)
        claim_file(conn, file, *held)  # concurrent loads of the lineage take turns on its ledger row
        loaded = writer.load_chunks(conn, target, values)
        ledger.record_loaded(conn, file, target.table, file.size, fingerprint, loaded, 0, run_id)
        ledger.forget_rejects(conn, file)
    return loaded


def _record_failure(
    engine: Engine, target: Target, file: SourceFile, run_id: str, exc: BaseException, reason: str
) -> None:
    """Note the failed (or interrupted) attempt in the ledger, so `status` lists it; the rows were rolled back."""
    status = ledger.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else ledger.FAILED
    try:
        ledger.record_attempt(engine, file, target.table, file.size, status, reason, 0, run_id)
    except sa.exc.SQLAlchemyError as error:
        log.error("could not record the failure of %s in the ledger: %s", target.path, describe_db_error(error))


def _fingerprint(frame) -> str:
    """A hash of the frame's values (row by row, as pandas hashes them), for the ledger."""
    import pandas as pd

    try:
        hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    except TypeError:  # values pandas cannot hash (lists, dicts): hash their text
        hashed = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    return "frame:" + hashlib.sha256(hashed.tobytes()).hexdigest()


def _reason(exc: BaseException, settings: Settings) -> str:
    if isinstance(exc, sa.exc.DBAPIError):
        text = describe_db_error(exc)
    elif isinstance(exc, DataProblem | Disconnected | Refused):
        text = str(exc)
    elif isinstance(exc, KeyboardInterrupt):
        text = "stopped by Ctrl-C; nothing of this load was kept"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return redact(text, settings.secrets())
