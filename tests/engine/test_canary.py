"""The canary: the first N rows first, then stop (a failure, or a no) or send the rest."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import anyio
import polars as pl
import pytest
from trio.testing import MockClock
from typer.testing import CliRunner

from batch.cli import app, run_cmd
from batch.engine.guards import canary_left, with_canary
from batch.engine.rowloop import RunReport, execute
from batch.engine.stop import StopReason, StopToken
from batch.journal.journal import Journal
from batch.journal.record import RunIdentity
from batch.model import Call, Outcome, RowResult
from tests.conftest import StartSandbox
from tests.fakes import Sink

HEADER = "routing_id,for_inbound_call,for_outbound_call,status,outbound_sip_trunk_id"


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    source = tmp_path / "in.csv"
    source.write_text("x\n")
    ident = RunIdentity.of(source, "http://127.0.0.1:1/api/v2", tmp_path / "out.csv")
    with Journal.open(tmp_path / "out.csv.journal", ident) as j:
        yield j


def calls(n: int) -> Iterator[Call]:
    for row in range(1, n + 1):
        yield Call(row=row, routing_id=1000 + row, body="{}")


class Harness:
    """execute() over a fake sender: rows in ``failing`` fail; ``sent`` records the order."""

    def __init__(self, journal: Journal, failing: Iterable[int] = ()) -> None:
        self.journal = journal
        self.failing = set(failing)
        self.sent: list[int] = []
        self.stop = StopToken()
        self.asked: list[RunReport] = []
        self.sink = Sink(journal)

    async def send(self, call: Call) -> RowResult:
        self.sent.append(call.row)
        self.sink.attempt(call, 1)
        await anyio.sleep(1)
        ok = call.row not in self.failing
        return RowResult(
            row=call.row,
            routing_id=str(call.routing_id),
            outcome=Outcome.SUCCEEDED if ok else Outcome.FAILED,
            http_status=200 if ok else 404,
            attempts=1,
        )

    async def run(self, part: Iterable[Call]) -> RunReport:
        return await execute(
            part, send=self.send, journal=self.journal, concurrency=2, stop=self.stop
        )

    def proceed(self, answer: bool) -> Any:
        async def ask(report: RunReport) -> bool:
            self.asked.append(report)
            return answer

        return ask


async def test_canary_success_then_the_rest(journal: Journal) -> None:
    """All canary rows succeed and the answer is yes: every row is sent, canary rows first."""
    h = Harness(journal)
    report = await with_canary(calls(10), h.run, canary=3, stop=h.stop, proceed=h.proceed(True))
    assert report.stopped is None
    assert sorted(h.sent) == list(range(1, 11))
    assert sorted(h.sent[:3]) == [1, 2, 3]
    assert [r.started for r in h.asked] == [3]
    assert report.started == 10
    assert report.outcomes == {Outcome.SUCCEEDED: 10}


async def test_canary_failure_stops_before_the_rest(journal: Journal) -> None:
    """A failed canary row: stop (canary_failed), nothing after the canary is sent or asked."""
    h = Harness(journal, failing=[2])
    report = await with_canary(calls(10), h.run, canary=3, stop=h.stop, proceed=h.proceed(True))
    assert sorted(h.sent) == [1, 2, 3]
    assert h.asked == []
    assert report.stopped is not None
    assert report.stopped.reason == StopReason.CANARY_FAILED
    assert "1 of the first 3 rows" in report.stopped.message


async def test_canary_declined_stops_after_it(journal: Journal) -> None:
    """All canary rows succeed but the answer is no: stop (canary_declined) after them."""
    h = Harness(journal)
    report = await with_canary(calls(10), h.run, canary=4, stop=h.stop, proceed=h.proceed(False))
    assert sorted(h.sent) == [1, 2, 3, 4]
    assert report.stopped is not None
    assert report.stopped.reason == StopReason.CANARY_DECLINED


async def test_no_canary_left_sends_everything_at_once(journal: Journal) -> None:
    """canary=0 (none asked for, or a resumed run past it): no phase, no question."""
    h = Harness(journal)
    report = await with_canary(calls(5), h.run, canary=0, stop=h.stop, proceed=h.proceed(False))
    assert sorted(h.sent) == [1, 2, 3, 4, 5]
    assert report.stopped is None
    assert h.asked == []


# -- end to end -------------------------------------------------------------------------------


def write_input(path: Path, n: int) -> Path:
    rows = [f"{1000 + row},1,2,1,{row + 500}" for row in range(1, n + 1)]
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def invoke(*args: object, key: str, input: str | None = None) -> Any:
    env = {"VOCOBASE_API_KEY": key, "REROUTE_BASE_URL": ""}
    return CliRunner().invoke(app, [str(a) for a in args], env=env, input=input)


def args(sandbox: Any, source: Path, out: Path, *extra: object) -> list[object]:
    return ["run", source, "--base-url", sandbox.base_url, "--results", out, "--rate", "500/s",
            *extra]  # fmt: skip


def outcomes(path: Path) -> list[str]:
    return pl.read_csv(path, infer_schema=False)["outcome"].to_list()


@pytest.mark.slow
def test_cli_canary_success_continues_off_a_terminal(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """Not on a terminal a successful canary goes on by itself: exit 0, every row sent."""
    sandbox = start_sandbox()
    out = tmp_path / "out.csv"
    result = invoke(*args(sandbox, write_input(tmp_path / "in.csv", 12), out, "--canary", 3),
                    key=sandbox.api_key)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "canary: the first 3 rows succeeded" in result.stderr
    assert set(outcomes(out)) == {"succeeded"}
    assert sandbox.stats()["total"] == 12


@pytest.mark.slow
def test_cli_canary_failure_exits_3_and_sends_no_more(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """A canary row answered 404: exit 3, the rest not_attempted, the reason says canary."""
    sandbox = start_sandbox(not_found_ids=frozenset({1002}))
    out = tmp_path / "out.csv"
    result = invoke(*args(sandbox, write_input(tmp_path / "in.csv", 12), out, "--canary", 3,
                          "--concurrency", 1), key=sandbox.api_key)  # fmt: skip
    assert result.exit_code == 3, result.output
    assert outcomes(out) == ["succeeded", "failed", "succeeded"] + ["not_attempted"] * 9
    assert "canary" in result.stdout
    assert sandbox.stats()["total"] == 3


@pytest.mark.slow
def test_cli_after_a_failed_canary_the_same_command_runs_a_new_canary(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """Running again after a failed canary sends a fresh canary first, not everything else."""
    sandbox = start_sandbox(not_found_ids=frozenset({1002, 1005}))
    source, out = write_input(tmp_path / "in.csv", 12), tmp_path / "out.csv"
    command = args(sandbox, source, out, "--canary", 3, "--concurrency", 1)
    assert invoke(*command, key=sandbox.api_key).exit_code == 3
    second = invoke(*command, key=sandbox.api_key)
    assert second.exit_code == 3, second.output
    assert outcomes(out) == ["succeeded", "failed", "succeeded", "succeeded", "failed",
                             "succeeded"] + ["not_attempted"] * 6  # fmt: skip
    assert sandbox.stats()["total"] == 6


@pytest.mark.parametrize(
    ("decided", "left"),
    [
        ({}, 5),
        ({Outcome.SUCCEEDED: 2}, 3),
        ({Outcome.SUCCEEDED: 9}, 0),
        ({Outcome.SUCCEEDED: 9, Outcome.FAILED: 1}, 5),
    ],
)
def test_canary_left_counts_successes_and_restarts_after_a_failure(
    decided: dict[Outcome, int], left: int
) -> None:
    """Earlier successes count towards the canary; any failure means a full canary again."""
    assert canary_left(5, decided) == left
    assert canary_left(0, decided) == 0


@pytest.mark.slow
def test_cli_canary_on_a_terminal_asks_and_resume_continues(
    start_sandbox: StartSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal a no stops after the canary (exit 3); the same command again sends the
    rest without a new canary (it continues where it stopped)."""
    monkeypatch.setattr(run_cmd, "stdin_is_terminal", lambda: True)
    sandbox = start_sandbox()
    source, out = write_input(tmp_path / "in.csv", 10), tmp_path / "out.csv"
    command = args(sandbox, source, out, "--canary", 4)
    first = invoke(*command, key=sandbox.api_key, input="n\n")
    assert first.exit_code == 3, first.output
    assert "Send the rest?" in first.stderr
    assert outcomes(out) == ["succeeded"] * 4 + ["not_attempted"] * 6
    second = invoke(*command, key=sandbox.api_key, input="")
    assert second.exit_code == 0, second.output
    assert "Send the rest?" not in second.stderr
    assert set(outcomes(out)) == {"succeeded"}
    assert sandbox.stats()["total"] == 10


@pytest.mark.slow
def test_cli_canary_yes_skips_the_question(
    start_sandbox: StartSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--yes on a terminal: the successful canary goes on without asking."""
    monkeypatch.setattr(run_cmd, "stdin_is_terminal", lambda: True)
    sandbox = start_sandbox()
    out = tmp_path / "out.csv"
    result = invoke(*args(sandbox, write_input(tmp_path / "in.csv", 6), out, "--canary", 2,
                          "--yes"), key=sandbox.api_key)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Send the rest?" not in result.stderr
    assert sandbox.stats()["total"] == 6
