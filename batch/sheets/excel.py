"""Excel workbooks (.xlsx): a sheet read as written, and results written as a workbook.

Reading goes through polars' Excel reader on the calamine engine (``fastexcel``: Rust, no Excel
needed), every cell as text: a number cell 93 or 93.0 reads "93", 93.5 "93.5", a text cell
" 93 " as typed (validation trims it), a formula by its cached value, an empty text cell as
empty. Rows keep their place (blank rows too), so a row's spreadsheet number is known: the
header's row number plus the data-row number.

Writing results goes through ``batch.sheets.xlsxfast``, a chunk at a time: each chunk's sheet XML is
built by polars expressions (xlsxwriter, which formats every cell in Python, took 13.8 s for
100,000 rows; polars' ``write_excel``, 31.9 s and memory that grows with the rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

import polars as pl

from batch.errors import InputFileError

if TYPE_CHECKING:
    from batch.sheets.xlsxfast import Shade

EXTENSIONS: Final = frozenset({".xlsx"})
_ZIP: Final = b"PK\x03\x04"
_OLE2: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted .xlsx, or an old .xls


# What the readers raise on a workbook they cannot read; a Rust panic (pyo3's PanicException,
# a BaseException) is caught by name in _read, so a strange file is one line, never a traceback.
def _read_errors() -> tuple[type[BaseException], ...]:
    """What the readers raise on a workbook they cannot read. fastexcel is imported only
    when a workbook is read: a CSV run never pays for it."""
    import fastexcel

    return (fastexcel.FastExcelError, pl.exceptions.PolarsError, ValueError, OSError)


@dataclass(frozen=True)
class Sheet:
    """One sheet's cells as text: ``header`` (names as written, blank ones ""), ``frame`` (the
    data rows, one String column per header cell), where the header is, and what to tell."""

    header: list[str]
    frame: pl.DataFrame
    header_row: int  # the spreadsheet's row number of the header (1 when nothing is above it)
    notes: tuple[str, ...]


def read_sheet(path: Path, sheet: str | None) -> Sheet:
    """The sheet named ``sheet`` (else the first) of the workbook at ``path``.

    Raises InputFileError for a workbook that cannot be read (corrupt, password-protected, not
    a workbook), an unknown sheet, an empty sheet, or a header cell missing over a column with
    data (merged header cells).
    """
    names = _sheet_names(path)
    name = _pick(path, names, sheet)
    notes: tuple[str, ...] = ()
    if sheet is None and len(names) > 1:
        others = ", ".join(repr(n) for n in names[1:6]) + (", ..." if len(names) > 6 else "")
        notes = (
            f"{path}: read sheet {name!r}, the first of {len(names)} (also {others}); "
            "--sheet NAME reads another",
        )
    raw = _read(path, name)
    filled = raw.select(pl.any_horizontal(pl.all().str.strip_chars().ne("")).alias("f"))
    used = filled.get_column("f").fill_null(False).arg_true() if raw.width else pl.Series([])
    if used.len() == 0:
        raise InputFileError(
            path, f"sheet {name!r} is empty: expected a header row naming the columns"
        )
    top = int(used[0])
    header_cells = raw.row(top)
    data = raw.slice(top + 1)
    header: list[str] = []
    keep: list[str] = []
    for index, (column, cell) in enumerate(zip(raw.columns, header_cells, strict=True)):
        title = (cell or "").strip()
        if not title:
            if _has_data(data.get_column(column)):
                from batch.sheets.xlsxfast import column_letter

                raise InputFileError(
                    path,
                    f"sheet {name!r}, cell {column_letter(index)}{top + 1}: the column has data "
                    "but no header name; name it (merged header cells keep their name in the first "
                    "cell only: unmerge them and name each column) or delete the column",
                )
            continue  # an empty, nameless column (a formatted cell) is not a column
        header.append(cell or "")
        keep.append(column)
    return Sheet(header, data.select(keep), header_row=top + 1, notes=notes)


def _sheet_names(path: Path) -> list[str]:
    import fastexcel

    try:
        names = fastexcel.read_excel(str(path)).sheet_names
    except _read_errors() as exc:
        raise InputFileError(path, _unreadable(path, exc)) from exc
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise InputFileError(path, _unreadable(path, exc)) from None
    if not names:
        raise InputFileError(path, "is a workbook without sheets: save the sheet into it")
    return names


def _pick(path: Path, names: Sequence[str], sheet: str | None) -> str:
    if sheet is None:
        return names[0]
    if sheet in names:
        return sheet
    near = [n for n in names if n.strip().lower() == sheet.strip().lower()]
    if len(near) == 1:
        return near[0]
    listed = ", ".join(repr(n) for n in names)
    raise InputFileError(path, f"has no sheet named {sheet!r}: its sheets are {listed}")


def _read(path: Path, name: str) -> pl.DataFrame:
    """Every cell of the sheet as text, from the sheet's first row and column."""
    try:
        return pl.read_excel(
            path,
            sheet_name=name,
            engine="calamine",
            has_header=False,
            infer_schema_length=0,  # every cell as text
            read_options={"skip_rows": 0},  # keep blank rows above the header: row numbers
            drop_empty_rows=False,  # a blank row keeps its number
            drop_empty_cols=False,
            raise_if_empty=False,
        )
    except _read_errors() as exc:
        raise InputFileError(path, _unreadable(path, exc)) from exc
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise InputFileError(path, _unreadable(path, exc)) from None


