"""The approved plan is what runs (issue 26), end to end with real processes.

The change board approves the hash `reroute plan` printed on Thursday; Saturday's run is given
that hash. A sheet edited in between sends nothing (exit 2, no journal, no results file) and
the refusal names the row; the sheet as approved runs, and its report names the approved plan.
Resume and retry check it too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from batch.journal.db import journal_path
from batch.sandbox import RunningSandbox
from tests.conftest import StartSandbox

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "routing-changes.csv"
SNAPSHOT = ROOT / "samples" / "routing-current.csv"
HASH = re.compile(r"plan sha256: ([0-9a-f]{64}) \((\d+) requests\)")


def reroute(cwd: Path, *args: str, key: str = "") -> subprocess.CompletedProcess[str]:
    """`python -m batch ARGS` in ``cwd``, as an operator runs it (its own process)."""
    env = {**os.environ, "VOCOBASE_API_KEY": key, "PYTHONPATH": str(ROOT)}
    env.pop("REROUTE_BASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "batch", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def plan_hash(cwd: Path, *args: str) -> str:
    done = reroute(cwd, "plan", *args)
    assert done.returncode == 0, done.stderr
    found = HASH.search(done.stdout)
    assert found is not None, done.stdout
    return found.group(1)


def run(cwd: Path, sandbox: RunningSandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return reroute(
        cwd, "run", "sheet.csv", "--base-url", sandbox.base_url, "--rate", "50/s", *args,
        key=sandbox.api_key,
    )  # fmt: skip


def test_an_edited_sheet_sends_nothing_and_the_approved_one_runs(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """Hash approved, one cell edited: 0 requests, exit 2 naming the row, nothing made; the
    sheet as approved runs, run.json records that very hash, the report names it."""
    sandbox = start_sandbox()
    sheet = tmp_path / "sheet.csv"
    shutil.copyfile(SAMPLE, sheet)
    snapshot = shutil.copyfile(SNAPSHOT, tmp_path / "current.csv")
    flags = ("--current", snapshot.name, "--fill-from-current")
    approved = plan_hash(tmp_path, "sheet.csv", *flags)
    assert (tmp_path / ".reroute-plans" / f"{approved}.tsv").is_file()

    as_approved = sheet.read_text()
    lines = as_approved.splitlines(keepends=True)
    assert lines[2].startswith("4102,+44161343471,1,3,1,")
    lines[2] = lines[2].replace("4102,+44161343471,1,3,1,", "4102,+44161343471,1,3,0,", 1)
    sheet.write_text("".join(lines))  # Friday: row 2's status edited

    refused = run(tmp_path, sandbox, *flags, "--approved-plan", approved)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "1 row differs from the approved plan" in refused.stderr
    assert "the first is row 2: routing_id 4102, status 0 (approved: 1)" in refused.stderr
    assert sandbox.stats()["total"] == 0
    results = tmp_path / "sheet.results.csv"
    assert not results.exists()
    assert not journal_path(results).exists()

    sheet.write_text(as_approved)  # the sheet as approved
    sent = run(tmp_path, sandbox, *flags, "--approved-plan", approved)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sandbox.stats()["total"] == 40
    record = json.loads((tmp_path / "sheet.results.csv.run.json").read_text())
    assert record["segments"][0]["plan_sha256"] == approved
    assert record["segments"][0]["settings"]["approved_plan"] == approved
    report = reroute(tmp_path, "report", results.name, "--format", "md", "--out", "-")
    assert f"**Approved plan:** {approved}" in report.stdout


def test_a_wrong_hash_without_the_kept_plan_refuses_and_says_the_count_is_unknown(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """The approved plan's requests are nowhere to be found: still refused, count unknown."""
    sandbox = start_sandbox()
    shutil.copyfile(SAMPLE, tmp_path / "sheet.csv")
    refused = run(tmp_path, sandbox, "--approved-plan", "ab" * 32)
    assert refused.returncode == 2
    assert "How many rows differ is unknown" in refused.stderr
    assert sandbox.stats()["total"] == 0
    assert not (tmp_path / "sheet.results.csv").exists()


def test_resume_and_retry_check_the_approved_plan(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """A run stopped early resumes only with its approved plan; a retry may send the rows of
    the run's approved plan again (each unchanged), and nothing under another hash."""
    # Row 1's first answer: key rejected (the run stops, exit 3); row 3 fails for good.
    sandbox = start_sandbox(script={4101: ("401",)}, not_found_ids=frozenset({4103}))
    shutil.copyfile(SAMPLE, tmp_path / "sheet.csv")
    approved = plan_hash(tmp_path, "sheet.csv")
    other = plan_hash(
        tmp_path, "sheet.csv", "--connection-id", "11111111-2222-4333-8444-555555555555"
    )
    assert other != approved

    stopped = run(tmp_path, sandbox, "--approved-plan", approved, "--concurrency", "1")
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    before = sandbox.stats()["total"]
    wrong = run(tmp_path, sandbox, "--approved-plan", other, "--concurrency", "1")
    assert wrong.returncode == 2
    assert "rows differ from the approved plan" in wrong.stderr
    assert sandbox.stats()["total"] == before
    resumed = run(tmp_path, sandbox, "--approved-plan", approved)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr  # row 3 failed: 404
    outcomes = pl.read_csv(tmp_path / "sheet.results.csv", infer_schema=False)["outcome"]
    assert outcomes.to_list().count("failed") == 1

    sent = sandbox.stats()["total"]
    key = sandbox.api_key
    wrong_retry = reroute(tmp_path, "retry", "sheet.results.csv", "--approved-plan", other, key=key)
    assert wrong_retry.returncode == 2
    assert "1 row differs" in wrong_retry.stderr
    retried = reroute(tmp_path, "retry", "sheet.results.csv", "--approved-plan", approved, key=key)
    assert retried.returncode == 1, retried.stdout + retried.stderr  # still 404, but sent
    assert sandbox.stats()["total"] == sent + 1
