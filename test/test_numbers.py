"""Numbers a column cannot hold exactly, on SQLite, PostgreSQL and MySQL: each reads back as the number the file
wrote, or its column is text holding the very text; never a 0, never a reject for a valid number."""

from decimal import Decimal

import pytest
from helpers import ledger_rows, load_column, reject_rows

# name -> the values of one column, in file order (the first is an ordinary one, so a sample of one row types it)
CASES = {
    "underflow": ["1E5", "2.5E-3", "1e-400"],
    "below_the_normal_range": ["1E5", "4.9e-324", "2.2e-308"],
    "overflow": ["1E5", "1e400", "-2E999"],
    "more_digits_than_a_double_keeps": ["1E5", "1.2345678901234567E3"],
    "more_digits_than_a_real_keeps": ["1.5", "3.14159265358979323846"],
    "scale_beyond_mysql_decimal": ["1.5", "0." + "1234567890" * 4],
    "precision_beyond_mysql_decimal": ["1.5", "1234567890" * 6 + ".12345678"],
    "scale_beyond_postgres_numeric": ["1.5", "0." + "3" * 16400],
}
WHERE = {"in_sample": {}, "after_sample": {"sample_rows": 2}}  # a sample of 2 reads only the first data row


def _equal(stored, written: str) -> bool:
    """The value reads back as written: the very text in a text column, the same number in a numeric one."""
    if isinstance(stored, str):
        return stored == written
    if isinstance(stored, float):
        return Decimal(repr(stored)) == Decimal(written)
    return Decimal(stored) == Decimal(written)  # int or Decimal, compared exactly


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("case", CASES)
def test_a_number_reads_back_as_written_or_its_column_is_text(case, where, tmp_path, db_url, make_settings, engine_of):
    values = CASES[case]
    engine = engine_of(db_url)
    report, stored = load_column(make_settings, tmp_path / "src", db_url, engine, values, **WHERE[where])
    assert len(stored) == len(values)
    for value, written in zip(stored, values, strict=True):
        assert value is not None and _equal(value, written), (value, written[:40])
    assert report.exit_code == 0
    entry = ledger_rows(engine)["v.csv"]
    assert (entry["status"], entry["rows_loaded"], entry["rows_rejected"]) == ("loaded", len(values), 0)
    assert reject_rows(engine) == []
