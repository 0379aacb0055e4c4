"""Load a routing-change file (CSV, Excel, Parquet, JSON lines) into a table of cells as written.

Every known column comes back as text exactly as the user wrote it, so validation can tell
``93.0`` (93) from ``93.5`` and ``abc``; nothing is inferred or silently coerced. Problems with
the file as a whole (missing, not UTF-8, corrupt, a required column absent, duplicate columns)
raise one ``InputFileError`` naming the file and the fix, before any row is judged.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from batch import voicelink
from batch.errors import InputFileError
from batch.model import RESULT_COLUMNS
from batch.sheets import csvfile, excel, rownames
from batch.sheets.dialect import TAB_EXTENSIONS, Reading, TextDialect, check_utf8
from batch.sheets.dialect import separator_label as _label
from batch.sheets.rownames import RowNames

CSV_EXTENSIONS = frozenset({".csv"})
PARQUET_EXTENSIONS = frozenset({".parquet"})
JSONL_EXTENSIONS = frozenset({".jsonl", ".ndjson"})
# Input only: delimited text (.tsv and .txt tab-separated by default) and workbooks.
TEXT_EXTENSIONS = CSV_EXTENSIONS | TAB_EXTENSIONS
EXTENSIONS = TEXT_EXTENSIONS | excel.EXTENSIONS | PARQUET_EXTENSIONS | JSONL_EXTENSIONS

# Canonical name of every known column, keyed by its trimmed, lower-cased header spelling.
_KNOWN: dict[str, str] = {name.lower(): name for name in voicelink.INPUT_COLUMNS}
_KNOWN[voicelink.CONNECTION_ID_OLD.lower()] = voicelink.CONNECTION_ID_OLD
KNOWN_COLUMNS: tuple[str, ...] = (*voicelink.INPUT_COLUMNS, voicelink.CONNECTION_ID_OLD)

# Passthrough columns must not shadow a results-file column (the results file carries both).
_RESERVED = frozenset(name.lower() for name in RESULT_COLUMNS) - {voicelink.ROUTING_ID}

# Whitespace trimmed around cells and header names (the same set validation trims; NBSP
# because spreadsheets paste it).
WHITESPACE = " \t\r\n\x0b\x0c\xa0"

_UTF8_CHUNK = 1 << 20
_POLARS_ERRORS = csvfile.POLARS_ERRORS


@dataclass(frozen=True)
class Table:
    """The rows of one input file, every known cell as text, plus passthrough columns.

    ``frame`` has one row per data row, in input order. Known columns carry their canonical
    names (the old spelling stays ``connectionId``) and hold ``pl.String`` cells as written,
    null for an empty cell; a known, non-required column absent from the file is present and
    all null. ``passthrough`` names the other columns, in file order (they are in ``frame``
    too, under their original names and types). A blank known cell ("  ") is kept as written;
    validation treats it as empty.

    ``names``: how the rows are found in an editor or a spreadsheet (:attr:`row_names`),
    worked out when first asked. ``notes``: what reading found worth telling (which sheet of
    several was read).
    """

    path: Path
    frame: pl.DataFrame
    passthrough: tuple[str, ...]
    names: Callable[[], RowNames] = RowNames
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return self.frame.height

    @property
    def row_names(self) -> RowNames:
        """``row 3 (line 4)``, ``row 3 (sheet row 4)``: batch.sheets.rownames."""
        return self.names()

    def passthrough_frame(self) -> pl.DataFrame:
        """The passthrough columns alone, as the results file carries them."""
        return self.frame.select(self.passthrough)


def load_table(
    path: Path | str,
    *,
    required: Collection[str] = voicelink.REQUIRED_FIELDS,
    reading: Reading | None = None,
) -> Table:
    """Read an input file by its extension; raise InputFileError for file-level problems.

    ``reading``: the workbook's sheet (``--sheet``), a text file's separator and encoding.
    """
    path = Path(path)
    reading = reading or Reading()
    suffix = path.suffix.lower()
    if not path.exists():
        raise InputFileError(path, "no such file")
    if path.is_dir():
        raise InputFileError(path, "is a directory, not a file")
    if suffix not in EXTENSIONS:
        raise InputFileError(
            path,
            f"unknown file type {path.suffix or '(no extension)'!r}: "
            "use .csv, .xlsx, .parquet, .jsonl or .ndjson (or .tsv, .txt)",
        )
    separator: str | None = None
    header_lines: int | None = None  # a text file's
    names: Callable[[], RowNames] = RowNames  # Parquet, JSON lines: the row number says it
    notes: tuple[str, ...] = ()
    try:
        if suffix in TEXT_EXTENSIONS:
            dialect = TextDialect.of(path, reading)
            header, frame, header_lines = csvfile.read_csv(path, dialect)
            _check_header_names(path, header)
            frame, separator = _named(frame, header), dialect.separator
        elif suffix in excel.EXTENSIONS:
            sheet = excel.read_sheet(path, reading.sheet)
            frame, notes = _read_sheet(path, sheet), sheet.notes
            names = functools.partial(rownames.of_sheet, sheet.header_row)
        elif suffix in PARQUET_EXTENSIONS:
            frame = _read_parquet(path)
        else:
            frame = _read_jsonl(path)
    except OSError as exc:
        raise InputFileError(path, f"cannot be read: {exc.strerror or exc}") from exc
    table = _to_table(path, frame, required, separator)
    if header_lines is not None:
        names = _TextRows(table.frame, header_lines)
    return Table(table.path, table.frame, table.passthrough, names, notes)


class _TextRows:
    """A text file's row names, worked out once, when first asked: finding the cells that
    span lines reads every text cell, which a sheet with no row to name never needs."""

    def __init__(self, frame: pl.DataFrame, header_lines: int) -> None:
        self._frame: pl.DataFrame | None = frame
        self._header_lines = header_lines
        self._names: RowNames | None = None

    def __call__(self) -> RowNames:
        if self._names is None:
            assert self._frame is not None
            spanning = csvfile.spanning_rows(self._frame)
            self._names, self._frame = rownames.of_text(self._header_lines, spanning), None
        return self._names


# --- readers: each returns a frame with the file's own header names, known cells as text ---


def _read_sheet(path: Path, sheet: excel.Sheet) -> pl.DataFrame:
    _check_header_names(path, sheet.header)
    return _named(sheet.frame, sheet.header)


def _named(frame: pl.DataFrame, header: list[str]) -> pl.DataFrame:
    """The frame's columns named by the header (checked); trailing blank rows dropped."""
    names = dict(zip(frame.columns, header, strict=True))
    # A spreadsheet often leaves blank lines at the end: they are not rows.
    return _drop_trailing_blank_rows(frame.rename(names))


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except _POLARS_ERRORS as exc:
        raise InputFileError(
            path, f"is not a readable Parquet file (corrupt or not Parquet): {_first_line(exc)}"
        ) from exc
    _check_header_names(path, frame.columns)
    known = {name: _known_name(name) for name in frame.columns}
    return frame.with_columns(
        _number_as_text(path, name, frame.schema[name])
        for name, canonical in known.items()
        if canonical is not None
    )


