"""The engine driven as the command line drives it, through its declared ``Operator``: a fake
answers the questions, and the ``Result`` says what happened (no CLI patched, nothing printed)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from batch.config.resolve import for_run, record_of
from batch.engine.ending import Status
from batch.engine.invocation import Invocation, run_invocation
from batch.engine.replacing import Confirmation
from batch.engine.stop import Observer, StopReason
from batch.journal.db import journal_path
from batch.model import Call, Outcome, RowResult
from batch.prepare.batch import batch_for_run
from batch.prepare.plan import Plan
from tests.cli.test_run import write_input
from tests.conftest import StartSandbox

KEY = "rg_live_" + "e" * 40


class Seen(Observer):
    """Keeps every call the engine hands the sender: its row, and the object itself."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.calls: list[Call] = []

    def attempt(self, call: Call, n: int) -> None:
        self.sent.append(call.row)
        self.calls.append(call)


@dataclass
class FakeOperator:
    """Answers as told; keeps what it was told and asked."""

    yes: bool = True
    go_on_answer: bool = True
    observer: Seen = field(default_factory=Seen)
    wait_every: float = 1.0
    notes: list[str] = field(default_factory=list)
    asked: list[tuple[int, str]] = field(default_factory=list)
    canary_asked: list[int] = field(default_factory=list)
    told: list[Confirmation] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def confirm(self, sending: Confirmation) -> bool:
        self.asked.append((sending.rows, sending.host))
        self.told.append(sending)
        return self.yes

    async def go_on(self, succeeded: int) -> bool:
        self.canary_asked.append(succeeded)
        return self.go_on_answer

    def waiting(self, text: str) -> None:
        self.notes.append(text)

    def tick(self) -> None:
        pass


def invocation(source: Path, out: Path, *, ask: bool, **flags: object) -> Invocation:
    given = {"input": source, "results": out, "rate": "200/s", **flags}
    settings, sandbox, _ = for_run(given, {"VOCOBASE_API_KEY": KEY}, sandbox=False, job=None)
    batch, _ = batch_for_run(settings)
    record = record_of(settings, kind="run", sandbox=sandbox)
    return Invocation(batch, settings, record, KEY, sandbox, ask=ask, signals=False)


def test_a_no_at_the_question_sends_nothing_and_leaves_no_run(tmp_path: Path) -> None:
    """A real host, the operator says no: NOT_CONFIRMED, the question named the rows and the
    host, nothing sent, no journal made (a refusal leaves nothing behind)."""
    source, out = write_input(tmp_path / "in.csv", 3), tmp_path / "out.csv"
    inv = invocation(source, out, ask=True, base_url="https://api.example.invalid/api/v2",
                     account_check=False, rows_are_complete=True)  # fmt: skip
    operator = FakeOperator(yes=False)
    result = run_invocation(inv, operator)
    assert result.status is Status.NOT_CONFIRMED
    assert result.status.exit_status == 2
    assert operator.asked == [(3, "api.example.invalid")]
    assert operator.observer.sent == []
    assert not journal_path(out).exists()
    assert not out.exists()


@pytest.mark.slow
def test_the_canary_question_answered_no_stops_after_the_canary(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """--canary 2 asked on a terminal and answered no: only the two canary rows are sent, the
    run stops (exit 3, canary declined) with the rest not_attempted and resumable."""
    sandbox = start_sandbox()
    source, out = write_input(tmp_path / "in.csv", 6), tmp_path / "out.csv"
    inv = invocation(source, out, ask=True, base_url=sandbox.base_url, canary=2,
                     concurrency=1)  # fmt: skip
    inv = Invocation(inv.batch, inv.settings, inv.record, sandbox.api_key, ask=True,
                     signals=False)  # fmt: skip
    operator = FakeOperator(go_on_answer=False)
    result = run_invocation(inv, operator)
    assert operator.canary_asked == [2]
    assert operator.observer.sent == [1, 2]
    assert result.status is Status.STOPPED
    assert result.report is not None
    assert result.report.stopped is not None
    assert result.report.stopped.reason == StopReason.CANARY_DECLINED
    assert result.summary.counts[Outcome.SUCCEEDED] == 2
    assert result.summary.counts[Outcome.NOT_ATTEMPTED] == 4
    assert sandbox.stats()["total"] == 2


@pytest.mark.slow
def test_the_engine_sends_each_planned_call_once(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """The engine takes the batch's plan as it is: it sends the plan's own calls (the same
    objects, none rebuilt from the input), each exactly once, and nothing the plan leaves out
    (row 3 here, planned as skipped)."""
    sandbox = start_sandbox()
    source, out = write_input(tmp_path / "in.csv", 6), tmp_path / "out.csv"
    inv = invocation(source, out, ask=False, base_url=sandbox.base_url, concurrency=2)
    planned = inv.batch.plan
    skipped = RowResult(3, "1003", Outcome.SKIPPED)
    plan = Plan(planned.without({3}), tuple(skipped if r.row == 3 else r for r in planned.rows))
    inv = Invocation(replace(inv.batch, plan=plan), inv.settings, inv.record, sandbox.api_key,
                     signals=False)  # fmt: skip
    operator = FakeOperator()
    result = run_invocation(inv, operator)
    assert result.status is Status.SUCCEEDED
    sent = sorted(operator.observer.calls, key=lambda call: call.row)
    assert [call.row for call in sent] == [1, 2, 4, 5, 6]
    assert all(a is b for a, b in zip(sent, plan.calls, strict=True))
    assert sandbox.stats()["total"] == 5
    assert result.summary.counts[Outcome.SUCCEEDED] == 5
    assert result.summary.counts[Outcome.SKIPPED] == 1
