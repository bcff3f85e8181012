"""Table names from configuration mean what they say: used exactly as written, or refused (pure).

A name is refused (exit 2) rather than quietly changed: a schema-qualified name (`staging.certificates`),
a name the database would cut or that normalising would change, one of processor's own tables
(`_processor_*`), and a deals view that would replace a staging table. The schema of a PostgreSQL
destination, or the database of a MySQL one, is chosen in DEST_SQL instead.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError
from .schema import MAX_IDENTIFIER_BYTES, normalise_name

RESERVED_PREFIX = "_processor"
STAGING_VARIABLES = {
    "customers_table": "CUSTOMERS_TABLE",
    "orders_table": "ORDERS_TABLE",
    "payments_table": "PAYMENTS_TABLE",
    "dest_table": "DEST_TABLE",
}
VARIABLES = {**STAGING_VARIABLES, "deals_view": "DEALS_VIEW"}


def name_problems(settings: Any) -> list[str]:
    """What is wrong with the table names of `settings`, one line per variable (none: all fine)."""
    problems = []
    for attr, variable in VARIABLES.items():
        value = getattr(settings, attr)
        if value is None and attr == "dest_table":
            continue
        problem = _problem(variable, value)
        if problem:
            problems.append(f"{variable}={value!r}: {problem}")
    if not problems:
        problems += _view_clashes(settings)
    return problems


def check_names(settings: Any) -> None:
    """Raise ConfigError naming every table-name variable that would not mean what it says."""
    problems = name_problems(settings)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def qualified_problem(variable: str, name: str) -> str:
    """Why a schema-qualified name is refused, and what to set instead."""
    schema, _, table = name.rpartition(".")
    return (
        f"a schema-qualified name is not supported (processor would not write into {schema!r} as asked); "
        f"choose the schema in DEST_SQL instead (PostgreSQL: add ?options=-csearch_path%3D{schema}; "
        f"MySQL: name the database {schema} in the URL) and set {variable}={table}"
    )


def _problem(variable: str, name: str) -> str | None:
    if not name.strip():
        return "is empty; give a table name"
    if "." in name:
        return qualified_problem(variable, name)
    if name.lower().startswith(RESERVED_PREFIX):
        return f"names starting with {RESERVED_PREFIX} are processor's own tables (its ledger); choose another name"
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        return f"is longer than the {MAX_IDENTIFIER_BYTES} bytes a table name may have; the database would cut it"
    if variable == "DEST_TABLE" and normalise_name(name) != name:
        return f"would be stored as {normalise_name(name) or 'data'!r}; set DEST_TABLE={normalise_name(name) or 'data'}"
    return None


def _view_clashes(settings: Any) -> list[str]:
    """The deals view may not take the name of a staging table the configuration names."""
    return [
        f"DEALS_VIEW={settings.deals_view!r} is the staging table of {variable}; building the deals would "
        "replace it: choose another name"
        for attr, variable in STAGING_VARIABLES.items()
        if getattr(settings, attr) == settings.deals_view
    ]
