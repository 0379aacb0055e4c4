"""Promises of `reroute run` (contract: exit statuses, Resume, outcomes), end to end.

Each test pins one user-facing promise that today's code breaks; the comment above each test
says what today's code does instead. Everything goes through the command line (CliRunner in
process, or a real `python -m batch` process where signals are needed) against sandboxes on
127.0.0.1. No internal API is used.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from batch.cli import app
from batch.sandbox import RunningSandbox
from batch.sandbox.config import Faults
from batch.settings import Rate
from tests.conftest import StartSandbox

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "routing-changes.csv"
SNAPSHOT = ROOT / "samples" / "routing-current.csv"
FIRST_ID = 5000
UUID_A = "11111111-2222-4333-8444-555555555555"
UUID_B = "99999999-8888-4777-8666-555555555555"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Safety net: in this process no name but loopback resolves (raised as a certificate
    failure, which stops a run at once rather than retrying), so nothing reaches a real host."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in ("127.0.0.1", "localhost", "::1"):
            raise ssl.SSLCertVerificationError(f"test guard: {name} is not loopback")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


def write_input(path: Path, n: int, *, connection_column: bool = False) -> Path:
    """n valid rows, routing ids FIRST_ID+1.. (row i <-> FIRST_ID+i); optionally an empty
    connection_id column (for --connection-id)."""
    head = "routing_id,for_inbound_call,for_outbound_call,status,note"
    lines = [head + (",connection_id" if connection_column else "")]
    lines += [
        f"{FIRST_ID + i},1,4,1,n{i}" + ("," if connection_column else "") for i in range(1, n + 1)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def invoke(*args: str, key: str) -> Any:
    env: dict[str, str | None] = {"VOCOBASE_API_KEY": key, "REROUTE_BASE_URL": None}
    return CliRunner().invoke(app, list(args), env=env)


def read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def outcome_counts(path: Path) -> dict[str, int]:
    return dict(read(path)["outcome"].value_counts().iter_rows())


def served(sandbox: RunningSandbox, routing_id: int) -> int:
    return int(sandbox.stats()["by_routing_id"].get(str(routing_id), 0))


def run_args(sandbox: RunningSandbox, source: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run", str(source), "--base-url", sandbox.base_url, "--results", str(out),
        "--rate", "50/s", *extra,
    ]  # fmt: skip


def start_process(args: list[str], key: str) -> subprocess.Popen[str]:
    env = {**os.environ, "VOCOBASE_API_KEY": key, "PYTHONPATH": str(ROOT)}
    env.pop("REROUTE_BASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "batch", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- 5. exit 3 must not hide failures -----------------------------------------------------------


# Today: the second invocation sends nothing, the results say 4 succeeded and 1 failed, but the
# closed window makes it a "stopped early" run: exit 3 ("resumes in the next window"), which
# schedulers treat as fine, so the failure is never looked at.
@pytest.mark.slow
def test_nothing_left_to_send_with_failures_exits_1_even_after_the_window(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """All rows decided, some failed, window now closed: the same command exits 1, not 3."""
    sandbox = start_sandbox(script={FIRST_ID + 3: ("404",)})
    source, out = write_input(tmp_path / "in.csv", 5), tmp_path / "out.csv"
    closes = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    args = run_args(sandbox, source, out, "--not-after", closes.isoformat())
    first = invoke(*args, key=sandbox.api_key)
    assert first.exit_code == 1, first.output
    assert outcome_counts(out) == {"succeeded": 4, "failed": 1}

    time.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()) + 0.2)
    again = invoke(*args, key=sandbox.api_key)
    assert again.exit_code == 1, again.output
    assert sandbox.stats()["total"] == 5
    assert outcome_counts(out) == {"succeeded": 4, "failed": 1}


# -- 6. the results file cannot be written at the end ----------------------------------------


# Today: every row is sent, then writing the results raises IsADirectoryError; the run ends
# with exit 2 ("nothing was sent" by the contract) and no word that rows went out or how to
# get their results.
@pytest.mark.slow
def test_results_unwritable_at_the_end_is_exit_4_and_the_same_command_writes_them(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """Results unwritable after sending: exit 4, journal kept; rerun writes them, sends none."""
    n = 60
    sandbox = start_sandbox(faults=Faults(latency=0.05))
    source, out = write_input(tmp_path / "in.csv", n), tmp_path / "out.csv"
    args = run_args(sandbox, source, out, "--concurrency", "4")
    proc = start_process(args, sandbox.api_key)
    wait_until(lambda: sandbox.stats()["total"] >= 5)
    if out.is_file():
        out.unlink()  # in case the run writes an early version of the file
    out.mkdir()  # the final write will meet a directory
    stdout, stderr = proc.communicate(timeout=30)
    assert sandbox.stats()["total"] == n
    assert proc.returncode == 4, stdout + stderr
    said = (stdout + stderr).lower()
    assert re.search(r"\bsent\b", said), said  # the rows went out, and it says so
    assert "results" in said
    assert "same command" in said  # how to get the results: run it again
    assert "Traceback" not in stdout + stderr
    assert out.with_name(out.name + ".journal").exists()

    out.rmdir()
    again = invoke(*args, key=sandbox.api_key)
    assert again.exit_code == 0, again.output
    assert sandbox.stats()["total"] == n
    assert outcome_counts(out) == {"succeeded": n}


# Today: the directory is not checked up front: all 6 rows are sent, then the write fails
# (exit 2 after requests went out).
@pytest.mark.slow
def test_a_directory_at_the_results_path_is_refused_before_sending(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A directory already at the results path: exit 2, naming it, nothing sent."""
    source, out = write_input(tmp_path / "in.csv", 6), tmp_path / "out.csv"
    out.mkdir()
    result = invoke(*run_args(live_sandbox, source, out), key=live_sandbox.api_key)
    assert result.exit_code == 2, result.output
    assert live_sandbox.stats()["total"] == 0
    assert str(out) in result.output or out.name in result.output


