"""The peer benchmark's judge (bench/peers/exact.py): which values read back count as kept,
reformatted or changed. Its verdicts go into BENCHMARKS.md, so they are pinned here."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from peers.exact import CHANGED, KEPT, REFORMATTED, compare, verdict  # noqa: E402

CASES = {
    "code-loses-leading-zeros": ("007", 7, CHANGED),
    "code-kept-as-text": ("007", "007", KEPT),
    "integer-past-2**53-through-a-float": ("9007199254740993", 9007199254740992.0, CHANGED),
    "decimal-kept-with-its-scale": ("10.50", Decimal("10.50"), KEPT),
    "decimal-as-float-drops-trailing-zero": ("10.50", 10.5, REFORMATTED),
    "decimal-rounded": ("3428605135.239701014", Decimal("3428605135.2397010"), CHANGED),
    "integer-as-float": ("3", 3.0, REFORMATTED),
    "empty-as-null": ("", None, KEPT),
    "empty-as-empty-string": ("", "", KEPT),
    "empty-as-zero": ("", 0, CHANGED),
    "null-word-as-null": ("NULL", None, CHANGED),
    "date-kept": ("2024-02-29", date(2024, 2, 29), KEPT),
    "date-as-midnight-timestamp": ("2024-02-29", datetime(2024, 2, 29), REFORMATTED),
    "date-as-text-with-time-and-offset": ("2024-02-29", "2024-02-29 00:00:00+00:00", REFORMATTED),
    "offset-kept-as-same-instant": ("2020-01-05T10:00:00+02:00", datetime(2020, 1, 5, 8, tzinfo=UTC), REFORMATTED),
    "offset-dropped": ("2020-01-05T10:00:00+02:00", datetime(2020, 1, 5, 10), CHANGED),
    "offset-as-utc-wall-clock": ("2020-01-05T10:00:00+02:00", datetime(2020, 1, 5, 8), REFORMATTED),
    "timestamp-kept": ("2020-01-05 10:00:00.123400", datetime(2020, 1, 5, 10, 0, 0, 123400), KEPT),
    "timestamp-as-text-with-micros": ("2020-01-05 10:00:00", "2020-01-05 10:00:00.000000", REFORMATTED),
    "crlf-inside-a-field-to-lf": ("a\r\nb", "a\nb", CHANGED),
    "combining-accent-normalised": ("e\u0301", "é", CHANGED),
    "huge-integer-as-float-text": ("243219004546618414012314642266", "2.4321900454661842e+29", CHANGED),
}


@pytest.mark.parametrize(("text", "value", "expected"), CASES.values(), ids=CASES.keys())
def test_verdict(text, value, expected):
    assert verdict(text, value) == expected


def test_compare_counts_missing_rows_and_columns_as_changed():
    header = ["id", "code", "note"]
    rows = [["1", "007", ""], ["2", "010", "x"]]
    check = compare(header, rows, ["id", "code"], [(1, "007")])
    assert check.rows_back == 1
    assert check.counts == {KEPT: 1, CHANGED: 3}  # row 1's note column is missing; row 2 is missing
    assert check.changed_by_column == {"note": 2, "code": 1}
    assert check.column_examples["code"] == ("010", "(row missing)")
