"""A CLI that explains itself: --help wrapped to the terminal, a progress bar in bytes, an end summary
that names source and destination with totals, and rows per second measured honestly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import run_index, sample_copy, write_csv

from processor import meter
from processor.errors import EXIT_CODES
from processor.pipeline import STEPS
from processor.staging.loader import load
from processor.staging.report import covered


@pytest.mark.parametrize("columns", [200, 72])
def test_help_lists_steps_exit_codes_and_env_file_within_the_terminal(tmp_path, columns):
    done = run_index(tmp_path, "--help", env={"COLUMNS": str(columns)})
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= min(columns, 100)
    text = done.stdout
    for step in STEPS:
        assert re.search(rf"^  (\(none\), )?{step}\b", text, re.MULTILINE), step
    section = text.split("exit codes:")[1].split("environment variables:")[0]
    assert [int(m) for m in re.findall(r"^  (\d+) ", section, re.MULTILINE)] == [code for code, _ in EXIT_CODES]
    assert "extra to install" in " ".join(section.split())  # exit 2 is also a feature whose extra is missing
    assert ".env" in text


def test_the_summary_names_source_and_destination_gives_totals_and_no_schema_lines(tmp_path):
    src = sample_copy(tmp_path)
    done = run_index(tmp_path, "load", env={"SRC_DATA_FOLDER": str(src), "LOAD_WORKERS": "1"})
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == f"source: {src} (*.csv)"
    assert out[1].startswith("destination: sqlite:///processor.db")
    assert "  total: 420 rows from 3 file(s) into 3 tables, 0 rejected" in out
    assert not [line for line in out if "schema:" in line]  # logged once, as they happened
    assert done.stderr.count("schema: created table") == 3
    rates = [line for line in out if "rows/s over" in line]
    assert len(rates) == 3 and "per worker" not in done.stdout


def test_the_progress_bar_counts_bytes(tmp_path):
    src = write_csv(tmp_path / "src" / "one.csv", ["id", "name"], [[i, f"name {i}"] for i in range(5000)]).parent
    done = run_index(tmp_path, "load", env={"SRC_DATA_FOLDER": str(src), "PROGRESS": "1", "LOAD_WORKERS": "1"})
    assert done.returncode == 0, done.stderr
    last = [part for part in re.split(r"[\r\n]", done.stderr) if part.startswith("staging")][-1]
    assert "files=1/1" in last and "rows=5,000" in last
    size = (src / "one.csv").stat().st_size  # 68,894 bytes: tqdm shows 67.3k (1024-based)
    assert f"{size / 1024:.1f}k/{size / 1024:.1f}k" in last


class _Counter:
    """What multiprocessing.Value offers the meter: a value and a lock; keeps every value it held."""

    def __init__(self):
        self.value = 0
        self.seen = [0]

    def get_lock(self):
        counter = self

        class Lock:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                counter.seen.append(counter.value)

        return Lock()


def test_a_file_meter_counts_each_byte_once_up_to_the_file_size():
    counter = _Counter()
    meter.install(counter)
    try:
        with meter.loading(100) as metered:
            metered.add(60)
            metered.restart()  # a retry reads the file again from its start: nothing counted twice
            metered.add(80)
            metered.add(80)  # the careful path may read past what the bulk path did; never past the size
            assert counter.value == 100
        assert counter.value == 0  # the finished file is counted by its size in the parent
        assert max(counter.seen) == 100
    finally:
        meter.install(None)


def test_a_file_meter_takes_the_shared_lock_once_a_step_not_once_a_read():
    counter = _Counter()
    meter.install(counter)
    size = 10 * meter.STEP + 123
    try:
        with meter.loading(size) as metered:
            for _ in range(size // 8192 + 1):  # a driver reading 8 KB at a time
                metered.add(8192)
            assert counter.value == size
        # ten whole steps, the rest at the file's end, and the release: not the 1,281 reads
        taken = counter.seen[1:]  # the first is the value the counter started with
        assert (
            len(taken) == 12 and taken[:3] == [meter.STEP, 2 * meter.STEP, 3 * meter.STEP] and taken[-2:] == [size, 0]
        )
    finally:
        meter.install(None)


def test_loading_a_file_moves_the_meter_through_its_bytes(tmp_path, make_settings):
    counter = _Counter()
    src = write_csv(tmp_path / "src" / "big.csv", ["id", "name"], [[i, f"name {i}"] for i in range(20000)]).parent
    meter.install(counter)
    try:
        report = load(make_settings(src_data_folder=str(src)))
    finally:
        meter.install(None)
    assert report.rows_loaded == 20000
    assert max(counter.seen) == (src / "big.csv").stat().st_size and counter.value == 0


def test_covered_time_counts_overlapping_spans_once():
    assert covered([]) == 0
    assert covered([(0, 2), (1, 3), (5, 6)]) == 4
    assert covered([(5, 6), (0, 10)]) == 10


def test_rows_per_second_count_only_the_time_a_file_held_the_table(tmp_path, make_settings):
    """Two identical files into two tables of one SQLite file, two workers: SQLite lets one write at a time,
    so a file waits for the other's lock. Its rate must not count the wait (it swung 12x when it did)."""
    rows = [[i, f"name {i}", i * 1.5] for i in range(30000)]
    src = tmp_path / "src"
    for name in ("a.csv", "b.csv"):
        write_csv(src / name, ["id", "name", "amount"], rows)
    report = load(make_settings(src_data_folder=str(src), load_workers=2, dest_sql=f"sqlite:///{tmp_path / 'x.db'}"))
    a, b = sorted(report.loaded, key=lambda f: f.path)
    assert a.spans and b.spans
    # the spans of the two files never overlap: each is time holding SQLite's one write lock
    for start, end in a.spans:
        for other_start, other_end in b.spans:
            assert end <= other_start + 1e-3 or other_end <= start + 1e-3
    tables = report.tables()
    for result in (a, b):
        table = tables[result.table]
        assert table.seconds == pytest.approx(covered(result.spans))
        assert table.rows_per_second == pytest.approx(30000 / table.seconds)


def test_the_readme_lists_every_exit_code_the_help_does():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Exit codes")[1].split("###")[0]
    listed = {int(code) for row in re.findall(r"^\| ([\d /]+) \|", table, re.MULTILINE) for code in row.split("/")}
    assert listed == {code for code, _ in EXIT_CODES}
