"""One big file on several workers: byte ranges at row boundaries, and the file's guarantees kept."""

import hashlib

import pytest
from helpers import count, ledger_rows, read_table, reject_rows, run_load, write_bytes

SPLIT = {"split_min_bytes": 4000, "load_workers": 2}


@pytest.fixture(params=["postgres", "mysql"])
def server_url(request):
    return request.getfixturevalue(f"{request.param}_url")


def big_csv(rows: int, bad_lines: dict[int, bytes] | None = None) -> tuple[bytes, list[tuple], list[int]]:
    """A CSV with a quoted newline in every fifth row, and bad lines put in at (or just after) the given
    line numbers; returns the bytes, the rows a load must keep, and the lines the bad ones landed on."""
    pending = sorted((bad_lines or {}).items())
    lines, kept, landed, line = [b"id,note,amount"], [], [], 2
    for i in range(rows):
        while pending and pending[0][0] <= line:
            lines.append(pending.pop(0)[1])
            landed.append(line)
            line += 1
        note = f"multi\nline {i}" if i % 5 == 0 else f"note {i}, plain"
        lines.append(f'{i},"{note}",{i * 3}'.encode())
        kept.append((i, note, i * 3))
        line += 1 + note.count("\n")
    return b"\n".join(lines) + b"\n", kept, landed


def test_a_big_file_loads_in_ranges_with_every_row_once(tmp_path, server_url, make_settings, engine_of):
    data, kept, _ = big_csv(2000)
    write_bytes(tmp_path / "src" / "big.csv", data)
    report = run_load(make_settings, tmp_path / "src", server_url, **SPLIT)
    [result] = report.files
    assert result.status == "loaded" and "ranges" in result.method
    assert result.rows_loaded == 2000
    engine = engine_of(server_url)
    rows = read_table(engine, "big", order_by="id", columns=["id", "note", "amount"])
    assert [(r["id"], r["note"], r["amount"]) for r in rows] == kept
    entry = ledger_rows(engine)["big.csv"]
    assert entry["status"] == "loaded" and entry["rows_loaded"] == 2000
    assert entry["content_hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
    again = run_load(make_settings, tmp_path / "src", server_url, **SPLIT)
    assert [f.status for f in again.files] == ["skipped"]


def test_rejects_in_ranges_keep_their_line_numbers(tmp_path, server_url, make_settings, engine_of):
    data, kept, landed = big_csv(2000, {40: b"oops,too,many,fields", 2300: b"short"})
    write_bytes(tmp_path / "src" / "big.csv", data)
    report = run_load(make_settings, tmp_path / "src", server_url, **SPLIT)
    [result] = report.files
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("loaded", 2000, 2)
    engine = engine_of(server_url)
    rejects = reject_rows(engine, "big.csv")
    text = data.decode().split("\n")
    assert [(r["line"], r["raw"]) for r in rejects] == list(zip(landed, ["oops,too,many,fields", "short"], strict=True))
    assert [text[r["line"] - 1] for r in rejects] == ["oops,too,many,fields", "short"]
    assert count(engine, "big") == 2000


def test_a_failing_range_removes_the_whole_file(tmp_path, server_url, make_settings, engine_of):
    bad = {line: b"x" for line in range(100, 2400, 150)}  # rejects spread over every range
    data, _, landed = big_csv(2000, bad)
    assert len(landed) == len(bad)
    write_bytes(tmp_path / "src" / "big.csv", data)
    write_bytes(tmp_path / "src" / "small.csv", b"id,note,amount\n1,a,2\n")
    report = run_load(make_settings, tmp_path / "src", server_url, dest_table="big", max_errors=5, **SPLIT)
    results = {f.path: f for f in report.files}
    assert results["big.csv"].status == "failed" and "MAX_ERRORS=5" in results["big.csv"].error
    assert results["small.csv"].status == "loaded"
    engine = engine_of(server_url)
    assert count(engine, "big", "WHERE _source_file = 'big.csv'") == 0
    assert count(engine, "big") == 1
    assert ledger_rows(engine)["big.csv"]["status"] == "failed"


def test_a_changed_big_file_replaces_its_rows(tmp_path, server_url, make_settings, engine_of):
    data, _, _ = big_csv(2000)
    write_bytes(tmp_path / "src" / "big.csv", data)
    run_load(make_settings, tmp_path / "src", server_url, **SPLIT)
    data, kept, _ = big_csv(1500)
    write_bytes(tmp_path / "src" / "big.csv", data)
    report = run_load(make_settings, tmp_path / "src", server_url, **SPLIT)
    assert report.files[0].rows_loaded == 1500
    assert count(engine_of(server_url), "big") == 1500


def test_a_range_widens_a_column_its_sample_missed(tmp_path, server_url, make_settings, engine_of):
    data, kept, _ = big_csv(2000)
    data = data.replace(b"1999,note 1999, plain,5997", b'1999,"note 1999, plain",n/a')
    data = data.replace(b'1999,"note 1999, plain",5997', b'1999,"note 1999, plain",n/a')
    write_bytes(tmp_path / "src" / "big.csv", data)
    report = run_load(make_settings, tmp_path / "src", server_url, sample_rows=10, **SPLIT)
    assert report.files[0].status == "loaded" and report.files[0].rows_loaded == 2000
    rows = read_table(engine_of(server_url), "big", order_by="id", columns=["id", "amount"])
    assert rows[-1] == {"id": 1999, "amount": "n/a"} and rows[0] == {"id": 0, "amount": "0"}
