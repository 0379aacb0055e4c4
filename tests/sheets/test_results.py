"""The results file: columns and order, formats, times, atomic writes, reading it back."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from batch.errors import InputFileError
from batch.model import RESULT_COLUMNS, Outcome, RowResult
from batch.sheets.results import read_results, write_results

T0 = datetime(2026, 11, 30, 1, 2, 3, 456789, tzinfo=UTC)

RESULTS = [
    RowResult(
        row=1,
        routing_id="93",
        outcome=Outcome.SUCCEEDED,
        http_status=200,
        attempts=2,
        request='{"for_inbound_call":1,"for_outbound_call":4,"status":1}',
        response='{"success":true,"data":{}}',
        started_at=T0,
        finished_at=T0 + timedelta(seconds=1.5),
        duration_ms=1500,
    ),
    RowResult(
        row=2,
        routing_id="abc",
        outcome=Outcome.INVALID,
        error_code="NOT_AN_INTEGER",
        error_message="row 2, field routing_id: value 'abc' is not an integer",
    ),
]
PASSTHROUGH = pl.DataFrame({"ticket": ["OPS-1", "OPS-2"], "note": ['a, "b"\nc', None]})


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet", ".jsonl", ".ndjson"])
def test_results_round_trip_in_every_format(tmp_path: Path, suffix: str) -> None:
    """Written then read back, every format gives the same typed records and passthrough."""
    path = tmp_path / f"out.results{suffix}"
    write_results(path, RESULTS, PASSTHROUGH)
    frame = read_results(path)
    assert frame.columns == [*RESULT_COLUMNS, "ticket", "note"]
    first, second = frame.rows(named=True)
    assert first["outcome"] == "succeeded"
    assert first["http_status"] == 200
    assert first["attempts"] == 2
    assert first["duration_ms"] == 1500
    # Text formats keep milliseconds; Parquet keeps microseconds.
    assert abs(first["started_at"] - T0) < timedelta(milliseconds=1)
    assert first["started_at"].utcoffset() == timedelta(0)
    assert second["routing_id"] == "abc"
    assert second["http_status"] is None
    assert second["request"] == ""
    assert second["error_code"] == "NOT_AN_INTEGER"
    assert (first["ticket"], first["note"]) == ("OPS-1", 'a, "b"\nc')


def test_csv_times_are_iso_utc_with_z_and_empty_cells_are_empty(tmp_path: Path) -> None:
    """CSV shows 2026-11-30T01:02:03.456Z and leaves empty text as an empty cell, not ""."""
    path = tmp_path / "out.csv"
    write_results(path, RESULTS, PASSTHROUGH)
    lines = path.read_text().splitlines()
    assert lines[0].split(",")[:12] == list(RESULT_COLUMNS)
    assert ",2026-11-30T01:02:03.456Z,2026-11-30T01:02:04.956Z,1500," in lines[1]
    assert lines[-1].startswith("2,abc,invalid,,0,NOT_AN_INTEGER,")
    assert '""' not in lines[-1]


def test_jsonl_times_and_request_text(tmp_path: Path) -> None:
    """JSON lines carry times as ISO-8601 Z and the request as the exact compact text."""
    path = tmp_path / "out.jsonl"
    write_results(path, RESULTS, PASSTHROUGH)
    first = json.loads(path.read_text().splitlines()[0])
    assert first["started_at"] == "2026-11-30T01:02:03.456Z"
    assert first["request"] == RESULTS[0].request


def test_naive_and_offset_times_are_written_as_utc(tmp_path: Path) -> None:
    """A naive time is taken as UTC; an offset time is converted to UTC."""
    plus2 = timezone(timedelta(hours=2))
    results = [
        RowResult(
            1,
            "1",
            Outcome.FAILED,
            started_at=datetime(2026, 1, 1, 12),
            finished_at=datetime(2026, 1, 1, 14, tzinfo=plus2),
        )
    ]
    path = tmp_path / "out.csv"
    write_results(path, results, pl.DataFrame())
    assert ",2026-01-01T12:00:00.000Z,2026-01-01T12:00:00.000Z," in path.read_text()


def test_parquet_keeps_types(tmp_path: Path) -> None:
    """Parquet results keep integers as integers and times as UTC timestamps."""
    path = tmp_path / "out.parquet"
    write_results(path, RESULTS, PASSTHROUGH)
    schema = pl.read_parquet_schema(path)
    assert schema["http_status"] == pl.Int64
    assert schema["started_at"] == pl.Datetime("us", "UTC")


def test_no_results_and_no_passthrough_is_a_header(tmp_path: Path) -> None:
    """An empty input still gets a results file with the columns."""
    path = tmp_path / "out.csv"
    write_results(path, [], pl.DataFrame({"ticket": []}, schema={"ticket": pl.String}))
    assert path.read_text().strip() == ",".join([*RESULT_COLUMNS, "ticket"])


def test_a_results_count_that_does_not_match_the_rows_is_refused(tmp_path: Path) -> None:
    """One result per input row: a mismatch is a programming error, caught before writing."""
    with pytest.raises(ValueError, match="one result per input row"):
        write_results(tmp_path / "out.csv", RESULTS[:1], PASSTHROUGH)
    assert not (tmp_path / "out.csv").exists()


def test_writing_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    """A failed write keeps the old file whole and leaves no temp file behind."""
    path = tmp_path / "out.csv"
    write_results(path, RESULTS, PASSTHROUGH)
    before = path.read_bytes()

    def exploding() -> Iterator[RowResult]:
        yield RESULTS[0]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_results(path, exploding(), PASSTHROUGH)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.csv"]


def test_unwritable_place_is_one_clear_error(tmp_path: Path) -> None:
    """A results path in a missing directory is an InputFileError naming it."""
    with pytest.raises(InputFileError, match="cannot be written"):
        write_results(tmp_path / "no" / "out.csv", RESULTS, PASSTHROUGH)


def test_unknown_results_extension(tmp_path: Path) -> None:
    """Results formats follow the extension; an unknown one is refused up front."""
    with pytest.raises(InputFileError, match=r"unknown results file type '\.ods'"):
        write_results(tmp_path / "out.ods", RESULTS, PASSTHROUGH)


def test_reading_a_file_that_is_not_results_names_missing_columns(tmp_path: Path) -> None:
    """A changes file given to read_results says which results columns are missing."""
    path = tmp_path / "changes.csv"
    path.write_text("routing_id,for_inbound_call,for_outbound_call,status\n1,1,4,1\n")
    with pytest.raises(InputFileError, match="not a reroute results file: columns row, outcome"):
        read_results(path)


def test_reading_a_hand_broken_cell_names_row_and_column(tmp_path: Path) -> None:
    """A results cell that does not fit its column is named by row and column."""
    path = tmp_path / "out.csv"
    write_results(path, RESULTS, PASSTHROUGH)
    path.write_text(path.read_text().replace("succeeded,200,2", "succeeded,two hundred,2"))
    with pytest.raises(InputFileError, match="row 1, column http_status: value 'two hundred'"):
        read_results(path)
    with pytest.raises(InputFileError, match="no such results file"):
        read_results(tmp_path / "missing.csv")


def test_nested_passthrough_values_go_to_csv_as_json(tmp_path: Path) -> None:
    """A JSON-lines passthrough object or list is written to a CSV cell as its JSON text."""
    passthrough = pl.DataFrame({"meta": [{"team": "ops", "n": 1}, None], "tags": [["a"], []]})
    path = tmp_path / "out.csv"
    write_results(path, RESULTS, passthrough)
    frame = read_results(path)
    assert json.loads(frame["meta"][0]) == {"team": "ops", "n": 1}
    assert json.loads(frame["tags"][0]) == ["a"]


def _many(n: int) -> list[RowResult]:
    """``n`` results alternating succeeded and invalid, rows 1..n."""
    return [RESULTS[i % 2]._replace(row=i + 1) for i in range(n)]


def _tickets(n: int) -> pl.DataFrame:
    return pl.DataFrame({"ticket": [f"OPS-{i}" for i in range(1, n + 1)], "n": list(range(n))})


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_chunked_text_file_is_byte_identical_to_one_chunk(tmp_path: Path, suffix: str) -> None:
    """Streaming in chunks writes exactly the bytes of one whole write (one header, in order)."""
    whole, chunked = tmp_path / f"whole{suffix}", tmp_path / f"chunked{suffix}"
    write_results(whole, _many(7), _tickets(7), chunk_rows=100)
    write_results(chunked, _many(7), _tickets(7), chunk_rows=3)
    assert chunked.read_bytes() == whole.read_bytes()
    assert len(chunked.read_text().splitlines()) == 7 + (suffix == ".csv")


def test_chunked_parquet_reads_back_whole_and_in_order(tmp_path: Path) -> None:
    """Parquet written chunk by chunk reads back as every row, in order, with its types."""
    path = tmp_path / "out.parquet"
    write_results(path, _many(7), _tickets(7), chunk_rows=3)
    frame = read_results(path)
    assert frame["row"].to_list() == list(range(1, 8))
    assert frame["ticket"].to_list() == [f"OPS-{i}" for i in range(1, 8)]
    assert frame["outcome"].to_list()[:2] == ["succeeded", "invalid"]
    assert pl.read_parquet_schema(path)["started_at"] == pl.Datetime("us", "UTC")


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".xlsx"])
def test_no_results_in_other_formats(tmp_path: Path, suffix: str) -> None:
    """No rows at all still writes a readable (empty) results file in every format."""
    path = tmp_path / f"out{suffix}"
    write_results(path, [], pl.DataFrame({"ticket": []}, schema={"ticket": pl.String}))
    assert path.exists()
    if suffix in (".parquet", ".xlsx"):
        assert read_results(path).height == 0


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".xlsx"])
@pytest.mark.parametrize("results", [5, 9], ids=["fewer", "more"])
def test_a_mismatch_found_in_a_later_chunk_still_writes_nothing(
    tmp_path: Path, suffix: str, results: int
) -> None:
    """Too few or too many results, noticed chunks into the stream, leave no file at all."""
    path = tmp_path / f"out{suffix}"
    with pytest.raises(ValueError, match="one result per input row"):
        write_results(path, _many(results), _tickets(7), chunk_rows=2)
    assert os.listdir(tmp_path) == []


def test_results_are_read_a_chunk_at_a_time(tmp_path: Path) -> None:
    """The results iterator is consumed lazily: a chunk is written before the next is read."""
    path = tmp_path / "out.csv"
    sizes: list[int] = []

    def watched() -> Iterator[RowResult]:
        for result in _many(9):
            if result.row in (4, 7):  # first row of the 2nd and 3rd chunk (chunks of 3)
                sizes.append(path.parent.joinpath(_temp_name(tmp_path)).stat().st_size)
            yield result

    write_results(path, watched(), _tickets(9), chunk_rows=3)
    assert sizes[0] > 0  # the first chunk was on disk before the second was read
    assert sizes[1] > sizes[0]


def _temp_name(directory: Path) -> str:
    (temp,) = [name for name in os.listdir(directory) if name.endswith(".tmp")]
    return temp
