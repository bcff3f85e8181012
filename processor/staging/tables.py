"""Staging-table DDL: reflect, create, add columns, widen types, drop. Decides nothing.

Every staged row carries `_source_file`. On PostgreSQL that column defaults to a
transaction-local setting, so `COPY` can stream a file's bytes untouched while the server
stamps each row with its file.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..db import PRIVILEGE, WIDTH, describe_db_error, dialect_family, refusal_kind, writing
from ..lock import ddl_lock
from ..schema import ColumnType, column_type_of, normalise_name, sql_type
from .plan import TablePlan, row_fits

log = logging.getLogger(__name__)

SOURCE_COLUMN = "_source_file"
MORE_COLUMN = "_more_columns"  # with WIDE_FILES=json: the columns a table cannot take, as one JSON object
SOURCE_SETTING = "processor.source_file"
SOURCE_INDEX_PREFIX = 255  # MySQL indexes a TEXT column by a prefix; paths longer than this still match exactly


def reflect(conn: Connection, name: str) -> dict[str, ColumnType] | None:
    """The table's data columns and their types in order, or None when it does not exist."""
    inspector = sa.inspect(conn)
    if not inspector.has_table(name):
        return None
    return {c["name"]: column_type_of(c["type"]) for c in inspector.get_columns(name) if c["name"] != SOURCE_COLUMN}


def has_source_column(conn: Connection, name: str) -> bool:
    return any(c["name"] == SOURCE_COLUMN for c in sa.inspect(conn).get_columns(name))


def table_object(name: str, types: Mapping[str, ColumnType], family: str, scratch: bool = False) -> sa.Table:
    """A SQLAlchemy Table for a staging table (data columns, then the lineage column); `scratch`: a table
    whose rows are copied elsewhere before anyone needs them (UNLOGGED on PostgreSQL: no WAL written twice)."""
    columns = [sa.Column(column, sql_type(column_type, family)) for column, column_type in types.items()]
    kwargs: dict = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"} if family == "mysql" else {}
    if scratch and family == "postgresql":
        kwargs["prefixes"] = ["UNLOGGED"]
    return sa.Table(name, sa.MetaData(), *columns, _source_column(family), **kwargs)


def _source_column(family: str) -> sa.Column:
    if family == "postgresql":
        default = sa.text(f"current_setting('{SOURCE_SETTING}', true)")
        return sa.Column(SOURCE_COLUMN, sa.Text(), server_default=default)
    return sa.Column(SOURCE_COLUMN, sql_type(ColumnType("text"), family))


def apply_plan(engine: Engine, plan: TablePlan, protected_view: str | None = None) -> list[str]:
    """Create the table or bring it up to the plan; returns the schema changes made."""
    family = dialect_family(engine)
    changes: list[str] = []
    with writing(engine) as conn, ddl_lock(conn, plan.name):
        # Looked at again under the lock: a load that bypassed the run lock may have created or changed it.
        current = reflect(conn, plan.name)
        if current is None:
            table_object(plan.name, {c: plan.types[c] for c in plan.columns}, family).create(conn)
            return [f"created table {plan.name} ({len(plan.columns)} columns)"]
        plan = dataclasses.replace(plan, existing=current)
        if not has_source_column(conn, plan.name):
            _add_column(conn, plan.name, _source_column(family))
            changes.append(f"added column {plan.name}.{SOURCE_COLUMN}")
        for column in plan.added:
            _add_column(conn, plan.name, sa.Column(column, sql_type(plan.types[column], family)))
            changes.append(f"added column {plan.name}.{column} ({plan.types[column].kind})")
    widened = [(column, old, new) for column, old, new in plan.widened if not old.accepts(new)]
    if widened:
        widen(engine, plan.name, {column: new for column, _old, new in widened}, protected_view)
        changes += [f"widened {plan.name}.{c} from {old.kind} to {new.kind}" for c, old, new in widened]
    return changes


PROBE_TABLE = "_processor_probe"  # a name no staging table can take
MAX_COLUMNS = {"sqlite": 2000, "postgresql": 1600, "mysql": 1017}  # per table, as the databases ship (InnoDB's)


