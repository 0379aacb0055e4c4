"""`reroute status` against real runs: a sandbox with faults on 127.0.0.1, real `reroute run`
processes interrupted with SIGINT and resumed, then `reroute retry`; status read from another
process while a run goes on, which it must neither block nor slow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from batch.errors import JournalError
from batch.sandbox import RunningSandbox
from batch.sandbox.config import Faults
from batch.status.reader import read_status
from tests.conftest import StartSandbox

ROOT = Path(__file__).resolve().parents[2]
FIRST_ID = 7000

pytestmark = pytest.mark.slow


def _input(path: Path, n: int) -> Path:
    lines = ["routing_id,for_inbound_call,for_outbound_call,status,note"]
    lines += [f"{FIRST_ID + i},1,4,1,n{i}" for i in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _env(key: str) -> dict[str, str]:
    env = {**os.environ, "VOCOBASE_API_KEY": key, "PYTHONPATH": str(ROOT)}
    env.pop("REROUTE_BASE_URL", None)
    return env


def _reroute(*args: str, key: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "batch", *args], cwd=ROOT, env=_env(key),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _status_json(out: Path, key: str) -> dict[str, Any]:
    proc = _reroute("status", str(out), "--log-format", "json", key=key)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout  # one JSON object
    record: dict[str, Any] = json.loads(lines[0])
    return record


def _from_results(out: Path) -> tuple[Counter[str], int]:
    """Rows per outcome and requests (the attempts column's sum) in the results file."""
    frame = pl.read_csv(out, infer_schema=False)
    counts = Counter(frame["outcome"].to_list())
    return counts, int(frame["attempts"].cast(pl.Int64).sum())


def _assert_matches(record: dict[str, Any], out: Path) -> None:
    counts, requests = _from_results(out)
    shown = {k: v for k, v in record["outcomes"].items() if v}
    assert shown == {k: v for k, v in counts.items() if v}
    assert record["requests"] == requests
    assert record["done"] + record["left"] == record["candidates"] == sum(counts.values())
    failed = {f["row"] for f in record["last_failures"]}
    frame = pl.read_csv(out, infer_schema=False)
    assert failed <= {int(r) for r in frame.filter(pl.col("outcome") == "failed")["row"]}


def _wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _decided(out: Path, at_least: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return read_status(out).done >= at_least
        except JournalError:
            return False  # not created yet

    return check


def test_status_matches_the_results_after_faults_interrupt_resume_and_retry(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """A run with faults, interrupted (SIGINT) and resumed, then retried: after each, status's
    counts, requests and failures are the results file's exactly."""
    n = 80
    sandbox: RunningSandbox = start_sandbox(
        faults=Faults(error_rate=0.15, drop_rate=0.05, latency=0.02),
        not_found_ids=frozenset({FIRST_ID + 3, FIRST_ID + 41}),
        seed=7,
    )
    source, out = _input(tmp_path / "in.csv", n), tmp_path / "out.csv"
    run = ["run", str(source), "--base-url", sandbox.base_url, "--results", str(out),
           "--rate", "40/s", "--max-attempts", "2"]  # fmt: skip

    first = _reroute(*run, key=sandbox.api_key)
    _wait_until(_decided(out, 20))
    during = _status_json(out, sandbox.api_key)
    assert during["running"] is True
    assert during["lock"]["pid"] == first.pid
    assert during["state"] == "running"
    assert during["rows_per_min"] is not None
    assert during["requests_per_min"] is not None
    assert during["eta"] is not None
    assert 0 <= during["in_flight"] <= 4  # --concurrency
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 3, stderr
    stopped = _status_json(out, sandbox.api_key)
    assert (stopped["state"], stopped["running"]) == ("stopped", False)
    assert stopped["outcomes"]["not_attempted"] > 0
    _assert_matches(stopped, out)

    again = _reroute(*run, key=sandbox.api_key)
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 1, stderr  # the two 404s (and maybe a fault twice) failed
    resumed = _status_json(out, sandbox.api_key)
    assert resumed["state"] == "finished"
    _assert_matches(resumed, out)

    retry = _reroute("retry", str(out), "--max-attempts", "5", key=sandbox.api_key)
    _, stderr = retry.communicate(timeout=120)
    assert retry.returncode == 1, stderr  # the 404s stay failed
    final = _status_json(out, sandbox.api_key)
    _assert_matches(final, out)
    assert final["outcomes"]["failed"] == 2
    assert {f["row"] for f in final["last_failures"]} == {3, 41}
    assert final["audit_trail"] is True
    assert [s["kind"] for s in final["segments"]] == ["run", "resume", "retry"]
    assert [s["exit_status"] for s in final["segments"]] == [3, 1, 1]
    assert final["segments"][0]["stop_reason"]  # interrupted


def test_status_while_running_neither_blocks_nor_slows_the_run(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """Status read over and over from another process during a paced run (and `reroute status`
    run beside it): the run keeps its pace and exit status; status says running, names the
    run's process, and its counts only move forward."""
    n, rate = 120, 30
    sandbox = start_sandbox(faults=Faults(latency=0.02))

    def timed_run(out: Path, *, watch: bool) -> tuple[float, list[Any], list[dict[str, Any]]]:
        source = _input(tmp_path / f"{out.stem}-input.csv", n)
        args = ["run", str(source), "--base-url", sandbox.base_url, "--results", str(out),
                "--rate", f"{rate}/s", "--log-format", "json"]  # fmt: skip
        proc = _reroute(*args, key=sandbox.api_key)
        seen: list[Any] = []
        cli: list[dict[str, Any]] = []
        while watch and proc.poll() is None:
            try:
                status = read_status(out)
            except JournalError:
                assert not seen, "status failed during the run"  # only before its journal
                continue
            seen.append(status)
            if status.running and status.done > n // 3 and not cli:
                cli.append(_status_json(out, sandbox.api_key))
            time.sleep(0.05)  # about 40 times as often as --watch
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        summary = json.loads(stdout.splitlines()[-1])
        assert summary["outcomes"]["succeeded"] == n
        for status in seen:
            if status.running:
                assert status.holder is not None
                assert status.holder.pid == proc.pid
        return float(summary["effective_rate_per_s"]), seen, cli

    alone, _, _ = timed_run(tmp_path / "alone.csv", watch=False)
    watched, seen, cli = timed_run(tmp_path / "watched.csv", watch=True)
    running = [s for s in seen if s.running]
    assert len(running) > 20, "status hardly saw the run running"
    assert all(s.state == "running" for s in running)
    assert all(s.in_flight is None or s.in_flight <= 4 for s in running)
    done = [s.done for s in seen]
    assert done == sorted(done)  # an outcome only moves forward
    assert cli, "reroute status never ran during the run"
    assert cli[0]["running"] is True
    assert cli[0]["state"] == "running"
    assert watched > alone * 0.8, (alone, watched)  # loose: 2 shared cores


def test_status_counts_rows_never_sent_invalid_and_a_retry_into_a_new_file(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """Invalid rows (--skip-invalid) are never sent, and a retry into another results file
    never resends the rows that succeeded: status still counts every row of each results file."""
    from typer.testing import CliRunner

    from batch.cli import app

    sandbox = start_sandbox(script={FIRST_ID + 2: ("404",)})
    source = _input(tmp_path / "in.csv", 6)
    source.write_text(source.read_text() + "abc,1,4,1,bad\n7100,9,4,1,bad\n")
    out, again = tmp_path / "out.csv", tmp_path / "again.csv"
    env = {"VOCOBASE_API_KEY": sandbox.api_key}
    flags = ["--base-url", sandbox.base_url, "--rate", "50/s"]
    run = CliRunner().invoke(
        app, ["run", str(source), *flags, "--results", str(out), "--skip-invalid"], env=env
    )
    assert run.exit_code == 1, run.output
    first = _status_json(out, sandbox.api_key)
    assert first["outcomes"]["invalid"] == 2
    _assert_matches_all(first, out)
    retry = CliRunner().invoke(app, ["retry", str(out), *flags, "--results", str(again)], env=env)
    assert retry.exit_code in (0, 1), retry.output
    second = _status_json(again, sandbox.api_key)
    assert second["outcomes"]["succeeded"] >= 5
    _assert_matches_all(second, again)


def _assert_matches_all(record: dict[str, Any], out: Path) -> None:
    """Every outcome of the results file, invalid included, and its total."""
    counts, _ = _from_results(out)
    assert {k: v for k, v in record["outcomes"].items() if v} == dict(counts)
    assert record["total"] == sum(counts.values())


def test_status_report_and_trail_agree_on_requests_after_a_retry_written_elsewhere(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """After `retry out.csv --results again.csv`, status of each file, its report and run.json
    count the requests its results file's attempts add up to: the trail's plus those carried."""
    sandbox = start_sandbox(
        faults=Faults(error_rate=0.3),
        seed=5,
        script={FIRST_ID + 2: ("500", "500")},
        not_found_ids=frozenset({FIRST_ID + 4}),
    )
    source, out, again = (
        _input(tmp_path / "in.csv", 30),
        tmp_path / "out.csv",
        tmp_path / "again.csv",
    )
    flags = ["--base-url", sandbox.base_url, "--rate", "50/s", "--max-attempts", "2"]
    for args in (
        ["run", str(source), "--results", str(out), *flags],
        ["retry", str(out), "--results", str(again), *flags],
    ):
        proc = _reroute(*args, key=sandbox.api_key)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 1, stderr  # row 4 (404) fails in both
    for results, carried in ((again, _from_results(out)[1]), (out, 0)):
        _, requests = _from_results(results)
        trail = pl.read_csv(results.with_name(f"{results.name}.attempts.csv"))
        record = _status_json(results, sandbox.api_key)
        assert record["requests"] == requests
        assert (record["requests_trail"], record["requests_carried"]) == (trail.height, carried)
        assert requests == trail.height + carried
        totals = json.loads(results.with_name(f"{results.name}.run.json").read_text())["totals"]
        assert totals["requests"] + totals["requests_carried"] == requests
        proc = _reroute("report", str(results), "--format", "md", "--out", "-", key="")
        page, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        assert f"30 rows, {requests:,} requests sent." in page
    retried = pl.read_csv(again.with_name("again.csv.attempts.csv"))
    assert retried.filter(pl.col("row") == 4)["attempt"].to_list() == [2]  # on from out.csv's
