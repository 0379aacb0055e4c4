"""Crash and interrupt safety with a real `reroute run` process: kill -9, Ctrl-C, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import polars as pl
import pytest

from batch.journal.journal import journal_path
from batch.sandbox import RunningSandbox
from batch.sandbox.config import Faults
from tests.conftest import StartSandbox

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ROWS = 100


def write_input(path: Path, n: int = ROWS) -> Path:
    lines = ["routing_id,for_inbound_call,for_outbound_call,status,note"]
    lines += [f"{2000 + row},1,4,1,n{row}" for row in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def command(sandbox: RunningSandbox, source: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "batch",
        "run",
        str(source),
        "--base-url",
        sandbox.base_url,
        "--results",
        str(out),
        "--rate",
        "40/s",
        "--concurrency",
        "4",
        *extra,
    ]


def start(cmd: list[str], key: str) -> subprocess.Popen[str]:
    env = {**os.environ, "VOCOBASE_API_KEY": key, "PYTHONPATH": str(ROOT)}
    env.pop("REROUTE_BASE_URL", None)
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def journal_rows(out: Path) -> dict[int, tuple[str, int]]:
    """row -> (outcome, attempts) as the journal holds them right now (read-only): SQLite,
    then the records its log holds that are not copied in yet (later lines win)."""
    path = journal_path(out)
    if not path.exists():
        return {}
    rows: dict[int, tuple[str, int]] = {}
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            rows = {r: (o, a) for r, o, a in db.execute("SELECT row, outcome, attempts FROM rows")}
    except sqlite3.OperationalError:
        return {}  # created but no table yet
    log = Path(f"{path}-log")
    for line in log.read_text().splitlines() if log.exists() else []:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the line being written right now
        rows[record[0]] = (record[2], record[4])
    return rows


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def finished(out: Path, at_least: int) -> Callable[[], bool]:
    return lambda: sum(o == "succeeded" for o, _ in journal_rows(out).values()) >= at_least


def results(out: Path) -> pl.DataFrame:
    return pl.read_csv(out, infer_schema=False)


def test_kill_9_then_same_command_completes_without_resending(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """kill -9 mid-run, then the same command: complete results, no succeeded row sent again,
    at most the in-flight rows (<= concurrency) sent twice, each counted in `attempts`."""
    sandbox = start_sandbox(faults=Faults(latency=0.05))
    source, out = write_input(tmp_path / "in.csv"), tmp_path / "out.csv"
    proc = start(command(sandbox, source, out), sandbox.api_key)
    try:
        wait_until(finished(out, 20))
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = journal_rows(out)
    decided = {row for row, (outcome, _) in before.items() if outcome == "succeeded"}
    assert 20 <= len(decided) < ROWS
    counts_before = dict(sandbox.stats()["by_routing_id"])

    again = start(command(sandbox, source, out), sandbox.api_key)
    _, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr
    assert "resuming" in stderr
    frame = results(out)
    assert frame.height == ROWS
    assert set(frame["outcome"]) == {"succeeded"}
    counts = sandbox.stats()["by_routing_id"]
    for row in decided:
        assert counts[str(2000 + row)] == counts_before[str(2000 + row)] == 1
    assert sum(counts.values()) - ROWS <= 4  # only rows in flight at the kill went twice
    for routing_id, attempts in zip(frame["routing_id"], frame["attempts"], strict=True):
        assert counts[routing_id] <= int(attempts)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_finishes_in_flight_exits_3_and_resumes(
    start_sandbox: StartSandbox, tmp_path: Path, signum: int
) -> None:
    """First Ctrl-C/SIGTERM: nothing new starts, in-flight rows finish, results written with
    the rest not_attempted, exit 3 with the resume command; the same command then finishes."""
    sandbox = start_sandbox(faults=Faults(latency=0.1))
    source, out = write_input(tmp_path / "in.csv"), tmp_path / "out.csv"
    proc = start(command(sandbox, source, out), sandbox.api_key)
    wait_until(finished(out, 10))
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr
    assert "run the same command again" in stdout
    frame = results(out)
    assert frame.height == ROWS
    outcomes = set(frame["outcome"])
    assert outcomes == {"succeeded", "not_attempted"}  # in-flight rows were allowed to finish
    done = frame.filter(pl.col("outcome") == "succeeded")["routing_id"].to_list()
    assert sandbox.stats()["total"] == len(done)

    again = start(command(sandbox, source, out), sandbox.api_key)
    _, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr
    counts = sandbox.stats()["by_routing_id"]
    assert all(counts[routing_id] == 1 for routing_id in done)
    assert sandbox.stats()["total"] == ROWS


def test_second_ctrl_c_cancels_in_flight_as_unknown(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """A second Ctrl-C cancels requests in flight at once: their rows are `unknown`, exit 3."""
    sandbox = start_sandbox(faults=Faults(latency=20.0))
    source, out = write_input(tmp_path / "in.csv", 8), tmp_path / "out.csv"
    proc = start(command(sandbox, source, out), sandbox.api_key)
    wait_until(lambda: len(journal_rows(out)) >= 2)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)  # ordering only: the second signal must arrive after the first
    proc.send_signal(signal.SIGINT)
    began = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - began < 10  # did not wait for the 20 s answers
    assert proc.returncode == 3, stderr
    frame = results(out)
    unknown = frame.filter(pl.col("outcome") == "unknown")
    assert 1 <= unknown.height <= 4
    assert set(frame["outcome"]) <= {"unknown", "not_attempted"}
    assert all(int(a) >= 1 for a in unknown["attempts"])
