"""Cutting a file into byte ranges at true row boundaries (pure, with small chunks to hit every border)."""

import csv
import hashlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.staging.split import plan_split

field = st.one_of(st.text(alphabet='ab,"\n\r ', max_size=6), st.integers(0, 999).map(str))
rows = st.lists(st.lists(field, min_size=2, max_size=2), min_size=2, max_size=40)


def csv_bytes(table, terminator: str) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=terminator, quoting=csv.QUOTE_MINIMAL).writerows(table)
    return buffer.getvalue().encode()


def parse(data: bytes):
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def breaks_before(data: bytes, offset: int) -> int:
    text = data[:offset].decode()
    return len(text.replace("\r\n", "\n").replace("\r", "\n").split("\n")) - 1


class Chunked(io.BytesIO):
    """A stream that hands out at most `chunk` bytes per read, to cut chunks anywhere."""

    def __init__(self, data: bytes, chunk: int):
        super().__init__(data)
        self.chunk = chunk

    def read(self, size=-1):
        return super().read(self.chunk)


@settings(max_examples=300, deadline=None)
@given(table=rows, parts=st.integers(2, 6), chunk=st.integers(1, 64), terminator=st.sampled_from(["\n", "\r\n"]))
def test_ranges_hold_whole_rows_and_know_their_first_line(table, parts, chunk, terminator):
    data = csv_bytes([["h1", "h2"], *table], terminator)
    plan = plan_split(Chunked(data, chunk), len(data), parts, header=True)
    if not plan.ranges:
        return
    assert plan.fingerprint == "sha256:" + hashlib.sha256(data).hexdigest()
    pieces = [data[r.start : r.end] for r in plan.ranges]
    assert b"".join(pieces) == data[plan.ranges[0].start :]
    assert [row for piece in pieces for row in parse(piece)] == parse(data)[1:]
    for byte_range in plan.ranges:
        assert byte_range.first_line == breaks_before(data, byte_range.start) + 1


def test_a_quoted_newline_is_never_a_cut():
    data = b"a,b\n" + b'1,"x\ny"\n' * 1000
    plan = plan_split(io.BytesIO(data), len(data), 4, header=True)
    assert plan is not None and len(plan.ranges) == 4
    for byte_range in plan.ranges:
        assert data[byte_range.start : byte_range.start + 4] == b'1,"x'
        assert (byte_range.first_line - 2) % 2 == 0  # every row spans two lines


@pytest.mark.parametrize("data", [b"a,b\n", b'a,b\n1,"never closed\n2,x\n3,y\n'])
def test_at_most_one_range_without_a_safe_cut(data):
    plan = plan_split(io.BytesIO(data), len(data), 4, header=True)
    assert len(plan.ranges) <= 1


def test_no_plan_without_a_header_end():
    assert plan_split(io.BytesIO(b"a,b"), 3, 4, header=True) is None


def test_a_file_with_a_quote_inside_an_unquoted_field_is_not_cut():
    """Such a quote throws the quote count off (our reader keeps it as a plain character): one range."""
    data = b"a,b\n" + b"1,x\n" * 1000 + b'2,5" x 7" frame\n' + b"3,y\n" * 1000
    plan = plan_split(io.BytesIO(data), len(data), 4, header=True)
    assert [(r.start, r.end) for r in plan.ranges] == [(4, len(data))]


def test_the_split_pass_settles_the_encoding_of_the_whole_file():
    ascii_rows = b"a,b\n" + b"1,x\n" * 1000
    assert plan_split(io.BytesIO(ascii_rows + b"2,Ren\xe9\n"), 4010, 4, header=True).encoding == "cp1252"
    assert plan_split(io.BytesIO(ascii_rows + "2,José\n".encode()), 4011, 4, header=True).encoding == "utf-8"
