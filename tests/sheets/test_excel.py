"""Spreadsheets as people save them: workbooks in and out, Excel's CSV dialects."""

from __future__ import annotations

import csv
import functools
import io
import re
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch.errors import InputFileError
from batch.model import Outcome, RowResult
from batch.prepare.batch import batch_for_retry
from batch.prepare.validate import validate
from batch.sheets.dialect import Reading
from batch.sheets.load import load_table
from batch.sheets.results import read_results, write_results

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
HEADER = ["routing_id", "for_inbound_call", "for_outbound_call", "status", "note"]
Fill = Callable[[Any, Any], None]  # (workbook, worksheet) -> None


def workbook(path: Path, fill: Fill, *, sheets: tuple[str, ...] = ("Changes",)) -> Path:
    """A workbook as xlsxwriter saves it; ``fill`` writes the first sheet."""
    book = xlsxwriter.Workbook(path)
    first, *others = [book.add_worksheet(name) for name in sheets]
    fill(book, first)
    for other in others:
        other.write_row(0, 0, ["something", "else"])
    book.close()
    return path


def rows_of(*rows: list[object]) -> Fill:
    def fill(_book: Any, sheet: Any) -> None:
        sheet.write_row(0, 0, HEADER)
        for index, row in enumerate(rows, start=1):
            for column, value in enumerate(row):
                if isinstance(value, str):
                    sheet.write_string(index, column, value)
                elif value is not None:
                    sheet.write(index, column, value)

    return fill


# --- reading workbooks ---------------------------------------------------------------------------


def test_workbook_cells_are_judged_as_written(tmp_path: Path) -> None:
    """93 and 93.0 are 93, 93.5 is not an integer, " 93 " is 93, "" is empty, formulas by value."""

    def fill(_book: Any, sheet: Any) -> None:
        sheet.write_row(0, 0, HEADER)
        sheet.write_row(1, 0, [93, 93.0, 4, 1, "plain"])
        sheet.write_row(2, 0, [94, 93.5, 4, 1])
        sheet.write_string(3, 0, " 95 ")
        sheet.write_row(3, 1, [1, 4])
        sheet.write_string(3, 3, "")
        sheet.write_formula(4, 0, "=90+6", None, 96)
        sheet.write_row(4, 1, [1, 4, 1])
        sheet.write_string(4, 4, "=not a formula")

    t = load_table(workbook(tmp_path / "w.xlsx", fill))
    assert t.frame.get_column("routing_id").to_list() == ["93", "94", " 95 ", "96"]
    assert t.frame.get_column("for_inbound_call").to_list() == ["93", "93.5", "1", "1"]
    assert t.frame.get_column("status").to_list() == ["1", "1", None, "1"]
    assert t.passthrough_frame().get_column("note").to_list()[-1] == "=not a formula"
    v = validate(t)
    codes = v.judged.get_column("error_code").to_list()
    assert codes == ["UNKNOWN_MODE", "NOT_AN_INTEGER", "MISSING_FIELD", ""]
    assert v.judged.get_column("id").to_list() == [None, None, None, 96]


def test_messages_name_the_data_row_and_the_sheet_row(tmp_path: Path) -> None:
    """Blank rows above the header and in the data keep their numbers: "row 3 (sheet row 6)"."""

    def fill(_book: Any, sheet: Any) -> None:
        sheet.write_row(2, 0, HEADER)  # rows 1-2 left empty
        sheet.write_row(3, 0, [1, 1, 4, 1])
        sheet.write_row(5, 0, [3, 1, 9, 1])  # row 5 blank: data row 2, row 6: data row 3

    t = load_table(workbook(tmp_path / "w.xlsx", fill))
    assert t.row_names.name(1) == "row 1 (sheet row 4)"  # the header is sheet row 3
    messages = validate(t).judged.get_column("error_message").to_list()
    assert messages[2].startswith("row 3 (sheet row 6), field for_outbound_call: value '9'")
    assert messages[1].startswith("row 2 (sheet row 5), field routing_id: the cell is empty")


