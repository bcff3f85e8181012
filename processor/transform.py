"""The deals view: staged customers, orders and payments joined into one row per order, with the bonus rule.

One SQLAlchemy Core select (`deals_select`) is compiled for SQLite, PostgreSQL and MySQL/MariaDB alike;
`build_deals` turns it into a view (or a table with DEALS_MATERIALIZE=1) and reports what it holds.

Money is never guessed: a payment amount staged as text is used only when it is a plain decimal number
(`-1234.50`), the same test on every database (`_plain_amount`); a numeric one only below 10^16. The build
stops (TransformError, exit 5) while any payment holds another amount (`2,500.00`, `N/A`), naming the
table, the column, an example, its payment ids and how many there are (`check_amounts`); the view itself
never casts such an amount, so a stale view counts it as no amount rather than as 2 or 0.

Money is exact on every database: each payment is first turned into whole cents (BIGINT), the bonus is
computed with integer arithmetic (the rate as a fraction, rounded half away from zero per payment), sums
are sums of integers, and only the final columns become NUMERIC(18, 2). SQLite has no decimal type, so
there those columns hold the nearest double of an exact cent amount; `sa.Numeric(18, 2)` reads it back
as the exact Decimal (it formats to two places), and `deals_relation` declares that type for readers.

Two MySQL habits get their own compilation (see `_exact` and `_int_div`): its default collations compare
text ignoring case and trailing spaces, and `/` on integers gives a rounded decimal, not a quotient. On
MariaDB the build also turns off a plan that is far slower for whole tables (`_plan_for_whole_tables`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction
from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.ddl import CreateTableAs, CreateView, DropTable, DropView, ExecutableDDLElement
from sqlalchemy.sql.functions import FunctionElement

from . import ledger
from .config import Settings
from .db import describe_db_error, dialect_family, display_url
from .errors import ConfigError, TransformError
from .names import check_names
from .schema import column_type_of, normalise_name
from .staging.tables import SOURCE_COLUMN

log = logging.getLogger(__name__)

MONEY = sa.Numeric(18, 2)
MAX_AMOUNT = 10**16  # NUMERIC(18, 2) holds less
CENTS = sa.BigInteger()
EXAMPLE_IDS = 5
DEAL_COLUMNS = (
    "order_id",
    "customer_id",
    "first_name",
    "last_name",
    "title",
    "order_date",
    "status",
    "payment_count",
    "amount",
    "bonus",
    "value",
    "currency",
)
# Columns each staging table must have, with the setting that names the table.
REQUIRED = {
    "customers": ("CUSTOMERS_TABLE", ("id", "first_name", "last_name")),
    "orders": ("ORDERS_TABLE", ("id", "user_id", "order_date", "status")),
    "payments": ("PAYMENTS_TABLE", ("order_id", "amount")),
}
_NUMERIC_KINDS = {"integer", "decimal", "double"}
# cents * numerator * 2 must fit in a BIGINT: with these bounds a payment may reach 46 million.
MAX_RATE_PLACES = 6
MAX_RATE = 1000


@dataclass(frozen=True)
class StagingTables:
    """The three staging tables the deals are built from."""

    customers: sa.Table
    orders: sa.Table
    payments: sa.Table


@dataclass(frozen=True)
class TransformReport:
    """What `build_deals` built: counts for the run summary."""

    relation: str
    kind: str
    deals: int
    total_value: Decimal
    bonus_deals: int
    orphan_orders: int
    orphan_payments: int
    currency: str
    indexes_created: tuple[str, ...]
    elapsed: float
    exit_code: int = 0  # a view that could not be built raises TransformError instead

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "total_value": str(self.total_value)}

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        lines = [
            f"{self.kind} {self.relation}: {self.deals:,} deals worth {self.total_value:,.2f} {self.currency}, "
            f"{self.bonus_deals:,} with a bonus",
            f"left out: orders whose customer is missing: {self.orphan_orders:,}; "
            f"payments whose order is missing: {self.orphan_payments:,}",
        ]
        if self.indexes_created:
            lines.append(f"indexes created: {', '.join(self.indexes_created)}")
        lines.append(f"built in {self.elapsed:.2f} s")
        return lines


# ---------------------------------------------------------------- dialect hooks


class _exact(FunctionElement):
    """Text compared byte for byte (MySQL's default collations ignore case and trailing spaces)."""

    type = sa.Text()
    inherit_cache = True


class _plain_amount(FunctionElement):
    """Whether a text amount is a plain decimal number of at most 16 whole digits (`-1234.50`)."""

    type = sa.Boolean()
    inherit_cache = True


class _int_div(FunctionElement):
    """Integer division of non-negative integers (MySQL's `/` would give a rounded decimal)."""

    type = sa.BigInteger()
    inherit_cache = True


def _template(text: str) -> Callable:
    def render(element, compiler, **kw) -> str:
        arguments = (argument.self_group(against=operators.truediv) for argument in element.clauses)
        return text.format(*(compiler.process(argument, **kw) for argument in arguments))

    return render


for _element, _default, _mysql in (
    (_exact, "{}", "CAST({} AS BINARY)"),
    (_int_div, "({} / {})", "({} DIV {})"),
    # MySQL's `$` also matches before a final newline: the second test refuses any other character.
    (
        _plain_amount,
        "({0} ~ '^-?[0-9]{{1,16}}([.][0-9]+)?$')",
        "({0} REGEXP '^-?[0-9]{{1,16}}([.][0-9]+)?$' AND {0} NOT REGEXP '[^-.0-9]')",
    ),
):
    compiles(_element)(_template(_default))
    for _name in ("mysql", "mariadb"):
        compiles(_element, _name)(_template(_mysql))
# SQLite has no regular expressions without an extension: the same rule in GLOBs (digits, one point with
# digits on both sides, a leading minus) and a length for the whole part.
compiles(_plain_amount, "sqlite")(
    _template(
        "({0} NOT GLOB '*[^0-9.-]*' AND {0} NOT GLOB '?*-*' AND {0} NOT GLOB '*.*.*' AND {0} GLOB '*[0-9]' "
        "AND {0} NOT GLOB '.*' AND {0} NOT GLOB '-.*' "
        "AND length(ltrim(substr({0}, 1, CASE instr({0}, '.') WHEN 0 THEN length({0}) ELSE instr({0}, '.') - 1 END), "
        "'-')) <= 16)"
    )
)


# ---------------------------------------------------------------- the select (pure)


def _is_numeric(column: sa.ColumnElement) -> bool:
    return column_type_of(column.type).kind in _NUMERIC_KINDS


def _as_text(column: sa.ColumnElement) -> sa.ColumnElement:
    return column if isinstance(column.type, sa.String) else sa.cast(column, sa.String)


def _joined_as_text(left: sa.ColumnElement, right: sa.ColumnElement) -> bool:
    """Keys are compared as numbers when both are numbers, else both as exact text (a widened id stays joinable)."""
    return not (_is_numeric(left) and _is_numeric(right))


def _key_pair(left: sa.ColumnElement, right: sa.ColumnElement) -> tuple[sa.ColumnElement, sa.ColumnElement]:
    if _joined_as_text(left, right):
        return _exact(_as_text(left)), _exact(_as_text(right))
    return left, right


def _joins(left: sa.ColumnElement, right: sa.ColumnElement) -> sa.ColumnElement:
    a, b = _key_pair(left, right)
    return a == b


def _cents(amount: sa.ColumnElement) -> sa.ColumnElement:
    """An amount as whole cents, rounded half away from zero, whatever type it was staged as."""
    return sa.cast(sa.func.round(sa.cast(amount, MONEY) * 100), CENTS)


def _payment_cents(amount: sa.ColumnElement) -> sa.ColumnElement:
    """A payment's amount as whole cents, or NULL when it is none or not one the cents can hold exactly: text
    only when it is a plain number, a number only below 10^16 (NUMERIC(18, 2) would clamp or fail). Never a cast
    of anything else, so no database turns `2,500.00` into 2 or `N/A` into 0."""
    if _is_numeric(amount):
        usable = sa.and_(amount > -MAX_AMOUNT, amount < MAX_AMOUNT)
    else:
        usable = _plain_amount(_as_text(amount))
    return sa.case((usable, _cents(amount)), else_=sa.null())


def _unusable_amount(amount: sa.ColumnElement, settings: Settings) -> sa.ColumnElement:
    """A payment that holds an amount the deals cannot use: not a plain number, or too large for exact cents."""
    cents = _payment_cents(amount)
    given = amount.is_not(None) if _is_numeric(amount) else sa.and_(amount.is_not(None), sa.func.length(amount) > 0)
    limit = max_payment_cents(settings.bonus_rate)
    return sa.and_(given, sa.or_(cents.is_(None), cents > limit, cents < -limit))


def max_payment_cents(rate: Decimal) -> int:
    """The largest payment, in cents, whose bonus the integer arithmetic of `_rounded_share` computes exactly."""
    fraction = _rate_fraction(rate)
    room = (2**63 - 1 - fraction.denominator) // (2 * max(abs(fraction.numerator), 1))
    return min(room, MAX_AMOUNT * 100 - 1)


def _money(cents: sa.ColumnElement) -> sa.ColumnElement:
    """Whole cents as NUMERIC(18, 2); on SQLite a correctly rounded double (SQLAlchemy divides as floats)."""
    return sa.cast(sa.cast(cents, MONEY) / 100, MONEY)


def _rate_fraction(rate: Decimal) -> Fraction:
    """BONUS_RATE as a fraction small enough for 64-bit cent arithmetic; raises TransformError."""
    if rate.as_tuple().exponent < -MAX_RATE_PLACES or abs(rate) > MAX_RATE:
        raise TransformError(
            f"BONUS_RATE={rate} is out of range: use at most {MAX_RATE_PLACES} decimal places and at most {MAX_RATE}"
        )
    return Fraction(rate)


def _rounded_share(cents: sa.ColumnElement, rate: Decimal) -> sa.ColumnElement:
    """round(cents * rate) half away from zero, in integer arithmetic on every dialect; raises TransformError."""
    fraction = _rate_fraction(rate)
    scaled = cents * fraction.numerator
    if fraction.denominator == 1:
        return scaled
    den = fraction.denominator
    up = _int_div(2 * sa.func.abs(scaled) + den, sa.literal(2 * den, CENTS))
    return sa.case((scaled < 0, -up), else_=up)


def threshold_cents(threshold: Decimal) -> int:
    """The largest whole-cent amount that does not beat the threshold (amount > threshold <=> cents > this)."""
    return int((threshold * 100).to_integral_value(rounding=ROUND_FLOOR))


def _payment_totals(settings: Settings, payments: sa.Table) -> sa.Subquery:
    """Per order: number of payments, their sum in cents, and the bonus in cents if the status qualifies."""
    cents = sa.select(payments.c.order_id, _payment_cents(payments.c.amount).label("cents")).subquery("payment_cents")
    bonus = sa.case(
        (cents.c.cents > threshold_cents(settings.bonus_threshold), _rounded_share(cents.c.cents, settings.bonus_rate)),
        else_=0,
    )
    return (
        sa.select(
            cents.c.order_id,
            sa.func.count().label("payment_count"),
            sa.func.sum(cents.c.cents).label("amount_cents"),
            sa.func.sum(bonus).label("bonus_cents"),
        )
        .group_by(cents.c.order_id)
        .subquery("payment_totals")
    )


def deals_select(settings: Settings, tables: StagingTables) -> sa.Select:
    """The deals: one row per order whose customer exists, columns as in DEAL_COLUMNS; pure, raises TransformError."""
    customers, orders = tables.customers, tables.orders
    totals = _payment_totals(settings, tables.payments)
    amount = sa.func.coalesce(totals.c.amount_cents, 0)
    qualifies = _exact(_as_text(orders.c.status)) == _exact(sa.literal(settings.bonus_status, sa.String))
    bonus = sa.case((qualifies, sa.func.coalesce(totals.c.bonus_cents, 0)), else_=0)
    first_name = sa.func.coalesce(_as_text(customers.c.first_name), "")
    last_name = sa.func.coalesce(_as_text(customers.c.last_name), "")
    return (
        sa.select(
            orders.c.id.label("order_id"),
            customers.c.id.label("customer_id"),
            customers.c.first_name,
            customers.c.last_name,
            (last_name + " " + first_name).label("title"),
            orders.c.order_date,
            orders.c.status,
            sa.func.coalesce(totals.c.payment_count, 0).label("payment_count"),
            _money(amount).label("amount"),
            _money(bonus).label("bonus"),
            _money(amount + bonus).label("value"),
            sa.literal(settings.deal_currency, sa.String).label("currency"),
        )
        .select_from(orders)
        .join(customers, _joins(orders.c.user_id, customers.c.id))
        .outerjoin(totals, _joins(totals.c.order_id, orders.c.id))
    )


def orphans_select(tables: StagingTables) -> sa.Select:
    """Orders whose customer is missing and payments whose order is missing, counted; pure."""
    customers, orders, payments = tables.customers, tables.orders, tables.payments
    no_customer = ~sa.exists().where(_joins(orders.c.user_id, customers.c.id))
    no_order = ~sa.exists().where(_joins(payments.c.order_id, orders.c.id))
    return sa.select(
        sa.select(sa.func.count()).select_from(orders).where(no_customer).scalar_subquery().label("orphan_orders"),
        sa.select(sa.func.count()).select_from(payments).where(no_order).scalar_subquery().label("orphan_payments"),
    )


def deals_relation(settings: Settings, tables: StagingTables) -> sa.TableClause:
    """The built view (or table) with the select's column types, to read from (money as exact Decimal); pure."""
    return _relation(settings.deals_view, deals_select(settings, tables))


def _relation(name: str, select: sa.Select) -> sa.TableClause:
    return sa.table(name, *(sa.column(column.name, column.type) for column in select.selected_columns))


def summary_select(deals: sa.TableClause) -> sa.Select:
    """Deal count, total value in cents (an exact integer sum on every dialect) and deals with a bonus; pure."""
    return sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(_cents(deals.c.value)), 0),
        sa.func.coalesce(sa.func.sum(sa.case((deals.c.bonus != 0, 1), else_=0)), 0),
    )


