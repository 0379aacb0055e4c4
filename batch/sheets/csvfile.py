"""Delimited text sheets (.csv, .tsv, .txt) in the dialect ``batch.sheets.dialect`` settles.

Every cell comes back as text, exactly as written. UTF-8 files are read by polars from the
file itself (the header is decoded here, strictly; polars checks the rest as it reads); a file
in another encoding (``--encoding cp1252``, a UTF-16 file with its BOM) is decoded first, in
chunks, so a bad byte is named with its offset.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl

from batch.errors import InputFileError
from batch.sheets.dialect import TextDialect, as_utf8, check_utf8
from batch.sheets.dialect import separator_label as _label

# What polars raises on a file it cannot read; a Rust panic is a BaseException, caught too so a
# strange file is one clear line, never a traceback.
POLARS_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException)


def read_csv(path: Path, dialect: TextDialect) -> tuple[list[str], pl.DataFrame, int]:
    """The header's cells as written, the rows (one String column per header cell, named
    ``column_1``... so the caller checks the names before using them), and the lines the
    header takes (1 unless a quoted name spans lines)."""
    text = None if dialect.utf8 else as_utf8(path, dialect)
    header, lines = _header(path, dialect.separator, text)
    if not header:
        raise InputFileError(path, "is empty: expected a header row naming the columns")
    try:
        frame = pl.read_csv(
            path if text is None else io.BytesIO(text),
            infer_schema=False,  # every cell as text: validation must see what was written
            new_columns=[f"column_{index}" for index in range(1, len(header) + 1)],
            raise_if_empty=False,
            encoding="utf8",
            separator=dialect.separator,
        )
    except POLARS_ERRORS as exc:
        raise InputFileError(path, _problem(path, exc, dialect)) from exc
    if frame.width != len(header):
        raise InputFileError(
            path, "cannot be read as CSV: the header and the rows disagree on the columns"
        )
    return header, frame, lines


def _header(path: Path, separator: str, text: bytes | None) -> tuple[list[str], int]:
    """The first record's cells, as written (BOM dropped, quotes and newlines honoured), and
    the lines it takes.

    ``text``: the file already decoded to UTF-8 (another encoding), else the file is read.
    """
    source = io.BytesIO(text) if text is not None else path.open("rb")
    with source as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as file:
        try:
            reader = csv.reader(file, delimiter=separator)
            return next(reader, []), reader.line_num
        except csv.Error as exc:
            raise InputFileError(path, f"header row cannot be read as CSV: {exc}") from exc
        except UnicodeDecodeError:
            pass
    check_utf8(path, suggest=True)  # raises, naming the byte and the --encoding to try
    raise AssertionError("unreachable: the header was not UTF-8")  # pragma: no cover


def _problem(path: Path, exc: Exception, dialect: TextDialect) -> str:
    text = str(exc)
    if "more fields than defined" in text:
        return (
            "a row has more cells than the header has columns: quote cells that contain "
            f"the separator ({_label(dialect.separator)}), or add the missing header names"
        )
    if "utf-8" in text.lower() and dialect.utf8:
        check_utf8(path, suggest=True)  # raises, naming the byte and the --encoding to try
        return "is not UTF-8 text: save or export it as UTF-8"
    return f"cannot be read as CSV: {(text.strip().splitlines() or [type(exc).__name__])[0]}"


def spanning_rows(frame: pl.DataFrame) -> list[tuple[int, int]]:
    """The data rows (numbered from 1) with a cell that spans lines (a quoted line break),
    each with the lines it takes beyond its first: an editor's line numbers move down there.
    One pass over every text cell (about a tenth of reading a million rows)."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    if not text or frame.height == 0:
        return []
    breaks = pl.sum_horizontal(
        pl.col(name).str.count_matches("\n", literal=True).fill_null(0) for name in text
    )
    found = (
        frame.lazy()
        .select(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("row"), breaks.alias("more"))
        .filter(pl.col("more") > 0)
        .collect()
    )
    return [(int(row), int(more)) for row, more in found.iter_rows()]
