"""The dry run: counts by mode, and a plan file of exactly what run would send."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from batch import voicelink as vl
from batch.prepare.plan import plan_counts, write_plan
from batch.prepare.validate import validate
from batch.sheets.load import KNOWN_COLUMNS, Table


def table(*rows: dict[str, str]) -> Table:
    frame = pl.DataFrame(
        {name: [r.get(name) for r in rows] for name in KNOWN_COLUMNS},
        schema=dict.fromkeys(KNOWN_COLUMNS, pl.String),
    )
    return Table(path=Path("c.csv"), frame=frame, passthrough=())


ROWS = [
    {"routing_id": "1", "for_inbound_call": "1", "for_outbound_call": "4", "status": "1"},
    {
        "routing_id": "2",
        "for_inbound_call": "3",
        "for_outbound_call": "2",
        "status": "0",
        "inbound_websocket_bot_id": "7",
        "outbound_sip_trunk_id": "12",
    },
    {"routing_id": "x", "for_inbound_call": "1", "for_outbound_call": "4", "status": "1"},
    {"routing_id": "4.0", "for_inbound_call": "1", "for_outbound_call": "4", "status": "1"},
]


def test_plan_counts_group_valid_rows_by_modes_and_status() -> None:
    """Counts cover valid rows only, keyed (inbound, outbound, status), sorted."""
    assert plan_counts(validate(table(*ROWS))) == [(1, 4, 1, 2), (3, 2, 0, 1)]


def test_plan_file_has_one_line_per_valid_row_with_the_exact_body(tmp_path: Path) -> None:
    """Each plan line is {row, routing_id, method, path, body}; body is the request sent."""
    v = validate(table(*ROWS))
    path = tmp_path / "plan.jsonl"
    write_plan(path, v)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["row"] for line in lines] == [1, 2, 4]
    assert lines[1] == {
        "row": 2,
        "routing_id": 2,
        "method": "POST",
        "path": vl.update_path(2),
        "body": {
            "for_inbound_call": 3,
            "for_outbound_call": 2,
            "status": 0,
            "inbound_websocket_bot_id": 7,
            "outbound_sip_trunk_id": 12,
        },
    }
    calls = list(v.calls())
    assert [vl.encode_body(line["body"]) for line in lines] == [c.body for c in calls]
    assert lines[2]["path"] == "/voicelink/call-routing/4"


def test_a_plan_of_nothing_valid_is_an_empty_file(tmp_path: Path) -> None:
    """With no valid row the plan file exists and is empty, and there are no counts."""
    v = validate(table(ROWS[2]))
    path = tmp_path / "plan.jsonl"
    write_plan(path, v)
    assert path.read_text() == ""
    assert plan_counts(v) == []


@pytest.mark.slow
def test_a_run_builds_each_request_body_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 40-row sample on the embedded sandbox: every row's body is built once, however many
    times the run reads its calls (count, memory, segment, sending, results)."""
    from typer.testing import CliRunner

    from batch.cli import app
    from batch.prepare.validate import Validation

    built: list[int] = []
    real = Validation._with_requests

    def counted(self: Validation, judged: pl.DataFrame, *args: Any) -> pl.DataFrame:
        built.extend(judged.get_column("row").to_list())
        return real(self, judged, *args)

    monkeypatch.setattr(Validation, "_with_requests", counted)
    sample = Path(__file__).resolve().parents[2] / "samples" / "routing-changes.csv"
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["run", str(sample), "--sandbox", "--results", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(built) == list(range(1, 41))
