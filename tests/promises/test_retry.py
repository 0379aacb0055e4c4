"""Promises of `reroute retry` (contract: Resume, results file, outcomes), end to end.

Each test pins one user-facing promise that today's code breaks; the comment above each test
says what today's code does instead. Everything goes through the command line (CliRunner in
process, or a real `python -m batch` process where signals are needed) against sandboxes on
127.0.0.1; the only internal detail read is the journal, in ``journal_outcomes`` below.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from batch.cli import app
from batch.sandbox import RunningSandbox
from batch.sandbox.config import Faults
from tests.conftest import StartSandbox

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "routing-changes.csv"
SNAPSHOT = ROOT / "samples" / "routing-current.csv"
FIRST_ID = 5000


# -- coupling to internals: the ONE place (adapt it when the journal format changes) ----------


def journal_outcomes(results: Path) -> dict[int, str]:
    """row -> outcome the run's journal holds right now, read-only.

    Internal coupling: today `<results>.journal` is SQLite (table `rows`: row, outcome) plus
    `<results>.journal-log`, JSON lines `[row, routing_id, outcome, ...]` not yet copied in
    (later lines win). Used only to know which rows were decided when a process was killed.
    """
    path = results.with_name(results.name + ".journal")
    if not path.exists():
        return {}
    rows: dict[int, str] = {}
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            rows = dict(db.execute("SELECT row, outcome FROM rows"))
    except sqlite3.OperationalError:
        return {}  # created, no table yet
    log = Path(f"{path}-log")
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        try:
            record = json.loads(line.strip("\x00"))
        except ValueError:
            continue  # the line being written, or the zeros after the last record
        rows[record[0]] = record[2]
    return rows


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Safety net: in this process no name but loopback resolves, so a retry that (wrongly)
    targets the default production URL never reaches it. The refusal is raised as a
    certificate failure, which reroute treats as final (the run stops at once, exit 3)
    instead of retrying a connection error with backoff for many seconds."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in ("127.0.0.1", "localhost", "::1"):
            raise ssl.SSLCertVerificationError(f"test guard: {name} is not loopback")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


def write_input(path: Path, n: int) -> Path:
    """n valid rows, routing ids FIRST_ID+1.., row i <-> routing id FIRST_ID+i."""
    lines = ["routing_id,for_inbound_call,for_outbound_call,status,note"]
    lines += [f"{FIRST_ID + i},1,4,1,n{i}" for i in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def invoke(*args: str, env: dict[str, str | None]) -> Any:
    """`reroute ARGS` in process; env entries set to None are removed."""
    base: dict[str, str | None] = {"REROUTE_BASE_URL": None, "VOCOBASE_API_KEY": None}
    return CliRunner().invoke(app, list(args), env={**base, **env})


def read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def by_row(path: Path) -> dict[int, dict[str, str | None]]:
    return {int(r["row"]): r for r in read(path).iter_rows(named=True)}


def served(sandbox: RunningSandbox, routing_id: int) -> int:
    """Requests the sandbox received for a routing id."""
    return int(sandbox.stats()["by_routing_id"].get(str(routing_id), 0))


def printed_retry(stdout: str) -> list[str]:
    """The `reroute retry ...` command the summary printed, as words (without `reroute`)."""
    for line in stdout.splitlines():
        if "reroute retry " in line:
            words = shlex.split(line[line.index("reroute retry ") :])
            return words[1:]
    raise AssertionError(f"no `reroute retry` command in the summary:\n{stdout}")


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


def succeeded_in_journal(results: Path, at_least: int) -> Callable[[], bool]:
    return lambda: sum(o == "succeeded" for o in journal_outcomes(results).values()) >= at_least


# -- 1. retry goes where the run went, with its key variable and pace --------------------------


# Today: the printed command is plain `reroute retry .../job.results.csv`; retry ignores what the
# run was (job base_url, api_key_env, pace) and reads VOCOBASE_API_KEY: exit 2 "no API key: set
# VOCOBASE_API_KEY", nothing sent (with the key set it would target the production URL).
@pytest.mark.slow
def test_printed_retry_of_a_job_run_uses_the_jobs_target_key_and_pace(
    start_sandbox: StartSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry command a job-file run prints goes to the job's base_url, key and pace."""
    failing = [FIRST_ID + i for i in (2, 4, 6, 8, 10)]
    sandbox = start_sandbox(script=dict.fromkeys(failing, ("404",)), faults=Faults(latency=0.1))
    write_input(tmp_path / "in.csv", 10)
    job = tmp_path / "job.toml"
    job.write_text(
        'input = "in.csv"\nresults = "job.results.csv"\n'
        f'[target]\nbase_url = "{sandbox.base_url}"\napi_key_env = "MY_KEY"\n'
        '[pace]\nrate = "50/s"\nconcurrency = 1\n'
    )
    monkeypatch.chdir(tmp_path)
    env: dict[str, str | None] = {"MY_KEY": sandbox.api_key}
    first = invoke("run", str(job), env=env)
    assert first.exit_code == 1, first.output
    command = printed_retry(first.stdout)

    began = time.monotonic()
    again = invoke(*command, env=env)
    elapsed = time.monotonic() - began
    assert again.exit_code == 0, again.output
    assert all(served(sandbox, routing_id) == 2 for routing_id in failing)
    assert set(read(tmp_path / "job.results.csv")["outcome"]) == {"succeeded"}
    # The job's pace, not the defaults: concurrency 1 (the sandbox never saw 2 at once) and
    # 50/s (5 rows at the default 60/min would take more than 4 s).
    assert sandbox.stats()["max_in_flight"] == 1
    assert elapsed < 3.0


