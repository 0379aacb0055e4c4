"""`reroute run --current`: wipes refused, --allow-wipe, --skip-unchanged, --fill-from-current,
the rollback file (written before sending) and its round trip against a seeded sandbox."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from batch.cli import app
from batch.prepare.current import Verdict, diff_rows, load_current
from batch.prepare.validate import validate
from batch.sandbox.state import load_state
from batch.sheets.load import load_table
from tests.conftest import StartSandbox

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
CHANGES = SAMPLES / "routing-changes.csv"
SNAPSHOT = SAMPLES / "routing-current.csv"


def verdicts() -> dict[Verdict, int]:
    return diff_rows(validate(load_table(CHANGES)), load_current(SNAPSHOT)).counts()


def invoke(*args: object, key: str) -> Any:
    env = {"VOCOBASE_API_KEY": key, "REROUTE_BASE_URL": ""}
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def run(sandbox: Any, source: Path, out: Path, *extra: object) -> Any:
    args = ["run", source, "--base-url", sandbox.base_url, "--results", out, "--rate", "500/s"]
    return invoke(*args, "--current", SNAPSHOT, *extra, key=sandbox.api_key)


def read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


@pytest.mark.slow
def test_wipes_are_refused_and_nothing_is_sent(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """Rows that would erase a field the record has are invalid (WIPES): exit 2, nothing sent."""
    sandbox = start_sandbox(state=SNAPSHOT)
    result = run(sandbox, CHANGES, tmp_path / "out.csv")
    assert result.exit_code == 2, result.output
    assert "WIPES" in result.stdout
    assert "--allow-wipe" in result.stdout
    assert sandbox.stats()["total"] == 0


@pytest.mark.slow
def test_skip_invalid_sends_all_but_the_wipes(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """With --skip-invalid the wipes rows are reported invalid and the others are sent."""
    sandbox = start_sandbox(state=SNAPSHOT)
    out = tmp_path / "out.csv"
    result = run(sandbox, CHANGES, out, "--skip-invalid")
    assert result.exit_code == 1, result.output
    frame = read(out)
    wipes = frame.filter(pl.col("outcome") == "invalid")
    assert wipes.height == verdicts()[Verdict.WIPES] > 0
    assert set(wipes["error_code"]) == {"WIPES"}
    assert sandbox.stats()["total"] == frame.height - wipes.height


@pytest.mark.slow
def test_allow_wipe_sends_every_row(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """--allow-wipe: the wipes rows are sent as written (exit 0)."""
    sandbox = start_sandbox(state=SNAPSHOT)
    out = tmp_path / "out.csv"
    result = run(sandbox, CHANGES, out, "--allow-wipe")
    assert result.exit_code == 0, result.output
    assert set(read(out)["outcome"]) == {"succeeded"}
    assert sandbox.stats()["total"] == read(out).height


@pytest.mark.slow
def test_skip_unchanged_leaves_no_change_rows_out(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """--skip-unchanged: no_change rows are skipped with a note; exit 0; not to retry."""
    sandbox = start_sandbox(state=SNAPSHOT)
    out = tmp_path / "out.csv"
    result = run(sandbox, CHANGES, out, "--allow-wipe", "--skip-unchanged")
    assert result.exit_code == 0, result.output
    frame = read(out)
    skipped = frame.filter(pl.col("outcome") == "skipped")
    counts = verdicts()
    assert skipped.height == counts[Verdict.NO_CHANGE] > 0
    assert all("--skip-unchanged" in m for m in skipped["error_message"])
    assert all(r for r in skipped["request"])  # the body it would have sent is kept
    assert sandbox.stats()["total"] == counts[Verdict.CHANGE] + counts[Verdict.WIPES]
    assert "reroute retry" not in result.stdout


def test_flags_needing_current_are_refused_without_it(tmp_path: Path) -> None:
    """--allow-wipe, --skip-unchanged, --rollback, --fill-from-current need --current: exit 2."""
    for flag in (["--allow-wipe"], ["--skip-unchanged"], ["--rollback", tmp_path / "rb.csv"],
                 ["--fill-from-current"]):  # fmt: skip
        result = invoke("run", CHANGES, "--sandbox", *flag, key="")
        assert result.exit_code == 2, (flag, result.output)
        assert f"{flag[0]} needs --current" in result.stderr


def test_rollback_over_the_input_or_snapshot_is_refused(tmp_path: Path) -> None:
    """--rollback naming the input sheet or the snapshot would destroy it: exit 2, untouched."""
    sheet, snapshot = tmp_path / "changes.csv", tmp_path / "current.csv"
    shutil.copy(CHANGES, sheet)
    shutil.copy(SNAPSHOT, snapshot)
    for target in (sheet, snapshot):
        result = invoke("run", sheet, "--sandbox", "--current", snapshot, "--rollback", target,
                        key="")  # fmt: skip
        assert result.exit_code == 2
        assert "--rollback" in result.stderr
    assert sheet.read_bytes() == CHANGES.read_bytes()
    assert snapshot.read_bytes() == SNAPSHOT.read_bytes()


@pytest.mark.slow
def test_rollback_is_written_before_sending(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """The rollback file holds every record the run may change before the first request: here
    the run stops after one (its canary failed) and the file still holds them all."""
    sandbox = start_sandbox(state=SNAPSHOT, script={4101: ("404",)})
    rollback = tmp_path / "rollback.csv"
    result = run(sandbox, CHANGES, tmp_path / "out.csv", "--allow-wipe", "--rollback", rollback,
                 "--canary", "1")  # fmt: skip
    assert result.exit_code == 3, result.output
    assert sandbox.stats()["total"] == 1
    counts = verdicts()
    assert read(rollback).height == counts[Verdict.CHANGE] + counts[Verdict.WIPES]


@pytest.mark.slow
def test_rollback_round_trip_restores_the_snapshot(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """Apply a change sheet (filled from the snapshot), then its rollback file: the sandbox's
    stored records equal the snapshot again."""
    sandbox = start_sandbox(state=SNAPSHOT)
    sheet = tmp_path / "outbound-only.csv"
    sheet.write_text(
        "routing_id,for_outbound_call,outbound_websocket_bot_id,outbound_sip_trunk_id\n"
        "4101,3,104,\n4102,2,,42\n4108,3,104,\n4111,4,,\n4112,4,,\n"
    )
    rollback = tmp_path / "rollback.parquet"
    seeded = load_state(SNAPSHOT)
    result = run(sandbox, sheet, tmp_path / "out.csv", "--fill-from-current", "--rollback",
                 rollback)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sandbox.state.records() != seeded
    back = invoke("run", rollback, "--base-url", sandbox.base_url, "--results",
                  tmp_path / "back.csv", "--rate", "500/s", key=sandbox.api_key)  # fmt: skip
    assert back.exit_code == 0, back.output
    assert sandbox.state.records() == seeded


@pytest.mark.slow
def test_a_changed_snapshot_is_a_different_run(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """The journal's identity covers the snapshot: resuming with another one is refused."""
    sandbox = start_sandbox(state=SNAPSHOT, script={4101: ("404",)})  # the canary fails
    out = tmp_path / "out.csv"
    snapshot = tmp_path / "current.csv"
    shutil.copy(SNAPSHOT, snapshot)
    args = [
        "run",
        CHANGES,
        "--base-url",
        sandbox.base_url,
        "--results",
        out,
        "--rate",
        "500/s",
        "--current",
        snapshot,
        "--allow-wipe",
        "--canary",
        "1",
    ]
    assert invoke(*args, key=sandbox.api_key).exit_code == 3
    snapshot.write_text(
        SNAPSHOT.read_text().replace("4101,+44207186305,1,2,1", "4101,+44207186305,1,2,0")
    )
    result = invoke(*args, key=sandbox.api_key)
    assert result.exit_code == 2
    assert "unfinished" in result.stderr
    assert "the snapshot (--current)" in result.stderr
    assert "input file's content" not in result.stderr
