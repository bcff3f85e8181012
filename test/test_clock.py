"""Clock times a timestamp column would not give back, on SQLite, PostgreSQL and MySQL: PostgreSQL's parser reads
`24:00:00` as the next day and a leap second `23:59:60` as the next minute, so after the sample such a value makes
its column text, holding the very text, like any other value the column could not keep."""

import datetime as dt

import pytest
from helpers import ledger_rows, load_column, reject_rows

CASES = {
    "leap_second": ["2020-12-31 23:59:59", "2020-12-31 23:59:60"],
    "leap_second_with_fraction": ["2020-12-31 23:59:59", "2020-12-31T23:59:60.5"],
    "midnight_as_24": ["2020-01-05 10:00:00", "2020-01-05 24:00:00"],
}
WHERE = {"in_sample": {}, "after_sample": {"sample_rows": 2}}  # a sample of 2 reads only the first data row


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("case", CASES)
def test_a_clock_time_out_of_range_makes_its_column_text(case, where, tmp_path, db_url, make_settings, engine_of):
    values = CASES[case]
    engine = engine_of(db_url)
    report, stored = load_column(make_settings, tmp_path / "src", db_url, engine, values, **WHERE[where])
    assert stored == values
    assert report.exit_code == 0
    entry = ledger_rows(engine)["v.csv"]
    assert (entry["status"], entry["rows_loaded"], entry["rows_rejected"]) == ("loaded", len(values), 0)
    assert reject_rows(engine) == []


def test_a_valid_clock_time_keeps_its_timestamp_column(tmp_path, db_url, make_settings, engine_of):
    values = ["2020-01-05 00:00:00", "2020-01-05 23:59:59.999999", "2020-01-06T19:09:09"]
    report, stored = load_column(make_settings, tmp_path / "src", db_url, engine_of(db_url), values, sample_rows=2)
    assert report.exit_code == 0
    if isinstance(stored[0], str):  # SQLite keeps a timestamp's text
        assert stored == values
    else:
        assert stored == [dt.datetime.fromisoformat(v) for v in values]
