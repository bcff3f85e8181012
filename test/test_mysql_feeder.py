"""The pipe that feeds MySQL's LOAD DATA: what it notices in the stream while it passes the bytes on."""

import io

import pytest

from processor.staging.files import CHUNK, CsvFormat
from processor.staging.mysql import _Feeder, mixes_line_ends

FORMAT = CsvFormat("utf-8", ",", "\n", header=True)


def fed(data: bytes, null_word: str = "field") -> tuple[_Feeder, bytes]:
    """Run the feeder over `data` with a reader on the other end of its pipe, as LOAD DATA would be."""
    feeder = _Feeder(io.BytesIO(data), None, FORMAT, null_word=null_word)
    with feeder.pipe() as path:
        with open(path, "rb") as pipe:
            received = pipe.read()
        feeder.finish()
    return feeder, received


@pytest.mark.parametrize(
    "data, seen",
    [
        (b"a,b\n1,NULL\n", True),
        (b"a,b\nNULL,1\n", True),
        (b"a,b\n1,NULL", True),  # the file's last field, no line end
        (b'a,b\n1,"NULL"\n', False),  # quoted: text
        (b"a,b\n1,NULLABLE\n2,xNULL\n", False),
        (b"a;b\n1,NULL\n", True),  # a comma is no delimiter here, but a false alarm only costs a reload
    ],
)
def test_an_unquoted_null_word_is_noticed(data, seen):
    feeder, received = fed(data)
    assert feeder.saw_null_word is seen
    if not seen:
        assert received == data and feeder.lines == data.count(b"\n") + (not data.endswith(b"\n"))


def test_the_feeder_stops_at_a_null_word_instead_of_streaming_the_rest():
    data = b"a,b\n1,NULL\n" + b"2,x\n" * (3 * CHUNK // 4)
    feeder, received = fed(data)
    assert feeder.saw_null_word and len(received) < len(data) // 2


def test_a_null_word_split_across_chunks_is_noticed():
    head = b"a,b\n" + b"1,x\n" * ((CHUNK - 6) // 4)
    data = head + b"9," * ((CHUNK - len(head) - 2) // 2) + b"NULL\n"
    assert data[CHUNK - 2 : CHUNK + 2] == b"NULL"  # "NU" ends the first chunk, "LL" starts the second
    feeder, _ = fed(data)
    assert feeder.saw_null_word


def test_a_guarded_load_watches_only_a_null_word_ending_a_line():
    feeder, received = fed(b"a,b\nNULL,1\n", null_word="line end")
    assert not feeder.saw_null_word and received == b"a,b\nNULL,1\n"
    assert fed(b"a,b\n1,2,NULL\n3,4\n", null_word="line end")[0].saw_null_word
    assert not fed(b"a,b\n1,NULL\n", null_word="")[0].saw_null_word


@pytest.mark.parametrize(
    "data, newline, mixed",
    [
        (b"a\r\nb\r\n", b"\r\n", False),
        (b"v\r\na\nb\r\n", b"\r\n", True),  # LOAD DATA would read `a\nb` as one value, our reader two rows
        (b"v\r\na\rb\r\n", b"\r\n", True),
        (b"v\ra\rb\r", b"\r", False),
        (b"v\ra\nb\r", b"\r", True),
        (b"v\na\rb\n", b"\n", True),
    ],
)
def test_a_line_ending_other_than_the_files_is_noticed_at_any_chunking(data, newline, mixed):
    for size in (1, 2, 3, len(data)):
        before, found = b"", False
        for start in range(0, len(data), size):
            chunk = data[start : start + size]
            found = found or mixes_line_ends(before, chunk, newline)
            before = chunk[-1:]
        assert found is mixed, size
