"""Properties on SQLite, PostgreSQL and MySQL: any table of strings written as CSV reads back unchanged; and
the bulk and careful paths read any file made of the hard pieces as Python's csv module does."""

import csv
import itertools
import re
from datetime import date, datetime
from decimal import Decimal

import pytest
from helpers import read_table
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from processor.staging import worker
from processor.staging.loader import load
from processor.staging.tables import reflect

TRICKY = ['"', ",", ";", "\n", "\r", "\r\n", " ", "0", "00", "-", ".", "e", "'", "\\", "N", "NULL", "\t", "|"]
value = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
    st.lists(st.sampled_from(TRICKY), max_size=6).map("".join),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.from_regex(r"0[0-9]{1,8}", fullmatch=True),  # codes with leading zeros
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**6), max_value=10**6).map(str),
    st.dates().map(date.isoformat),
)
tables = st.integers(min_value=1, max_value=4).flatmap(
    lambda width: st.lists(st.lists(value, min_size=width, max_size=width), max_size=15).map(lambda rows: (width, rows))
)
counter = itertools.count()


def expected_value(text: str, kind: str):
    if text == "" and kind != "text":
        return None
    if kind in ("integer", "decimal", "double"):
        return Decimal(text)
    if kind == "date":
        return date.fromisoformat(text).isoformat()
    if kind == "timestamp":
        return datetime.fromisoformat(text).isoformat()
    return text


def got_value(stored, kind: str):
    if stored is None or kind not in ("integer", "decimal", "double"):
        return stored
    return Decimal(str(stored))


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def property_db(request, tmp_path_factory, server_engines):
    from conftest import _isolated_url

    url, drop = _isolated_url(request.param, tmp_path_factory.mktemp("db"), server_engines)
    yield url
    drop()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=tables)
@example(table=(3, [["0", "", ""], ["0.0", "", "0"]]))  # equal decimals whose reprs sort apart
def test_any_strings_read_back_unchanged(table, property_db, make_settings, tmp_path_factory, engine_of):
    width, rows = table
    name = f"t{next(counter)}"
    folder = tmp_path_factory.mktemp("src")
    header = [f"c{i}" for i in range(width)]
    with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)  # CRLF rows, so that any field holding \r or \n is quoted
        writer.writerow(header)
        writer.writerows(rows)
    report = load(make_settings(src_data_folder=str(folder), dest_sql=property_db))
    [result] = report.files
    assert result.status == "loaded" and result.rows_rejected == 0, result.error
    assert result.rows_loaded == len(rows)
    engine = engine_of(property_db)
    with engine.connect() as conn:
        kinds = {c: t.kind for c, t in reflect(conn, name).items()}
    got = read_table(engine, name, columns=header)
    expected = sorted(
        ([expected_value(v, kinds[c]) for c, v in zip(header, row, strict=True)] for row in rows), key=_order
    )
    assert sorted(([got_value(r[c], kinds[c]) for c in header] for r in got), key=_order) == expected


def _order(row: list) -> str:
    """A sort key under which equal rows sort alike: a decimal column gives `0` back as `0.0`, an equal
    number whose repr sorts elsewhere (rows are compared value by value once sorted)."""
    return repr([v.normalize() if isinstance(v, Decimal) else v for v in row])


# ------------------------------------------------- two parsers, one truth: the bulk and careful paths

# The hard pieces: quotes in odd places, backslashes and `\.`, blank lines and CR/LF mixtures,
# delimiters inside quotes, the NULL word, NUL, a BOM (leading, or inside a value), beyond ASCII.
PIECES = ["a", "b", "7", " ", ",", ",", '"', '""', '"x,y"', '"a""b"', '"p\nq"', '"p\r\nq"', "\\", "\\.", "\\N"]
PIECES += ["NULL", "\n", "\n", "\r\n", "\r", "\n\n", "\x00", "\ufeff", "é"]
hard_files = st.tuples(
    st.integers(min_value=1, max_value=3),  # columns
    st.sampled_from(["\n", "\r\n", "\r"]),  # the header's line ending
    st.booleans(),  # a leading BOM
    st.lists(st.sampled_from(PIECES), max_size=24).map("".join),
)
_PHYSICAL_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def read_as_python(text: str, width: int) -> tuple[list[tuple[int, list[str]]], list[int]]:
    """(rows with the line each starts on, rejected lines) by the csv module's rule, with the careful reader's two documented
    recoveries: a record of the wrong width spanning several lines, or one the file ends inside
    quotes, gives up only its first line; the lines after it are read again. Blank lines are no rows."""
    lines = _PHYSICAL_LINE.findall(text)
    rows: list[tuple[int, list[str]]] = []
    rejected: list[int] = []
    index, header = 0, True
    while index < len(lines):
        reader = csv.reader(lines[index:])
        fields = next(reader, None)
        if fields is None:
            break
        used = reader.line_num
        if (used > 1 and fields and len(fields) != width) or _ends_inside_quotes(lines[index:], used):
            rejected.append(index + 1)
            used = 1
        elif fields and header:
            header = False
        elif fields and len(fields) != width:
            rejected.append(index + 1)
        elif fields:
            rows.append((index + 1, fields))
        index += used
    return rows, rejected


def _ends_inside_quotes(lines: list[str], used: int) -> bool:
    if used < len(lines):
        return False
    try:
        list(csv.reader(lines, strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def loaded_and_rejected(engine, name: str, width: int) -> tuple[list[tuple], list[tuple]]:
    rows = sorted(tuple(r[f"c{i}"] for i in range(width)) for r in read_table(engine, name))
    rejects = [(r["line"], r["reason"]) for r in read_table(engine, "_processor_rejects") if r["path"] == f"{name}.csv"]
    return rows, sorted(rejects)


@settings(
    max_examples=int(__import__("os").environ.get("HARD_EXAMPLES", 25)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(hard=hard_files)
def test_bulk_and_careful_paths_agree_with_the_csv_module(
    hard, property_db, make_settings, tmp_path_factory, engine_of
):
    width, header_end, bom, body = hard
    text = ",".join(f"c{i}" for i in range(width)) + header_end + body
    name = f"h{next(counter)}"
    settings = {"dest_sql": property_db, "infer_types": False, "src_delimiter": ","}
    loads = {}
    for path, careful in (("bulk", False), ("careful", True)):
        folder = tmp_path_factory.mktemp("src")
        (folder / f"{name}_{path}.csv").write_bytes(("\ufeff" if bom else "").encode() + text.encode())
        with pytest.MonkeyPatch.context() as patch:
            if careful:
                for writer in worker.WRITERS.values():
                    patch.setattr(writer, "faithful", lambda target: False)
            [result] = load(make_settings(src_data_folder=str(folder), **settings)).files
        assert result.status == "loaded", result.error
        loads[path] = loaded_and_rejected(engine_of(property_db), f"{name}_{path}", width)
    assert loads["bulk"] == loads["careful"]
    rows, rejected = read_as_python(text, width)
    if property_db.startswith("postgresql"):  # PostgreSQL cannot store NUL: the database refuses those rows
        rejected += [line for line, row in rows if any("\x00" in v for v in row)]
        rows = [(line, row) for line, row in rows if not any("\x00" in v for v in row)]
    got_rows, got_rejects = loads["bulk"]
    assert got_rows == sorted(tuple(row) for _line, row in rows)
    assert sorted(line for line, _reason in got_rejects) == sorted(rejected)
