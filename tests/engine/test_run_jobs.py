"""`reroute run JOB.toml` and change windows: job wiring end to end, windows in virtual time."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import polars as pl
import pytest
from trio.testing import MockClock
from typer.testing import CliRunner

from batch.cli import app
from batch.engine.guards import within_window
from batch.engine.rowloop import RunReport, execute, pending
from batch.engine.stop import StopReason, StopToken
from batch.engine.window import Window
from batch.journal.journal import Journal
from batch.journal.lock import RunLock
from batch.journal.record import RunIdentity
from batch.model import Call, Outcome, RowResult
from batch.sandbox import RunningSandbox
from tests.conftest import StartSandbox
from tests.fakes import Sink

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "routing-changes.csv"
SNAPSHOT = REPO / "samples" / "routing-current.csv"
SAMPLE_ROWS = 40


def write_job(folder: Path, sandbox: RunningSandbox | None, body: str = "", **target: str) -> Path:
    """A job file beside a copy of the sample, targeting ``sandbox`` (key in MY_KEY)."""
    shutil.copy(SAMPLE, folder / "changes.csv")
    lines = ['input = "changes.csv"', body, "[target]", 'api_key_env = "MY_KEY"']
    if sandbox is not None:
        lines.append(f'base_url = "{sandbox.base_url}"')
    lines += [f'{k} = "{v}"' for k, v in target.items()]
    path = folder / "job.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def invoke(*args: str, key: str | None = None, env: dict[str, str] | None = None) -> Any:
    environment = {"MY_KEY": key or "", "VOCOBASE_API_KEY": "", "REROUTE_BASE_URL": ""}
    return CliRunner().invoke(app, list(args), env={**environment, **(env or {})})


def outcomes(path: Path) -> set[str]:
    return set(pl.read_csv(path, infer_schema=False)["outcome"])


@pytest.mark.slow
def test_job_file_runs_against_its_target(live_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """`run JOB.toml`: the job's input, target, key variable and results path are used."""
    job = write_job(tmp_path, live_sandbox, '[pace]\nrate = "500/s"')
    result = invoke("run", str(job), key=live_sandbox.api_key)
    assert result.exit_code == 0, result.output
    results = tmp_path / "job.results.csv"
    assert outcomes(results) == {"succeeded"}
    assert live_sandbox.stats()["total"] == SAMPLE_ROWS
    assert live_sandbox.record(4102) is not None