def columns_that_fit(engine: Engine, plan: TablePlan) -> int:
    """How many of the plan's new columns the table can take beside its others and `MORE_COLUMN`: the largest
    count whose rows surely fit (`row_fits`) and that the database accepts in a table created for the question
    and dropped (a binary search)."""
    family = dialect_family(engine)
    added = set(plan.added)
    new = [c for c in plan.added if c != MORE_COLUMN]
    base = {c: plan.types[c] for c in plan.columns if c not in added}

    def fits(count: int) -> bool:
        types = {**base, **{c: plan.types[c] for c in new[:count]}, MORE_COLUMN: ColumnType("text")}
        return row_fits(types.values(), family) and _fits(engine, table_object(PROBE_TABLE, types, family), family)

    most = min(len(new), MAX_COLUMNS[family] - len(base) - 2)  # beside the lineage and JSON columns
    if most >= 0 and fits(most):
        return most
    low, high = -1, most - 1
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low  # -1: not even the table's other columns and the JSON column


def _fits(engine: Engine, table: sa.Table, family: str) -> bool:
    try:
        with engine.connect() as conn, conn.begin() as transaction:
            table.drop(conn, checkfirst=True)  # one a stopped run left behind
            table.create(conn)
            if family == "mysql":  # MySQL commits DDL at once; the others roll it back
                table.drop(conn)
            transaction.rollback()
    except sa.exc.DBAPIError as exc:
        if refusal_kind(exc) != WIDTH:
            raise
        return False
    return True


def refused(exc: BaseException, table: str, columns: int) -> str:
    """One line for a table the database would not create or change: what it refused, and the fix."""
    said = describe_db_error(exc)
    kind = refusal_kind(exc)
    if kind == WIDTH:
        return (
            f"table {table} cannot take {columns:,} columns on this database ({said}); set WIDE_FILES=json to keep "
            f"the leading columns that fit and the others in one JSON column {MORE_COLUMN}, or cut the file"
        )
    if kind == PRIVILEGE:
        return (
            f"the database user may not create or change table {table} ({said}); grant it CREATE on the schema "
            "(ownership of the table, to add or widen columns; INSERT and DELETE on it, to load), or use a user "
            "that has them"
        )
    return f"cannot create or change table {table}: {said}"


