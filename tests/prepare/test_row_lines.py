"""Messages name a row as the operator finds it (issue 25, part 6): the line of a CSV as an
editor shows it, the sheet row of a workbook, the row alone for Parquet and JSON lines."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import xlsxwriter

from batch.prepare import preflight
from batch.prepare.current import gate, load_current
from batch.prepare.validate import validate
from batch.send.account import Account, Bot, Connection
from batch.sheets.load import load_table

HEADER = ["routing_id", "for_inbound_call", "for_outbound_call", "status", "note"]
ROWS = [
    ["1001", "1", "4", "1", "fine"],
    ["1002", "1", "4", "1", "fine"],
    ["1003", "1", "9", "1", "outbound mode 9 does not exist"],  # the bad row: row 3
]


UUID = "3f2b8c1e-5a4d-4e6f-9b7a-1c2d3e4f5a6b"


def _messages(path: Path) -> list[str]:
    return [m for m in validate(load_table(path)).judged.get_column("error_message") if m]


def _editor_line(path: Path, text: str) -> int:
    """The line an editor shows ``text`` on (1-based)."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


def test_a_csv_and_a_workbook_name_the_same_bad_row_the_same_way(tmp_path: Path) -> None:
    """The same sheet saved as CSV and as xlsx: both messages name row 3 and the 4th line or
    sheet row, where the operator finds it."""
    sheet = tmp_path / "changes.csv"
    with sheet.open("w", newline="") as file:
        csv.writer(file).writerows([HEADER, *ROWS])
    book = tmp_path / "changes.xlsx"
    with xlsxwriter.Workbook(book) as workbook:
        page = workbook.add_worksheet()
        for index, row in enumerate([HEADER, *ROWS]):
            page.write_row(index, 0, row)
    [from_csv] = _messages(sheet)
    [from_xlsx] = _messages(book)
    assert from_csv.startswith("row 3 (line 4), field for_outbound_call: value '9'")
    assert from_xlsx.startswith("row 3 (sheet row 4), field for_outbound_call: value '9'")
    assert _editor_line(sheet, "1003") == 4


def test_a_quoted_cell_spanning_lines_moves_the_line_of_the_rows_below(tmp_path: Path) -> None:
    """A note of three lines in row 1 and a header name on two: the bad row 3 is named by the
    line it starts on in the file, not by its row number plus one."""
    sheet = tmp_path / "changes.csv"
    header = [*HEADER[:-1], "note\n(free text)"]
    rows = [[*ROWS[0][:-1], "first line\nsecond line\r\nthird line"], ROWS[1], ROWS[2]]
    with sheet.open("w", newline="") as file:
        csv.writer(file, lineterminator="\r\n").writerows([header, *rows])
    line = _editor_line(sheet, "1003")
    assert line == 7  # header 2 lines, row 1 3 lines, row 2 1 line
    [message] = _messages(sheet)
    assert message.startswith(f"row 3 (line {line}), field for_outbound_call")


def test_rows_of_one_routing_id_are_each_named_by_their_line(tmp_path: Path) -> None:
    """DUPLICATE_ROUTING_ID lists the other rows by their lines too."""
    sheet = tmp_path / "changes.csv"
    sheet.write_text(
        "routing_id,for_inbound_call,for_outbound_call,status,note\n"
        '7,1,4,1,"two\nlines"\n8,1,4,1,\n7,1,4,1,\n'
    )
    messages = _messages(sheet)
    assert messages[0].startswith("row 1 (line 2), field routing_id: value '7' is in rows ")
    assert "is in rows 1 (line 2), 3 (line 5);" in messages[0]


def test_parquet_and_json_lines_name_the_row_alone(tmp_path: Path) -> None:
    """No editor line to point at: "row 3", as before."""
    frame = pl.DataFrame([dict(zip(HEADER, row, strict=True)) for row in ROWS])
    frame.write_parquet(tmp_path / "changes.parquet")
    frame.write_ndjson(tmp_path / "changes.jsonl")
    for name in ("changes.parquet", "changes.jsonl"):
        [message] = _messages(tmp_path / name)
        assert message.startswith("row 3, field for_outbound_call"), message


def test_plan_and_wipe_messages_name_the_line(tmp_path: Path) -> None:
    """plan --current: a row's verdict line and its WIPES message name its line."""
    snapshot = tmp_path / "current.csv"
    snapshot.write_text(
        "routing_id,for_inbound_call,for_outbound_call,status,connection_id\n"
        f"1001,1,4,1,{UUID}\n1002,1,4,1,\n"
    )
    sheet = tmp_path / "changes.csv"
    sheet.write_text(
        "routing_id,for_inbound_call,for_outbound_call,status,connection_id,note\n"
        '1002,1,4,0,,"a\nb"\n1001,1,4,1,,\n'
    )
    gated = gate(validate(load_table(sheet)), load_current(snapshot))
    lines = gated.diff.summary_lines()
    assert lines[1] == (
        f"  row 2 (line 4, routing_id 1001) wipes (erases connection_id): connection_id: {UUID} "
        "-> (empty)"
    )
    assert lines[2] == "  row 1 (line 2, routing_id 1002) change: status: 1 -> 0"
    [wipe] = gated.validation.invalid_results()
    assert wipe.error_message.startswith("row 2 (line 4), field connection_id: the cell is empty")


def test_the_account_checks_messages_name_the_line(tmp_path: Path) -> None:
    """A bot the account does not have: the preflight's message names the row's line."""
    sheet = tmp_path / "changes.csv"
    sheet.write_text(
        "routing_id,for_inbound_call,for_outbound_call,status,inbound_websocket_bot_id,note\n"
        '1001,3,4,1,5,"x\ny"\n1002,3,4,1,6,\n'
    )
    v = validate(load_table(sheet))
    account = Account(
        bots=(Bot(5, "main", 1),),
        connections=(Connection(UUID, "c", "ACTIVE"),),
        read_at=datetime.now(UTC),
    )
    verdict = preflight.judge(preflight.targets_of_validation(v), account, v.table.row_names)
    [message] = verdict.errors.get_column("error_message").to_list()
    assert message.startswith("row 2 (line 4), field inbound_websocket_bot_id: bot 6 is not")