def _read_jsonl(path: Path) -> pl.DataFrame:
    check_utf8(path)
    with path.open("rb") as file:
        blank = not file.read(_UTF8_CHUNK).strip()
    if blank:
        raise InputFileError(path, "is empty: expected one JSON object per line")
    try:
        # Infer over the whole file, then read known keys as text: JSON 93 and 93.0 read as "93",
        # 93.5 as "93.5", "abc" as "abc", true as "true" (not coerced, so validation judges them).
        schema: dict[str, pl.DataType] = dict(
            pl.scan_ndjson(path, infer_schema_length=None).collect_schema()
        )
        _check_header_names(path, list(schema))
        for name in schema:
            if _known_name(name) is not None:
                schema[name] = pl.String()
        return pl.read_ndjson(path, schema=schema)
    except _POLARS_ERRORS:
        # polars could not read it (a syntax error, or one key holding an object in one line
        # and a number in another): read it line by line, which either copes or names the line.
        return _read_jsonl_lines(path)


def _read_jsonl_lines(path: Path) -> pl.DataFrame:
    """The slow, exact reader: every value as the text JSON writes it, or the bad line named."""
    records: list[dict[str, str | None]] = []
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise InputFileError(
                    path, f"line {number} is not valid JSON ({exc}): one JSON object per line"
                ) from exc
            if not isinstance(record, dict):
                raise InputFileError(
                    path, f"line {number} is not a JSON object: one JSON object per line"
                )
            records.append({str(key): _json_text(value) for key, value in record.items()})
    names = list(dict.fromkeys(key for record in records for key in record))
    _check_header_names(path, names)
    columns = {name: [record.get(name) for record in records] for name in names}
    return pl.DataFrame(columns, schema=dict.fromkeys(names, pl.String()))


