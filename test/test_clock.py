"""Clock times a timestamp column would not give back, on SQLite, PostgreSQL and MySQL: PostgreSQL's parser reads
`24:00:00` as the next day and a leap second `23:59:60` as the next minute, so after the sample such a value makes
its column text, holding the very text, like any other value the column could not keep."""

import datetime as dt

import pytest
import sqlalchemy as sa
from helpers import ledger_rows, reject_rows, run_load, write_bytes

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
    write_bytes(tmp_path / "src" / "v.csv", ("id,v\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values))).encode())
    report = run_load(make_settings, tmp_path / "src", db_url, **WHERE[where])
    engine = engine_of(db_url)
    with engine.connect() as conn:
        stored = [v for _id, v in conn.execute(sa.text("SELECT id, v FROM v ORDER BY id"))]
    assert stored == values
    assert report.exit_code == 0
    entry = ledger_rows(engine)["v.csv"]
    assert (entry["status"], entry["rows_loaded"], entry["rows_rejected"]) == ("loaded", len(values), 0)
    assert reject_rows(engine) == []


def test_a_valid_clock_time_keeps_its_timestamp_column(tmp_path, db_url, make_settings, engine_of):
    values = ["2020-01-05 00:00:00", "2020-01-05 23:59:59.999999", "2020-01-06T19:09:09"]
    write_bytes(tmp_path / "src" / "v.csv", ("id,v\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values))).encode())
    assert run_load(make_settings, tmp_path / "src", db_url, sample_rows=2).exit_code == 0
    with engine_of(db_url).connect() as conn:
        stored = [v for _id, v in conn.execute(sa.text("SELECT id, v FROM v ORDER BY id"))]
    if isinstance(stored[0], str):  # SQLite keeps a timestamp's text
        assert stored == values
    else:
        assert stored == [dt.datetime.fromisoformat(v) for v in values]