# -- 9. attempts and started_at survive a 401 stop ---------------------------------------------


# Today: the resume forgets the 401 request: the row ends with attempts 1 and the started_at of
# the resume's request.
@pytest.mark.slow
def test_a_row_stopped_by_401_counts_both_requests_and_keeps_its_first_send_time(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """A row stopped by 401 then resumed: attempts 2, started_at of the first send."""
    sandbox = start_sandbox(script={FIRST_ID + 1: ("401",)})
    source, out = write_input(tmp_path / "in.csv", 4), tmp_path / "out.csv"
    args = run_args(sandbox, source, out, "--concurrency", "1")
    began = datetime.now(UTC)
    first = invoke(*args, key=sandbox.api_key)
    first_ended = datetime.now(UTC)
    assert first.exit_code == 3, first.output
    assert served(sandbox, FIRST_ID + 1) == 1
    time.sleep(1.1)  # so the resume's send time differs from the first one's

    again = invoke(*args, key=sandbox.api_key)
    assert again.exit_code == 0, again.output
    assert served(sandbox, FIRST_ID + 1) == 2
    row = read(out).row(0, named=True)
    assert row["outcome"] == "succeeded"
    assert row["attempts"] == "2"
    started = parse_time(row["started_at"])
    assert began - timedelta(seconds=1) <= started <= first_ended, started


# -- 10. a resume that would change what is sent is refused --------------------------------------


def _stopped_by_401(sandbox: RunningSandbox, args: list[str]) -> None:
    """First invocation: the first row's request gets 401 (concurrency 1): exit 3, one sent."""
    first = invoke(*args, key=sandbox.api_key)
    assert first.exit_code == 3, first.output
    assert sandbox.stats()["total"] == 1


# Today: the resume takes the new --connection-id silently (identity = input, URL, results
# only): it sends the remaining rows with the other id, exit 0 — one run, two connection ids.
@pytest.mark.slow
def test_resume_with_another_connection_id_is_refused(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """A resume with another --connection-id: exit 2 naming it, nothing sent."""
    sandbox = start_sandbox(script={FIRST_ID + 1: ("401",)})
    source = write_input(tmp_path / "in.csv", 5, connection_column=True)
    out = tmp_path / "out.csv"
    base = run_args(sandbox, source, out, "--concurrency", "1")
    _stopped_by_401(sandbox, [*base, "--connection-id", UUID_A])

    again = invoke(*base, "--connection-id", UUID_B, key=sandbox.api_key)
    assert again.exit_code == 2, again.output
    assert "--connection-id" in again.output
    assert sandbox.stats()["total"] == 1


CUTOVER_CHANGES = [
    # (first invocation's flags, the resume's flags, the name the refusal must give)
    pytest.param(
        ["--skip-invalid"], ["--skip-invalid", "--allow-wipe"], "--allow-wipe", id="allow-wipe"
    ),
    pytest.param(
        ["--fill-from-current"], ["--fill-from-current", "--skip-unchanged"], "--skip-unchanged",
        id="skip-unchanged",
    ),
    # Holds today (kept as a guard for the refactor): --fill-from-current is part of the run's
    # identity; the refusal names "the snapshot (--current) or --fill-from-current".
    pytest.param(
        ["--fill-from-current"], ["--skip-invalid"], "--fill-from-current", id="fill-from-current"
    ),
]  # fmt: skip


# Today: --allow-wipe and --skip-unchanged are not part of the run: the resume silently sends
# with the new setting (exit 0, the rest of the rows sent). (--fill-from-current: see above.)
@pytest.mark.slow
@pytest.mark.parametrize(("first", "second", "name"), CUTOVER_CHANGES)
def test_resume_with_another_cutover_switch_is_refused(
    start_sandbox: StartSandbox, tmp_path: Path, first: list[str], second: list[str], name: str
) -> None:
    """A resume that adds or drops a cutover switch: exit 2 naming it, nothing sent."""
    sandbox = start_sandbox(state=SNAPSHOT, script={4101: ("401",)})
    out = tmp_path / "out.csv"
    base = run_args(sandbox, SAMPLE, out, "--concurrency", "1", "--current", str(SNAPSHOT))
    _stopped_by_401(sandbox, [*base, *first])

    again = invoke(*base, *second, key=sandbox.api_key)
    assert again.exit_code == 2, again.output
    assert name in again.output
    assert sandbox.stats()["total"] == 1


# Holds today (kept as a guard for the refactor): refused, exit 2, nothing sent, the message
# names "the snapshot (--current) or --fill-from-current".
@pytest.mark.slow
def test_resume_with_a_changed_snapshot_is_refused_naming_it(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """A resume whose --current file changed content: exit 2 naming --current, nothing sent."""
    sandbox = start_sandbox(state=SNAPSHOT, script={4101: ("401",)})
    snapshot = tmp_path / "current.csv"
    shutil.copy(SNAPSHOT, snapshot)
    out = tmp_path / "out.csv"
    args = run_args(
        sandbox, SAMPLE, out, "--concurrency", "1", "--current", str(snapshot),
        "--fill-from-current",
    )  # fmt: skip
    _stopped_by_401(sandbox, args)
    text = snapshot.read_text()
    snapshot.write_text(text.replace("4140,+49309019974,2,2,1", "4140,+49309019974,2,2,0"))
    assert snapshot.read_text() != text

    again = invoke(*args, key=sandbox.api_key)
    assert again.exit_code == 2, again.output
    assert "--current" in again.output
    assert sandbox.stats()["total"] == 1


# -- (a) a Retry-After longer than --max-retry-after pauses the run ----------------------------


# Today: every remaining row is sent, gets 429 with Retry-After ~3600 and fails on its own
# (RATE_LIMITED), exit 1: the whole batch burnt as `failed` while the API only asked for a wait.
@pytest.mark.slow
def test_retry_after_beyond_the_limit_stops_the_run_with_rows_not_attempted(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """Retry-After > --max-retry-after pauses the run: exit 3, rest not_attempted, says when."""
    sandbox = start_sandbox(rate_limit=Rate.parse("1/h"))  # 1st request ok, then Retry-After 3600
    source, out = write_input(tmp_path / "in.csv", 6), tmp_path / "out.csv"
    args = run_args(sandbox, source, out, "--concurrency", "1", "--max-retry-after", "5")
    result = invoke(*args, key=sandbox.api_key)
    assert result.exit_code == 3, result.output
    frame = read(out)
    assert frame["outcome"][0] == "succeeded"
    assert frame["outcome"].to_list().count("failed") <= 1  # at most the row that met the 429
    assert frame["outcome"][2:].to_list() == ["not_attempted"] * 4
    assert sandbox.stats()["total"] <= 3
    # When: a clock time about an hour from now, or the wait itself.
    later = datetime.now(UTC) + timedelta(seconds=3600)
    clock = {(later + timedelta(minutes=m)).strftime("%H:%M") for m in (-2, -1, 0, 1)}
    said = result.output
    wait = re.search(r"\b(1 ?h(our)?|59 ?m(in)?|60 ?m(in)?|3600 ?s)", said)
    assert any(c in said for c in clock) or wait, said


# -- (b) the resume command keeps --log-format json --------------------------------------------


# Today: the printed resume command drops --log-format json, so a scheduler copying it gets the
# text log its collector cannot parse.
@pytest.mark.slow
def test_resume_command_keeps_log_format_json(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """A run with --log-format json that stops early prints a resume command with it."""
    sandbox = start_sandbox(script={FIRST_ID + 1: ("401",)})
    source, out = write_input(tmp_path / "in.csv", 3), tmp_path / "out.csv"
    args = run_args(sandbox, source, out, "--concurrency", "1", "--log-format", "json")
    result = invoke(*args, key=sandbox.api_key)
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    words = shlex.split(summary["resume_command"])
    assert "--log-format" in words, words
    assert words[words.index("--log-format") + 1] == "json"
