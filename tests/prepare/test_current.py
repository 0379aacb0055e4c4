"""Snapshots of the current records, per-row verdicts and differences, and the runner's gate."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from batch.errors import InputFileError
from batch.model import Outcome
from batch.prepare.current import Current, Diff, Verdict, diff_rows, gate, load_current
from batch.prepare.validate import Validation, add_errors, validate
from batch.sheets.load import load_table

HEADER = (
    "routing_id,for_inbound_call,for_outbound_call,status,connection_id,"
    "inbound_websocket_bot_id,inbound_sip_trunk_id,outbound_websocket_bot_id,outbound_sip_trunk_id"
)
UUID = "3f2b8c1e-5a4d-4e6f-9b7a-1c2d3e4f5a6b"
SNAPSHOT = [
    f"4101,1,2,1,{UUID},,,,41",
    "4102,3,3,1,,210,,93,",
    "4103,2,4,0,,,31,,",
]


def write(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "\n" + "".join(line + "\n" for line in lines))
    return path


@pytest.fixture
def current(tmp_path: Path) -> Current:
    return load_current(write(tmp_path / "current.csv", SNAPSHOT))


def judged(tmp_path: Path, current: Current, lines: list[str], **kwargs: str) -> Diff:
    return diff_rows(validated(tmp_path, lines, **kwargs), current)


def validated(tmp_path: Path, lines: list[str], **kwargs: str) -> Validation:
    return validate(load_table(write(tmp_path / "in.csv", lines)), **kwargs)


def test_snapshot_loads_records_by_routing_id(current: Current) -> None:
    """A snapshot becomes one record per routing id with integers and the connection id."""
    assert len(current) == 3
    assert current.record(4101) == {
        "for_inbound_call": 1,
        "for_outbound_call": 2,
        "status": 1,
        "connection_id": UUID,
        "outbound_sip_trunk_id": 41,
    }
    assert current.record(9999) is None


def test_snapshot_takes_the_old_connection_id_spelling(tmp_path: Path) -> None:
    """A snapshot exported with connectionId still yields the record's connection id."""
    path = write(
        tmp_path / "s.csv",
        [f"7,1,4,1,{UUID}"],
        "routing_id,for_inbound_call,for_outbound_call,status,connectionId",
    )
    assert load_current(path).record(7) == {
        "for_inbound_call": 1,
        "for_outbound_call": 4,
        "status": 1,
        "connection_id": UUID,
    }


def test_broken_snapshot_names_file_row_and_field(tmp_path: Path) -> None:
    """A snapshot with a bad cell is an InputFileError naming the file, the row and the field."""
    path = write(tmp_path / "s.csv", ["4101,1,9,1,,,,,", "4102,1,4,1,,,,,"])
    with pytest.raises(InputFileError) as info:
        load_current(path)
    message = str(info.value)
    assert str(path) in message
    assert "row 1 (line 2), field for_outbound_call" in message
    assert "\n" not in message


def test_duplicate_routing_ids_in_a_snapshot_are_an_error(tmp_path: Path) -> None:
    """Two records for one routing id make the snapshot unusable (which one is current?)."""
    path = write(tmp_path / "s.csv", ["5,1,4,1,,,,,", "5,1,4,0,,,,,"])
    with pytest.raises(InputFileError, match="keep one row per routing_id"):
        load_current(path)


def test_snapshot_missing_a_required_column_is_an_error(tmp_path: Path) -> None:
    """A snapshot without the status column cannot describe whole records."""
    path = write(tmp_path / "s.csv", ["5,1,4"], "routing_id,for_inbound_call,for_outbound_call")
    with pytest.raises(InputFileError, match="status"):
        load_current(path)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_snapshot_in_other_formats_loads_the_same(
    tmp_path: Path, current: Current, suffix: str
) -> None:
    """Parquet and JSON lines snapshots give the same records as the CSV one."""
    frame = pl.read_csv(tmp_path / "current.csv")
    other = tmp_path / f"current{suffix}"
    frame.write_parquet(other) if suffix == ".parquet" else frame.write_ndjson(other)
    assert load_current(other).frame.equals(current.frame)


def test_identical_row_is_no_change(tmp_path: Path, current: Current) -> None:
    """A row that sends the record exactly as it is: no_change, nothing listed."""
    diff = judged(tmp_path, current, ["4102,3,3,1,,210,,93,"])
    [row] = diff.rows()
    assert (row.verdict, row.changes, row.wipes) == (Verdict.NO_CHANGE, (), ())


def test_changed_field_is_listed_old_to_new(tmp_path: Path, current: Current) -> None:
    """A new bot id: change, written `field: old -> new`."""
    [row] = judged(tmp_path, current, ["4102,3,3,1,,210,,104,"]).rows()
    assert row.verdict is Verdict.CHANGE
    assert row.changes == ("outbound_websocket_bot_id: 93 -> 104",)
    assert row.describe() == (
        "row 1 (routing_id 4102) change: outbound_websocket_bot_id: 93 -> 104"
    )


def test_mode_change_drops_the_unused_target_as_a_change(tmp_path: Path, current: Current) -> None:
    """Outbound SIP -> bot leaves the trunk id behind: a change (dropped), never a wipe."""
    [row] = judged(tmp_path, current, [f"4101,1,3,1,{UUID},,,221,"]).rows()
    assert row.verdict is Verdict.CHANGE
    assert row.changes == (
        "for_outbound_call: 2 -> 3",
        "outbound_websocket_bot_id: (empty) -> 221",
        "outbound_sip_trunk_id: 41 -> (dropped)",
    )
    assert row.wipes == ()


