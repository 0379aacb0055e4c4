"""The rollback file: which records, in which format, and the round trip against the sandbox."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import polars as pl
import pytest

from batch.errors import InputFileError
from batch.prepare.current import Current, Diff, Verdict, diff_rows, load_current
from batch.prepare.fill import fill_from_current
from batch.prepare.rollback import rollback_frame, write_rollback
from batch.prepare.validate import Validation, validate
from batch.sandbox import SandboxConfig, create_app
from batch.sandbox.state import load_state
from batch.sheets.load import load_table

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
CHANGES = SAMPLES / "routing-changes.csv"
SNAPSHOT = SAMPLES / "routing-current.csv"
KEY = "rg_test_rollback_0123456789"


def sample_diff() -> tuple[Validation, Current, Diff]:
    current = load_current(SNAPSHOT)
    v = validate(load_table(CHANGES))
    return v, current, diff_rows(v, current)


def test_rollback_holds_the_current_values_of_changed_records_only() -> None:
    """Rows judged change or wipes are restored as the snapshot has them; no_change rows not."""
    _, current, diff = sample_diff()
    frame = rollback_frame(diff)
    counts = diff.counts()
    assert frame.height == counts[Verdict.CHANGE] + counts[Verdict.WIPES] > 0
    assert frame.columns[0] == "routing_id"
    for record in frame.iter_rows(named=True):
        routing_id = record.pop("routing_id")
        stored = {name: value for name, value in record.items() if value is not None}
        assert stored == current.record(routing_id)


def test_include_limits_the_rollback_to_rows_sent() -> None:
    """With include (the rows a run sends), refused or skipped rows are not in the file."""
    _, _, diff = sample_diff()
    include = pl.Series([row == 2 for row in diff.frame.get_column("row")])
    assert rollback_frame(diff, include).get_column("routing_id").to_list() == [4102]


@pytest.mark.parametrize("name", ["rollback.csv", "rollback.parquet", "rollback.jsonl"])
def test_rollback_file_reads_back_as_an_input(tmp_path: Path, name: str) -> None:
    """Every format reads back as a valid input whose records equal the snapshot's."""
    _, current, diff = sample_diff()
    path = tmp_path / name
    written = write_rollback(path, diff)
    again = load_current(path)
    assert len(again) == written == 11
    expected = current.frame.join(again.frame.select("routing_id"), on="routing_id")
    assert again.frame.sort("routing_id").equals(expected.sort("routing_id"))


def test_rollback_to_an_unknown_extension_is_refused(tmp_path: Path) -> None:
    """A rollback path with an unknown extension is a clear error, nothing written."""
    _, _, diff = sample_diff()
    with pytest.raises(InputFileError, match=re.escape("use .csv, .parquet, .jsonl or .ndjson")):
        write_rollback(tmp_path / "rollback.txt", diff)
    assert not (tmp_path / "rollback.txt").exists()


async def apply(client: httpx.AsyncClient, v: Validation) -> None:
    """Send every valid row, one after another, and insist each succeeded."""
    for call in v.calls():
        answer = await client.post(
            call.path, content=call.body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("fill", [False, True])
async def test_round_trip_against_the_seeded_sandbox(tmp_path: Path, fill: bool) -> None:
    """Apply the changes, then their rollback file: the stored records equal the snapshot."""
    current = load_current(SNAPSHOT)
    if fill:
        # Only the columns that change: the rest comes from the snapshot.
        sheet = tmp_path / "outbound-only.csv"
        sheet.write_text(
            "routing_id,for_outbound_call,outbound_websocket_bot_id,outbound_sip_trunk_id\n"
            "4101,3,104,\n4102,2,,42\n4108,3,104,\n4111,4,,\n4112,4,,\n"
        )
        filled = fill_from_current(load_table(sheet, required=("routing_id",)), current)
        v = validate(filled.table, extra_errors=filled.errors)
    else:
        v = validate(load_table(CHANGES))
    assert v.invalid == 0
    diff = diff_rows(v, current)
    rollback = tmp_path / "rollback.parquet"
    write_rollback(rollback, diff)

    app = create_app(
        SandboxConfig(api_key=KEY, rate_limit=None, max_concurrent=None, state=SNAPSHOT)
    )
    seeded = load_state(SNAPSHOT)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox/api/v2",
        headers={"Authorization": f"Bearer {KEY}"},
    ) as client:
        await apply(client, v)
        assert app.sandbox.state.records() != seeded  # the change did change records
        await apply(client, validate(load_table(rollback)))
    assert app.sandbox.state.records() == seeded
