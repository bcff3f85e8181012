"""Header cleaning, type inference and widening (pure)."""

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.schema import (
    DATE,
    DOUBLE,
    EMPTY,
    TEXT,
    TIMESTAMP,
    UNBOUNDED,
    ColumnType,
    classify,
    column_names,
    join,
    normalise_name,
    nullish,
    parse_type_spec,
    plain_pattern,
    sampled_values,
    stored_type,
    table_name_for,
    types_of,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        (" first_name", "first_name"),
        ("First Name", "first_name"),
        ("LMK_KEY", "lmk_key"),
        ("raceId", "race_id"),
        ("fastestLapTime", "fastest_lap_time"),
        ("CO2_EMISS_CURR_PER_FLOOR_AREA", "co2_emiss_curr_per_floor_area"),
        ('x"; DROP TABLE users; --', "x_drop_table_users"),
        ("Prénom", "prénom"),
        ("a  -  b", "a_b"),
        ("_source_file", "source_file"),
        ("", ""),
    ],
)
def test_normalise_name(raw, expected):
    assert normalise_name(raw) == expected


def test_column_names_make_duplicates_and_empty_names_unique_and_stable():
    assert column_names(["id", "", "ID", "id_2", " ", "name"]) == [
        "id",
        "column_2",
        "id_2",
        "id_2_2",
        "column_5",
        "name",
    ]


def test_long_names_fit_postgres_limit_and_stay_distinct():
    first, second = column_names(["x" * 80 + "a", "x" * 80 + "b"])
    assert len(first.encode()) <= 63 and len(second.encode()) <= 63
    assert first != second


@pytest.mark.parametrize(
    "path, table",
    [
        ("raw_customers.csv", "raw_customers"),
        ("2020/q1/certificates.csv", "certificates"),
        ("a;drop.csv", "a_drop"),
        ("dump/Raw Orders.csv.gz", "raw_orders"),
        ("x.zip/inner/payments.csv", "payments"),
        ("1058.csv", "1058"),
    ],
)
def test_table_name_for(path, table):
    assert table_name_for(path) == table


@pytest.mark.parametrize(
    "value, kind",
    [
        ("0", "integer"),
        ("-42", "integer"),
        ("9223372036854775807", "integer"),
        ("9223372036854775808", "text"),  # beyond 64 bits
        ("962345615852014042810151896240515", "text"),  # an EPC LMK_KEY
        ("00123", "text"),  # leading zeros would be lost
        ("+5", "text"),
        ("-0", "text"),
        ("1.50", "decimal"),
        ("-0.5", "decimal"),
        ("-0.0", "text"),
        (".5", "text"),
        ("5.", "text"),
        ("1e5", "double"),
        ("2.5E-3", "double"),
        ("1e-307", "double"),
        ("0E-400", "double"),  # zero however it is written
        ("1e-400", "text"),  # a double would hold 0
        ("2.2e-308", "text"),  # below the normal range a double keeps fewer digits
        ("4.9e-324", "text"),
        ("1e400", "text"),  # a double would hold infinity
        ("-2E999", "text"),
        ("1.2345678901234567E3", "text"),  # 17 digits, a double keeps 15
        ("2020-02-29", "date"),
        ("2021-02-29", "text"),  # not a real day
        ("2020-01-05 10:00:00", "timestamp"),
        ("2020-01-05T10:00:00.123456", "timestamp"),
        ("2020-01-05 10:00", "text"),  # no seconds
        ("2020-01-05T10:00:00+02:00", "text"),  # an offset the column could not keep
        ("NaN", "text"),
        ("true", "text"),
        (" 7", "text"),
    ],
)
def test_classify_keeps_only_values_the_database_writes_back_unchanged(value, kind):
    assert classify(value).kind == kind


def test_infer_types_on_mixed_and_empty_columns():
    rows = [["1", "00123", "", "2020-01-01", "1.5", "x"], ["2", "00456", "", "2020-01-02 10:00:00", "2", "3"]]
    types = types_of(sampled_values(rows, 6))
    assert [t.kind for t in types] == ["integer", "text", "empty", "timestamp", "decimal", "text"]
    assert types[4] == ColumnType("decimal", 1, 1)


def test_null_markers_do_not_make_a_column_text():
    rows = [["1", "N/A"], ["N/A", "2020-01-01"]]
    assert [t.kind for t in types_of(sampled_values(rows, 2), frozenset({"N/A"}))] == ["integer", "date"]


