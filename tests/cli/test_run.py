"""`reroute run` and `reroute retry` end to end, in process, against a live loopback sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from rich.console import Console
from typer.testing import CliRunner

from batch.cli import app
from batch.cli.progress import RunProgress, summary_lines
from batch.engine.merge import Summary
from batch.engine.stop import StopRequest
from batch.errors import JournalError
from batch.journal.journal import Journal
from batch.model import Call, Outcome, RowResult
from batch.sandbox import RunningSandbox
from batch.sandbox.config import Faults
from tests.conftest import StartSandbox

HEADER = "routing_id,for_inbound_call,for_outbound_call,status,outbound_sip_trunk_id,ticket"


def write_input(path: Path, n: int, *, bad_rows: tuple[int, ...] = ()) -> Path:
    """n rows for routing ids 1001.., row numbers in `bad_rows` get an unknown outbound mode."""
    lines = [HEADER]
    for row in range(1, n + 1):
        outbound = "9" if row in bad_rows else "2"
        lines.append(f"{1000 + row},1,{outbound},1,{row + 500},T-{row}")
    path.write_text("\n".join(lines) + "\n")
    return path


def invoke(*args: str, key: str | None = None, input: str | None = None) -> Any:
    env = {"VOCOBASE_API_KEY": key or "", "REROUTE_BASE_URL": ""}
    return CliRunner().invoke(app, list(args), env=env, input=input)


def read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def run_args(sandbox: RunningSandbox, source: Path, results: Path, *extra: str) -> list[str]:
    return [
        "run",
        str(source),
        "--base-url",
        sandbox.base_url,
        "--results",
        str(results),
        "--rate",
        "200/s",
        *extra,
    ]


@pytest.mark.slow
def test_run_sends_every_row_and_writes_results(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A clean run: exit 0, every row succeeded once, results in input order with passthrough."""
    source = write_input(tmp_path / "in.csv", 30)
    out = tmp_path / "out.csv"
    result = invoke(*run_args(live_sandbox, source, out), key=live_sandbox.api_key)
    assert result.exit_code == 0, result.output
    frame = read(out)
    assert frame["row"].to_list() == [str(i) for i in range(1, 31)]
    assert set(frame["outcome"]) == {"succeeded"}
    assert frame["ticket"].to_list() == [f"T-{i}" for i in range(1, 31)]
    assert live_sandbox.stats()["total"] == 30
    assert live_sandbox.record(1007) is not None
    assert "30 rows" in result.stdout
    assert "succeeded" in result.stdout


