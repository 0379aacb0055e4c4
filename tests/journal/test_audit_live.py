"""The audit trail end to end: a run against a sandbox with faults, interrupted (SIGINT to a real
process) and resumed, then retried: the attempts file holds exactly the requests the sandbox
counted, run.json tells three segments, and the key is nowhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from batch.cli import app
from batch.sandbox.config import Faults
from tests.conftest import StartSandbox
from tests.promises.test_retry import journal_outcomes, wait_until
from tests.report_browser import chromium, open_report

ROOT = Path(__file__).resolve().parents[2]
FIRST_ID = 7000


def write_input(path: Path, n: int) -> Path:
    lines = ["routing_id,for_inbound_call,for_outbound_call,status,ticket"]
    lines += [f"{FIRST_ID + i},1,4,1,T-{i}" for i in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_interrupted_resumed_and_retried_run_accounts_for_every_request(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    n = 60
    sandbox = start_sandbox(faults=Faults(error_rate=0.15, drop_rate=0.05, latency=0.02), seed=7)
    source, out = write_input(tmp_path / "in.csv", n), tmp_path / "out.csv"
    flags = ["--base-url", sandbox.base_url, "--rate", "40/s", "--max-attempts", "2"]
    args = ["run", str(source), *flags, "--results", str(out)]
    env = {**os.environ, "VOCOBASE_API_KEY": sandbox.api_key, "PYTHONPATH": str(ROOT)}
    env.pop("REROUTE_BASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch", *args], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_until(lambda: sum(o == "succeeded" for o in journal_outcomes(out).values()) >= 15)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr

    keyed = {"VOCOBASE_API_KEY": sandbox.api_key}
    resumed = CliRunner().invoke(app, args, env=keyed)
    assert resumed.exit_code in (0, 1), resumed.output
    retried = CliRunner().invoke(app, ["retry", str(out), *flags], env=keyed)
    assert retried.exit_code in (0, 1), retried.output

    attempts = pl.read_csv(Path(f"{out}.attempts.csv"), infer_schema=False)
    assert attempts.height == sandbox.stats()["total"]
    assert attempts.select("row", "attempt").is_duplicated().sum() == 0
    # Every request numbered 1..n per row, and the results file's count agrees.
    per_row = attempts.group_by("row").agg(pl.len().alias("n"), pl.col("attempt").cast(int).max())
    assert (per_row["n"] == per_row["attempt"]).all()
    results = pl.read_csv(out, infer_schema=False)
    sent = results.filter(pl.col("attempts").cast(int) > 0)
    counted = dict(zip(per_row["row"].to_list(), per_row["n"].to_list(), strict=True))
    assert {r: int(a) for r, a in sent.select("row", "attempts").iter_rows()} == counted
    # Answered ones carry their answer: a status, or a transport error's code.
    answered = attempts.filter(pl.col("answered_at") != "")
    assert answered.filter((pl.col("http_status") == "") & (pl.col("error_code") == "")).height == 0

    about = json.loads(Path(f"{out}.run.json").read_text())
    kinds = [segment["kind"] for segment in about["segments"]]
    assert kinds == ["run", "resume", "retry"]
    assert [s["exit_status"] for s in about["segments"]] == [
        3,
        resumed.exit_code,
        retried.exit_code,
    ]
    assert about["segments"][0]["stop_reason"].startswith("interrupted")
    assert all(s["finished_at"] for s in about["segments"])
    assert about["totals"]["requests"] == attempts.height
    assert about["totals"]["rows"] == n
    assert sum(about["totals"]["outcomes"].values()) == n
    assert {s["key_variable"] for s in about["segments"]} == {"VOCOBASE_API_KEY"}
    assert any(e["kind"] == "stop" for e in about["events"])

    # The status says what the results file says.
    status = CliRunner().invoke(app, ["status", str(out), "--log-format", "json"])
    assert status.exit_code == 0, status.output
    shown = json.loads(status.stdout)
    counts = dict(results["outcome"].value_counts().iter_rows())
    assert {k: v for k, v in shown["outcomes"].items() if v} == counts
    assert shown["requests"] == attempts.height
    assert [s["kind"] for s in shown["segments"]] == kinds

    # The report the retry wrote tells the three segments, and draws in a real browser.
    page = tmp_path / "out.report.html"
    assert page.is_file()
    if chromium() is not None or os.environ.get("CI"):
        seen = open_report(page, screenshot=tmp_path / "story.png")
        assert seen.errors == []
        assert seen.blocked == []
        assert all(chart["marks"] > 0 for chart in seen.charts.values()), seen.charts

    for path in tmp_path.iterdir():
        if path.is_file():
            assert sandbox.api_key.encode() not in path.read_bytes(), path.name