def test_nullish_names_the_stand_ins_for_nothing_each_column_held():
    rows = [["1", "", "NULL", "x", "N/A"], ["2", "5", "y", "NULLABLE", "3"], ["short"]]
    found = nullish(sampled_values(rows, 5), frozenset({"N/A"}))
    assert found == [frozenset(), {""}, {"NULL"}, frozenset(), {"N/A"}]


@pytest.mark.parametrize(
    "a, b, expected",
    [
        (EMPTY, ColumnType("integer", 3), ColumnType("integer", 3)),
        (ColumnType("integer", 3), ColumnType("decimal", 2, 4), ColumnType("decimal", 3, 4)),
        (ColumnType("integer", 3), DOUBLE, DOUBLE),
        (ColumnType("decimal", 10, 10), DOUBLE, TEXT),  # 20 exact digits do not fit a float
        (DATE, TIMESTAMP, TIMESTAMP),
        (DATE, ColumnType("integer", 1), TEXT),
        (TEXT, DATE, TEXT),
    ],
)
def test_join_widens_to_the_common_type(a, b, expected):
    assert join(a, b) == expected
    assert join(b, a) == expected


def test_stored_type_depends_on_the_database():
    long_decimal = ColumnType("decimal", 12, 8)
    assert stored_type(long_decimal, "sqlite") == TEXT  # a REAL keeps 15 digits
    assert stored_type(long_decimal, "postgresql").kind == "decimal"
    assert stored_type(long_decimal, "mysql") == ColumnType("decimal", 57, 8)
    assert stored_type(ColumnType("decimal", 1, 40), "mysql") == TEXT  # beyond DECIMAL's 30 places
    assert stored_type(ColumnType("decimal", 60, 8), "mysql") == TEXT  # beyond DECIMAL's 65 digits
    assert stored_type(ColumnType("decimal", 1, 16384), "postgresql") == TEXT  # beyond NUMERIC's 16,383 places
    assert stored_type(ColumnType("decimal", 1, 16383), "postgresql").kind == "decimal"


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("text", TEXT),
        ("numeric(12,2)", ColumnType("decimal", 10, 2)),
        ("Integer", ColumnType("integer", 19, 0)),
        ("datetime", TIMESTAMP),
    ],
)
def test_parse_type_spec(spec, expected):
    assert parse_type_spec(spec) == expected


@pytest.mark.parametrize("spec", ["blob", "numeric(2,5)", "text(3)", ""])
def test_parse_type_spec_rejects_unknown_types(spec):
    with pytest.raises(ValueError):
        parse_type_spec(spec)


PLAIN_PATTERN_COLUMNS = [
    ColumnType("integer", 19, 0),
    ColumnType("decimal", UNBOUNDED, UNBOUNDED),
    ColumnType("decimal", 63, 2),
    ColumnType("decimal", 3, 1),
    DOUBLE,
    DATE,
    TIMESTAMP,
]


@pytest.mark.parametrize("column", PLAIN_PATTERN_COLUMNS, ids=lambda c: f"{c.kind}-{c.digits}-{c.scale}")
@settings(max_examples=400, deadline=None)
@given(value=st.text(alphabet="0123456789-+.eE :T", max_size=30))
def test_a_value_in_its_columns_plain_pattern_fits_the_column_unchanged(column, value):
    """The verifier lets pattern matches through unchecked, so the pattern must never admit a misfit."""
    if re.fullmatch(plain_pattern(column), value) and column.kind not in ("date", "timestamp"):
        assert column.accepts(classify(value)), value


@pytest.mark.parametrize(
    ("column", "value"),
    [
        (DATE, "2020-01-05"),
        (TIMESTAMP, "2020-01-05 10:00:00.5"),
        (TIMESTAMP, "2020-01-05"),
        (DOUBLE, "-1234567.12345678"),
    ],
)
def test_plain_dates_and_numbers_match_their_pattern(column, value):
    assert re.fullmatch(plain_pattern(column), value)
    assert column.accepts(classify(value))


@settings(max_examples=500, deadline=None)
@given(
    mantissa=st.from_regex(r"-?(0|[1-9][0-9]{0,19})(\.[0-9]{1,19})?", fullmatch=True),
    exponent=st.integers(-420, 420),
)
def test_a_value_typed_double_reads_back_as_the_same_number(mantissa, exponent):
    """Whatever the exponent and the digits: a double column gives back the number the file wrote, or the
    value is text (never 0 for 1e-400, never infinity, never a rounded 17th digit)."""
    value = f"{mantissa}e{exponent}"
    if classify(value) == DOUBLE:
        assert Decimal(repr(float(value))) == Decimal(value)
