"""read_frame and read_deals: a staging table, a view or a query as a DataFrame, with exact types.

Money stays exact (`Decimal` objects, never float64), integer ids stay integers with NULLs
(nullable Int64), dates are dates; `convert.to_frame` maps each SQL type to its dtype.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import extras
from ..config import DEFAULT_DEST_SQL, Settings
from ..db import check_connection, create_engine, describe_db_error, display_url
from ..errors import ConfigError, DatabaseError
from ..staging.tables import SOURCE_COLUMN

_QUERY = re.compile(r"\s")


def read_frame(table_or_query: str, url: str = DEFAULT_DEST_SQL, *, lineage: bool = False) -> Any:
    """A table or view (a name), or a query's rows (anything with a space), as a pandas DataFrame.

    A table's `_source_file` column is left out unless `lineage=True`. Raises ConfigError (pandas
    missing, no such table), DatabaseError (unreachable, the query failed).
    """
    extras.require("pandas", "read_frame")
    from .convert import to_frame

    engine = create_engine(url)
    try:
        check_connection(engine)
        with engine.connect() as conn:
            if _QUERY.search(table_or_query.strip()):
                result = conn.execute(sa.text(table_or_query))
                names, types = list(result.keys()), [None] * len(result.keys())
            else:
                columns = _columns(conn, table_or_query.strip(), lineage, engine.url)
                result = conn.execute(sa.select(*columns))
                names, types = [c.name for c in columns], [c.type for c in columns]
            records = result.all()
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(f"reading {table_or_query!r} failed: {describe_db_error(exc, engine.url)}") from None
    finally:
        engine.dispose()
    return to_frame(names, types, records)


def _columns(conn: Connection, name: str, lineage: bool, url) -> list[sa.Column]:
    inspector = sa.inspect(conn)
    if not (inspector.has_table(name) or name in inspector.get_view_names()):
        known = sorted([*inspector.get_table_names(), *inspector.get_view_names()])
        raise ConfigError(
            f"read_frame: no table or view {name!r} in {display_url(url)}"
            + (f" (it has {', '.join(known)})" if known else " (it has none)")
        )
    table = sa.Table(name, sa.MetaData(), autoload_with=conn)
    for column in table.columns:
        if isinstance(column.type, sa.Float):
            column.type = sa.Double()  # MySQL's DOUBLE reads as a Decimal of 10 places: 0.30000000000000004 -> 0.3
    return [column for column in table.columns if lineage or column.name != SOURCE_COLUMN]


def read_deals(settings: Settings) -> Any:
    """The deals view (or table) as a DataFrame ordered by order id, money as exact `Decimal`.

    Raises ConfigError (pandas missing), TransformError (a staging table is missing) or
    DatabaseError (unreachable, or the view was not built yet: run the transform).
    """
    extras.require("pandas", "read_deals")
    from ..transform import deals_relation, reflect_staging
    from .convert import to_frame

    engine = create_engine(settings.dest_sql)
    try:
        check_connection(engine)
        with engine.connect() as conn:
            relation = deals_relation(settings, reflect_staging(settings, conn))
            try:
                records = conn.execute(sa.select(relation).order_by(relation.c.order_id)).all()
            except sa.exc.DBAPIError as exc:
                raise DatabaseError(
                    f"cannot read the deals view {settings.deals_view!r} (build it with the transform step): "
                    f"{describe_db_error(exc, engine.url)}"
                ) from None
    finally:
        engine.dispose()
    return to_frame([c.name for c in relation.columns], [c.type for c in relation.columns], records)