def test_first_sheet_by_default_says_which_and_sheet_picks_another(tmp_path: Path) -> None:
    """Several sheets and no --sheet: the first is read and named; --sheet reads another."""

    def fill(_book: Any, sheet: Any) -> None:
        rows_of([1, 1, 4, 1])(_book, sheet)

    path = workbook(tmp_path / "w.xlsx", fill, sheets=("Changes", "Old", "Notes"))
    t = load_table(path)
    assert len(t) == 1
    assert t.notes == (
        f"{path}: read sheet 'Changes', the first of 3 (also 'Old', 'Notes'); "
        "--sheet NAME reads another",
    )
    with pytest.raises(InputFileError, match="required columns routing_id"):
        load_table(path, reading=Reading(sheet="old"))  # matched ignoring case
    with pytest.raises(InputFileError, match="has no sheet named 'Nope': its sheets are 'Chan"):
        load_table(path, reading=Reading(sheet="Nope"))
    assert load_table(workbook(tmp_path / "one.xlsx", fill)).notes == ()


def _corrupt(path: Path) -> None:
    good = workbook(path, rows_of([1, 1, 4, 1]))
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut short, as a broken download or copy leaves it


def _merged_header(path: Path) -> None:
    def fill(book: Any, sheet: Any) -> None:
        sheet.merge_range(0, 0, 0, 1, "routing_id", book.add_format({"bold": True}))
        sheet.write_row(0, 2, HEADER[2:4])
        sheet.write_row(1, 0, [1, 1, 4, 1])

    workbook(path, fill)


BAD_WORKBOOKS: dict[str, tuple[Callable[[Path], object], str]] = {
    "corrupt": (_corrupt, "is not a readable Excel workbook (damaged?)"),
    "password": (
        lambda p: p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600)),
        "is password-protected (or an old .xls workbook): remove the password",
    ),
    "not a workbook": (lambda p: p.write_text("routing_id,status\n"), "is not an Excel workbook"),
    "empty sheet": (
        lambda p: workbook(p, lambda b, s: None),
        "sheet 'Changes' is empty: expected a header row naming the columns",
    ),
    "header missing": (
        lambda p: workbook(p, lambda b, s: s.write_row(0, 0, [4101, 1, 4, 1])),
        "the first row holds data, not column names: insert a header row",
    ),
    "merged header": (
        _merged_header,
        "cell B1: the column has data but no header name; name it (merged header cells",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_WORKBOOKS))
def test_bad_workbooks_are_one_clear_line(tmp_path: Path, kind: str) -> None:
    """Corrupt, encrypted, empty, header-less or merged-header workbooks: one line, the fix."""
    make, needle = BAD_WORKBOOKS[kind]
    path = tmp_path / "bad.xlsx"
    make(path)
    with pytest.raises(InputFileError) as caught:
        load_table(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)
    assert needle in str(caught.value)


@functools.cache
def _good_workbook() -> bytes:
    """The same bytes every time (hypothesis replays draws that index into them)."""
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out)
    book.set_properties({"created": datetime(2026, 1, 1, tzinfo=UTC)})
    rows_of([1, 1, 4, 1, "n"], [2, 3, 3, 1])(book, book.add_worksheet("Changes"))
    book.close()
    return out.getvalue()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_workbooks_never_raise_anything_else(tmp_path: Path, data: st.DataObject) -> None:
    """Random bytes, or a real workbook with bytes changed: a clear error or a verdict per row."""
    path = tmp_path / "random.xlsx"
    good = _good_workbook()
    if data.draw(st.booleans()):
        path.write_bytes(data.draw(st.binary(max_size=400)))
    else:
        damaged = bytearray(good)
        for _ in range(data.draw(st.integers(1, 8))):
            damaged[data.draw(st.integers(0, len(good) - 1))] = data.draw(st.integers(0, 255))
        path.write_bytes(bytes(damaged))
    try:
        t = load_table(path)
    except InputFileError as exc:
        problem = str(exc)
    else:
        assert validate(t).total == len(t)
        return
    assert problem.startswith(f"{path}: ")
    assert "\n" not in problem


# --- Excel's CSV dialects -----------------------------------------------------------------------


def test_separator_and_encoding_read_a_european_excel_csv(tmp_path: Path) -> None:
    """`;` and cp1252, as Excel saves "CSV" in much of Europe, read with the two flags."""
    path = tmp_path / "eu.csv"
    text = "routing_id;for_inbound_call;for_outbound_call;status;note\r\n1;1;4;1;Café 2€\r\n"
    path.write_bytes(text.encode("cp1252"))
    with pytest.raises(InputFileError, match=r"with --encoding cp1252 \(what Excel's \"CSV\""):
        load_table(path)
    with pytest.raises(InputFileError, match="read it as it is with --separator ';'"):
        load_table(path, reading=Reading(encoding="cp1252"))
    t = load_table(path, reading=Reading(separator=";", encoding="cp1252"))
    assert t.passthrough_frame().get_column("note").to_list() == ["Café 2€"]


