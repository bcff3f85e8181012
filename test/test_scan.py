"""The byte checks a bulk load runs as it streams (pure): constructs a database's parser reads
otherwise than ours, found at any chunking; and the encoding rule for files whose head could not tell."""

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.staging import mysql, postgres, sqlite
from processor.staging.files import CsvFormat, detect_encoding
from processor.staging.scan import (
    BLANK_LINE,
    CP1252_UNDEFINED,
    END_MARKER,
    OPEN_QUOTE,
    STRAY_QUOTE,
    TEXT_AFTER_QUOTE,
    Bent,
    QuoteCheck,
    Reencode,
    Watch,
)

FORMAT = CsvFormat("utf-8", ",", "\n", header=True)


def construct_in(data: bytes, bends: frozenset[str], chunk: int = 1 << 20, fmt: CsvFormat = FORMAT) -> str | None:
    """The construct a Watch finds in `data` fed `chunk` bytes at a time, or None."""
    watch = Watch(fmt, bends, "the database")
    try:
        for start in range(0, len(data), chunk):
            watch.feed(data[start : start + chunk])
        watch.finish()
    except Bent as bent:
        return next(c for c in sorted(bends) if c in str(bent))
    return None


@pytest.mark.parametrize(
    "data, construct",
    [
        (b"code\nA\n\\.\nB\n", END_MARKER),
        (b"id,v\r\n1,a\r\n\\.\r\n2,b\r\n", END_MARKER),
        (b'id,item\n1,5" x 7" frame\n', STRAY_QUOTE),
        (b'id,item,n\n1,a"b,c"d,6\n2,plain,7\n', STRAY_QUOTE),
        (b'id,v\n1,a""b\n', STRAY_QUOTE),  # COPY reads `ab`, our reader `a""b`
        (b'id,v\n1,ab"\n2,x\n', STRAY_QUOTE),
        (b'id,v\n1,"ab"c\n', TEXT_AFTER_QUOTE),
        (b'id,v\n1,"ab" \n', TEXT_AFTER_QUOTE),
        (b'id,v\n1,"never closed\n2,x\n', OPEN_QUOTE),
        (b"v\na\n\nb\n", BLANK_LINE),
        (b"v\r\na\r\n\r\nb\r\n", BLANK_LINE),
        (b"v\n\na\n", BLANK_LINE),
    ],
)
def test_postgres_constructs_are_found_at_any_chunking(data, construct):
    fmt = CsvFormat(newline="\r\n" if b"\r\n" in data else "\n")
    for chunk in (1, 2, 3, 5, len(data)):
        assert construct_in(data, postgres.BENDS, chunk, fmt) == construct, chunk


@pytest.mark.parametrize(
    "data, construct",
    [
        (b'id,item\n1,5" x 7" frame\n', None),  # LOAD DATA keeps a quote inside an unquoted field, as we do
        (b'id,v\n1,a""b\n2,ab"\n3,"x"\n', None),
        (b"code\nA\n\\.\nB\n", None),
        (b'id,a,b\n1,"x"y,"z",w\n', TEXT_AFTER_QUOTE),  # LOAD DATA reads `x"y,"z`
        (b'id,v\n1,""x\n', TEXT_AFTER_QUOTE),
    ],
)
def test_mysql_constructs(data, construct):
    for chunk in (1, 2, 7, len(data)):
        assert construct_in(data, mysql.BENDS, chunk) == construct, chunk


def test_mysql_undefined_cp1252_bytes_are_a_construct_only_in_cp1252():
    data = b"a,b\n1,x\x81y\n"
    assert construct_in(data, mysql.BENDS, fmt=CsvFormat("cp1252")) == CP1252_UNDEFINED
    assert construct_in(data, mysql.BENDS, fmt=CsvFormat("iso8859-1")) is None


def test_sqlite_watches_no_construct():
    assert construct_in(b'v\n\\.\n5" x\n\n"a"b\n', sqlite.BENDS) is None


field = st.text(alphabet='ab,"\n\r \\.\x00é', max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    table=st.lists(st.lists(field, min_size=2, max_size=2), min_size=1, max_size=20),
    chunk=st.integers(1, 16),
    terminator=st.sampled_from(["\n", "\r\n"]),
)
def test_what_the_csv_module_writes_has_no_quote_construct(table, chunk, terminator):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=terminator).writerows([["h1", "h2"], *table])
    data = buffer.getvalue().encode()
    bends = frozenset({STRAY_QUOTE, TEXT_AFTER_QUOTE, OPEN_QUOTE})
    assert construct_in(data, bends, chunk) is None


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=40).map(lambda b: bytes(b'a,"\n\r '[x % 6] for x in b)), chunk=st.integers(1, 8))
def test_quote_check_does_not_depend_on_chunking(data, chunk):
    for stray in (True, False):
        whole, pieces = QuoteCheck(b",", stray), QuoteCheck(b",", stray)
        found_whole = whole.feed(data)
        found_pieces = None
        for start in range(0, len(data), chunk):
            found_pieces = found_pieces or pieces.feed(data[start : start + chunk])
        assert (found_whole, whole.unclosed if not found_whole else None) == (
            found_pieces,
            pieces.unclosed if not found_pieces else None,
        )


@pytest.mark.parametrize(
    "head, expected",
    [
        (b"id,name\n1,plain\n", ("utf-8", False)),  # ASCII: the rest of the file decides
        ("id,name\n1,José\n".encode(), ("utf-8", True)),
        (b"id,name\n1,Ren\xe9\n", ("cp1252", False)),
        (b"id,name\n1,Jos\xc3\xa9\n2,Ren\xe9\n", ("utf-8", True)),  # valid UTF-8 is never read as cp1252
        ("id,name\n1,Zoë".encode()[:-1], ("utf-8", False)),  # a head that cuts a character in two
        (b"\xef\xbb\xbfid\n", ("utf-8-sig", True)),
    ],
)
def test_the_head_settles_the_encoding_only_when_it_can(head, expected):
    assert detect_encoding(head, None) == expected
    assert detect_encoding(head, "latin-1") == ("latin-1", True)


def fed_whole(data: bytes, guess: str, chunk: int = 4) -> str | None:
    """The encoding a Watch over a file with a guessed encoding asks to reload it in, or None."""
    watch = Watch(CsvFormat(guess, encoding_settled=False), frozenset(), "the database")
    try:
        for start in range(0, len(data), chunk):
            watch.feed(data[start : start + chunk])
        watch.finish()
    except Reencode as change:
        return change.encoding
    return None


def test_the_whole_file_settles_a_guessed_encoding():
    ascii_head = b"id,name\n" + b"1,plain\n" * 100
    assert fed_whole(ascii_head + b"2,Ren\xe9\n", "utf-8") == "cp1252"
    assert fed_whole(ascii_head + "2,José\n".encode(), "utf-8") is None
    assert fed_whole(b"id\nRen\xe9\n" + "Jos\u00e9\n".encode(), "cp1252") == "utf-8"
    assert fed_whole(b"id\nRen\xe9\n" + b"x\n" * 50, "cp1252") is None
    assert fed_whole(ascii_head + b"2,Ren\xe9\n" + "3,José\n".encode(), "utf-8") is None  # UTF-8 with a stray byte


def test_utf8_found_where_cp1252_was_guessed_stops_the_load_at_once():
    watch = Watch(CsvFormat("cp1252", encoding_settled=False), frozenset(), "the database")
    watch.feed(b"id\nRen\xe9\n")
    with pytest.raises(Reencode):
        watch.feed("Jos\u00e9\n".encode())
