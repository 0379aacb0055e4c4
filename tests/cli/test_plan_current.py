"""`reroute plan --current`: verdicts printed and written, fill, rollback, exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from batch.cli import app
from batch.prepare.current import load_current

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
CHANGES = SAMPLES / "routing-changes.csv"
SNAPSHOT = SAMPLES / "routing-current.csv"

runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_sample_plan_shows_every_verdict_and_exits_1_for_wipes(tmp_path: Path) -> None:
    """The samples: verdict counts, wipes listed first with the field, exit 1 (run refuses)."""
    code, out, err = invoke("plan", CHANGES, "--current", SNAPSHOT)
    assert code == 1
    assert err == ""
    assert f"against {SNAPSHOT}: change 8, no_change 29, wipes 3, unknown_record 0" in out
    assert "  row 3 (line 4, routing_id 4103) wipes (erases connection_id): connection_id: " in out
    assert "  row 5 (line 6, routing_id 4105) change: outbound_websocket_bot_id: 93 -> 220" in out
    assert "  ... and 1 more (write them all with --out PLAN)" in out
    assert "3 rows would erase a value the current record has" in out


def test_plan_without_wipes_exits_0(tmp_path: Path) -> None:
    """Only changes and unknown records: nothing to refuse, exit 0."""
    sheet = tmp_path / "in.csv"
    sheet.write_text(
        "routing_id,for_inbound_call,for_outbound_call,status,outbound_websocket_bot_id\n"
        "4120,1,3,1,104\n4999,1,3,1,104\n4112,1,4,1,\n"
    )
    code, out, _ = invoke("plan", sheet, "--current", SNAPSHOT)
    assert code == 0
    assert "change 1, no_change 1, wipes 0, unknown_record 1" in out
    assert "  row 2 (line 3, routing_id 4999) unknown_record: not in the snapshot" in out


def test_plan_file_gains_verdict_changes_and_wipes(tmp_path: Path) -> None:
    """Each plan line carries verdict, changes and wipes beside the body."""
    plan = tmp_path / "plan.jsonl"
    invoke("plan", CHANGES, "--current", SNAPSHOT, "--out", plan)
    lines = [json.loads(line) for line in plan.read_text().splitlines()]
    assert len(lines) == 40
    by_row = {line["row"]: line for line in lines}
    assert by_row[2]["verdict"] == "change"
    assert "outbound_sip_trunk_id: 41 -> (dropped)" in by_row[2]["changes"]
    assert (by_row[3]["verdict"], by_row[3]["wipes"]) == ("wipes", ["connection_id"])
    assert (by_row[1]["verdict"], by_row[1]["changes"]) == ("no_change", [])


def test_rollback_written_and_announced(tmp_path: Path) -> None:
    """--rollback writes the changed records' current values and says how to apply them."""
    rollback = tmp_path / "rollback.jsonl"
    _, out, _ = invoke("plan", CHANGES, "--current", SNAPSHOT, "--rollback", rollback)
    assert f"rollback of 11 records written to {rollback}" in out
    assert len(load_current(rollback)) == 11


def test_fill_from_current_plans_a_partial_sheet(tmp_path: Path) -> None:
    """With --fill-from-current a sheet of only the changed columns plans complete records."""
    sheet = tmp_path / "outbound.csv"
    sheet.write_text("routing_id,outbound_websocket_bot_id\n4108,104\n4103,\n4999,7\n")
    plan = tmp_path / "plan.jsonl"
    code, out, _ = invoke(
        "plan", sheet, "--current", SNAPSHOT, "--fill-from-current", "--out", plan
    )
    assert code == 1  # 4999 is not in the snapshot
    assert "2 valid, 1 invalid" in out
    assert "UNKNOWN_RECORD 1" in out
    assert "change 1, no_change 1, wipes 0" in out
    first = json.loads(plan.read_text().splitlines()[0])
    assert first["body"] == {
        "for_inbound_call": 3,
        "for_outbound_call": 3,
        "status": 1,
        "inbound_websocket_bot_id": 211,
        "outbound_websocket_bot_id": 104,
    }


def test_partial_sheet_without_fill_is_refused_before_judging(tmp_path: Path) -> None:
    """Without --fill-from-current a sheet lacking the mode columns cannot load: exit 2."""
    sheet = tmp_path / "outbound.csv"
    sheet.write_text("routing_id,outbound_websocket_bot_id\n4108,104\n")
    code, out, err = invoke("plan", sheet, "--current", SNAPSHOT)
    assert code == 2
    assert out == ""
    assert "for_inbound_call" in err


def test_broken_snapshot_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A snapshot with a bad cell: one stderr line naming file, row and field; exit 2."""
    snapshot = tmp_path / "current.csv"
    snapshot.write_text("routing_id,for_inbound_call,for_outbound_call,status\n4101,1,2x,1\n")
    code, out, err = invoke("plan", CHANGES, "--current", snapshot)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert str(snapshot) in err
    assert "row 1 (line 2), field for_outbound_call" in err


def test_missing_snapshot_is_exit_2(tmp_path: Path) -> None:
    """A snapshot path that does not exist: exit 2, named."""
    code, _, err = invoke("plan", CHANGES, "--current", tmp_path / "nope.csv")
    assert code == 2
    assert "nope.csv: no such file" in err


def test_fill_and_rollback_need_current(tmp_path: Path) -> None:
    """--fill-from-current or --rollback without --current is a usage error, exit 2."""
    for extra in (["--fill-from-current"], ["--rollback", str(tmp_path / "r.csv")]):
        code, _, err = invoke("plan", CHANGES, *extra)
        assert code == 2
        assert "needs --current SNAPSHOT" in err
    assert not (tmp_path / "r.csv").exists()


def test_rollback_over_the_input_or_snapshot_is_refused(tmp_path: Path) -> None:
    """--rollback naming the input sheet or the snapshot would destroy it: exit 2."""
    sheet = tmp_path / "in.csv"
    sheet.write_bytes(CHANGES.read_bytes())
    snapshot = tmp_path / "current.csv"
    snapshot.write_bytes(SNAPSHOT.read_bytes())
    for target in (sheet, snapshot):
        code, _, err = invoke("plan", sheet, "--current", snapshot, "--rollback", target)
        assert code == 2
        assert "write to another path" in err
    assert sheet.read_bytes() == CHANGES.read_bytes()
    assert snapshot.read_bytes() == SNAPSHOT.read_bytes()


def test_plain_plan_is_unchanged_without_current() -> None:
    """Without --current nothing about verdicts is printed and the exit status is as before."""
    code, out, _ = invoke("plan", CHANGES)
    assert code == 0
    assert "against" not in out