@pytest.mark.slow
def test_default_results_path_is_input_stem_in_cwd(
    live_sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --results the file is `<input stem>.results.csv` in the current directory."""
    source = write_input(tmp_path / "changes.csv", 2)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = ["run", str(source), "--base-url", live_sandbox.base_url, "--rate", "100/s"]
    result = invoke(*args, key=live_sandbox.api_key)
    assert result.exit_code == 0, result.output
    assert (work / "changes.results.csv").exists()


@pytest.mark.slow
def test_faults_are_retried_and_attempts_match_the_server(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """5xx, 429, dropped, HTML and slow answers: all rows end succeeded, and the server saw
    each row exactly as many times as its `attempts` say."""
    sandbox = start_sandbox(
        script={
            1001: ("503", "ok"),
            1002: ("html", "ok"),
            1003: ("drop", "ok"),
            1004: ("429", "ok"),
            1005: ("slow", "ok"),
            1006: ("500", "502", "ok"),
        },
        faults=Faults(slow_seconds=3.0),
    )
    source = write_input(tmp_path / "in.csv", 8)
    out = tmp_path / "out.csv"
    args = run_args(sandbox, source, out, "--timeout", "1", "--concurrency", "4")
    result = invoke(*args, key=sandbox.api_key)
    assert result.exit_code == 0, result.output
    frame = read(out)
    assert set(frame["outcome"]) == {"succeeded"}
    seen = sandbox.stats()["by_routing_id"]
    attempts = dict(zip(frame["routing_id"], frame["attempts"].cast(int), strict=True))
    for routing_id, count in attempts.items():
        assert seen[routing_id] == count, routing_id
    assert attempts["1006"] == 3
    assert attempts["1007"] == 1


@pytest.mark.slow
def test_final_errors_fail_the_row_and_exit_1(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """A 404 is final: the row fails with NOT_FOUND after one attempt; exit 1; retry hint."""
    sandbox = start_sandbox(not_found_ids=frozenset({1002}))
    source = write_input(tmp_path / "in.csv", 3)
    out = tmp_path / "out.csv"
    result = invoke(*run_args(sandbox, source, out), key=sandbox.api_key)
    assert result.exit_code == 1, result.output
    frame = read(out)
    assert frame["outcome"].to_list() == ["succeeded", "failed", "succeeded"]
    assert frame["attempts"].to_list() == ["1", "1", "1"]
    assert frame["http_status"][1] == "404"
    assert "NOT_FOUND" in result.stdout
    assert f"reroute retry {out}" in result.stdout


@pytest.mark.slow
def test_invalid_rows_send_nothing_and_exit_2(live_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """With invalid rows and no --skip-invalid: nothing is sent, the summary shows why, exit 2."""
    source = write_input(tmp_path / "in.csv", 5, bad_rows=(2, 4))
    out = tmp_path / "out.csv"
    result = invoke(*run_args(live_sandbox, source, out), key=live_sandbox.api_key)
    assert result.exit_code == 2, result.output
    assert live_sandbox.stats()["total"] == 0
    assert "--skip-invalid" in result.stderr
    assert "UNKNOWN_MODE" in result.output
    assert not out.exists()


@pytest.mark.slow
def test_skip_invalid_sends_the_valid_rows(live_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """--skip-invalid sends the valid rows; invalid rows are in the results; exit 1."""
    source = write_input(tmp_path / "in.csv", 5, bad_rows=(2, 4))
    out = tmp_path / "out.csv"
    args = run_args(live_sandbox, source, out, "--skip-invalid")
    result = invoke(*args, key=live_sandbox.api_key)
    assert result.exit_code == 1, result.output
    frame = read(out)
    assert frame["outcome"].to_list() == [
        "succeeded",
        "invalid",
        "succeeded",
        "invalid",
        "succeeded",
    ]
    assert live_sandbox.stats()["total"] == 3


def test_missing_key_is_one_line_exit_2(tmp_path: Path) -> None:
    """No VOCOBASE_API_KEY and no --api-key-file: one line naming both, exit 2."""
    source = write_input(tmp_path / "in.csv", 1)
    result = invoke("run", str(source), "--base-url", "http://127.0.0.1:9/api/v2")
    assert result.exit_code == 2
    assert "VOCOBASE_API_KEY" in result.stderr
    assert "--api-key-file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_api_key_file_is_used(live_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """--api-key-file supplies the key when the environment has none."""
    source = write_input(tmp_path / "in.csv", 2)
    key_file = tmp_path / "key"
    key_file.write_text(live_sandbox.api_key + "\n")
    out = tmp_path / "out.csv"
    args = run_args(live_sandbox, source, out, "--api-key-file", str(key_file))
    result = invoke(*args)
    assert result.exit_code == 0, result.output


def test_http_to_a_remote_host_is_refused(tmp_path: Path) -> None:
    """Plain http:// to a non-loopback host is refused before anything happens (exit 2)."""
    source = write_input(tmp_path / "in.csv", 1)
    result = invoke("run", str(source), "--base-url", "http://example.com/api/v2", key="rg_live_k0")
    assert result.exit_code == 2
    assert "https://" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("status", [401, 403])
def test_key_rejected_stops_with_exit_3(
    start_sandbox: StartSandbox, tmp_path: Path, status: int
) -> None:
    """401/403: the run stops at once, other rows not_attempted, message says check the key."""
    sandbox = start_sandbox(deny_status=status)
    source = write_input(tmp_path / "in.csv", 20)
    out = tmp_path / "out.csv"
    result = invoke(*run_args(sandbox, source, out, "--concurrency", "1"), key=sandbox.api_key)
    assert result.exit_code == 3, result.output
    frame = read(out)
    assert frame["outcome"][0] == "failed"
    assert frame["outcome"][1:].to_list() == ["not_attempted"] * 19
    assert sandbox.stats()["total"] == 1
    assert "check the key in VOCOBASE_API_KEY" in result.stdout
    assert "run the same command again" in result.stdout


@pytest.mark.slow
def test_rerun_resumes_without_resending(live_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """The same command again sends nothing that is decided, and writes the same outcomes."""
    source = write_input(tmp_path / "in.csv", 10)
    out = tmp_path / "out.csv"
    args = run_args(live_sandbox, source, out)
    assert invoke(*args, key=live_sandbox.api_key).exit_code == 0
    again = invoke(*args, key=live_sandbox.api_key)
    assert again.exit_code == 0, again.output
    assert live_sandbox.stats()["total"] == 10
    assert "resuming" in again.stderr
    assert set(read(out)["outcome"]) == {"succeeded"}


@pytest.mark.slow
def test_changed_input_after_a_finished_run_sends_only_what_is_new(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A new input at a finished run's results path is a new run: only rows not already
    applied go out (issue 17); --fresh forgets that memory and resends every row."""
    source = write_input(tmp_path / "in.csv", 3)
    out = tmp_path / "out.csv"
    args = run_args(live_sandbox, source, out)
    assert invoke(*args, key=live_sandbox.api_key).exit_code == 0
    write_input(source, 4)
    again = invoke(*args, key=live_sandbox.api_key)
    assert again.exit_code == 0, again.output
    assert live_sandbox.stats()["total"] == 4  # row 4 only
    assert read(out)["outcome"].to_list() == ["skipped"] * 3 + ["succeeded"]
    fresh = invoke(*args, "--fresh", key=live_sandbox.api_key)
    assert fresh.exit_code == 0, fresh.output
    assert live_sandbox.stats()["total"] == 8


@pytest.mark.slow
def test_retry_resends_only_failures_in_place(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """`reroute retry RESULTS` sends only failed rows, updates RESULTS in place, counts all
    attempts, and leaves no journal behind."""
    sandbox = start_sandbox(script={1002: ("404",), 1004: ("409",)})
    source = write_input(tmp_path / "in.csv", 5)
    out = tmp_path / "out.csv"
    assert invoke(*run_args(sandbox, source, out), key=sandbox.api_key).exit_code == 1
    result = invoke(
        "retry", str(out), "--base-url", sandbox.base_url, "--rate", "100/s", key=sandbox.api_key
    )
    assert result.exit_code == 0, result.output
    frame = read(out)
    assert set(frame["outcome"]) == {"succeeded"}
    assert frame["attempts"].to_list() == ["1", "2", "1", "2", "1"]
    assert frame["ticket"].to_list() == [f"T-{i}" for i in range(1, 6)]
    assert sandbox.stats()["total"] == 7
    assert not out.with_name("out.csv.retry.journal").exists()  # one journal per results path
    # The retry continued the run's own journal: the same `run` again changes nothing.
    again = invoke(*run_args(sandbox, source, out), key=sandbox.api_key)
    assert again.exit_code == 0, again.output
    assert set(read(out)["outcome"]) == {"succeeded"}
    assert sandbox.stats()["total"] == 7


@pytest.mark.slow
def test_retry_to_another_file_keeps_the_original(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """`retry --results NEW` writes NEW and leaves RESULTS untouched."""
    sandbox = start_sandbox(script={1001: ("404",)})
    source = write_input(tmp_path / "in.csv", 2)
    out = tmp_path / "out.csv"
    invoke(*run_args(sandbox, source, out), key=sandbox.api_key)
    before = out.read_bytes()
    new = tmp_path / "new.csv"
    args = ["retry", str(out), "--results", str(new), "--base-url", sandbox.base_url]
    result = invoke(*args, key=sandbox.api_key)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == before
    assert read(new)["outcome"].to_list() == ["succeeded", "succeeded"]


@pytest.mark.slow
def test_json_log_format_ends_with_a_summary_object(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """--log-format json: progress events are JSON lines and stdout is one summary object."""
    source = write_input(tmp_path / "in.csv", 3)
    out = tmp_path / "out.csv"
    args = run_args(live_sandbox, source, out, "--log-format", "json")
    result = invoke(*args, key=live_sandbox.api_key)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["event"] == "summary"
    assert summary["outcomes"]["succeeded"] == 3
    assert summary["requests"] == 3
    events = [json.loads(line)["event"] for line in result.stderr.strip().splitlines()]
    assert "run_started" in events


@pytest.mark.slow
def test_sandbox_flag_needs_no_key(tmp_path: Path) -> None:
    """`run --sandbox` starts the embedded sandbox and succeeds without any key."""
    source = write_input(tmp_path / "in.csv", 10)
    out = tmp_path / "out.csv"
    result = invoke("run", str(source), "--sandbox", "--results", str(out))
    assert result.exit_code == 0, result.output
    assert set(read(out)["outcome"]) == {"succeeded"}


def test_sandbox_and_base_url_conflict(tmp_path: Path) -> None:
    """--sandbox with --base-url is a usage error (exit 2)."""
    source = write_input(tmp_path / "in.csv", 1)
    result = invoke("run", str(source), "--sandbox", "--base-url", "https://x.example/api/v2")
    assert result.exit_code == 2
    assert "--sandbox" in result.stderr


def test_broken_job_file_is_one_line_exit_2(tmp_path: Path) -> None:
    """A .toml INPUT is read as a job file: one whose input is missing is exit 2, named."""
    job = tmp_path / "job.toml"
    job.write_text('input = "x.csv"\n')
    result = invoke("run", str(job), key="rg_live_k0")
    assert result.exit_code == 2
    assert "job.toml" in result.stderr
    assert "key input" in result.stderr


def test_confirmation_on_a_terminal_can_decline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal, a real target asks first; answering no sends nothing (exit 2)."""
    monkeypatch.setattr("batch.cli.run_cmd.stdin_is_terminal", lambda: True)
    source = write_input(tmp_path / "in.csv", 3)
    args = [
        "run",
        str(source),
        "--base-url",
        "https://api.example.invalid/api/v2",
        "--no-account-check",
        "--rows-are-complete",
    ]
    result = invoke(*args, "--results", str(tmp_path / "o.csv"), key="rg_live_k0", input="n\n")
    assert result.exit_code == 2
    assert "3 records to replace on api.example.invalid at 60/min" in result.stderr
    assert "3 of them send no connection_id (any the record holds is cleared)" in result.stderr
    assert "no rollback file (it needs --current)" in result.stderr
    assert "not confirmed" in result.stderr


@pytest.mark.slow
def test_journal_failure_mid_run_is_one_line_exit_3(
    live_sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal that cannot be written mid-run stops the run with one line, no traceback."""

    def broken(self: Journal, result: object, **_: object) -> None:
        raise JournalError(f"{self.path}: cannot write the run journal (disk I/O error)")

    monkeypatch.setattr(Journal, "finish", broken)
    source = write_input(tmp_path / "in.csv", 3)
    result = invoke(*run_args(live_sandbox, source, tmp_path / "out.csv"), key=live_sandbox.api_key)
    assert result.exit_code == 3
    assert "disk I/O error" in result.stderr
    assert "Traceback" not in result.output


def test_plain_progress_lines_and_stopped_summary() -> None:
    """Off a terminal: a dated line every 5 s; a stopped summary gives the resume command."""
    lines: list[str] = []

    class Sink:
        def write(self, text: str) -> int:
            lines.extend(t for t in text.splitlines() if t)
            return len(text)

        def flush(self) -> None:
            pass

    now = [0.0]
    progress = RunProgress(
        style="plain", err=Console(), stream=Sink(), every=5.0, clock=lambda: now[0]
    )  # type: ignore[arg-type]
    progress.run_started(total=10, done=2)
    call = Call(row=3, routing_id=1003, body="{}")
    progress.attempt(call, 1)
    progress.retrying(call, 1, "HTTP_503")
    assert len(lines) == 1  # "sending 8 of 10 rows"
    now[0] = 1.0
    progress.tick()
    assert len(lines) == 2  # the first progress line comes at once
    now[0] = 5.9
    progress.tick()
    assert len(lines) == 2  # then nothing new before 5 s have passed
    now[0] = 6.0
    progress.tick()
    assert len(lines) == 3
    assert "2/10 done" in lines[-1]
    assert "retrying 1" in lines[-1]
    summary = Summary()
    list(summary.tally([RowResult(row=1, routing_id="1", outcome=Outcome.NOT_ATTEMPTED)]))
    text = summary_lines(
        summary,
        elapsed=3.0,
        requests=2,
        results="out.csv",
        stopped=StopRequest("interrupted", "interrupted (Ctrl-C)"),
        resume_command="reroute run in.csv",
        retry_command="reroute retry out.csv",
    )
    assert text[-1] == "to resume, run the same command again: reroute run in.csv"
    assert "why: interrupted (Ctrl-C)" in text


def test_current_rate_counts_the_last_thirty_seconds() -> None:
    """The progress rate: requests since the first one while the run is younger than 30 s
    (at least a second), then over the last 30 s or so, from readings once a second."""
    now = [100.0]
    progress = RunProgress(style="json", err=Console(), clock=lambda: now[0])
    call = Call(row=1, routing_id=1001, body="{}")
    assert progress.current_rate == 0.0  # nothing sent yet
    progress.attempt(call, 1)
    progress.attempt(call, 1)
    assert progress.current_rate == 2.0  # two requests in the same instant: over a second
    for second in range(1, 61):  # 10 requests a second for a minute, read every second
        now[0] = 100.0 + second
        for _ in range(10):
            progress.attempt(call, 1)
        expected = (2 + 10 * second) / max(1.0, second) if second < 30 else 10.0
        assert progress.current_rate == pytest.approx(expected), second
    now[0] = 160.0 + 15  # 15 s without a request: half of the window is empty
    assert progress.current_rate == pytest.approx(10 * 15 / 30)


@pytest.mark.slow
def test_retry_reads_and_writes_parquet(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """A Parquet results file retries in place like a CSV one (typed columns read back)."""
    sandbox = start_sandbox(script={1002: ("404",)})
    source = write_input(tmp_path / "in.csv", 3)
    out = tmp_path / "out.parquet"
    assert invoke(*run_args(sandbox, source, out), key=sandbox.api_key).exit_code == 1
    args = ["retry", str(out), "--base-url", sandbox.base_url, "--rate", "100/s"]
    result = invoke(*args, key=sandbox.api_key)
    assert result.exit_code == 0, result.output
    frame = pl.read_parquet(out)
    assert frame["outcome"].to_list() == ["succeeded"] * 3
    assert frame["attempts"].to_list() == [1, 2, 1]


def test_confirmation_aborted_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End of input (or Ctrl-C) at the question counts as no: exit 2, nothing sent."""
    monkeypatch.setattr("batch.cli.run_cmd.stdin_is_terminal", lambda: True)
    source = write_input(tmp_path / "in.csv", 2)
    args = [
        "run",
        str(source),
        "--base-url",
        "https://api.example.invalid/api/v2",
        "--no-account-check",
        "--rows-are-complete",
    ]
    result = invoke(*args, "--results", str(tmp_path / "o.csv"), key="rg_live_k0", input="")
    assert result.exit_code == 2
    assert "not confirmed" in result.stderr
    assert not (tmp_path / "o.csv").exists()


def test_a_retry_with_no_record_of_the_runs_choice_sends_nothing(tmp_path: Path) -> None:
    """Issue 25: a results file whose run left no journal, retried against a real host: exit 2
    before any request (the account check's too), saying the statement or a snapshot run is
    needed; nothing is made."""
    out = tmp_path / "old.results.csv"
    out.write_text(
        "row,routing_id,outcome,http_status,attempts,error_code,error_message,request,response,"
        'started_at,finished_at,duration_ms\n1,1001,failed,503,5,HTTP_503,x,"{""for_inbound_call'
        '"":1,""for_outbound_call"":4,""status"":1}",,,,\n'
    )
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke("retry", str(out), "--base-url", "https://api.example.invalid/api/v2",
                    key="rg_live_" + "k" * 40)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"the run that wrote {out} did not say" in result.stderr
    assert "pass --rows-are-complete" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
