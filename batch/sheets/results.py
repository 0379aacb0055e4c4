"""The results file: one record per input row, in input order, then the passthrough columns.

Written atomically (a temp file beside the target, then ``os.replace``) so a crash never
leaves half a results file; the format follows the extension like the input's. Read back by
``reroute retry``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from types import NoneType
from typing import Any, BinaryIO, Final, get_args, get_type_hints

import polars as pl
from polars.io.plugins import register_io_source

from batch.errors import InputFileError
from batch.model import RESULT_COLUMNS, RowResult
from batch.sheets import excel
from batch.sheets.load import CSV_EXTENSIONS, JSONL_EXTENSIONS, PARQUET_EXTENSIONS

# polars types of the fields of a named record (its annotations: ``X | None`` is a nullable X;
# a str enum is its text), times in microseconds, UTC.
_POLARS_TYPES: Final[dict[type, pl.DataType]] = {
    bool: pl.Boolean(), int: pl.Int64(), float: pl.Float64(), str: pl.String(),
    datetime: pl.Datetime("us", "UTC"),
}  # fmt: skip


def polars_schema(record: type) -> dict[str, pl.DataType]:
    """The polars type of each field of the named tuple class ``record``, in field order."""
    schema = {}
    for name, hint in get_type_hints(record).items():
        (kind,) = [k for k in get_args(hint) or (hint,) if k is not NoneType]
        schema[name] = next(t for base, t in _POLARS_TYPES.items() if issubclass(kind, base))
    return schema


# Column types as written to Parquet (text formats write the same values as text): RowResult's.
RESULT_SCHEMA: Final = polars_schema(RowResult)
_TIMES: Final = tuple(n for n, t in RESULT_SCHEMA.items() if isinstance(t, pl.Datetime))
_INTEGERS: Final = tuple(n for n, t in RESULT_SCHEMA.items() if isinstance(t, pl.Int64))
# ISO-8601 UTC, milliseconds, "Z": what a person and every parser read the same way.
TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S%.3fZ"
# Rows held as Python objects and as a frame at a time while the results file is written.
# The peak this phase adds is proportional to it (measured: ~26 MiB at 10,000 rows, ~8 MiB
# at 2,000) and not to the row count; 2,000 rows still write as fast.
CHUNK_ROWS: Final = 2_000
_EXTENSIONS = CSV_EXTENSIONS | excel.EXTENSIONS | PARQUET_EXTENSIONS | JSONL_EXTENSIONS


def check_extension(path: Path) -> str:
    """The results file type of ``path`` (its lower-case extension); InputFileError when
    reroute writes no such type."""
    suffix = path.suffix.lower()
    if suffix not in _EXTENSIONS:
        raise InputFileError(
            path,
            f"unknown results file type {path.suffix or '(no extension)'!r}: "
            "use .csv, .xlsx, .parquet, .jsonl or .ndjson",
        )
    return suffix


def write_results(
    path: Path,
    results: Iterable[RowResult],
    passthrough: pl.DataFrame,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> None:
    """Write one record per input row (input order), then ``passthrough``, atomically.

    The format follows the extension: ``.csv``, ``.xlsx`` (one sheet, see
    ``batch.sheets.excel.write_workbook``), ``.parquet``, ``.jsonl``/``.ndjson``. Times are ISO-8601
    UTC with ``Z`` in text formats and workbooks, UTC timestamps in Parquet.

    Streamed ``chunk_rows`` rows at a time (``results`` is read lazily, e.g. from the journal),
    so a million-row file never means a million-row frame, or its text copies, in memory.
    """
    path = Path(path)
    suffix = check_extension(path)
    frames = _frames(results, passthrough, chunk_rows)
    with atomic_file(path) as file:
        if suffix in PARQUET_EXTENSIONS:
            _sink_parquet(file, frames, {**RESULT_SCHEMA, **passthrough.schema})
        elif suffix in CSV_EXTENSIONS:
            for index, frame in enumerate(frames):
                _as_csv_text(frame).write_csv(file, include_header=index == 0)
        elif suffix in excel.EXTENSIONS:
            excel.write_workbook(path, file, (_as_cells(frame) for frame in frames))
        else:
            for frame in frames:
                _with_text_times(frame).write_ndjson(file)


def _frames(
    results: Iterable[RowResult], passthrough: pl.DataFrame, chunk_rows: int = 0
) -> Iterator[pl.DataFrame]:
    """The results ``chunk_rows`` at a time, each beside its slice of ``passthrough``.

    Always yields at least one frame (empty when there are no results), so a CSV gets its
    header. Raises ValueError when the count of results differs from the passthrough rows.
    """
    if chunk_rows < 1:
        chunk_rows = CHUNK_ROWS
    offset = 0
    chunks = _batched(iter(results), chunk_rows)
    batch = next(chunks, [])
    while True:
        frame = _chunk(batch)
        if passthrough.width:
            side = passthrough.slice(offset, frame.height)
            if side.height != frame.height:
                raise _count_mismatch(offset + frame.height, passthrough.height, more=True)
            frame = frame.hstack(side)
        offset += frame.height
        yield frame
        batch = next(chunks, [])
        if not batch:
            break
    if passthrough.width and offset != passthrough.height:
        raise _count_mismatch(offset, passthrough.height, more=False)


def _count_mismatch(results: int, rows: int, *, more: bool) -> ValueError:
    counted = f"at least {results}" if more else str(results)
    return ValueError(
        f"{counted} results for {rows} passthrough rows: "
        "write_results needs one result per input row"
    )


def _with_text_times(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(name).dt.to_string(TIME_FORMAT) for name in _TIMES)


def _as_csv_text(frame: pl.DataFrame) -> pl.DataFrame:
    frame = _with_text_times(frame)
    # An empty text is an empty cell (polars would quote it as "").
    frame = frame.with_columns(
        pl.when(pl.col(name) == "").then(None).otherwise(pl.col(name)).alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.String
    )
    # CSV holds only flat cells: a nested passthrough value (from JSON lines) goes as JSON.
    return frame.with_columns(
        _as_json(name) for name, dtype in frame.schema.items() if dtype.is_nested()
    )


def _as_cells(frame: pl.DataFrame) -> pl.DataFrame:
    """Flat cells a worksheet holds: numbers and booleans as they are, the rest as text."""
    frame = _as_csv_text(frame)
    plain = (pl.String, pl.Boolean, pl.Null)
    return frame.with_columns(
        pl.col(name).cast(pl.String)
        for name, dtype in frame.schema.items()
        if not (dtype in plain or dtype.is_integer() or dtype.is_float())
    )


def _sink_parquet(
    file: BinaryIO, frames: Iterator[pl.DataFrame], schema: Mapping[str, pl.DataType]
) -> None:
    """Write ``frames`` as one Parquet file, a chunk at a time.

    polars' Python API has no batched Parquet writer; its streaming sink reading a Python
    generator (an IO source) is one. The generator runs on a polars thread while this one
    waits, and an exception it raises comes out of ``sink_parquet`` unchanged.
    """

    def source(
        columns: list[str] | None, _predicate: pl.Expr | None, _n: int | None, _size: int | None
    ) -> Iterator[pl.DataFrame]:
        for frame in frames:
            yield frame if columns is None else frame.select(columns)

    register_io_source(source, schema=schema).sink_parquet(file)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` only when the block ends without an error.

    The temp file sits beside ``path`` (same filesystem, so ``os.replace`` is atomic) and is
    removed on failure; OSErrors become InputFileError naming ``path``.
    """
    directory = path.parent if str(path.parent) else Path()
    try:
        fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputFileError(path, f"cannot be written: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise InputFileError(path, f"cannot be written: {exc.strerror or exc}") from exc
        raise


def read_results(
    path: Path, *, only: Iterable[str] | None = None, passthrough: bool = False
) -> pl.DataFrame:
    """A results file back: RESULT_COLUMNS typed as RESULT_SCHEMA, then its other columns.

    Text columns come back "" where empty; raises InputFileError for a file that is not a
    results file (naming the missing columns) or a cell that does not fit its column.
    ``only``: just these result columns, no other (a CSV or Parquet file then reads no more:
    a report of 200,000 rows needs no bodies), and with ``passthrough`` the input's own
    columns too (a ticket number, a DID: what people name the rows by).
    """
    path = Path(path)
    suffix = check_extension(path)
    if not path.is_file():
        raise InputFileError(path, "no such results file")
    wanted = None if only is None else [name for name in RESULT_COLUMNS if name in set(only)]
    try:
        if suffix in CSV_EXTENSIONS:
            frame = pl.read_csv(
                path, infer_schema=False, raise_if_empty=False,
                columns=_present(path, wanted, suffix, passthrough),
            )  # fmt: skip
        elif suffix in PARQUET_EXTENSIONS:
            frame = pl.read_parquet(path, columns=_present(path, wanted, suffix, passthrough))
        elif suffix in excel.EXTENSIONS:
            frame = _read_workbook(path)
        else:
            frame = pl.read_ndjson(
                path,
                schema_overrides={name: pl.String() for name in (*_TIMES, "routing_id")},
                infer_schema_length=None,
            )
    except pl.exceptions.PolarsError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputFileError(path, f"cannot be read as a results file: {first}") from exc
    except OSError as exc:
        raise InputFileError(path, f"cannot be read: {exc.strerror or exc}") from exc
    if wanted is not None:
        frame = frame.select(
            name
            for name in frame.columns
            if name in wanted or (passthrough and name not in RESULT_COLUMNS)
        )
    expected = RESULT_COLUMNS if wanted is None else wanted
    missing = [name for name in expected if name not in frame.columns]
    if missing:
        raise InputFileError(
            path,
            f"is not a reroute results file: column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} missing",
        )
    typed = frame.with_columns(_typed(name, frame.schema[name]).alias(name) for name in expected)
    for name in (n for n in (*_INTEGERS, *_TIMES) if n in expected):
        bad = frame.get_column(name).is_not_null() & typed.get_column(name).is_null()
        if bad.any():
            index = int(bad.arg_true()[0])
            kind = "an ISO-8601 time" if name in _TIMES else "an integer"
            raise InputFileError(
                path,
                f"row {index + 1}, column {name}: value {frame[index, name]!r} is not {kind}; "
                "was the file edited by hand?",
            )
    others = [name for name in frame.columns if name not in RESULT_COLUMNS]
    return typed.select(*expected, *others)


def _present(
    path: Path, wanted: list[str] | None, suffix: str, passthrough: bool = False
) -> list[str] | None:
    """Of ``wanted``, the columns the file has (a missing one is then named by the caller,
    not by the reader's own error), and its passthrough columns if asked; None: every
    column."""
    if wanted is None:
        return None
    if suffix in PARQUET_EXTENSIONS:
        header = pl.read_parquet_schema(path)
    else:
        header = pl.read_csv(path, n_rows=0, infer_schema=False, raise_if_empty=False).schema
    others = [name for name in header if name not in RESULT_COLUMNS] if passthrough else []
    return [name for name in wanted if name in header] + others


def _read_workbook(path: Path) -> pl.DataFrame:
    """The first sheet of a results workbook, cells as text; blank rows (after a sort or an
    edit in a spreadsheet) are not rows."""
    sheet = excel.read_sheet(path, None)
    frame = sheet.frame.rename(dict(zip(sheet.frame.columns, sheet.header, strict=True)))
    return frame.filter(~pl.all_horizontal(pl.all().is_null()))


def _typed(name: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if name in _TIMES:
        if isinstance(dtype, pl.Datetime):
            aware = (
                col.dt.convert_time_zone("UTC")
                if dtype.time_zone
                else col.dt.replace_time_zone("UTC")
            )
            return aware.dt.cast_time_unit("us")
        return col.cast(pl.String).str.to_datetime(time_zone="UTC", time_unit="us", strict=False)
    if name in _INTEGERS:
        text = col.cast(pl.String).str.strip_chars()
        return pl.when(text == "").then(None).otherwise(text).cast(pl.Int64, strict=False)
    return col.cast(pl.String).fill_null("")


def _as_json(name: str) -> pl.Expr:
    """A nested column as JSON text per cell (null stays null), without a Python loop."""
    # json_encode works on structs: wrap the value in {"v": ...} and cut the wrapper off.
    wrapped = pl.struct(pl.col(name).alias("v")).struct.json_encode()
    text = wrapped.str.strip_prefix('{"v":').str.strip_suffix("}")
    return pl.when(pl.col(name).is_null()).then(None).otherwise(text).alias(name)


def _batched(results: Iterator[RowResult], size: int) -> Iterator[list[RowResult]]:
    while batch := list(islice(results, size)):
        yield batch


def _chunk(batch: list[RowResult]) -> pl.DataFrame:
    # Column by column (the chunk transposed), times as integer microseconds cast once by
    # polars: about 3 us a row where appending and converting datetime objects took 10-16.
    cells = list(zip(*batch, strict=True)) or [()] * len(RESULT_COLUMNS)
    columns: dict[str, Sequence[Any]] = dict(zip(RESULT_COLUMNS, cells, strict=True))
    for name in _TIMES:
        columns[name] = [_micros(moment) for moment in columns[name]]
    frame = pl.DataFrame(columns, schema={**RESULT_SCHEMA, **dict.fromkeys(_TIMES, pl.Int64())})
    return frame.with_columns(pl.col(name).cast(RESULT_SCHEMA[name]) for name in _TIMES)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH: Final = datetime(1970, 1, 1)
_MICROSECOND: Final = timedelta(microseconds=1)


def _micros(moment: datetime | None) -> int | None:
    """Microseconds since the epoch, UTC; a naive time is taken to be UTC already (what the
    runner records), an aware one is converted."""
    if moment is None:
        return None
    naive = moment.utcoffset() is None
    return (moment - (_NAIVE_EPOCH if naive else _EPOCH)) // _MICROSECOND