def test_empty_connection_id_the_record_has_is_a_wipe(tmp_path: Path, current: Current) -> None:
    """A sheet without the connection id would erase the record's: wipes, naming the field."""
    [row] = judged(tmp_path, current, ["4101,1,2,1,,,,,42"]).rows()
    assert row.verdict is Verdict.WIPES
    assert row.wipes == ("connection_id",)
    assert f"connection_id: {UUID} -> (empty)" in row.changes
    assert "outbound_sip_trunk_id: 41 -> 42" in row.changes
    assert row.describe().startswith("row 1 (routing_id 4101) wipes (erases connection_id): ")


def test_default_connection_id_is_compared_as_sent(tmp_path: Path, current: Current) -> None:
    """--connection-id fills the empty cell, so the row sends the record's own id: no_change."""
    diff = judged(tmp_path, current, ["4101,1,2,1,,,,,41"], connection_id=UUID.upper())
    assert diff.rows()[0].verdict is Verdict.NO_CHANGE


def test_routing_id_not_in_snapshot_is_unknown_record(tmp_path: Path, current: Current) -> None:
    """A valid row whose record is not in the snapshot: unknown_record, no differences."""
    [row] = judged(tmp_path, current, ["4200,1,4,1,,,,,"]).rows()
    assert (row.verdict, row.changes) == (Verdict.UNKNOWN_RECORD, ())
    assert row.describe() == "row 1 (routing_id 4200) unknown_record: not in the snapshot"


def test_invalid_rows_get_no_verdict_and_counts_list_every_verdict(
    tmp_path: Path, current: Current
) -> None:
    """Counts cover valid rows only, every verdict named (0 when none); invalid rows are out."""
    diff = judged(
        tmp_path, current, ["4102,3,3,1,,210,,93,", "4103,2,9,0,,,31,,", "4200,1,4,1,,,,,"]
    )
    assert diff.counts() == {
        Verdict.CHANGE: 0,
        Verdict.NO_CHANGE: 1,
        Verdict.WIPES: 0,
        Verdict.UNKNOWN_RECORD: 1,
    }
    assert diff.frame.get_column("verdict").to_list() == ["no_change", None, "unknown_record"]


def test_summary_lists_wipes_first_then_the_rest_with_a_count(
    tmp_path: Path, current: Current
) -> None:
    """The summary puts rows needing a decision first and counts the rows it leaves out."""
    lines = ["4102,3,3,1,,210,,104,", "4103,2,4,1,,,31,,", "4101,1,2,1,,,,,41"]
    summary = judged(tmp_path, current, lines).summary_lines(limit=2)
    assert summary[0].endswith("change 2, no_change 0, wipes 1, unknown_record 0")
    assert summary[1].startswith("  row 3 (line 4, routing_id 4101) wipes")
    assert summary[2].startswith("  row 1 (line 2, routing_id 4102) change")
    assert summary[3] == "  ... and 1 more (write them all with --out PLAN)"


def test_add_errors_makes_rows_invalid_after_their_own_codes(tmp_path: Path) -> None:
    """Extra errors append their code and message and take the row out of the calls."""
    v = validated(tmp_path, ["1,1,4,1,,,,,", "2,1,9,1,,,,,"])
    extra = pl.DataFrame(
        {"row": [1, 2], "error_code": ["WIPES", "UNKNOWN_RECORD"], "error_message": ["a", "b"]}
    )
    out = add_errors(v, extra)
    assert out.judged.get_column("error_code").to_list() == ["WIPES", "UNKNOWN_MODE;UNKNOWN_RECORD"]
    assert out.judged.get_column("error_message").to_list()[0] == "a"
    assert out.judged.get_column("error_message").to_list()[1].endswith("; b")
    assert list(out.calls()) == []
    assert out.code_counts() == {"UNKNOWN_MODE": 1, "UNKNOWN_RECORD": 1, "WIPES": 1}


def test_gate_refuses_wipes_unless_allowed(tmp_path: Path, current: Current) -> None:
    """run --current: a wiping row is invalid (WIPES, naming row and field) unless allowed."""
    v = validated(tmp_path, ["4101,1,2,1,,,,,41", "4102,3,3,1,,210,,104,"])
    refused = gate(v, current)
    [bad] = refused.validation.invalid_results()
    assert (bad.row, bad.error_code) == (1, "WIPES")
    assert bad.error_message.startswith("row 1 (line 2), field connection_id: the cell is empty")
    assert "--allow-wipe" in bad.error_message
    assert [call.row for call in refused.calls()] == [2]
    allowed = gate(v, current, allow_wipe=True)
    assert [call.row for call in allowed.calls()] == [1, 2]


def test_gate_skips_unchanged_rows_with_a_note(tmp_path: Path, current: Current) -> None:
    """--skip-unchanged leaves no_change rows out: not_attempted, the reason in the note."""
    v = validated(tmp_path, ["04102,3,3,1,,210,,93,", "4103,2,4,1,,,31,,"])
    decided = gate(v, current, skip_unchanged=True)
    assert [call.row for call in decided.calls()] == [2]
    assert decided.send_mask().to_list() == [False, True]
    [skipped] = decided.skipped_results()
    assert (skipped.row, skipped.outcome) == (1, Outcome.SKIPPED)
    assert skipped.routing_id == "04102"  # as read, like every results row
    assert "--skip-unchanged" in skipped.error_message
    assert skipped.request.startswith('{"for_inbound_call":3')
    assert [call.row for call in gate(v, current).calls()] == [1, 2]
