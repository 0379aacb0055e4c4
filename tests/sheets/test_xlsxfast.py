"""batch.sheets.xlsxfast, the streaming .xlsx writer: what it writes reads back as written.

Readers: fastexcel (calamine, what reroute reads with) always; openpyxl and LibreOffice
(``soffice --headless --convert-to csv``) when they are installed, neither is a dependency.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import polars as pl
import pytest

from batch.errors import InputFileError
from batch.model import Outcome, RowResult
from batch.sheets import excel
from batch.sheets.results import read_results, write_results
from batch.sheets.xlsxfast import CELL_MAX, Shade, column_letter, write_xlsx

AWKWARD = [
    "=1+2",  # formula-looking texts stay texts
    "+44 20 7946 0000",
    "-5",
    "@SUM(A1)",
    '=HYPERLINK("http://example.com")',
    'a<b & c>"d"\'',
    "line\nbreak",
    "cr\r\nlf",
    "tab\there",
    "emoji 😀 and 中文",
    "ctl\x00\x01\x07\x0b\x1f.",
    "_x0041_ stays _x0041_",
    "  leading and trailing  ",
    "\n",
    "<r>not rich</r>",
    "]]> <![CDATA[",
    "&amp; already escaped",
    "1",  # digits as text stay text
]


def _write(path: Path, frames: list[pl.DataFrame], **kwargs: object) -> int:
    columns = frames[0].columns
    with path.open("wb") as file:
        return write_xlsx(
            file,
            frames,
            sheet=str(kwargs.get("sheet", "data")),
            columns=columns,
            widths=[10.0] * len(columns),
            header_fill="DDEBF7",
            shades=(Shade('$A2<>"x"', "F8D7DA", "58151C"),),
        )


def _as_text(path: Path) -> pl.DataFrame:
    return pl.read_excel(path, engine="calamine", infer_schema_length=0)


def test_awkward_text_reads_back_as_written_never_as_a_formula(tmp_path: Path) -> None:
    path = tmp_path / "t.xlsx"
    frame = pl.DataFrame({"text": AWKWARD, "n": range(len(AWKWARD))})
    assert _write(path, [frame.slice(0, 7), frame.slice(7)]) == len(AWKWARD)  # two chunks
    back = _as_text(path)
    assert back.get_column("text").to_list() == AWKWARD
    assert back.get_column("n").to_list() == [str(n) for n in range(len(AWKWARD))]
    with zipfile.ZipFile(path) as book:
        xml = book.read("xl/worksheets/sheet1.xml").decode()
        for name in book.namelist():  # every part is well-formed XML
            ElementTree.fromstring(book.read(name))
    assert "<f>" not in xml
    assert "_x000D_" in xml  # a carriage return survives XML's line-end handling
    assert "_x005F_x0041_" in xml  # a literal _x0041_ is not decoded to "A"


def test_numbers_booleans_and_empty_cells_keep_their_types(tmp_path: Path) -> None:
    path = tmp_path / "n.xlsx"
    frame = pl.DataFrame(
        {
            "int": [1, -(2**40), None, 0],
            "float": [1.5, 1e-7, 1e20, None],
            "bool": [True, False, None, True],
            "text": ["a", "", None, "d"],
            "none": pl.Series([None] * 4, dtype=pl.Null),
        }
    )
    _write(path, [frame])
    typed = pl.read_excel(path, engine="calamine")
    assert typed.get_column("int").to_list() == [1, -(2**40), None, 0]
    assert typed.get_column("float").to_list() == [1.5, 1e-7, 1e20, None]
    assert typed.get_column("bool").to_list() == [True, False, None, True]
    assert typed.get_column("text").to_list() == ["a", None, None, "d"]  # "" is no cell
    with zipfile.ZipFile(path) as book:
        xml = book.read("xl/worksheets/sheet1.xml").decode()
    assert '<c r="A3"><v>-1099511627776</v></c>' in xml
    assert '<c r="C2" t="b"><v>1</v></c>' in xml
    assert "D3" not in xml
    assert "E2" not in xml
    assert '<dimension ref="A1:E5"/>' in xml


def test_nan_and_infinity_are_error_cells_as_xlsxwriter_wrote_them(tmp_path: Path) -> None:
    path = tmp_path / "e.xlsx"
    _write(path, [pl.DataFrame({"f": [float("nan"), float("inf"), float("-inf"), 2.0]})])
    with zipfile.ZipFile(path) as book:
        xml = book.read("xl/worksheets/sheet1.xml").decode()
    assert '<c r="A2" t="e"><v>#NUM!</v></c>' in xml
    assert '<c r="A3" t="e"><v>#DIV/0!</v></c><' in xml
    assert '<c r="A4" t="e"><v>#DIV/0!</v></c>' in xml
    back = pl.read_excel(path, infer_schema_length=0, drop_empty_rows=False)
    assert back.get_column("f").to_list() == [None, None, None, "2"]  # calamine: errors empty


def test_long_cells_are_cut_at_excels_limit_and_the_row_goes_on(tmp_path: Path) -> None:
    """32,767 UTF-16 units a cell, a character never split; the cells after it are kept
    (xlsxwriter's write_row stopped the row at a cut cell)."""
    path = tmp_path / "l.xlsx"
    long = ["x" * 40_000, "y" * (CELL_MAX - 1) + "😀", "z" * CELL_MAX, "short"]
    _write(path, [pl.DataFrame({"long": long, "after": ["a", "b", "c", "d"]})])
    back = _as_text(path)
    assert back.get_column("long").to_list() == ["x" * CELL_MAX, "y" * (CELL_MAX - 1), *long[2:]]
    assert back.get_column("after").to_list() == ["a", "b", "c", "d"]


def test_noncharacters_become_the_replacement_character(tmp_path: Path) -> None:
    path = tmp_path / "u.xlsx"
    _write(path, [pl.DataFrame({"t": ["a\ufffeb\uffff"]})])
    assert _as_text(path).item() == "a\ufffdb\ufffd"


def test_header_freeze_filter_widths_shading_and_the_same_bytes_each_time(tmp_path: Path) -> None:
    first, second = tmp_path / "1.xlsx", tmp_path / "2.xlsx"
    frame = pl.DataFrame({"a & b": ["x", "y"], "=c": [1, 2]})
    _write(first, [frame], sheet="it's <mine>")
    _write(second, [frame], sheet="it's <mine>")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as book:
        xml = book.read("xl/worksheets/sheet1.xml").decode()
        workbook = book.read("xl/workbook.xml").decode()
        assert all(info.extra == b"" for info in book.infolist())  # no Zip64 headers
    assert '<c r="A1" s="1" t="inlineStr"><is><t>a &amp; b</t></is></c>' in xml
    assert 'state="frozen"' in xml
    assert '<autoFilter ref="A1:B3"/>' in xml
    assert '<col min="2" max="2" width="10.7109375" customWidth="1"/>' in xml
    assert '<conditionalFormatting sqref="A2:B3">' in xml
    assert '<formula>$A2&lt;&gt;"x"</formula>' in xml
    assert 'name="it\'s &lt;mine&gt;"' in workbook
    assert "'it''s &lt;mine&gt;'!$A$1:$B$3" in workbook
    assert pl.read_excel(first, sheet_name="it's <mine>").columns == ["a & b", "=c"]


def test_column_letters() -> None:
    assert [column_letter(i) for i in (0, 25, 26, 51, 52, 701, 702, 16383)] == [
        "A", "Z", "AA", "AZ", "BA", "ZZ", "AAA", "XFD"
    ]  # fmt: skip


def test_a_results_workbook_past_the_row_limit_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(excel, "MAX_ROWS", 5)
    results = [RowResult(row=i, routing_id=str(i), outcome=Outcome.SUCCEEDED) for i in (1, 2)]
    write_results(tmp_path / "ok.xlsx", results * 2, pl.DataFrame(), chunk_rows=3)
    assert read_results(tmp_path / "ok.xlsx").height == 4
    with pytest.raises(InputFileError, match="more than 4 rows, a worksheet's limit"):
        write_results(tmp_path / "big.xlsx", results * 3, pl.DataFrame(), chunk_rows=3)
    assert not (tmp_path / "big.xlsx").exists()


def test_openpyxl_reads_texts_as_texts(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    path = tmp_path / "o.xlsx"
    plain = [text for text in AWKWARD if "_x" not in text and "\r" not in text]
    plain = [text for text in plain if not any(ord(c) < 32 and c not in "\t\n" for c in text)]
    _write(path, [pl.DataFrame({"text": plain, "n": range(len(plain))})])
    sheet = openpyxl.load_workbook(path).active
    cells = list(sheet.iter_rows(min_row=2, values_only=True))
    assert [text for text, _ in cells] == plain  # openpyxl leaves _xHHHH_ escapes as they are
    assert [n for _, n in cells] == list(range(len(plain)))
    assert sheet.freeze_panes == "A2"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is not installed")
def test_libreoffice_opens_it_with_the_same_values(tmp_path: Path) -> None:
    path = tmp_path / "lo.xlsx"
    frame = pl.DataFrame({"text": AWKWARD, "n": range(len(AWKWARD)), "f": [0.5] * len(AWKWARD)})
    _write(path, [frame])
    # LibreOffice's CSV export filter: comma-separated, '"'-quoted, UTF-8 (76), header row.
    export = "csv:Text - txt - csv (StarCalc):44,34,76,1"
    profile = f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}"  # not another's lock
    subprocess.run(
        [
            "soffice",
            profile,
            "--headless",
            "--convert-to",
            export,
            "--outdir",
            str(tmp_path),
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    rows = list(csv.reader(io.StringIO((tmp_path / "lo.csv").read_text("utf-8"), newline="")))
    assert rows[0] == ["text", "n", "f"]
    texts = [text.replace("\r\n", "\n").replace("\r", "\n") for text in AWKWARD]
    assert [row[0].replace("\r\n", "\n") for row in rows[1:]] == texts
    assert [row[1:] for row in rows[1:]] == [[str(n), "0.5"] for n in range(len(AWKWARD))]