def test_utf16_unicode_text_reads_without_flags(tmp_path: Path) -> None:
    """Excel's "Unicode Text" (UTF-16 with its BOM, tab-separated, .txt) needs no flag."""
    path = tmp_path / "unicode.txt"
    path.write_bytes("routing_id\tfor_inbound_call\tfor_outbound_call\tstatus\tnote\r\n"
                     "1\t1\t4\t1\tZürich\r\n".encode("utf-16"))  # fmt: skip
    t = load_table(path)
    assert t.frame.get_column("routing_id").to_list() == ["1"]
    assert t.passthrough_frame().get_column("note").to_list() == ["Zürich"]


def test_a_wrong_encoding_names_the_bad_byte(tmp_path: Path) -> None:
    """Bytes that are not text in the encoding given: the offset and the flag to change."""
    path = tmp_path / "c.csv"
    path.write_bytes(b"routing_id,for_inbound_call,for_outbound_call,status\n1,1,4,\x81\n")
    with pytest.raises(
        InputFileError,
        match=r"is not cp1252 text as --encoding cp1252 says \(bad byte near offset 59\)",
    ):
        load_table(path, reading=Reading(encoding="cp1252"))


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(max_size=300),
    reading=st.sampled_from(
        [Reading(), Reading(separator=";"), Reading(encoding="cp1252"), Reading(encoding="utf-16")]
    ),
    suffix=st.sampled_from([".csv", ".txt"]),
)
def test_random_bytes_in_any_dialect_never_raise_anything_else(
    tmp_path: Path, data: bytes, reading: Reading, suffix: str
) -> None:
    """Any bytes, any dialect: an InputFileError of one line, or a verdict per row."""
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    try:
        t = load_table(path, reading=reading)
    except InputFileError as exc:
        problem = str(exc)
    else:
        assert validate(t).total == len(t)
        return
    assert problem.startswith(f"{path}: ")
    assert "\n" not in problem


# --- one sheet, four ways of saving it -----------------------------------------------------------


def _sheet() -> tuple[list[str], list[list[str]]]:
    """The sample with one typical mistake per code, and a note that needs cp1252."""
    with (SAMPLES / "routing-changes-with-errors.csv").open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    rows[0][-1] = "Café €5 / naïve"
    return header, rows


def _as_number(cell: str) -> object:
    """A cell as Excel stores what was typed: plain numbers as numbers, the rest as text."""
    if re.fullmatch(r"[1-9][0-9]{0,14}|0", cell):
        return int(cell)
    if re.fullmatch(r"[0-9]+\.[0-9]+", cell):
        return float(cell)
    return cell


def _save_as(path: Path, header: list[str], rows: list[list[str]]) -> Reading:
    if path.suffix == ".xlsx":
        book = xlsxwriter.Workbook(path, {"strings_to_numbers": False})
        sheet = book.add_worksheet("Sheet1")
        sheet.write_row(0, 0, header)
        for r, row in enumerate(rows, start=1):
            for c, cell in enumerate(row):
                value = _as_number(cell)
                if isinstance(value, str):
                    if value:
                        sheet.write_string(r, c, value)
                else:
                    sheet.write_number(r, c, value)
        book.close()
        return Reading()
    separator, encoding = {
        "utf8.csv": (",", "utf-8"),
        "eu.csv": (";", "cp1252"),
        "unicode.txt": ("\t", "utf-16"),
    }[path.name]
    out = io.StringIO()
    csv.writer(out, delimiter=separator, lineterminator="\r\n").writerows([header, *rows])
    path.write_bytes(out.getvalue().encode(encoding))
    return Reading(separator=";", encoding="cp1252") if path.name == "eu.csv" else Reading()


