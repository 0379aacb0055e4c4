"""Loading input files: formats, headers and aliases, cells as written, file-level problems."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch import voicelink as vl
from batch.errors import InputFileError
from batch.prepare.validate import validate
from batch.sheets.load import KNOWN_COLUMNS, Table, load_table

HEADER = "routing_id,for_inbound_call,for_outbound_call,status"


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def cells(t: Table, column: str) -> list[str | None]:
    return t.frame.get_column(column).to_list()


# --- CSV -------------------------------------------------------------------------------------


def test_csv_cells_are_read_as_written(tmp_path: Path) -> None:
    """No inference: 93.0, 093, 93.5 and abc reach validation exactly as typed."""
    path = write(tmp_path, "c.csv", f"{HEADER}\n93.0,093,93.5,abc\n")
    t = load_table(path)
    assert t.frame.row(0, named=True) | {} == {
        **dict.fromkeys(KNOWN_COLUMNS),
        "routing_id": "93.0",
        "for_inbound_call": "093",
        "for_outbound_call": "93.5",
        "status": "abc",
    }
    assert all(t.frame.schema[name] == pl.String for name in KNOWN_COLUMNS)
    assert t.passthrough == ()


def test_csv_with_bom_crlf_and_quoted_cells(tmp_path: Path) -> None:
    """A BOM, CRLF line ends and quoted cells with commas, quotes and newlines all load."""
    text = f'{HEADER},note\r\n1,1,4,1,"a, ""b""\r\nc"\r\n2,1,4,0,plain\r\n'
    t = load_table(write(tmp_path, "c.csv", b"\xef\xbb\xbf" + text.encode()))
    assert len(t) == 2
    assert cells(t, "routing_id") == ["1", "2"]
    assert cells(t, "note") == ['a, "b"\r\nc', "plain"]
    assert t.passthrough == ("note",)


def test_headers_match_trimmed_and_ignoring_case(tmp_path: Path) -> None:
    """` Routing_ID `, `STATUS` and friends are the known columns, under canonical names."""
    path = write(
        tmp_path, "c.csv", " Routing_ID ,For_Inbound_Call,FOR_OUTBOUND_CALL, status\n1,1,4,1\n"
    )
    t = load_table(path)
    assert cells(t, "routing_id") == ["1"]
    assert cells(t, "status") == ["1"]


def test_connectionid_is_the_old_spelling(tmp_path: Path) -> None:
    """`connectionId` (any case) is kept as the old spelling beside an all-null connection_id."""
    uuid = "123e4567-e89b-12d3-a456-426614174000"
    t = load_table(write(tmp_path, "c.csv", f"{HEADER},ConnectionID\n1,1,4,1,{uuid}\n"))
    assert cells(t, vl.CONNECTION_ID_OLD) == [uuid]
    assert cells(t, vl.CONNECTION_ID) == [None]
    assert t.passthrough == ()


def test_passthrough_columns_keep_names_order_and_text(tmp_path: Path) -> None:
    """Other columns are carried as written: E.164 numbers, leading zeros, original names."""
    path = write(
        tmp_path, "c.csv", f"Ticket,{HEADER},did_number, Note \nOPS-1,1,1,4,1,+442071838750,007\n"
    )
    t = load_table(path)
    assert t.passthrough == ("Ticket", "did_number", " Note ")
    assert t.passthrough_frame().row(0) == ("OPS-1", "+442071838750", "007")


def test_absent_optional_columns_are_present_and_null(tmp_path: Path) -> None:
    """Known, non-required columns missing from the file exist in the frame, all null."""
    t = load_table(write(tmp_path, "c.csv", f"{HEADER}\n1,1,4,1\n"))
    for name in (*vl.TARGET_FIELDS, vl.CONNECTION_ID, vl.CONNECTION_ID_OLD):
        assert cells(t, name) == [None]


def test_empty_known_cells_are_null_and_blank_ones_read_as_empty(tmp_path: Path) -> None:
    """An empty or quoted-empty known cell is null; a blank one is kept but judged empty."""
    path = write(tmp_path, "c.csv", f'{HEADER},connection_id\n1,1,4,1,""\n2,1,4,1,\n3,1,4,1,  \n')
    t = load_table(path)
    assert cells(t, vl.CONNECTION_ID) == [None, None, "  "]
    v = validate(t)
    assert v.verdicts["error_code"].to_list() == ["", "", ""]
    assert "connection_id" not in v.verdicts["request"][2]


def test_trailing_blank_lines_are_not_rows(tmp_path: Path) -> None:
    """Blank lines a spreadsheet leaves at the end are dropped; rows keep their numbers."""
    t = load_table(write(tmp_path, "c.csv", f"{HEADER}\n1,1,4,1\n\n2,1,4,1\n\n\n"))
    assert cells(t, "routing_id") == ["1", None, "2"]


def test_header_only_is_an_empty_table(tmp_path: Path) -> None:
    """A header and no rows loads as zero rows (nothing to do), not an error."""
    assert len(load_table(write(tmp_path, "c.csv", HEADER + "\n"))) == 0
    assert len(load_table(write(tmp_path, "d.csv", HEADER))) == 0


def test_required_columns_can_be_chosen(tmp_path: Path) -> None:
    """A caller may require fewer columns (e.g. a snapshot that holds only some fields)."""
    t = load_table(write(tmp_path, "c.csv", "routing_id\n1\n"), required=("routing_id",))
    assert cells(t, "status") == [None]


# --- file-level problems: one InputFileError naming the file and the fix ----------------------


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("c.csv", b"", "is empty"),
        ("c.csv", f"{HEADER}\n1,1,\xff4,1\n".encode("latin-1"), "not UTF-8"),
        (
            "c.csv",
            b"routing_id,for_inbound_call,for_outbound_call,st\xe4tus\n1,1,4,1\n",
            "not UTF-8",
        ),
        ("c.csv", f"{HEADER}\n1,1,4,1,extra\n".encode(), "more cells than the header"),
        ("c.csv", b"routing_id,status\n1,1\n", "for_inbound_call, for_outbound_call not found"),
        (
            "c.csv",
            f"{HEADER},Status\n1,1,4,1,1\n".encode(),
            "two columns are named 'status' and 'Status'",
        ),
        ("c.csv", f"{HEADER},,\n1,1,4,1,,x\n".encode(), "column 5 has no header name"),
        ("c.csv", f"{HEADER},outcome\n1,1,4,1,x\n".encode(), "name of a results-file column"),
        ("c.xls", f"{HEADER}\n".encode(), "unknown file type '.xls'"),
        ("c", f"{HEADER}\n".encode(), "unknown file type '(no extension)'"),
        ("c.parquet", b"PAR1 not really", "not a readable Parquet file"),
        ("c.jsonl", b'{"routing_id": 1}\n{"routing_id":\n', "line 2 is not valid JSON"),
        ("c.jsonl", b"[1, 2]\n", "line 1 is not a JSON object"),
        ("c.ndjson", b"", "is empty"),
        ("c.jsonl", b'{"routing_id": "\xff"}\n', "not UTF-8"),
    ],
)
def test_file_level_problems(tmp_path: Path, name: str, data: bytes, needle: str) -> None:
    """Each file-level problem is one line naming the file and what to do."""
    path = write(tmp_path, name, data)
    with pytest.raises(InputFileError) as caught:
        load_table(path)
    assert needle in str(caught.value)
    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


def test_semicolon_separated_file_gets_a_hint(tmp_path: Path) -> None:
    """A sheet saved with `;` names the flag that reads it as it is, or saving it with commas."""
    path = write(
        tmp_path, "c.csv", "routing_id;for_inbound_call;for_outbound_call;status\n1;1;4;1\n"
    )
    with pytest.raises(InputFileError) as caught:
        load_table(path)
    assert "separated by semicolons: read it as it is with --separator ';'" in str(caught.value)
    assert "or save the file as comma-separated CSV" in str(caught.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    """A path that does not exist, or is a directory, is named as such."""
    with pytest.raises(InputFileError, match="no such file"):
        load_table(tmp_path / "nope.csv")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(InputFileError, match="is a directory"):
        load_table(tmp_path / "dir.csv")


# --- Parquet and JSON lines ---------------------------------------------------------------------


def test_parquet_numbers_are_seen_as_a_user_wrote_them(tmp_path: Path) -> None:
    """Parquet floats: 93.0 is "93", 93.5 stays "93.5", NaN and inf are not integers."""
    path = tmp_path / "c.parquet"
    pl.DataFrame(
        {
            "Routing_ID": [93.0, 93.5, math.nan, math.inf, None],
            "for_inbound_call": [1, 1, 1, 1, 1],
            "for_outbound_call": ["4", "4", "4", "4", "x"],
            "status": [True, False, True, True, True],
            "ticket": [1, 2, 3, 4, 5],
        }
    ).write_parquet(path)
    t = load_table(path)
    assert cells(t, "routing_id") == ["93", "93.5", "NaN", "inf", None]
    assert cells(t, "for_inbound_call") == ["1"] * 5
    assert t.passthrough == ("ticket",)
    assert t.frame.schema["ticket"] == pl.Int64  # passthrough keeps its type
    codes = validate(t).verdicts["error_code"].to_list()
    assert codes[1:4] == ["NOT_AN_INTEGER"] * 3


def test_parquet_nested_known_column_is_a_file_error(tmp_path: Path) -> None:
    """A list in a known column cannot be judged cell by cell: the file is refused."""
    path = tmp_path / "c.parquet"
    pl.DataFrame(
        {"routing_id": [[1]], "for_inbound_call": [1], "for_outbound_call": [4], "status": [1]}
    ).write_parquet(path)
    with pytest.raises(InputFileError, match="column 'routing_id' holds"):
        load_table(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_jsonl_values_are_seen_as_written(tmp_path: Path, suffix: str) -> None:
    """JSON 93 and 93.0 are "93", 93.5 and true are judged as written; late keys count too."""
    lines = [
        {"routing_id": 93, "for_inbound_call": 1, "for_outbound_call": 4, "status": 1},
        {"routing_id": 93.5, "for_inbound_call": "1", "for_outbound_call": 4, "status": True},
        {"routing_id": None, "for_inbound_call": 1.0, "for_outbound_call": 4, "status": 0},
        {
            "routing_id": 7,
            "for_inbound_call": 1,
            "for_outbound_call": 4,
            "status": 0,
            "ticket": "T",
        },
    ]
    path = write(tmp_path, f"c{suffix}", "\n".join(json.dumps(x) for x in lines) + "\n")
    t = load_table(path)
    assert cells(t, "routing_id") == ["93", "93.5", None, "7"]
    assert cells(t, "for_inbound_call") == ["1", "1", "1", "1"]
    assert cells(t, "status") == ["1", "true", "0", "0"]
    assert t.passthrough == ("ticket",)


# --- property tests: any bytes in, a clear error or a table out ---------------------------------


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".jsonl", ".parquet"]))
def test_random_bytes_never_raise_anything_else(tmp_path: Path, data: bytes, suffix: str) -> None:
    """Random bytes give an InputFileError or a table that validates, never another error."""
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    try:
        t = load_table(path)
    except InputFileError as exc:
        problem = str(exc)
    else:
        assert validate(t).total == len(t)
        return
    assert problem.startswith(f"{path}: ")
    assert "\n" not in problem


csv_cell = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.lists(csv_cell, min_size=5, max_size=5), max_size=6))
def test_random_csv_cells_round_trip_to_a_verdict_per_row(
    tmp_path: Path, rows: list[list[str]]
) -> None:
    """Any cell text, quoted properly, loads to one verdict per row and keeps passthrough text."""

    def quote(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    lines = [f"{HEADER},note"] + [",".join(quote(c) for c in r) for r in rows]
    path = tmp_path / "random.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    t = load_table(path)
    blank = [r for r in rows if all(c == "" for c in r)]
    # Only trailing all-empty rows may be dropped; every other row is one table row.
    assert len(rows) - len(blank) <= len(t) <= len(rows)
    v = validate(t)
    assert v.total == len(t)
    assert t.passthrough_frame().get_column("note").fill_null("").to_list() == [
        r[4] for r in rows[: len(t)]
    ]


def test_jsonl_with_mixed_shapes_is_read_line_by_line(tmp_path: Path) -> None:
    """A key holding an object in one line and a number in another still loads, as JSON text."""
    lines = [
        '{"routing_id": {"a": 1}, "for_inbound_call": [1], "for_outbound_call": 4, "status": 1}',
        '{"routing_id": 5, "for_inbound_call": 1.0, "for_outbound_call": 4, "status": true}',
    ]
    t = load_table(write(tmp_path, "c.jsonl", "\n".join(lines) + "\n"))
    assert cells(t, "routing_id") == ['{"a":1}', "5"]
    assert cells(t, "for_inbound_call") == ["[1]", "1"]
    assert cells(t, "status") == ["1", "true"]
    assert validate(t).verdicts["error_code"].to_list() == ["NOT_AN_INTEGER", "NOT_AN_INTEGER"]
