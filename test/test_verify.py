"""The value check beside a bulk load: a batch passes at once only when every value would pass one by one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from processor.schema import UNBOUNDED, ColumnType, classify, is_null, plain_pattern
from processor.staging.files import CsvFormat
from processor.staging.target import Target
from processor.staging.verify import verifying

COLUMNS = {
    "integer": ColumnType("integer", 19, 0),
    "decimal": ColumnType("decimal", UNBOUNDED, UNBOUNDED),
    "narrow decimal": ColumnType("decimal", 4, 2),
    "double": ColumnType("double"),
    "date": ColumnType("date"),
    "timestamp": ColumnType("timestamp"),
}
VALUES = [
    "0",
    "7",
    "-12",
    "007",
    "+7",
    "-0",
    " 7",
    "",
    "12\n34",
    "1\n",
    "\n",
    "1.50",
    "-0.5",
    "-0.0",
    "12345.5",
    "1.234",
    "1e5",
    "123456789012345678",
    "1234567890123456789",
    "99999999999999999999",
    "2020-01-05",
    "2020-01-05 10:00:00",
    "2020-01-05T10:00:00.123",
    "2020-01-05T10:00:00+02:00",
    "2020-02-30",
    "2020-12-31 23:59:60",
    "2020-01-05 24:00:00",
    "2020-01-05\n2020-01-06",
    "NULL",
]


def _file(values: list[str]) -> bytes:
    lines = ["id,v", *(f'{i},"{value}"' for i, value in enumerate(values))]
    return ("\n".join(lines) + "\n").encode()


def _misfit(column: ColumnType, values: list[str]) -> str | None:
    target = Target("t", "f.csv", ("id", "v"), (ColumnType("integer", 19, 0), column))
    fmt = CsvFormat("utf-8", ",", "\n", header=True)
    with verifying(target, fmt) as verifier:
        verifier.feed(_file(values))
        return verifier.finish()


def _fits(column: ColumnType, value: str) -> bool:
    """The rule value by value: the plain form (the database proves a date's calendar), else classify."""
    import pyarrow.compute as pc

    pattern = plain_pattern(column)
    if pattern and pc.match_substring_regex([value.encode()], pattern)[0].as_py():
        return True
    return is_null(value, column, frozenset(), False) or column.accepts(classify(value))


@pytest.mark.parametrize("kind", sorted(COLUMNS))
@pytest.mark.parametrize("value", VALUES)
def test_a_batch_fails_exactly_when_one_of_its_values_would(kind, value):
    column = COLUMNS[kind]
    plain = {"integer": "5", "decimal": "5.25", "narrow decimal": "5.25", "double": "5.5"}.get(kind, "2020-01-01")
    if kind == "timestamp":
        plain = "2020-01-01 00:00:00"
    values = [plain] * 50 + [value] + [plain] * 50
    problem = _misfit(column, values)
    assert (problem is None) == _fits(column, value), (kind, value, problem)


def test_a_clean_batch_passes():
    assert _misfit(COLUMNS["integer"], ["1", "", "-3", "0"] * 100) is None


def test_a_row_of_another_width_fails_the_check():
    target = Target("t", "f.csv", ("id", "v"), (ColumnType("integer", 19, 0), ColumnType("integer", 19, 0)))
    fmt = CsvFormat("utf-8", ",", "\n", header=True)
    for tail, found in ((b"9,9,\n", 3), (b"9\n", 1)):
        with verifying(target, fmt) as verifier:
            verifier.feed(b"id,v\n" + b"1,2\n" * 100 + tail + b"3,4\n")
            assert verifier.finish() == f"a row has {found} fields, not 2"


def test_the_check_does_not_import_pandas():
    """pyarrow imports pandas when it converts Python values: 0.1 s and 30 MB for every load that checks."""
    code = (
        "import sys\n"
        "from processor.schema import ColumnType\n"
        "from processor.staging.files import CsvFormat\n"
        "from processor.staging.target import Target\n"
        "from processor.staging.verify import verifying\n"
        "target = Target('t', 'f.csv', ('id', 'v'), (ColumnType('integer', 19, 0), ColumnType('date')))\n"
        "with verifying(target, CsvFormat('utf-8', ',', '\\n', header=True)) as verifier:\n"
        "    verifier.feed(b'id,v\\n' + b'1,2020-01-01\\n' * 1000 + b'007,2020-01-01\\n')\n"
        "    assert 'holds' in verifier.finish()\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)


@pytest.mark.parametrize("at", [1, 8191, 8192, 8193, 29_999])
def test_a_misfit_is_found_wherever_batches_are_joined(at):
    """Batches of a 256 KB block are checked a few together: a value anywhere among them is found."""
    values = [str(i + 1) for i in range(30_000)]
    values[at] = "007"
    assert "'007'" in _misfit(COLUMNS["integer"], values)
    values[at] = str(at + 1)
    assert _misfit(COLUMNS["integer"], values) is None


def test_a_verdict_before_the_last_byte_lets_the_process_exit():
    """A row of another width early in a big file ends the check while the loader still reads: the parser's
    read-ahead thread waited for bytes no one would send, and the command hung at exit after its summary."""
    code = (
        "import time\n"
        "from processor.schema import ColumnType\n"
        "from processor.staging.files import CsvFormat\n"
        "from processor.staging.target import Target\n"
        "from processor.staging.verify import verifying\n"
        "target = Target('t', 'f.csv', ('id', 'v'), (ColumnType('integer', 19, 0), ColumnType('text')))\n"
        "rows = b''.join(b'%d,row%d\\n' % (i, i) for i in range(300_000))\n"
        "data = b'id,v\\n' + rows[:100_000] + b'77\\n' + rows[100_000:]\n"
        "with verifying(target, CsvFormat('utf-8', ',', '\\n', header=True)) as verifier:\n"
        "    for start in range(0, len(data), 1 << 18):\n"
        "        verifier.feed(data[start : start + (1 << 18)])\n"
        "        for _ in range(100):  # the loader goes on reading while the check works\n"
        "            if verifier.problem is None:\n"
        "                time.sleep(0.01)\n"
        "    assert verifier.finish() == 'a row has 1 fields, not 2'\n"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=60)
