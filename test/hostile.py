"""A corpus of hostile CSV files, each named after what it breaks, with what must come out of it.

`rows` are the rows that must be read back (in the order of `order_by`), as plain values (see
helpers.plain); `rejected` are the line numbers that must land in the rejects table. Every file
then satisfies the accounting invariant: data rows = len(rows) + len(rejected).
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import zipfile
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    rows: list[tuple]
    columns: tuple[str, ...]
    rejected: tuple[int, ...] = ()
    settings: dict = field(default_factory=dict)
    filename: str = ""
    table: str = ""
    order_by: str = ""
    status: str = "loaded"
    rejected_on: dict = field(default_factory=dict)  # backend -> line numbers, where databases differ
    rows_on: dict = field(default_factory=dict)  # backend -> rows, where databases differ

    @property
    def file(self) -> str:
        return self.filename or f"{self.name}.csv"

    @property
    def table_name(self) -> str:
        return self.table or self.name

    def rejects_on(self, backend: str) -> tuple[int, ...]:
        return tuple(self.rejected_on.get(backend, self.rejected))

    def expected_rows(self, backend: str) -> list[tuple]:
        return self.rows_on.get(backend, self.rows)


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data)


def _zip(member: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
        archive.writestr("README.txt", "not a csv")
    return buffer.getvalue()


AB = ("a", "b")
SMALL_SAMPLE = {"sample_rows": 4}  # two head rows: later rows surprise the inference
HEAD_ONLY_SAMPLE = {"sample_rows": 2}  # one head row (and no windows in a compressed file)

CASES = [
    Case("too_many_fields", b"a,b\n1,x\n2,y,extra\n3,z\n", [(1, "x"), (3, "z")], AB, (3,)),
    Case("too_few_fields", b"a,b,c\n1,2,3\n4,5\n6,7,8\n", [(1, 2, 3), (6, 7, 8)], ("a", "b", "c"), (3,)),
    Case("unterminated_quote", b'a,b\n1,"x\n2,y\n3,z\n', [(2, "y"), (3, "z")], AB, (2,)),
    Case("unterminated_quote_at_end", b'a,b\n1,x\n2,"never closed\n', [(1, "x")], AB, (3,)),
    Case("text_after_closing_quote", b'a,b\n1,"ab"c\n2,ok\n', [(1, "abc"), (2, "ok")], AB),
    Case("quote_inside_unquoted_field", b'a,b\n1,ab"c\n2,ok\n', [(1, 'ab"c'), (2, "ok")], AB),
    Case(
        "quoted_newlines_delimiters_and_quotes",
        b'a,b\n1,"line one\nline two, with ""quotes"""\n2,x\n',
        [(1, 'line one\nline two, with "quotes"'), (2, "x")],
        AB,
    ),
    Case("crlf_line_endings", b"a,b\r\n1,x\r\n2,y\r\n", [(1, "x"), (2, "y")], AB),
    Case("cr_line_endings", b"a,b\r1,x\r2,y\r", [(1, "x"), (2, "y")], AB),
    Case("no_final_newline", b"a,b\n1,x\n2,y", [(1, "x"), (2, "y")], AB),
    Case("blank_lines_are_not_rows", b"a,b\n1,x\n\n2,y\n\n", [(1, "x"), (2, "y")], AB),
    Case("utf8_bom", codecs.BOM_UTF8 + "a,b\n1,Zoë\n2,Łódź\n".encode(), [(1, "Zoë"), (2, "Łódź")], AB),
    Case(
        "utf16_bom",
        codecs.BOM_UTF16_LE + "a,b\r\n1,Zoë\r\n2,☃ snow\r\n".encode("utf-16-le"),
        [(1, "Zoë"), (2, "☃ snow")],
        AB,
    ),
    Case("cp1252", "a,b\n1,café\n2,€5 – ok\n".encode("cp1252"), [(1, "café"), (2, "€5 – ok")], AB),
    Case(
        "undecodable_bytes",
        b"a,b\n1,ok\n2,bad \xff\xfe here\n3,fine\n",
        [(1, "ok"), (3, "fine")],
        AB,
        (3,),
        settings={"src_encoding": "utf-8"},
    ),
    Case("semicolon_delimiter", b"a;b\n1;x, y\n2;z\n", [(1, "x, y"), (2, "z")], AB),
    Case("tab_delimiter", b"a\tb\n1\tx,y\n2\tz\n", [(1, "x,y"), (2, "z")], AB),
    Case("pipe_delimiter", b"a|b\n1|x\n2|y\n", [(1, "x"), (2, "y")], AB),
    Case(
        "header_with_spaces",
        b"first_name, last_name, birthts\nSusan, Lee, 612302400000\n",
        [("Susan", " Lee", " 612302400000")],
        ("first_name", "last_name", "birthts"),
        order_by="first_name",
    ),
    Case(
        "duplicate_and_empty_headers", b"id,Id,,name\n1,2,3,x\n", [(1, 2, 3, "x")], ("id", "id_2", "column_3", "name")
    ),
    Case("header_only", b"a,b\n", [], AB),
    Case("no_header", b"1,x\n2,y\n", [(1, "x"), (2, "y")], ("column_1", "column_2"), settings={"src_header": False}),
    Case(
        "widen_integer_to_text",
        b"a,b\n1,10\n2,20\n3,N/A\n4,40\n",
        [(1, "10"), (2, "20"), (3, "N/A"), (4, "40")],
        AB,
        settings=SMALL_SAMPLE,
    ),
    Case(
        "widen_integer_to_decimal",
        b"a,b\n1,10\n2,20\n3,2.5\n",
        [(1, Decimal(10)), (2, Decimal(20)), (3, Decimal("2.5"))],
        AB,
        settings=SMALL_SAMPLE,
    ),
    Case(
        "widen_decimal_scale",
        b"a,b\n1,1.5\n2,2.5\n3,0.123456\n",
        [(1, Decimal("1.5")), (2, Decimal("2.5")), (3, Decimal("0.123456"))],
        AB,
        settings=SMALL_SAMPLE,
    ),
    Case(
        "widen_date_to_text",
        b"a,b\n1,2020-01-01\n2,2020-01-02\n3,2020-02-30\n4,someday\n",
        [(1, "2020-01-01"), (2, "2020-01-02"), (3, "2020-02-30"), (4, "someday")],
        AB,
        settings=SMALL_SAMPLE,
    ),
    Case(
        "integer_beyond_64_bits_later",
        b"a,b\n1,10\n2,20\n3,99999999999999999999\n",
        [(1, "10"), (2, "20"), (3, "99999999999999999999")],
        AB,
        settings=SMALL_SAMPLE,
    ),
    Case(
        "number_with_junk_is_not_a_zero",
        b"a,b\n1,10\n2,20\n3,12abc\n",
        [(1, "10"), (2, "20"), (3, "12abc")],
        AB,
        settings=SMALL_SAMPLE,
    ),
    Case(
        "long_decimal_is_not_rounded",
        b"a,b\n1,1.5\n2,2.5\n3,3.14159265358979323846\n",
        [(1, "1.5"), (2, "2.5"), (3, "3.14159265358979323846")],
        AB,
        settings=SMALL_SAMPLE,
    ),
    Case(
        "empty_fields_are_null_in_typed_columns",
        b"a,b,c\n1,,\n2,x,2020-01-01\n",
        [(1, "", None), (2, "x", "2020-01-01")],
        ("a", "b", "c"),
    ),
    Case(
        "null_markers",
        b"a,b,c\n1,N/A,N/A\n2,NODATA!,5\n3,x,NODATA!\n",
        [(1, "N/A", None), (2, "NODATA!", 5), (3, "x", None)],
        ("a", "b", "c"),
        settings={"null_values": ("N/A", "NODATA!")},
    ),
    Case(
        "null_markers_in_text_when_asked",
        b"a,b\n1,N/A\n2,\n3,x\n",
        [(1, None), (2, None), (3, "x")],
        AB,
        settings={"null_values": ("N/A",), "null_values_in_text": True},
    ),
    Case("literal_null_word_stays_text", b"a,b\n1,NULL\n2,null\n", [(1, "NULL"), (2, "null")], AB),
    Case(
        "pinned_type_rejects",
        b"a,b\n1,10\n2,abc\n3,30\n",
        [(1, 10), (3, 30)],
        AB,
        (3,),
        settings={"column_types": (("pinned_type_rejects", "b", "integer"),)},
    ),
    # PostgreSQL cannot store NUL in text: there the row is a reject; elsewhere it loads as is
    Case(
        "nul_byte",
        b"a,b\n1,x\x00y\n2,ok\n",
        [(1, "x\x00y"), (2, "ok")],
        AB,
        rejected_on={"postgres": (2,)},
        rows_on={"postgres": [(2, "ok")]},
    ),
    Case(
        "sql_in_header_and_name",
        b'id,"x""; DROP TABLE users; --"\n1,payload\n',
        [(1, "payload")],
        ("id", "x_drop_table_users"),
        filename="a;drop.csv",
        table="a_drop",
    ),
    Case("gzip", _gzip(b"a,b\n1,x\n2,y\n"), [(1, "x"), (2, "y")], AB, filename="gzip.csv.gz"),
    Case("bzip2", bz2.compress(b"a,b\n1,x\n2,y\n"), [(1, "x"), (2, "y")], AB, filename="bzip2.csv.bz2"),
    Case(
        "zip_member", _zip("inner/zip_member.csv", b"a,b\n1,x\n2,y\n"), [(1, "x"), (2, "y")], AB, filename="archive.zip"
    ),
    # A compressed file is sampled from its head only: one row here. What follows it surprises
    # a loader that trusts the sample (MySQL's lean LOAD DATA) and must not be coerced.
    Case(
        "empty_typed_fields_after_the_sample",
        _gzip(b"a,b,c,d\n1,5,2020-01-01,1.5\n2,,,\n3,7,2020-01-03,2.5\n"),
        [(1, 5, "2020-01-01", Decimal("1.5")), (2, None, None, None), (3, 7, "2020-01-03", Decimal("2.5"))],
        ("a", "b", "c", "d"),
        settings=HEAD_ONLY_SAMPLE,
        filename="empty_typed_fields_after_the_sample.csv.gz",
    ),
    Case(
        "null_word_after_the_sample_stays_text",
        _gzip(b'a,b\n1,x\n2,NULL\n3,"NULL"\n4,NULLABLE\n5,y\n'),
        [(1, "x"), (2, "NULL"), (3, "NULL"), (4, "NULLABLE"), (5, "y")],
        AB,
        settings=HEAD_ONLY_SAMPLE,
        filename="null_word_after_the_sample_stays_text.csv.gz",
    ),
    Case(
        "null_word_in_a_number_column_after_the_sample",
        _gzip(b"a,b\n1,5\n2,NULL\n"),
        [(1, "5"), (2, "NULL")],
        AB,
        settings=HEAD_ONLY_SAMPLE,
        filename="null_word_in_a_number_column_after_the_sample.csv.gz",
    ),
    Case(
        "empty_text_after_the_sample_is_null_when_told",
        _gzip(b"a,b\n1,x\n2,\n3,y\n"),
        [(1, "x"), (2, None), (3, "y")],
        AB,
        settings={**HEAD_ONLY_SAMPLE, "null_values_in_text": True},
        filename="empty_text_after_the_sample_is_null_when_told.csv.gz",
    ),
    Case(
        "number_marker_after_the_sample_is_null",
        _gzip(b"a,b,c\n1,5,2020-01-01\n2,-999,2020-01-02\n3,7,2020-01-03\n"),
        [(1, 5, "2020-01-01"), (2, None, "2020-01-02"), (3, 7, "2020-01-03")],
        ("a", "b", "c"),
        settings={**HEAD_ONLY_SAMPLE, "null_values": ("-999", "N/A")},
        filename="number_marker_after_the_sample_is_null.csv.gz",
    ),
    Case(
        "decimal_in_an_integer_column_after_the_sample",
        _gzip(b"a,b\n1,5\n2,2.5\n3,1e3\n"),
        [(1, "5"), (2, "2.5"), (3, "1e3")],
        AB,
        settings=HEAD_ONLY_SAMPLE,
        filename="decimal_in_an_integer_column_after_the_sample.csv.gz",
    ),
    # Values a database parser accepts but would not give back: each widens its column to text.
    Case(
        "leading_zeros_and_signs_in_an_integer_column_after_the_sample",
        _gzip(b"a,b\n1,5\n2,007\n3,+7\n4,-0\n5, 8\n6,9\n"),
        [(1, "5"), (2, "007"), (3, "+7"), (4, "-0"), (5, " 8"), (6, "9")],
        AB,
        settings=HEAD_ONLY_SAMPLE,
        filename="leading_zeros_and_signs_in_an_integer_column_after_the_sample.csv.gz",
    ),
]

TOO_MANY_REJECTS = Case(
    "too_many_rejects", b"a,b\n1,x\n2\n3\n4\n5,y\n", [], AB, (3, 4, 5), settings={"max_errors": 2}, status="failed"
)