# Today: plain `reroute retry RESULTS` targets the default https://api.vocobase.com/api/v2 (here
# stopped by the loopback guard, so the rows fail, exit 1); the sandbox never sees the retry.
@pytest.mark.slow
def test_plain_retry_reuses_the_runs_base_url(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """`reroute retry RESULTS` without flags goes to the --base-url the run used."""
    failing = [FIRST_ID + 2, FIRST_ID + 3]
    sandbox = start_sandbox(script=dict.fromkeys(failing, ("404",)))
    source, out = write_input(tmp_path / "in.csv", 4), tmp_path / "out.csv"
    env: dict[str, str | None] = {"VOCOBASE_API_KEY": sandbox.api_key}
    first = invoke(
        "run", str(source), "--base-url", sandbox.base_url, "--rate", "50/s",
        "--results", str(out), env=env,
    )  # fmt: skip
    assert first.exit_code == 1, first.output

    again = invoke("retry", str(out), env=env)
    assert again.exit_code == 0, again.output
    assert all(served(sandbox, routing_id) == 2 for routing_id in failing)
    assert set(read(out)["outcome"]) == {"succeeded"}


# -- 2. a results file sorted in a spreadsheet ---------------------------------------------------


# Today: the retry pairs the journal's records with the file's rows by position (a merge join
# that assumes row order), so on a file sorted by `row` descending the retried rows' outcomes
# are lost or land on other rows, and a second retry sends rows again.
@pytest.mark.slow
def test_retry_of_a_sorted_results_file_matches_rows_by_number(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """A results file sorted by row descending retries by `row`; a second retry is a no-op."""
    failing_rows = (2, 5, 7)
    sandbox = start_sandbox(script={FIRST_ID + r: ("404",) for r in failing_rows})
    source, out = write_input(tmp_path / "in.csv", 8), tmp_path / "out.csv"
    env: dict[str, str | None] = {"VOCOBASE_API_KEY": sandbox.api_key}
    flags = ["--base-url", sandbox.base_url, "--rate", "50/s"]
    first = invoke("run", str(source), *flags, "--results", str(out), env=env)
    assert first.exit_code == 1, first.output
    frame = read(out)
    frame.sort(pl.col("row").cast(pl.Int64), descending=True).write_csv(out)

    again = invoke("retry", str(out), *flags, env=env)
    assert again.exit_code == 0, again.output
    rows = by_row(out)
    assert sorted(rows) == list(range(1, 9))
    for row, record in rows.items():
        assert record["routing_id"] == str(FIRST_ID + row)
        assert record["outcome"] == "succeeded", (row, record)
        assert record["attempts"] == ("2" if row in failing_rows else "1"), (row, record)
        assert record["note"] == f"n{row}"
    sent = sandbox.stats()["total"]
    assert sent == 8 + len(failing_rows)

    third = invoke("retry", str(out), *flags, env=env)
    assert third.exit_code == 0, third.output
    assert sandbox.stats()["total"] == sent
    assert by_row(out) == rows


# -- 3. a retry in place never undoes the run's journal -----------------------------------------


# Today: the retry trusts the results file, which is older than the journal (the resume was
# killed before writing it): it resends rows the journal holds as succeeded (here their 2nd
# request is answered 404), then writes those failures into the run's journal, so the same `run`
# command leaves them failed.
@pytest.mark.slow
def test_retry_in_place_after_kill_9_never_resends_or_undoes_journal_successes(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """After Ctrl-C, resume, kill -9, retry in place, run: journal successes never resent."""
    n = 120
    # Every row's 2nd request is answered 404: a row sent twice shows, and fails if resent.
    sandbox = start_sandbox(
        script={FIRST_ID + i: ("ok", "404") for i in range(1, n + 1)},
        faults=Faults(latency=0.1),
    )
    source, out = write_input(tmp_path / "in.csv", n), tmp_path / "out.csv"
    flags = ["--base-url", sandbox.base_url, "--rate", "50/s", "--concurrency", "4"]
    run_args = ["run", str(source), *flags, "--results", str(out)]

    proc = start_process(run_args, sandbox.api_key)
    wait_until(succeeded_in_journal(out, 10))
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 3, stderr
    assert out.exists()

    proc = start_process(run_args, sandbox.api_key)
    wait_until(succeeded_in_journal(out, 40))
    proc.kill()
    proc.communicate(timeout=30)
    held = {row for row, outcome in journal_outcomes(out).items() if outcome == "succeeded"}
    assert 40 <= len(held) < n
    counts_at_kill = {row: served(sandbox, FIRST_ID + row) for row in held}
    assert set(counts_at_kill.values()) == {1}

    env: dict[str, str | None] = {"VOCOBASE_API_KEY": sandbox.api_key}
    retried = invoke("retry", str(out), *flags, env=env)
    assert retried.exit_code in (0, 1, 3), retried.output
    resent = sorted(row for row in held if served(sandbox, FIRST_ID + row) > 1)
    assert resent == [], f"the retry resent rows the journal held as succeeded: {resent}"

    final = invoke(*run_args, env=env)
    assert final.exit_code in (0, 1), final.output
    rows = by_row(out)
    for row in held:
        assert served(sandbox, FIRST_ID + row) == 1, row
        assert rows[row]["outcome"] == "succeeded", (row, rows[row])


# -- 4. rows left out by --skip-unchanged are `skipped` and never retried --------------------


# Today: the unchanged rows are `not_attempted` (with a note) in the results file, and `reroute
# retry` sends all 31 of them.
@pytest.mark.slow
def test_skip_unchanged_rows_are_skipped_and_retry_leaves_them_out(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """--skip-unchanged rows: outcome `skipped`, not counted to retry, not sent by retry."""
    sandbox = start_sandbox(state=SNAPSHOT, script={4102: ("404",)})  # 4102 changes; fails once
    out = tmp_path / "cutover.results.csv"
    env: dict[str, str | None] = {"VOCOBASE_API_KEY": sandbox.api_key}
    flags = ["--base-url", sandbox.base_url, "--rate", "50/s"]
    first = invoke(
        "run", str(SAMPLE), *flags, "--results", str(out), "--current", str(SNAPSHOT),
        "--fill-from-current", "--skip-unchanged", env=env,
    )  # fmt: skip
    assert first.exit_code == 1, first.output
    frame = read(out)
    counts = dict(frame["outcome"].value_counts().iter_rows())
    assert counts == {"succeeded": 8, "failed": 1, "skipped": 31}, counts
    skipped_ids = frame.filter(pl.col("outcome") == "skipped")["routing_id"].to_list()
    assert all(a == "0" for a in frame.filter(pl.col("outcome") == "skipped")["attempts"])
    to_retry = re.search(r"(\d+) rows? that did not succeed", first.stdout)
    assert to_retry is not None, first.stdout
    assert to_retry.group(1) == "1", first.stdout  # the failed row, not the 31 skipped

    again = invoke("retry", str(out), *flags, env=env)
    assert again.exit_code == 0, again.output
    seen = sandbox.stats()["by_routing_id"]
    assert [rid for rid in skipped_ids if rid in seen] == []
    assert seen["4102"] == 2
    after = dict(read(out)["outcome"].value_counts().iter_rows())
    assert after == {"succeeded": 9, "skipped": 31}, after
