"""--fill-from-current: empty cells and absent columns from the snapshot, mode changes, unknowns."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch import voicelink as vl
from batch.prepare.current import Current, Verdict, diff_rows, load_current
from batch.prepare.fill import fill_from_current
from batch.prepare.validate import Validation, validate
from batch.sheets.load import load_table
from tests.fakes import targets_used

HEADER = (
    "routing_id,for_inbound_call,for_outbound_call,status,connection_id,"
    "inbound_websocket_bot_id,inbound_sip_trunk_id,outbound_websocket_bot_id,outbound_sip_trunk_id"
)
UUID = "3f2b8c1e-5a4d-4e6f-9b7a-1c2d3e4f5a6b"
OTHER_UUID = "123e4567-e89b-12d3-a456-426614174000"


@pytest.fixture
def current(tmp_path: Path) -> Current:
    path = tmp_path / "current.csv"
    path.write_text(
        HEADER
        + "\n"
        + f"4101,1,2,1,{UUID},,,,41\n"
        + "4102,3,3,0,,210,,93,\n"
        + "4103,2,4,1,,,31,,\n"
    )
    return load_current(path)


def filled(tmp_path: Path, current: Current, text: str) -> Validation:
    path = tmp_path / "in.csv"
    path.write_text(text)
    result = fill_from_current(load_table(path, required=("routing_id",)), current)
    return validate(result.table, extra_errors=result.errors)


def bodies(v: Validation) -> list[str]:
    return [call.body for call in v.calls()]


def test_absent_columns_take_the_whole_current_record(tmp_path: Path, current: Current) -> None:
    """A sheet of routing ids and one changed column sends complete bodies (inbound kept)."""
    v = filled(tmp_path, current, "routing_id,outbound_websocket_bot_id\n4102,104\n")
    assert v.invalid == 0
    assert bodies(v) == [
        '{"for_inbound_call":3,"for_outbound_call":3,"status":0,'
        '"inbound_websocket_bot_id":210,"outbound_websocket_bot_id":104}'
    ]


def test_empty_cells_are_filled_and_written_cells_win(tmp_path: Path, current: Current) -> None:
    """Empty and blank cells take the record's values; a written cell is kept as written."""
    v = filled(tmp_path, current, HEADER + "\n" + "4101,, ,0,,,,,42\n")
    assert bodies(v) == [
        f'{{"for_inbound_call":1,"for_outbound_call":2,"status":0,"connection_id":"{UUID}",'
        '"outbound_sip_trunk_id":42}'
    ]


def test_mode_change_drops_the_old_target_id(tmp_path: Path, current: Current) -> None:
    """Outbound SIP -> bot: the record's trunk id is not carried over (it would be UNUSED)."""
    v = filled(
        tmp_path, current, "routing_id,for_outbound_call,outbound_websocket_bot_id\n4101,3,221\n"
    )
    assert v.invalid == 0
    assert bodies(v) == [
        f'{{"for_inbound_call":1,"for_outbound_call":3,"status":1,"connection_id":"{UUID}",'
        '"outbound_websocket_bot_id":221}'
    ]
    [row] = diff_rows(v, current).rows()
    assert row.verdict is Verdict.CHANGE
    assert "outbound_sip_trunk_id: 41 -> (dropped)" in row.changes


def test_mode_change_to_a_mode_needing_a_new_target_still_needs_it(
    tmp_path: Path, current: Current
) -> None:
    """Inbound SIP -> bot with no bot id: the old trunk is not used, so MISSING_TARGET."""
    v = filled(tmp_path, current, "routing_id,for_inbound_call\n4103,3\n")
    [bad] = v.invalid_results()
    assert bad.error_code == "MISSING_TARGET"
    assert "inbound_websocket_bot_id" in bad.error_message


def test_old_connection_id_spelling_counts_as_the_rows_own(
    tmp_path: Path, current: Current
) -> None:
    """A row giving connectionId keeps it: the record's connection_id does not override it."""
    v = filled(tmp_path, current, f"routing_id,connectionId\n4101,{OTHER_UUID}\n")
    assert v.invalid == 0
    assert f'"connection_id":"{OTHER_UUID}"' in bodies(v)[0]