def join_keys(tables: StagingTables) -> list[tuple[sa.Column, sa.Column]]:
    """The pairs of columns the deals are joined on."""
    return [
        (tables.orders.c.user_id, tables.customers.c.id),
        (tables.payments.c.order_id, tables.orders.c.id),
    ]


def index_candidates(tables: StagingTables, family: str) -> list[sa.Column]:
    """Join-key columns an index helps: compared uncast, and not text on MySQL (TEXT needs a prefix length)."""
    candidates: dict[tuple[str, str], sa.Column] = {}
    for left, right in join_keys(tables):
        if _joined_as_text(left, right):
            if family == "mysql":
                log.debug("not indexing %s = %s: text keys cannot be indexed whole on MySQL", left, right)
                continue
            pair = [column for column in (left, right) if isinstance(column.type, sa.String)]
        else:
            pair = [left, right]
        candidates.update(((column.table.name, column.name), column) for column in pair)
    return list(candidates.values())


# ---------------------------------------------------------------- I/O


def reflect_staging(settings: Settings, conn: Connection) -> StagingTables:
    """The three staging tables as they are in the database; raises TransformError naming what is missing."""
    inspector = sa.inspect(conn)
    metadata = sa.MetaData()
    found: dict[str, sa.Table] = {}
    problems: list[str] = []
    for role, (variable, needed) in REQUIRED.items():
        name = getattr(settings, f"{role}_table")
        if not inspector.has_table(name):
            problems.append(f"{name} not found: load {name}.csv first or set {variable}")
            continue
        table = sa.Table(name, metadata, autoload_with=conn)
        missing = [column for column in needed if column not in table.c]
        if missing:
            problems.append(
                f"{name} has no column {', '.join(missing)} (it has {', '.join(table.c.keys())}): "
                f"load a file with that header or set {variable} to the right table"
            )
        found[role] = table
    if problems:
        raise TransformError("cannot build the deals: " + "; ".join(problems))
    return StagingTables(**found)


