"""Files that a database's own loader reads otherwise than our reader, on SQLite, PostgreSQL and MySQL.

Each case is loaded as a user would (the bulk path first) and once more through the careful path
alone; both must give the values Python's csv module reads from the file, the same rejects and
the same exit code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from helpers import count, index_env, ledger_rows, read_table, reject_rows, run_index, run_load, write_bytes
from test_hostile import text_of

from processor.staging import profile, worker

HEAD = 4096  # the profile's head, small here so that small files have a part beyond it
ASCII_ROWS = b"".join(b"%d,name %d\n" % (i, i) for i in range(1, 1001))  # 14 KB: beyond the head
TYPED_ROWS = b"".join(b"%d,%d\n" % (i, i) for i in range(1, 51))
TYPED = {"infer_types": True, "sample_rows": 10}  # integers, from a sample that misses the last rows


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    rows: list[tuple]
    rejected: tuple[int, ...] = ()
    reason: str = ""  # words every reject's reason holds
    settings: dict = field(default_factory=dict)
    more_rows: int = 0  # plain rows loaded beside `rows`, not compared one by one


CASES = [
    # PostgreSQL's COPY ends its input at a line that is just \.
    Case("end_marker", b"code\nA\n\\.\nB\n", [("A",), ("B",), ("\\.",)]),
    Case("end_marker_rows_after", b"id,v\n1,a\n\\.\n2,b\n", [("1", "a"), ("2", "b")], (3,), "expected 2 fields"),
    Case("end_marker_crlf", b"id,v\r\n1,a\r\n\\.\r\n2,b\r\n", [("1", "a"), ("2", "b")], (3,), "expected 2 fields"),
    # a quote inside an unquoted field is a plain character (COPY would open a quoted section)
    Case("inch_marks", b'id,item\n1,5" x 7" frame\n', [("1", '5" x 7" frame')]),
    Case(
        "quotes_inside_unquoted_fields",
        b'id,item,n\n1,a"b,c"d,6\n2,plain,7\n',
        [("2", "plain", "7")],
        (2,),
        "expected 3 fields, found 4",
    ),
    Case("doubled_quote_in_unquoted_field", b'id,v\n1,a""b\n2,c\n', [("1", 'a""b'), ("2", "c")]),
    # text after a closing quote: ours reads `"x"y` as xy (LOAD DATA would read on to `x"y,"z`)
    Case("text_after_closing_quote", b'id,a,b\n1,"x"y,"z",w\n2,p,q\n', [("2", "p", "q")], (2,), "found 4"),
    # a field beyond the header's is a wrong number of fields (LOAD DATA drops an empty one)
    Case("trailing_delimiter", b"c0,c1\n1,2,\n3,4\n", [("3", "4")], (2,), "expected 2 fields, found 3"),
    Case("trailing_delimiter_at_the_end", b"c0\na\nb,", [("a",)], (3,), "expected 1 fields, found 2"),
    Case("extra_null_field", b"c0,c1\n1,NULL\n2,x,NULL\n", [("1", "NULL")], (3,), "found 3"),
    # the same in typed columns, after the sample: the value check beside the load finds the row
    Case(
        "typed_trailing_delimiter_after_the_sample",
        b"id,n\n" + TYPED_ROWS + b"51,7,\n52,8\n",
        [("52", "8")],
        (52,),
        "expected 2 fields, found 3",
        TYPED,
        more_rows=50,
    ),
    Case(
        "typed_short_row_after_the_sample",
        b"id,t,n\n" + TYPED_ROWS.replace(b",", b",x,") + b"51,7\n52,y,8\n",
        [("52", "y", "8")],
        (52,),
        "expected 3 fields, found 2",
        TYPED,
        more_rows=50,
    ),
    # blank lines are not rows, one column or more
    Case("blank_line_one_column", b"v\na\n\nb\n", [("a",), ("b",)]),
    Case("blank_line_one_column_crlf", b"v\r\na\r\n\r\nb\r\n\r\n", [("a",), ("b",)]),
    # blank lines before the header are not rows either: the header is the first record (every bulk loader would
    # take the first line for it, and the file was skipped as empty)
    Case("blank_lines_before_the_header", b"\n\nid,v\n1,a\n2,b,c\n3,c\n", [("1", "a"), ("3", "c")], (5,), "found 3"),
    Case("blank_lines_before_the_header_crlf", b"\r\n\r\nid,v\r\n1,a\r\n\r\n2,b\r\n", [("1", "a"), ("2", "b")]),
    Case(
        "typed_after_blank_lines_before_the_header",
        b"\n\nid,n\n" + TYPED_ROWS + b"51,007\n",
        [("51", "007")],
        settings=TYPED,
        more_rows=50,
    ),
    Case(
        "blank_lines_before_headerless_rows",
        b"\n\n1,a\n2,b\n",
        [("1", "a"), ("2", "b")],
        settings={"src_header": False},
    ),
    # a bare LF in a CRLF file ends a row (LOAD DATA would keep it inside the value)
    Case("bare_lf_in_crlf_file", b"v\r\na\nb\r\nc\r\n", [("a",), ("b",), ("c",)]),
    # encodings: valid UTF-8 is never read as cp1252; a stray byte rejects its line alone
    Case(
        "stray_latin1_byte_in_utf8",
        b"id,name\n1,Jos\xc3\xa9\n2,Ren\xe9\n",
        [("1", "José")],
        (3,),
        "not valid utf-8; set SRC_ENCODING",
    ),
    Case(
        "stray_byte_before_the_first_utf8",
        b"id,name\n1,Ren\xe9\n2,ok\n3,Jos\xc3\xa9\n",
        [("2", "ok"), ("3", "José")],
        (2,),
        "not valid utf-8",
    ),
    # UTF-16 bytes that are not a character (a file cut short, a lone surrogate): their line alone is rejected,
    # on PostgreSQL too (COPY reported the failed read as a lost connection, and the file failed after retries)
    Case(
        "utf16_cut_short",
        '\ufeffid\tv\r\n1\t"multi\r\nline"\r\n2\tb\r\n'.encode("utf-16-le") + b"\x00",
        [("1", "multi\r\nline"), ("2", "b")],
        (5,),
        "not valid utf-16",
    ),
    Case(
        "utf16_lone_surrogate",
        "\ufeffid\tv\r\n1\ta\r\n2\t".encode("utf-16-le") + b"\x00\xd8" + "x\r\n3\tc\r\n".encode("utf-16-le"),
        [("1", "a"), ("3", "c")],
        (3,),
        "not valid utf-16",
    ),
    # latin-1 first seen after the head: the whole file is cp1252
    Case(
        "latin1_after_the_head",
        b"id,name\n" + ASCII_ROWS + b"1001,Ren\xe9\n1002,Fran\xe7ois\n",
        [("1001", "René"), ("1002", "François")],
        more_rows=1000,
    ),
]


def load_both_ways(case: Case, tmp_path, db_url, make_settings, monkeypatch):
    """Reports of the case loaded as a user would, and (into its own table) through the careful path alone."""
    write_bytes(tmp_path / "bulk" / f"{case.name}.csv", case.data)
    write_bytes(tmp_path / "careful" / f"{case.name}_careful.csv", case.data)
    settings = {"infer_types": False, **case.settings}
    monkeypatch.setattr(profile, "HEAD_BYTES", HEAD)
    bulk = run_load(make_settings, tmp_path / "bulk", db_url, **settings)
    with monkeypatch.context() as patch:
        for writer in worker.WRITERS.values():
            patch.setattr(writer, "faithful", lambda target: False)
        careful = run_load(make_settings, tmp_path / "careful", db_url, **settings)
    return bulk, careful


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bulk_and_careful_paths_read_the_file_as_our_reader(
    case, tmp_path, db_url, make_settings, engine_of, monkeypatch
):
    bulk, careful = load_both_ways(case, tmp_path, db_url, make_settings, monkeypatch)
    engine = engine_of(db_url)
    for report, table in ((bulk, case.name), (careful, f"{case.name}_careful")):
        assert report.exit_code == 0
        [result] = report.files
        assert result.status == "loaded", result.error
        loaded = len(case.rows) + case.more_rows
        assert (result.rows_loaded, result.rows_rejected) == (loaded, len(case.rejected))
        entry = ledger_rows(engine)[result.path]
        assert (entry["rows_loaded"], entry["rows_rejected"]) == (loaded, len(case.rejected))
        rejects = reject_rows(engine, result.path)
        assert tuple(r["line"] for r in rejects) == case.rejected
        assert all(case.reason in r["reason"] for r in rejects)
        columns = [c for c in read_table(engine, table)[0] if c != "_source_file"] if case.rows else []
        got = sorted(tuple(text_of(row[c]) for c in columns) for row in read_table(engine, table))
        if case.more_rows:
            assert count(engine, table) == loaded
            got = [row for row in got if row[0] in {r[0] for r in case.rows}]
        assert got == sorted(case.rows)


def test_a_field_over_16_mib_is_kept(tmp_path, db_url, make_settings, engine_of, monkeypatch):
    blob = b"x" * 17_825_792
    case = Case("big_field", b"id,blob\n1," + blob + b"\n2,small\n", [])
    bulk, careful = load_both_ways(case, tmp_path, db_url, make_settings, monkeypatch)
    engine = engine_of(db_url)
    for report, table in ((bulk, "big_field"), (careful, "big_field_careful")):
        assert report.exit_code == 0 and report.files[0].rows_loaded == 2, report.files[0].error
        got = sorted((row["id"], row["blob"]) for row in read_table(engine, table))
        assert got == [("1", blob.decode()), ("2", "small")]
        assert reject_rows(engine) == []


@pytest.mark.parametrize("server", ["postgres_url", "mysql_url"])
def test_a_file_cut_into_ranges_is_read_in_the_encoding_of_all_its_bytes(
    server, request, tmp_path, make_settings, caplog
):
    """The split pass reads the whole file before its ranges load, and settles the encoding the
    head left open: UTF-8 in one range keeps a stray byte in another from being read as cp1252."""
    db_url = request.getfixturevalue(server)
    rows = [b"%d,name %d\n" % (i, i) for i in range(1, 180_001)]  # 2.6 MB, the first MiB ASCII
    rows[100_000] = "100001,José\n".encode()
    rows[170_000] = b"170001,Ren\xe9\n"
    write_bytes(tmp_path / "src" / "wide.csv", b"id,name\n" + b"".join(rows))
    caplog.set_level("INFO", logger="processor.staging.loader")
    report = run_load(make_settings, tmp_path / "src", db_url, split_min_bytes=400_000, load_workers=2)
    assert "ranges for 2 workers" in caplog.text
    assert report.exit_code == 0 and report.files[0].rows_loaded == 179_999, report.files[0].error
    engine = request.getfixturevalue("engine_of")(db_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM wide WHERE id = 100001")).scalar_one() == "José"
    [reject] = reject_rows(engine)
    assert reject["line"] == 170_002 and "not valid utf-8" in reject["reason"]


def test_a_rejected_line_longer_than_64_kb_is_kept_cut(tmp_path, db_url, make_settings, engine_of):
    """The rejects table keeps the start of a long rejected line (MySQL's TEXT holds 64 KB) and the file loads."""
    write_bytes(tmp_path / "src" / "long.csv", b"a,b\n1,2," + "é".encode() * 70_000 + b"\n3,4\n")
    report = run_load(make_settings, tmp_path / "src", db_url)
    assert report.exit_code == 0 and report.files[0].rows_loaded == 1, report.files[0].error
    [reject] = reject_rows(engine_of(db_url))
    assert reject["line"] == 2 and reject["raw"] == "1,2," + "é" * (16_000 - 4)


def test_without_local_infile_a_row_over_max_allowed_packet_is_rejected_by_name(
    tmp_path, mysql_url, make_settings, engine_of, monkeypatch
):
    """INSERTs must fit the server's max_allowed_packet (16 MiB on MariaDB): a bigger row is a reject
    naming it, not a dropped connection that fails the file."""
    from processor.staging import mysql

    monkeypatch.setattr(mysql, "can_bulk", lambda conn: False)
    write_bytes(tmp_path / "src" / "big.csv", b"id,blob\n1," + b"x" * 17_825_792 + b"\n2,small\n")
    report = run_load(make_settings, tmp_path / "src", mysql_url, infer_types=False)
    assert report.exit_code == 0 and report.files[0].rows_loaded == 1, report.files[0].error
    assert [row["blob"] for row in read_table(engine_of(mysql_url), "big")] == ["small"]
    [reject] = reject_rows(engine_of(mysql_url))
    assert reject["line"] == 2 and "max_allowed_packet" in reject["reason"]


def test_a_short_row_past_the_sample_ends_the_command(tmp_path, db_url, engine_of):
    """The value check beside the bulk load stops at a row of another width (here a `\\.` line); the
    command then exited with its summary only some of the time, and hung after it otherwise."""
    rows = [b"%d,row %d\n" % (i, i) for i in range(60_000)]
    write_bytes(tmp_path / "src" / "f.csv", b"id,v\n" + b"".join(rows[:30_000]) + b"\\.\n" + b"".join(rows[30_000:]))
    env = index_env(tmp_path / "src", db_url, DEST_TABLE="t", LOAD_WORKERS="1", LOCK_TIMEOUT="0")
    for _ in range(2):
        done = run_index(tmp_path, "load", env={**env, "FULL_REFRESH": "1"}, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    engine = engine_of(db_url)
    got = sorted((row["id"], row["v"]) for row in read_table(engine, "t"))
    assert got == [(i, f"row {i}") for i in range(60_000)]
    [reject] = reject_rows(engine)
    assert reject["line"] == 30_002 and reject["raw"] == "\\."
