"""The run engine's own promises: what it forgets only after a yes, one pace per run, how an
invocation's end maps to a status, and attempts carried into a retry written elsewhere."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import batch.engine.ending as ending
import batch.engine.invocation as engine
from batch.engine.merge import Summary
from batch.engine.rowloop import RunReport
from batch.engine.stop import StopRequest
from batch.journal.journal import journal_path
from batch.model import Outcome, RowResult
from batch.sandbox import RunningSandbox
from batch.send.limiter import Limiter
from batch.send.sharedlimiter import SharedLimiter
from tests.cli.test_run import invoke, read, run_args, write_input
from tests.conftest import StartSandbox


@pytest.mark.slow
def test_fresh_declined_keeps_the_earlier_journal(
    live_sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --fresh` answered no destroys nothing: the next plain run resends no row."""
    source, out = write_input(tmp_path / "in.csv", 4), tmp_path / "out.csv"
    assert invoke(*run_args(live_sandbox, source, out), key=live_sandbox.api_key).exit_code == 0
    assert live_sandbox.stats()["total"] == 4
    before = journal_path(out).read_bytes()

    monkeypatch.setattr("batch.cli.run_cmd.stdin_is_terminal", lambda: True)
    real = [
        "run",
        str(source),
        "--base-url",
        "https://api.example.invalid/api/v2",
        "--no-account-check",
        "--rows-are-complete",  # a real host: the replace semantics said
    ]
    declined = invoke(
        *real, "--results", str(out), "--fresh", key=live_sandbox.api_key, input="n\n"
    )
    assert declined.exit_code == 2
    assert "not confirmed" in declined.stderr
    assert "kept as it was" in declined.stderr
    assert journal_path(out).read_bytes() == before

    monkeypatch.setattr("batch.cli.run_cmd.stdin_is_terminal", lambda: False)
    again = invoke(*run_args(live_sandbox, source, out), key=live_sandbox.api_key)
    assert again.exit_code == 0, again.output
    assert live_sandbox.stats()["total"] == 4  # nothing sent twice
    assert set(read(out)["outcome"]) == {"succeeded"}


@pytest.mark.slow
def test_one_limiter_for_every_canary_phase(
    live_sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The canary and the rest share one limiter (a slowdown learnt in the canary holds): one
    made, whether it paces alone or with the key's other runs (SharedLimiter)."""
    made: list[Limiter] = []

    class Counted(Limiter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    class CountedShared(SharedLimiter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(engine, "Limiter", Counted)
    monkeypatch.setattr(engine, "SharedLimiter", CountedShared)
    source, out = write_input(tmp_path / "in.csv", 6), tmp_path / "out.csv"
    result = invoke(*run_args(live_sandbox, source, out, "--canary", "2"), key=live_sandbox.api_key)
    assert result.exit_code == 0, result.output
    assert "canary: the first 2 rows succeeded" in result.stderr
    assert live_sandbox.stats()["total"] == 6
    assert len(made) == 1


def _summary(*outcomes: tuple[Outcome, int | None]) -> Summary:
    summary = Summary()
    rows = [RowResult(n, str(n), o, http_status=s) for n, (o, s) in enumerate(outcomes, 1)]
    for _ in summary.tally(rows):
        pass
    return summary


STOP = StopRequest("window_closed", "the change window closed")


@pytest.mark.parametrize(
    ("outcomes", "stopped", "status"),
    [
        ([(Outcome.SUCCEEDED, 200), (Outcome.SKIPPED, None)], None, ending.Status.SUCCEEDED),
        ([(Outcome.SUCCEEDED, 200), (Outcome.FAILED, 400)], None, ending.Status.SOME_FAILED),
        # Stopped, but nothing left to send: the failures must not hide behind "resume".
        ([(Outcome.SUCCEEDED, 200), (Outcome.FAILED, 400)], STOP, ending.Status.SOME_FAILED),
        ([(Outcome.FAILED, 400), (Outcome.NOT_ATTEMPTED, None)], STOP, ending.Status.STOPPED),
        ([(Outcome.UNKNOWN, None)], STOP, ending.Status.STOPPED),
        ([(Outcome.FAILED, 401)], STOP, ending.Status.STOPPED),  # the key: resent on resume
        ([(Outcome.INVALID, None), (Outcome.SUCCEEDED, 200)], STOP, ending.Status.SOME_FAILED),
    ],
)
def test_status_says_what_happened(
    outcomes: list[tuple[Outcome, int | None]],
    stopped: StopRequest | None,
    status: ending.Status,
) -> None:
    """Stopped only while rows are left to send; else all succeeded, or some failed."""
    report = RunReport(len(outcomes), dict(Counter(o for o, _ in outcomes)), stopped, 1.0)
    assert ending._status(_summary(*outcomes), report) is status


@pytest.mark.slow
def test_retry_elsewhere_counts_the_earlier_attempts(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """`retry --results NEW` (a new journal) still counts the requests the run sent: attempts
    accumulate and `started_at` stays the first send."""
    sandbox = start_sandbox(script={1002: ("404", "ok")})
    source, out = write_input(tmp_path / "in.csv", 3), tmp_path / "out.csv"
    assert invoke(*run_args(sandbox, source, out), key=sandbox.api_key).exit_code == 1
    first = read(out).filter(pl.col("row") == "2")
    new = tmp_path / "new.csv"
    result = invoke("retry", str(out), "--results", str(new), key=sandbox.api_key)
    assert result.exit_code == 0, result.output
    row = read(new).filter(pl.col("row") == "2")
    assert row["outcome"].to_list() == ["succeeded"]
    assert row["attempts"].to_list() == ["2"]
    assert row["started_at"].to_list() == first["started_at"].to_list()
    assert read(out)["outcome"].to_list() == ["succeeded", "failed", "succeeded"]  # untouched