def refuse_unfinished(conn: Connection, settings: Settings) -> None:
    """Raise TransformError naming the files routed to the input tables whose last load did not finish:
    deals built then would hold a partial picture (and a sync would push it to Pipedrive)."""
    names = [getattr(settings, f"{role}_table") for role in REQUIRED]
    found = ledger.unfinished(conn, names)
    if not found:
        return
    shown = ", ".join(f"{path} ({status})" for path, status in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    raise TransformError(
        f"cannot build the deals: {len(found)} file(s) of {', '.join(names)} are not loaded: {shown}{more}; "
        "run the load again to finish them (python index.py status lists why)"
    )


def missing_inputs(settings: Settings, engine: Engine) -> list[str]:
    """The staging tables the deals are built from that this database does not hold (in role order)."""
    names = [getattr(settings, f"{role}_table") for role in REQUIRED]
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        return [name for name in names if not inspector.has_table(name)]


def unusable_amounts_select(settings: Settings, payments: sa.Table) -> sa.Select:
    """Payments whose amount the deals cannot use, with their id when the table has one; pure."""
    ids = [payments.c.id] if "id" in payments.c else []
    return sa.select(*ids, payments.c.amount).where(_unusable_amount(payments.c.amount, settings))


def check_amounts(settings: Settings, conn: Connection, payments: sa.Table) -> None:
    """Raise TransformError naming the table, the column, an example and how many payments hold an amount the
    deals cannot use; money is never guessed."""
    found = unusable_amounts_select(settings, payments).subquery()
    count = conn.execute(sa.select(sa.func.count()).select_from(found)).scalar_one()
    if not count:
        return
    examples = conn.execute(sa.select(found).limit(EXAMPLE_IDS)).all()
    ids = f", payment id(s) {', '.join(str(row.id) for row in examples)}" if "id" in payments.c else ""
    column = f"{payments.name}.amount"
    raise TransformError(
        f"cannot build the deals: {column} holds {count:,} amount(s) that are not plain numbers below "
        f"{max_payment_cents(settings.bonus_rate) // 100 + 1:,} (e.g. {str(examples[0].amount)!r}{ids}); money is never "
        f"guessed: correct the file, or set NULL_VALUES for markers such as N/A, or "
        f"COLUMN_TYPES={column}:numeric(18,2) to reject such rows when loading (in {ledger.REJECTS_TABLE}), "
        "then load again with FULL_REFRESH=1"
    )


def check_payments(settings: Settings, engine: Engine) -> None:
    """Before a sync without a build: raise TransformError while the payments hold amounts the deals cannot use
    (a view built earlier leaves them out rather than guess; the sync must not push that)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(settings.payments_table):
            return
        payments = sa.Table(settings.payments_table, sa.MetaData(), autoload_with=conn)
        if "amount" in payments.c:
            check_amounts(settings, conn, payments)


def build_deals(settings: Settings, engine: Engine) -> TransformReport:
    """Create or replace the deals view (or table) and count what it holds; raises TransformError."""
    started = time.perf_counter()
    check_names(settings)
    family = dialect_family(engine)
    kind = "table" if settings.deals_materialize else "view"
    try:
        with engine.begin() as conn:
            _refuse_to_replace_staging(conn, settings.deals_view)
            refuse_unfinished(conn, settings)
            tables = reflect_staging(settings, conn)
            check_amounts(settings, conn, tables.payments)
            indexes = _ensure_indexes(conn, tables, family)
        select = deals_select(settings, tables)
        create = partial(CreateTableAs if settings.deals_materialize else CreateView, select)
        with engine.begin() as conn:
            _begin_sqlite(conn, family)
            _plan_for_whole_tables(conn, "off")
            _replace(conn, family, settings.deals_view, create)
            deals, total_cents, bonus_deals = conn.execute(summary_select(_relation(settings.deals_view, select))).one()
            orphan_orders, orphan_payments = conn.execute(orphans_select(tables)).one()
            _plan_for_whole_tables(conn, "default")
    except sa.exc.DBAPIError as exc:
        raise TransformError(
            f"building the deals {kind} {settings.deals_view} failed on {display_url(engine.url)}: "
            f"{describe_db_error(exc, engine.url)}"
        ) from exc
    report = TransformReport(
        relation=settings.deals_view,
        kind=kind,
        deals=deals,
        total_value=Decimal(total_cents).scaleb(-2),
        bonus_deals=int(bonus_deals),
        orphan_orders=orphan_orders,
        orphan_payments=orphan_payments,
        currency=settings.deal_currency,
        indexes_created=tuple(indexes),
        elapsed=time.perf_counter() - started,
    )
    log.info("built the deals %s %s: %d deals in %.2f s", kind, settings.deals_view, deals, report.elapsed)
    return report


def _plan_for_whole_tables(conn: Connection, split: str) -> None:
    # MariaDB's "split materialization" re-runs the payment aggregate as a lateral derived table for each
    # order: fine for a few orders, 5x slower than one aggregate for all of them (1M orders: 160 s
    # against 30 s). Only a plan choice: if a build fails before the reset, results stay the same.
    if getattr(conn.dialect, "is_mariadb", False):
        conn.exec_driver_sql(f"SET SESSION optimizer_switch='split_materialized={split}'")


def _begin_sqlite(conn: Connection, family: str) -> None:
    # Python's sqlite3 (in its default, legacy transaction mode) opens a transaction only before DML, so
    # DDL would commit statement by statement; an explicit BEGIN makes DROP + CREATE one transaction.
    if family == "sqlite" and not conn.connection.dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN")


def _refuse_to_replace_staging(conn: Connection, name: str) -> None:
    """DEALS_VIEW may replace an earlier deals view or table, never a table of loaded rows; raises ConfigError."""
    columns = sa.inspect(conn).get_columns(name) if _existing_kind(conn, name) == "table" else []
    if any(column["name"] == SOURCE_COLUMN for column in columns):
        raise ConfigError(
            f"DEALS_VIEW={name!r}: {name} is a staging table (it holds loaded rows); "
            "building the deals would replace it: choose another name"
        )


def _existing_kind(conn: Connection, name: str) -> str | None:
    inspector = sa.inspect(conn)
    if name in inspector.get_view_names():
        return "view"
    return "table" if inspector.has_table(name) else None


def _drop(conn: Connection, name: str, kind: str) -> None:
    table = sa.table(name)
    conn.execute(DropView(table) if kind == "view" else DropTable(table))


def _replace(conn: Connection, family: str, name: str, create: Callable[[str], ExecutableDDLElement]) -> None:
    """Swap in the new relation: one transaction on PostgreSQL and SQLite, an atomic RENAME on MySQL."""
    existing = _existing_kind(conn, name)
    if family != "mysql":
        if existing:
            _drop(conn, name, existing)
        conn.execute(create(name))
        return
    # MySQL commits at every DDL statement: build under a side name, then swap both names in one RENAME,
    # so readers see the old relation or the new one, and a failed build leaves the old one in place.
    new, old = f"{name}__new", f"{name}__old"
    for leftover in (new, old):
        leftover_kind = _existing_kind(conn, leftover)
        if leftover_kind:
            _drop(conn, leftover, leftover_kind)
    conn.execute(create(new))
    quote = conn.dialect.identifier_preparer.quote
    if existing:
        conn.exec_driver_sql(f"RENAME TABLE {quote(name)} TO {quote(old)}, {quote(new)} TO {quote(name)}")
        _drop(conn, old, existing)
    else:
        conn.exec_driver_sql(f"RENAME TABLE {quote(new)} TO {quote(name)}")


def _ensure_indexes(conn: Connection, tables: StagingTables, family: str) -> list[str]:
    """Index the join keys that have no index leading with them yet; returns the names created."""
    inspector = sa.inspect(conn)
    created = []
    for column in index_candidates(tables, family):
        table = column.table
        leading = {index["column_names"][0] for index in inspector.get_indexes(table.name) if index["column_names"]}
        leading.update(inspector.get_pk_constraint(table.name)["constrained_columns"][:1])
        if column.name in leading:
            continue
        name = normalise_name(f"ix_{table.name}_{column.name}")
        sa.Index(name, column).create(conn)
        log.debug("created index %s on %s(%s)", name, table.name, column.name)
        created.append(name)
    return created