def test_row_not_in_snapshot_is_unknown_record(tmp_path: Path, current: Current) -> None:
    """A record the snapshot lacks is not guessed: UNKNOWN_RECORD naming row, field and file."""
    v = filled(tmp_path, current, "routing_id,status\n4103,0\n4999,1\n")
    assert v.valid == 1
    [bad] = v.invalid_results()
    assert bad.row == 2
    assert "UNKNOWN_RECORD" in bad.error_code.split(";")
    assert (
        "row 2 (line 3), field routing_id: record 4999 is not in the snapshot" in bad.error_message
    )
    assert str(current.path) in bad.error_message


def test_unusable_routing_id_is_left_to_validation(tmp_path: Path, current: Current) -> None:
    """A routing id that is not an id gets its own code, not UNKNOWN_RECORD as well."""
    v = filled(tmp_path, current, "routing_id,status\nabc,1\n0,1\n")
    codes = [result.error_code for result in v.invalid_results()]
    assert all("UNKNOWN_RECORD" not in code for code in codes)
    assert "OUT_OF_RANGE" in codes[1].split(";")


def test_filled_identical_row_is_no_change(tmp_path: Path, current: Current) -> None:
    """A row naming only its routing id sends the record as it is: no_change."""
    v = filled(tmp_path, current, "routing_id\n4102\n")
    assert diff_rows(v, current).rows()[0].verdict is Verdict.NO_CHANGE


def test_passthrough_columns_and_row_order_survive(tmp_path: Path, current: Current) -> None:
    """Filling keeps the other columns and the input order (results line up with the sheet)."""
    path = tmp_path / "in.csv"
    path.write_text("ticket,routing_id\nT-3,4103\nT-1,4101\nT-9,4999\n")
    table = fill_from_current(load_table(path, required=("routing_id",)), current).table
    assert table.passthrough == ("ticket",)
    assert table.frame.get_column("ticket").to_list() == ["T-3", "T-1", "T-9"]
    assert table.frame.get_column("for_inbound_call").to_list() == ["2", "1", None]


def record_strategy() -> st.SearchStrategy[dict[str, str]]:
    """A valid current record: modes, and exactly the target ids its modes use."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, str]:
        inbound = draw(st.sampled_from([1, 2, 3]))
        outbound = draw(st.sampled_from([2, 3, 4]))
        record = {
            "for_inbound_call": str(inbound),
            "for_outbound_call": str(outbound),
            "status": str(draw(st.sampled_from([0, 1]))),
            "connection_id": draw(st.sampled_from(["", UUID])),
        }
        for target in vl.TARGET_FIELDS:
            used = target in targets_used(inbound, outbound)
            record[target] = str(draw(st.integers(1, 400))) if used else ""
        return record

    return build()


def filled_row(tmp_path: Path, current: Current, row: dict[str, str]) -> Validation:
    columns = ["routing_id", *row]
    return filled(
        tmp_path, current, ",".join(columns) + "\n" + ",".join(["7", *row.values()]) + "\n"
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    old=record_strategy(),
    new=record_strategy(),
    kept=st.sets(st.sampled_from(vl.MODE_FIELDS)),
)
def test_filled_rows_never_wipe_and_blank_rows_change_nothing(
    tmp_path: Path, old: dict[str, str], new: dict[str, str], kept: set[str]
) -> None:
    """For any record and new modes, a filled row is valid unless a newly needed id is
    missing, and never wipes; a row of only its routing id is no_change."""
    snapshot = tmp_path / "snapshot.csv"
    snapshot.write_text(
        ",".join(["routing_id", *old]) + "\n" + ",".join(["7", *old.values()]) + "\n"
    )
    current = load_current(snapshot)
    # The row writes the mode cells not kept, and the target ids its resulting modes use.
    row = {name: ("" if name in kept else new[name]) for name in vl.MODE_FIELDS}
    modes = {name: row[name] or old[name] for name in vl.MODE_FIELDS}
    needs = targets_used(int(modes[vl.FOR_INBOUND_CALL]), int(modes[vl.FOR_OUTBOUND_CALL]))
    row[vl.CONNECTION_ID] = ""
    row.update({t: new[t] if t in needs else "" for t in vl.TARGET_FIELDS})
    v = filled_row(tmp_path, current, row)
    missing = any(not row[t] and not old[t] for t in needs)
    assert v.invalid == (1 if missing else 0)
    if not missing:
        assert diff_rows(v, current).rows()[0].verdict is not Verdict.WIPES
    blank = filled_row(tmp_path, current, dict.fromkeys(old, ""))
    assert diff_rows(blank, current).rows()[0].verdict is Verdict.NO_CHANGE