def test_the_same_sheet_saved_four_ways_gives_the_same_verdicts_and_bodies(
    tmp_path: Path,
) -> None:
    """CSV, `;` + cp1252 CSV, UTF-16 text and .xlsx: identical codes, bodies and passthrough."""
    header, rows = _sheet()
    judged = []
    for name in ("utf8.csv", "eu.csv", "unicode.txt", "sheet.xlsx"):
        path = tmp_path / name
        t = load_table(path, reading=_save_as(path, header, rows))
        results = list(validate(t).preview_results())
        verdicts = [(r.row, r.routing_id, r.outcome, r.error_code, r.request) for r in results]
        judged.append((verdicts, t.passthrough_frame().to_dicts()))
    codes = [code for *_, code, _ in judged[0][0]]
    assert len(codes) == len(rows)
    assert "" in codes
    assert "MISSING_FIELD" in codes
    assert judged[1] == judged[0]
    assert judged[2] == judged[0]
    assert judged[3] == judged[0]


# --- results as a workbook ------------------------------------------------------------------------


def _results(n: int) -> list[RowResult]:
    outcomes = [Outcome.SUCCEEDED, Outcome.FAILED, Outcome.INVALID, Outcome.SKIPPED]
    return [
        RowResult(row=i, routing_id=str(4100 + i), outcome=outcomes[i % 4], request='{"a":1}')
        for i in range(1, n + 1)
    ]


def test_results_workbook_is_readable_and_marks_rows_that_did_not_succeed(tmp_path: Path) -> None:
    """One sheet: header frozen, autofilter, sized columns, shading for rows not succeeded,
    and a passthrough "=..." written as text, not as a formula."""
    path = tmp_path / "out.xlsx"
    notes = pl.DataFrame({"note": ["=HYPERLINK(1)", "x" * 200, None, "plain"]})
    write_results(path, _results(4), notes)
    with zipfile.ZipFile(path) as z:
        assert [n for n in z.namelist() if n.startswith("xl/worksheets/sheet")] == [
            "xl/worksheets/sheet1.xml"
        ]
        xml = z.read("xl/worksheets/sheet1.xml").decode()
    assert 'state="frozen"' in xml
    assert 'ySplit="1"' in xml
    assert '<autoFilter ref="A1:M5"/>' in xml
    assert '&lt;&gt;"succeeded"' in xml
    assert '="skipped"' in xml
    assert "<f>" not in xml  # no cell became a formula
    cols = re.findall(r'<col min="(\d+)" max="(\d+)" width="([0-9.]+)"', xml)
    widths = {c: float(w) for lo, hi, w in cols for c in range(int(lo), int(hi) + 1)}
    assert sorted(widths) == list(range(1, 14))  # every column sized
    assert min(widths.values()) >= 8
    assert widths[13] == max(widths.values()) < 62
    back = read_results(path)
    assert back.get_column("note").to_list() == ["=HYPERLINK(1)", "x" * 200, None, "plain"]
    assert back.get_column("outcome").to_list() == ["failed", "invalid", "skipped", "succeeded"]


def test_retry_reads_a_workbook_sorted_in_a_spreadsheet_by_row(tmp_path: Path) -> None:
    """A results workbook re-saved sorted by outcome still retries its failed rows by `row`."""
    path = tmp_path / "out.xlsx"
    write_results(path, _results(8), pl.DataFrame({"ticket": [f"T-{i}" for i in range(1, 9)]}))
    shuffled = read_results(path).sort("outcome", descending=True)
    text = shuffled.with_columns(pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%M:%S%.3fZ"))
    text.write_excel(path, worksheet="sorted")  # as a spreadsheet saves it, another layout
    batch = batch_for_retry(path)
    assert [c.row for c in batch.plan.calls] == [1, 5]  # the failed rows, in row order
    assert [r.row for r in batch.plan.base()] == list(range(1, 9))
    assert batch.passthrough.get_column("ticket").to_list() == [f"T-{i}" for i in range(1, 9)]


def test_the_sample_workbook_is_the_sample_csv(tmp_path: Path) -> None:
    """samples/routing-changes.xlsx gives the CSV sample's verdicts, bodies and passthrough."""
    judged = []
    for name in ("routing-changes.csv", "routing-changes.xlsx"):
        t = load_table(SAMPLES / name)
        results = [
            (r.row, r.routing_id, r.outcome, r.request) for r in validate(t).preview_results()
        ]
        judged.append((results, t.passthrough_frame().to_dicts()))
    assert judged[1] == judged[0]
    assert len(judged[0][0]) == 40
