"""The dry run: counts by mode, and a plan file of exactly what run would send."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from batch import voicelink as vl
from batch.model import Call, Outcome
from batch.prepare.plan import Plan, plan_counts, plan_of, write_plan
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


def test_the_plan_builds_each_row_once_as_values() -> None:
    """The plan of a validation: a call per valid row not skipped, and every row's result
    before sending in row order (a row to send: not attempted, with its call's very body and
    its routing id as written)."""
    v = validate(table(*ROWS))
    plan = plan_of(v, skipped={2}, note="left out")
    assert [(c.row, c.routing_id) for c in plan.calls] == [(1, 1), (4, 4)]
    base = list(plan.base())
    assert [(r.row, r.outcome) for r in base] == [
        (1, Outcome.NOT_ATTEMPTED), (2, Outcome.SKIPPED), (3, Outcome.INVALID),
        (4, Outcome.NOT_ATTEMPTED),
    ]  # fmt: skip
    assert base[1].error_message == "left out"
    assert base[1].request == vl.encode_body(
        {"for_inbound_call": 3, "for_outbound_call": 2, "status": 0,
         "inbound_websocket_bot_id": 7, "outbound_sip_trunk_id": 12}
    )  # fmt: skip
    assert (base[2].routing_id, base[2].request) == ("x", "")
    assert (base[0].routing_id, base[3].routing_id) == ("1", "4.0")  # as written
    assert plan.calls[1].body is base[3].request
    assert [c.body for c in plan.calls] == [c.body for c in v.calls() if c.row != 2]
    assert plan.without({1}) == (plan.calls[1],)
    assert [r.row for r in plan.known()] == [2, 3]  # rows with a result of their own


@pytest.mark.slow
def test_a_run_builds_each_request_body_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 40-row sample on the embedded sandbox: the run plans once, builds every row's body
    once, and reads its calls from that plan only (count, memory, segment, sending, results),
    never from the validation's generator."""
    from typer.testing import CliRunner

    from batch.cli import app
    from batch.prepare import plan as plan_module
    from batch.prepare.validate import Validation

    built: list[int] = []
    plans: list[Plan] = []
    real_bodies, real_plan = Validation._with_requests, plan_module.plan_of

    def counted(self: Validation, judged: pl.DataFrame, *args: Any) -> pl.DataFrame:
        built.extend(judged.get_column("row").to_list())
        return real_bodies(self, judged, *args)

    def planned(*args: Any, **kwargs: Any) -> Plan:
        plans.append(real_plan(*args, **kwargs))
        return plans[-1]

    def regenerated(self: Validation) -> Iterator[Call]:
        raise AssertionError("a run reads its calls from the plan, not from the validation")

    monkeypatch.setattr(Validation, "_with_requests", counted)
    monkeypatch.setattr(Validation, "calls", regenerated)
    monkeypatch.setattr("batch.prepare.batch.plan_of", planned)  # where the run plans
    sample = Path(__file__).resolve().parents[2] / "samples" / "routing-changes.csv"
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["run", str(sample), "--sandbox", "--results", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(built) == list(range(1, 41))
    assert len(plans) == 1
    assert [call.row for call in plans[0].calls] == list(range(1, 41))
    assert pl.read_csv(out).get_column("outcome").to_list() == ["succeeded"] * 40