def _add_column(conn: Connection, table: str, column: sa.Column) -> None:
    preparer = conn.dialect.identifier_preparer
    ddl = column.type.compile(dialect=conn.dialect)
    default = ""
    if column.server_default is not None:
        default = f" DEFAULT {column.server_default.arg.text}"
    conn.exec_driver_sql(f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {preparer.quote(column.name)} {ddl}{default}")


def widen(engine: Engine, table: str, needed: Mapping[str, ColumnType], protected_view: str | None = None) -> dict:
    """Widen columns so they hold `needed` (never narrowing), under a per-table DDL lock.

    Returns the table's types afterwards. Safe when several workers widen the same table.
    """
    family = dialect_family(engine)
    with writing(engine) as conn, ddl_lock(conn, table):
        current = reflect(conn, table) or {}
        changes = {
            c: current[c].join(t) for c, t in needed.items() if c in current and current[c].join(t) != current[c]
        }
        if changes:
            if family == "sqlite":
                _sqlite_rebuild(conn, table, {**current, **changes})
            else:
                _alter_types(conn, table, changes, current, family, protected_view)
            for column, new in changes.items():
                log.warning("schema change: %s.%s widened from %s to %s", table, column, current[column].kind, new.kind)
        return {**current, **changes}


def _alter_types(
    conn: Connection,
    table: str,
    changes: Mapping[str, ColumnType],
    current: Mapping[str, ColumnType],
    family: str,
    view: str | None,
):
    preparer = conn.dialect.identifier_preparer
    if family == "postgresql" and view and view in sa.inspect(conn).get_view_names():
        log.info("dropping view %s so %s can change; the transform stage rebuilds it", view, table)
        conn.exec_driver_sql(f"DROP VIEW {preparer.quote(view)}")
    for column, new in changes.items():
        ddl = sql_type(new, family).compile(dialect=conn.dialect)
        name = preparer.quote(column)
        if family == "postgresql":
            # A day as ISO text whatever the server's DateStyle, as the file wrote it.
            as_day = current[column].kind == "date" and new.kind == "text"
            cast = f"to_char({name}, 'YYYY-MM-DD')" if as_day else f"{name}::{ddl}"
            statement = f"ALTER TABLE {preparer.quote(table)} ALTER COLUMN {name} TYPE {ddl} USING {cast}"
        else:
            statement = f"ALTER TABLE {preparer.quote(table)} MODIFY COLUMN {name} {ddl} NULL"
        conn.exec_driver_sql(statement)


def _sqlite_rebuild(conn: Connection, table: str, types: Mapping[str, ColumnType]) -> None:
    """SQLite cannot change a column's type: copy into a new table and swap, in one transaction."""
    preparer = conn.dialect.identifier_preparer
    temporary = f"{table}__widening"
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {preparer.quote(temporary)}")
    table_object(temporary, types, "sqlite").create(conn)
    columns = ", ".join(preparer.quote(c) for c in [*types, SOURCE_COLUMN])
    conn.exec_driver_sql(
        f"INSERT INTO {preparer.quote(temporary)} ({columns}) SELECT {columns} FROM {preparer.quote(table)}"
    )
    conn.exec_driver_sql(f"DROP TABLE {preparer.quote(table)}")
    # Views that read the table (the deals view) name it, and find it again under its old name; by default
    # SQLite would refuse the rename because, for that one moment, their table is missing.
    conn.exec_driver_sql("PRAGMA legacy_alter_table = ON")
    conn.exec_driver_sql(f"ALTER TABLE {preparer.quote(temporary)} RENAME TO {preparer.quote(table)}")
    conn.exec_driver_sql("PRAGMA legacy_alter_table = OFF")


def _any_value(columns: Iterable[str]) -> sa.ColumnElement:
    return sa.or_(*(sa.column(c).is_not(None) for c in columns))


def others_hold_values(engine: Engine, table: str, columns: Iterable[str], own: Iterable[str]) -> bool:
    """Whether rows not of the file (its `own` lineages: now and when last loaded) hold a value in any of the columns."""
    source = sa.column(SOURCE_COLUMN)
    query = (
        sa.select(sa.literal(1))
        .select_from(sa.table(table))
        .where(sa.or_(source.is_(None), source.not_in(list(own))), _any_value(columns))
        .limit(1)
    )
    with engine.connect() as conn:
        return conn.execute(query).first() is not None


def files_holding_values(engine: Engine, table: str, columns: Iterable[str]) -> set[str | None]:
    """The files (`_source_file`; None for rows of no file) whose rows hold a value in any of the columns."""
    query = sa.select(sa.column(SOURCE_COLUMN)).select_from(sa.table(table)).where(_any_value(columns)).distinct()
    with engine.connect() as conn:
        return set(conn.execute(query).scalars())


def drop_tables(engine: Engine, names: Iterable[str]) -> None:
    """Drop staging tables (FULL_REFRESH), dependent views included on PostgreSQL."""
    preparer = engine.dialect.identifier_preparer
    cascade = " CASCADE" if dialect_family(engine) == "postgresql" else ""
    with writing(engine) as conn:
        for name in names:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {preparer.quote(name)}{cascade}")


def index_source_column(engine: Engine, table: str) -> bool:
    """Index `_source_file` unless some index leads with it; returns whether one was created.

    Replacing a changed file's rows is then a look-up, not a scan of the whole table; loads into
    the table keep the index up to date from then on. A user who may not create the index (it is
    not the table's owner) loses only that speed: logged, not raised.
    """
    try:
        return _index_source_column(engine, table)
    except sa.exc.DBAPIError as exc:
        if refusal_kind(exc) != PRIVILEGE:
            raise
        log.warning("not indexing %s.%s: %s", table, SOURCE_COLUMN, describe_db_error(exc))
        return False


def _index_source_column(engine: Engine, table: str) -> bool:
    with writing(engine) as conn, ddl_lock(conn, table):
        inspector = sa.inspect(conn)
        if not inspector.has_table(table):
            return False
        if any(index["column_names"][:1] == [SOURCE_COLUMN] for index in inspector.get_indexes(table)):
            return False
        staged = sa.Table(table, sa.MetaData(), sa.Column(SOURCE_COLUMN, sa.Text))
        name = normalise_name(f"ix_{table}_{SOURCE_COLUMN}")
        sa.Index(name, staged.c[SOURCE_COLUMN], mysql_length=SOURCE_INDEX_PREFIX).create(conn)
    log.info("indexed %s.%s, so that replacing a changed file's rows does not scan the table", table, SOURCE_COLUMN)
    return True


def delete_file_rows(conn: Connection, table: str, path: str) -> int:
    """Remove the rows a file staged earlier (a changed file is replaced, never appended)."""
    if reflect(conn, table) is None:
        return 0
    staged = sa.table(table, sa.column(SOURCE_COLUMN))
    return conn.execute(sa.delete(staged).where(staged.c[SOURCE_COLUMN] == path)).rowcount