def _json_text(value: object) -> str | None:
    """A JSON value as validation should see it: 93.0 is "93", true is "true"."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


# --- from the file's frame to a Table ---


def _to_table(
    path: Path, frame: pl.DataFrame, required: Collection[str], separator: str | None = None
) -> Table:
    renames: dict[str, str] = {}
    passthrough: list[str] = []
    for name in frame.columns:
        canonical = _known_name(name)
        if canonical is None:
            passthrough.append(name)
        elif canonical != name:
            renames[name] = canonical
    missing = [name for name in required if name not in {*renames.values(), *frame.columns}]
    if missing:
        raise InputFileError(path, _missing_columns_problem(missing, frame.columns, separator))
    frame = frame.rename(renames)
    # An empty known cell (quoted "" too) means "not set": hold it as null. Blank cells ("  ")
    # stay as written; validation reads them as empty too.
    # Only columns that hold one are rewritten: the usual sheet is not copied at all.
    known = [name for name in frame.columns if name in KNOWN_COLUMNS]
    empty = frame.select((pl.col(name) == "").any() for name in known).row(0) if known else ()
    frame = frame.with_columns(
        pl.when(pl.col(name) == "").then(None).otherwise(pl.col(name)).alias(name)
        for name, has_empty in zip(known, empty, strict=True)
        if has_empty
    )
    absent = [name for name in KNOWN_COLUMNS if name not in frame.columns]
    frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(name) for name in absent)
    return Table(path=path, frame=frame, passthrough=tuple(passthrough))


def _known_name(header: str) -> str | None:
    return _KNOWN.get(header.strip(WHITESPACE).lower())


def _check_header_names(path: Path, names: Sequence[str]) -> None:
    """Two columns with one name (after trimming, ignoring case) or a nameless column stop;
    so does a header of numbers and UUIDs (the header row is missing)."""
    if names and all(_looks_like_data(name) for name in names):
        raise InputFileError(
            path,
            "the first row holds data, not column names: insert a header row naming the "
            f"columns ({', '.join(voicelink.REQUIRED_FIELDS)}, ...)",
        )
    seen: dict[str, str] = {}
    for index, name in enumerate(names, start=1):
        key = name.strip(WHITESPACE).lower()
        if not key:
            raise InputFileError(
                path, f"column {index} has no header name: name it or delete the column"
            )
        if key in seen:
            raise InputFileError(
                path,
                f"two columns are named {seen[key]!r} and {name!r} (names are matched ignoring "
                "case and spaces): rename or delete one",
            )
        if key in _RESERVED and _known_name(name) is None:
            raise InputFileError(
                path,
                f"column {name!r} has the name of a results-file column: rename it "
                "(results files are not inputs; use `reroute retry` to send one again)",
            )
        seen[key] = name


def _missing_columns_problem(
    missing: Sequence[str], found: Sequence[str], separator: str | None
) -> str:
    shown = ", ".join(repr(name) for name in found[:12]) + (", ..." if len(found) > 12 else "")
    problem = (
        f"required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
        f"not found; columns found: {shown or '(none)'}"
    )
    if len(found) == 1 and separator is not None:
        for sep, label in ((";", "semicolons"), ("\t", "tabs"), (",", "commas"), ("|", "bars")):
            if sep != separator and sep in found[0]:
                also = "" if sep == "," else ", or save the file as comma-separated CSV"
                return (
                    f"{problem}. The header looks separated by {label}: read it as it is with "
                    f"--separator {_label(sep)}{also}"
                )
    return problem


def _looks_like_data(header: str) -> bool:
    """A header cell that is a number or a UUID: the header row is probably missing."""
    text = header.strip(WHITESPACE)
    return bool(
        re.fullmatch(r"[+-]?[0-9]+(\.[0-9]*)?", text) or re.fullmatch(voicelink.UUID_PATTERN, text)
    )


def _number_as_text(path: Path, name: str, dtype: pl.DataType) -> pl.Expr:
    """A Parquet column as the text a user would have typed: float 93.0 is "93", NaN "NaN"."""
    col = pl.col(name)
    if dtype == pl.String or dtype == pl.Null:
        return col.cast(pl.String)
    if dtype.is_integer() or dtype == pl.Boolean or dtype.is_decimal():
        return col.cast(pl.String)
    if dtype.is_float():
        whole = col.is_finite() & (col == col.floor()) & (col.abs() < 2.0**63)
        return (
            pl.when(whole)
            .then(col.cast(pl.Int64, strict=False).cast(pl.String))
            .otherwise(col.cast(pl.String))
            .alias(name)
        )
    raise InputFileError(path, f"column {name!r} holds {dtype} values: store numbers or text in it")


# --- CSV details ---


def _drop_trailing_blank_rows(frame: pl.DataFrame) -> pl.DataFrame:
    if frame.height == 0 or frame.width == 0:
        return frame
    filled = pl.any_horizontal(pl.col(name).is_not_null() for name in frame.columns)
    flags = frame.select(filled.alias("filled")).to_series()
    last = flags.arg_true()
    return frame.head(int(last[-1]) + 1 if last.len() else 0)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