@pytest.mark.slow
def test_flags_override_the_job(live_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """Flags win over the job (a 1/h job rate and its results path), the job over the env."""
    job = write_job(tmp_path, live_sandbox, 'results = "job-out.csv"\n[pace]\nrate = "1/h"')
    out = tmp_path / "flag-out.csv"
    result = invoke(
        "run", str(job), "--rate", "500/s", "--results", str(out),
        key=live_sandbox.api_key,
        env={"REROUTE_BASE_URL": "https://elsewhere.example/api/v2"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert outcomes(out) == {"succeeded"}
    assert not (tmp_path / "job-out.csv").exists()
    assert live_sandbox.stats()["total"] == SAMPLE_ROWS


@pytest.mark.slow
def test_key_is_read_from_the_jobs_variable(live_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """Without MY_KEY set the run refuses, naming that variable (and not VOCOBASE_API_KEY)."""
    job = write_job(tmp_path, live_sandbox)
    result = invoke("run", str(job), env={"VOCOBASE_API_KEY": live_sandbox.api_key})
    assert result.exit_code == 2
    assert "MY_KEY" in result.stderr
    assert live_sandbox.stats()["total"] == 0


@pytest.mark.slow
def test_sandbox_flag_overrides_the_jobs_base_url(tmp_path: Path) -> None:
    """`run JOB.toml --sandbox` rehearses a job aimed at the real API, with no key at all."""
    job = write_job(
        tmp_path, None, '[pace]\nrate = "500/s"', base_url="https://api.vocobase.com/api/v2"
    )
    result = invoke("run", str(job), "--sandbox")
    assert result.exit_code == 0, result.output
    assert outcomes(tmp_path / "job.results.csv") == {"succeeded"}


@pytest.mark.slow
def test_a_one_off_window_already_over_refuses_a_new_run_and_leaves_nothing(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A one-off window that has ended would send nothing: a new run is refused (exit 2),
    nothing sent and nothing made, and the message says what to give instead."""
    body = (
        '[window]\nnot_before = "2020-01-01T00:00:00+00:00"\n'
        'not_after = "2020-01-01T04:00:00+00:00"'
    )
    job = write_job(tmp_path, live_sandbox, body)
    result = invoke("run", str(job), key=live_sandbox.api_key)
    assert result.exit_code == 2, result.output
    assert live_sandbox.stats()["total"] == 0
    assert "the change window ended at 2020-01-01 04:00:00 UTC (a one-off window" in result.output
    assert "give the next agreed window" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["changes.csv", "job.toml"]
    # The flag is a window too.
    flagged = invoke("run", str(write_job(tmp_path, live_sandbox)), "--not-after",
                     "2020-01-01T04:00:00+00:00", key=live_sandbox.api_key)  # fmt: skip
    assert flagged.exit_code == 2, flagged.output
    assert live_sandbox.stats()["total"] == 0


@pytest.mark.slow
def test_a_run_stopped_by_its_one_off_window_promises_no_next_one(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """The window closes mid-run: exit 3, and the message does not promise a next window a
    one-off window never has. Its resume and its retry after the window are the run's own
    (not refusals): they send nothing and exit 3, rows left to send."""
    job = write_job(tmp_path, live_sandbox, '[pace]\nrate = "4/s"\nconcurrency = 1')
    closes = datetime.now(UTC) + timedelta(seconds=1.5)
    first = invoke("run", str(job), "--not-after", closes.isoformat(), key=live_sandbox.api_key)
    assert first.exit_code == 3, first.output
    assert "this one-off window has no next one" in first.output
    assert "in the next window" not in first.output
    sent = live_sandbox.stats()["total"]
    assert 0 < sent < 40
    results = tmp_path / "job.results.csv"
    assert "not_attempted" in outcomes(results)
    for again in (
        invoke("run", str(job), "--not-after", closes.isoformat(), key=live_sandbox.api_key),
        invoke("retry", str(results), "--not-after", closes.isoformat(), key=live_sandbox.api_key),
    ):
        assert again.exit_code == 3, again.output
        assert live_sandbox.stats()["total"] == sent


def test_bad_window_flag_is_one_line_exit_2(tmp_path: Path) -> None:
    """An unparseable --not-before is a usage error naming the flag, before anything is sent."""
    job = write_job(tmp_path, None)
    result = invoke("run", str(job), "--sandbox", "--not-before", "tomorrow")
    assert result.exit_code == 2
    assert "--not-before" in result.stderr
    assert "Traceback" not in result.output


def test_a_second_run_is_refused_at_once(tmp_path: Path) -> None:
    """While another process holds the run's lock, `run` exits 2 naming the holder's pid."""
    job = write_job(tmp_path, None)
    with RunLock(tmp_path / "job.results.csv"):
        result = invoke("run", str(job), "--sandbox")
    assert result.exit_code == 2
    assert "already being written" in result.stderr
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in result.stderr
    assert not (tmp_path / "job.results.csv").exists()


@pytest.mark.slow
def test_a_stale_lock_is_taken_over_and_logged(tmp_path: Path) -> None:
    """A lock file left by a dead process (no flock held) is taken over, with a log line."""
    job = write_job(tmp_path, None, '[pace]\nrate = "500/s"')
    lock = tmp_path / "job.results.csv.lock"
    lock.write_text('{"pid": 999999, "host": "gone", "started_at": "2026-11-01T00:00:00+00:00"}')
    result = invoke("run", str(job), "--sandbox")
    assert result.exit_code == 0, result.output
    assert "took over the lock" in result.stderr
    assert "pid 999999" in result.stderr


# -- the window around the orchestrator, in virtual time --------------------------------------


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


T0 = datetime(2026, 12, 5, 0, 0, tzinfo=UTC)


def virtual_now() -> datetime:
    """T0 plus the virtual seconds trio's MockClock has advanced."""
    return T0 + timedelta(seconds=anyio.current_time())


def calls(n: int) -> Iterator[Call]:
    for row in range(1, n + 1):
        yield Call(row=row, routing_id=1000 + row, body="{}")


def sender(journal: Journal, sent: list[tuple[int, float]], delay: float = 1.0) -> Any:
    sink = Sink(journal)

    async def send(call: Call) -> RowResult:
        sent.append((call.row, anyio.current_time()))
        sink.attempt(call, 1)
        await anyio.sleep(delay)
        return RowResult(
            row=call.row,
            routing_id=str(call.routing_id),
            outcome=Outcome.SUCCEEDED,
            http_status=200,
            attempts=1,
        )

    return send


async def test_run_waits_for_the_window_to_open(journal: Journal) -> None:
    """Nothing is sent before not_before; the countdown is shown; sending starts exactly then."""
    start = anyio.current_time()
    win = Window(T0 + timedelta(hours=1), T0 + timedelta(hours=5))
    sent: list[tuple[int, float]] = []
    shown: list[timedelta] = []
    stop = StopToken()

    async def body() -> RunReport:
        return await execute(calls(3), send=sender(journal, sent), journal=journal,
                             concurrency=1, stop=stop)  # fmt: skip

    report = await within_window(
        win, body, stop=stop, now=virtual_now, on_wait=shown.append, every=60
    )
    assert report.stopped is None
    assert [row for row, _ in sent] == [1, 2, 3]
    assert sent[0][1] - start == pytest.approx(3600.0)
    assert shown[0] == timedelta(hours=1)
    assert len(shown) == 60  # one line a minute for an hour


async def test_window_closing_mid_run_stops_starting_rows(journal: Journal) -> None:
    """At not_after no new row starts, the in-flight one finishes, the reason is window_closed."""
    win = Window(None, T0 + timedelta(seconds=5.5))
    sent: list[tuple[int, float]] = []
    stop = StopToken()

    async def body() -> RunReport:
        return await execute(calls(20), send=sender(journal, sent), journal=journal,
                             concurrency=1, stop=stop)  # fmt: skip

    report = await within_window(win, body, stop=stop, now=virtual_now)
    assert [row for row, _ in sent] == [1, 2, 3, 4, 5, 6]
    assert report.stopped is not None
    assert report.stopped.reason == StopReason.WINDOW_CLOSED
    assert journal.final_count() == 6  # the row in flight at the close finished


async def test_stop_while_waiting_ends_the_wait(journal: Journal) -> None:
    """Ctrl-C while waiting for the window: the wait ends at once and nothing is sent."""
    win = Window(T0 + timedelta(hours=2), None)
    sent: list[tuple[int, float]] = []
    stop = StopToken()

    async def body() -> RunReport:
        return await execute(calls(3), send=sender(journal, sent), journal=journal,
                             concurrency=1, stop=stop)  # fmt: skip

    async def interrupt() -> None:
        await anyio.sleep(600)
        stop.request(StopReason.INTERRUPTED, "interrupted")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(interrupt)
        report = await within_window(win, body, stop=stop, now=virtual_now)
    assert sent == []
    assert anyio.current_time() == pytest.approx(600.0)
    assert report.stopped is not None
    assert report.stopped.reason == StopReason.INTERRUPTED


async def test_resumed_in_the_next_window_sends_the_rest(tmp_path: Path) -> None:
    """The same run in the next window sends only the rows the first window did not decide."""
    source = tmp_path / "in.csv"
    source.write_text("x\n")
    ident = RunIdentity.of(source, "http://127.0.0.1:1/api/v2", tmp_path / "out.csv")

    async def invocation(win: Window) -> tuple[list[int], RunReport]:
        """One `reroute run` of the same command: its own journal handle and stop token."""
        stop, log = StopToken(), list[tuple[int, float]]()
        with Journal.open(tmp_path / "out.csv.journal", ident) as journal:

            async def body() -> RunReport:
                return await execute(pending(tuple(calls(10)), journal), send=sender(journal, log),
                                     journal=journal, concurrency=1, stop=stop)  # fmt: skip

            report = await within_window(win, body, stop=stop, now=virtual_now)
        return [row for row, _ in log], report

    first, stopped = await invocation(Window(None, T0 + timedelta(seconds=3.5)))
    second, finished = await invocation(Window(T0 + timedelta(days=1), None))
    assert first == [1, 2, 3, 4]
    assert second == [5, 6, 7, 8, 9, 10]
    assert stopped.stopped is not None
    assert finished.stopped is None


@pytest.mark.slow
def test_job_safety_keys_drive_the_run(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """A job's [safety] snapshot, skip_unchanged, rollback, canary and budget apply to `run`."""
    sandbox = start_sandbox(state=SNAPSHOT)
    shutil.copy(SNAPSHOT, tmp_path / "current.csv")
    body = (
        '[pace]\nrate = "500/s"\n[safety]\ncurrent = "current.csv"\nallow_wipe = true\n'
        'skip_unchanged = true\nrollback = "rollback.csv"\ncanary = 2\nerror_budget = "5%"'
    )
    job = write_job(tmp_path, sandbox, body)
    result = invoke("run", str(job), key=sandbox.api_key)
    assert result.exit_code == 0, result.output
    frame = pl.read_csv(tmp_path / "job.results.csv", infer_schema=False)
    sent = frame.filter(pl.col("outcome") == "succeeded").height
    assert sandbox.stats()["total"] == sent
    assert set(frame["outcome"]) == {"succeeded", "skipped"}
    assert pl.read_csv(tmp_path / "rollback.csv").height == sent
    assert "canary: the first 2 rows succeeded" in result.stderr
    assert "error budget: 5% of last 100: 0% used" in result.stdout


def test_jobs_check_plans_against_the_jobs_snapshot(tmp_path: Path) -> None:
    """`jobs check` judges rows against [safety].current: wipes are problems (exit 1)."""
    shutil.copy(SNAPSHOT, tmp_path / "current.csv")
    job = write_job(tmp_path, None, '[safety]\ncurrent = "current.csv"\ncanary = 3')
    result = invoke("jobs", "check", str(job))
    assert result.exit_code == 1, result.output
    assert "WIPES" in result.stdout
    assert "against " in result.stdout
    assert "canary: the first 3 rows" in result.stdout


def test_retry_refuses_a_job_file(tmp_path: Path) -> None:
    """`retry JOB.toml` is a usage error pointing at `run JOB.toml`."""
    job = write_job(tmp_path, None)
    result = invoke("retry", str(job), "--sandbox")
    assert result.exit_code == 2
    assert "reroute run" in result.stderr
