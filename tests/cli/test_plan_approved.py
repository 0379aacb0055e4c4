"""`reroute plan` prints the hash `run` records, and writes the ticket's plan (issue 26)."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batch.cli import app
from batch.config.resolve import settings_from
from batch.engine.runtrail import segment_start
from batch.journal.record import RunRecord
from batch.prepare.batch import batch_for_run

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
CHANGES = SAMPLES / "routing-changes.csv"
SNAPSHOT = SAMPLES / "routing-current.csv"
UUID = "11111111-2222-4333-8444-555555555555"
HASH = re.compile(r"plan sha256: ([0-9a-f]{64}) \((\d+) requests\)")

runner = CliRunner()


def planned(tmp_path: Path, *args: str) -> tuple[str, int]:
    """The hash and request count `plan` prints (its results path, so its kept copy, in
    ``tmp_path``)."""
    done = runner.invoke(app, ["plan", *args, "--results", str(tmp_path / "out.csv")])
    assert done.exit_code in (0, 1), done.output
    found = HASH.search(done.stdout)
    assert found is not None, done.stdout
    return found.group(1), int(found.group(2))


def recorded(sheet: Path, tmp_path: Path, flags: dict[str, object]) -> str:
    """The plan sha256 `run` records for its segment (run.json's ``plan_sha256``), with
    ``flags``: computed as the run computes it, without sending."""
    given = {"input": sheet, "results": tmp_path / "out.csv", **flags}
    settings = settings_from(given, {}, sandbox=True)
    batch, _ = batch_for_run(settings)
    start = segment_start(
        kind="run", settings=settings, record=RunRecord(), input_sha256="",
        calls=batch.plan.calls, host="127.0.0.1", sandbox=True,
    )  # fmt: skip
    return start.plan_sha256


CASES = {
    "plain": ((), {}),
    "connection id": (("--connection-id", UUID), {"connection_id": UUID}),
    "fill": (
        ("--current", str(SNAPSHOT), "--fill-from-current"),
        {"current": SNAPSHOT, "fill_from_current": True},
    ),
    "skip unchanged": (
        ("--current", str(SNAPSHOT), "--fill-from-current", "--skip-unchanged"),
        {"current": SNAPSHOT, "fill_from_current": True, "skip_unchanged": True},
    ),
    "allow wipe": (
        ("--current", str(SNAPSHOT), "--allow-wipe"),
        {"current": SNAPSHOT, "allow_wipe": True},
    ),
    "wipes refused": (("--current", str(SNAPSHOT)), {"current": SNAPSHOT, "skip_invalid": True}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_hash_plan_prints_is_the_one_run_records(case: str, tmp_path: Path) -> None:
    """Same sheet, same flags: `plan`'s sha256 is run.json's plan_sha256, and its kept copy's
    sha256sum."""
    args, flags = CASES[case]
    sha, count = planned(tmp_path, str(CHANGES), *args)
    assert recorded(CHANGES, tmp_path, flags) == sha
    kept = tmp_path / ".reroute-plans" / f"{sha}.tsv"
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == sha
    assert len(kept.read_text().splitlines()) == count


def test_the_flags_that_change_the_bodies_change_the_hash(tmp_path: Path) -> None:
    """--connection-id, --fill-from-current, --skip-unchanged and wipes refused each give
    another plan; --allow-wipe sends the sheet's bodies as they are."""
    hashes = {case: planned(tmp_path, str(CHANGES), *CASES[case][0]) for case in CASES}
    assert hashes["allow wipe"] == hashes["plain"]  # the same bodies, every row sent
    assert len({sha for sha, _ in hashes.values()}) == len(CASES) - 1
    assert hashes["skip unchanged"][1] < hashes["fill"][1]  # rows left out: not in the plan
    assert hashes["wipes refused"][1] == 40 - 3  # the three wipes: run refuses them


def test_an_edited_cell_changes_the_hash(tmp_path: Path) -> None:
    """One status edited: another plan."""
    sheet = shutil.copyfile(CHANGES, tmp_path / "in.csv")
    before, _ = planned(tmp_path, str(sheet))
    sheet.write_text(
        sheet.read_text().replace("4102,+44161343471,1,3,1,", "4102,+44161343471,1,3,0,")
    )
    assert planned(tmp_path, str(sheet))[0] != before


def test_the_markdown_plan_holds_counts_changes_cleared_values_and_the_hash(
    tmp_path: Path,
) -> None:
    """--format md: the counts, a changed record's old -> new (with the sheet's ids), the
    value a mode change clears, the hash and how to run exactly that plan; stdout is the
    Markdown alone."""
    args = ["plan", str(CHANGES), "--current", str(SNAPSHOT), "--fill-from-current"]
    done = runner.invoke(app, [*args, "--format", "md", "--results", str(tmp_path / "o.csv")])
    assert done.exit_code == 0, done.output
    page = done.stdout
    sha = HASH.search(done.stderr)
    assert sha is not None
    assert page.startswith(f"**Plan: 40 requests from routing-changes.csv** — sha256 `{sha[1]}`")
    assert "40 rows read: 40 valid, 0 invalid (not sent)." in page
    assert "change 9, no_change 31, wipes 0, unknown_record 0" in page
    assert "| 4 | 3 (WebSocket bot) | 2 (SIP) | 1 (active) |" in page
    assert (
        "- `4102` (row 2 (line 3), did_number +44161343471, ticket OPS-2311): "
        "for_outbound_call: 2 → 3; "
        "outbound_websocket_bot_id: (empty) → 221; outbound_sip_trunk_id: 41 → (dropped)"
    ) in page
    cleared = page.split("### Values that would be cleared")[1]
    assert (
        "| `4102` (row 2 (line 3), did_number +44161343471, ticket OPS-2311) "
        "| outbound_sip_trunk_id | 41 |" in cleared
    )
    assert f"--approved-plan {sha[1]}" in page
    assert "plan sha256:" not in page  # the text lines went to stderr


def test_the_markdown_plan_without_a_snapshot_says_it_cannot_tell(tmp_path: Path) -> None:
    """No --current: one line says what the plan cannot know."""
    done = runner.invoke(
        app, ["plan", str(CHANGES), "--format", "md", "--results", str(tmp_path / "o.csv")]
    )
    assert done.exit_code == 0
    assert "No snapshot of the current records (--current) was given" in done.stdout
    assert "### Values that would be cleared" not in done.stdout