def _unreadable(path: Path, exc: BaseException) -> str:
    with path.open("rb") as file:
        head = file.read(8)
    if head == _OLE2:
        return (
            "is password-protected (or an old .xls workbook): remove the password (File > Info "
            "> Protect Workbook) and save it as an Excel Workbook (.xlsx)"
        )
    if not head.startswith(_ZIP):
        return "is not an Excel workbook (.xlsx): save the sheet as an Excel Workbook"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"is not a readable Excel workbook (damaged?): {first[:200]}"


def _has_data(column: pl.Series) -> bool:
    return bool(column.str.strip_chars().ne("").fill_null(False).any())


# --- results as a workbook ---

MAX_ROWS: Final = 1_048_576  # a worksheet's rows, the header's included
RESULTS_SHEET: Final = "results"
_WIDTH_MIN, _WIDTH_MAX = 8, 60  # column widths in characters: readable, never a wall of text
_HEADER_FILL: Final = "DDEBF7"  # light blue
_NOT_SUCCEEDED: Final = ("F8D7DA", "58151C")  # fill and font: light red
_SKIPPED: Final = ("E9ECEF", "495057")  # grey: left out on purpose


def write_workbook(path: Path, file: BinaryIO, frames: Iterable[pl.DataFrame]) -> None:
    """Write ``frames`` (results chunks: flat cells, an ``outcome`` column) as one sheet.

    The header is frozen and carries an autofilter; columns are sized to their content (the
    first chunk's); a row whose outcome is not ``succeeded`` is shaded (a conditional format,
    so the shading follows the row when the sheet is sorted). Cells are written as their
    type says: text as text, never as a formula or a link (a passthrough note starting with
    "=" stays a note). Streamed a chunk at a time by ``batch.sheets.xlsxfast``: memory follows the
    chunk, not the row count. Raises InputFileError past Excel's row limit.
    """
    from batch.sheets.xlsxfast import Shade, column_letter, write_xlsx  # writing only (start-up)

    chunks = iter(frames)
    first = next(chunks, None)
    columns = first.columns if first is not None else []
    shades: tuple[Shade, ...] = ()
    if "outcome" in columns:
        outcome = f"${column_letter(columns.index('outcome'))}2"
        shades = (
            Shade(f'{outcome}="skipped"', *_SKIPPED),
            Shade(f'{outcome}<>"succeeded"', *_NOT_SUCCEEDED),
        )
    write_xlsx(
        file,
        _capped(path, chain([first] if first is not None else [], chunks)),
        sheet=RESULTS_SHEET,
        columns=columns,
        widths=_widths(first) if first is not None else [],
        header_fill=_HEADER_FILL,
        shades=shades,
    )


def _capped(path: Path, frames: Iterable[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    """``frames``, raising InputFileError before the rows pass a worksheet's limit."""
    rows = 1  # the header
    for frame in frames:
        rows += frame.height
        if rows > MAX_ROWS:
            raise InputFileError(
                path,
                f"holds more than {MAX_ROWS - 1:,} rows, a worksheet's limit: write the "
                "results as .csv or .parquet",
            )
        yield frame


def _widths(frame: pl.DataFrame) -> list[int]:
    """Each column's width in characters: its header or its longest cell, within bounds."""
    longest = frame.select(pl.all().cast(pl.String).str.len_chars().max()).row(0)
    return [
        min(max(len(name) + 2, (cells or 0) + 1, _WIDTH_MIN), _WIDTH_MAX)
        for name, cells in zip(frame.columns, longest, strict=True)
    ]


__all__ = ["EXTENSIONS", "Sheet", "read_sheet", "write_workbook"]
