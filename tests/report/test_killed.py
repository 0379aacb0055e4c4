"""The report of a run killed with `kill -9` (real processes): every row counted, as status does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batch.errors import JournalError
from batch.status.reader import read_status
from tests.conftest import StartSandbox

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _reroute(*args: str, key: str) -> subprocess.Popen[str]:
    env = {**os.environ, "VOCOBASE_API_KEY": key, "PYTHONPATH": str(ROOT)}
    env.pop("REROUTE_BASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "batch", *args], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _output(*args: str, key: str) -> str:
    proc = _reroute(*args, key=key)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    return stdout


def test_report_of_a_killed_run_counts_every_row_as_status_does(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """After `kill -9` mid-run (no results file yet), the report's rows by outcome and total
    are status's: the rows never sent are not_attempted, not left out."""
    n = 60
    sandbox = start_sandbox()
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    lines = ["routing_id,for_inbound_call,for_outbound_call,status"]
    source.write_text("\n".join([*lines, *(f"{8000 + i},1,4,1" for i in range(n))]) + "\n")
    run = _reroute("run", str(source), "--base-url", sandbox.base_url, "--results", str(out),
                   "--rate", "10/s", key=sandbox.api_key)  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, "the run decided no rows in time"
        try:
            if read_status(out).done >= 8:
                break
        except JournalError:
            pass  # not created yet
        time.sleep(0.05)
    run.kill()  # SIGKILL: nothing written at the end
    run.communicate(timeout=30)
    assert not out.exists()
    status = json.loads(_output("status", str(out), "--log-format", "json", key=""))
    assert status["total"] == n
    left = status["outcomes"]["not_attempted"]
    assert left > 0
    page = _output("report", str(out), "--format", "md", "--out", "-", key="")
    assert f"reroute run of {source} ({n} rows) to " in page
    assert f"| not_attempted | {left} |" in page
    for outcome, rows in status["outcomes"].items():
        if rows:
            assert f"| {outcome} | {rows:,} |" in page
    assert f"{n} rows, {status['requests']} requests sent." in page
