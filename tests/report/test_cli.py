"""`reroute report`: the command line's edge (paths, formats, errors, exit statuses)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batch.cli import app
from batch.report import render
from batch.sandbox import RunningSandbox
from tests.conftest import StartSandbox
from tests.report_fixtures import make_run

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "routing-changes.csv"


def test_report_writes_html_beside_the_results_and_says_where(tmp_path: Path) -> None:
    """Exit 0, one line naming the page, written as <results stem>.report.html."""
    made = make_run(tmp_path / "out.results.csv")
    result = runner.invoke(app, ["report", str(made.results)])
    assert result.exit_code == 0, result.output
    page = tmp_path / "out.results.report.html"
    assert result.stdout == f"report: {page}\n"
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_report_md_to_a_path_and_to_stdout(tmp_path: Path) -> None:
    """--format md --out PATH writes Markdown there; --out - prints it."""
    made = make_run(tmp_path / "out.csv")
    target = tmp_path / "ticket.md"
    result = runner.invoke(
        app, ["report", str(made.results), "--format", "md", "--out", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("**37 of 40 succeeded, 2 failed, 1 invalid**\n")
    printed = runner.invoke(app, ["report", str(made.results), "--format", "md", "--out", "-"])
    assert printed.exit_code == 0
    assert printed.stdout == target.read_text()


def test_a_bad_path_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    """No such results file and no journal: exit 2, one stderr line naming both, no traceback."""
    missing = tmp_path / "missing.results.csv"
    result = runner.invoke(app, ["report", str(missing)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"reroute: {missing}: no such results file, and no run journal")
    assert "Traceback" not in result.output


def test_a_journal_of_an_older_reroute_is_exit_2_with_a_message(tmp_path: Path) -> None:
    made = make_run(tmp_path / "out.csv", trail=False)
    result = runner.invoke(app, ["report", str(made.results)])
    assert result.exit_code == 2
    assert "written by an older reroute" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_an_unknown_format_is_refused_by_the_parser(tmp_path: Path) -> None:
    made = make_run(tmp_path / "out.csv")
    result = runner.invoke(app, ["report", str(made.results), "--format", "pdf"])
    assert result.exit_code == 2
    assert "pdf" in result.stderr


def test_an_unwritable_out_is_exit_2(tmp_path: Path) -> None:
    made = make_run(tmp_path / "out.csv")
    result = runner.invoke(app, ["report", str(made.results), "--out", str(tmp_path / "no/x.html")])
    assert result.exit_code == 2
    assert "cannot be written" in result.stderr


SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "routing-changes.csv"


@pytest.mark.slow
def test_run_writes_no_report_with_no_report(tmp_path: Path) -> None:
    """`run --no-report`: no page beside the results, no `report:` line."""
    results = tmp_path / "out.results.csv"
    args = ["run", str(SAMPLE), "--sandbox", "--rate", "100/s", "--results", str(results)]
    done = runner.invoke(app, [*args, "--no-report"])
    assert done.exit_code == 0, done.output
    assert not (tmp_path / "out.results.report.html").exists()
    assert "report:" not in done.output


@pytest.mark.slow
def test_run_in_json_keeps_stdout_one_record_and_notes_the_report(tmp_path: Path) -> None:
    """With --log-format json the summary stays the only stdout line; where the report went
    is a JSON note on stderr."""
    results = tmp_path / "out.results.csv"
    args = ["run", str(SAMPLE), "--sandbox", "--rate", "100/s", "--results", str(results)]
    done = runner.invoke(app, [*args, "--log-format", "json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["exit_status"] == 0
    notes = [json.loads(line) for line in done.stderr.splitlines() if '"note"' in line]
    page = tmp_path / "out.results.report.html"
    assert {"event": "note", "message": f"report: {page}"}.items() <= notes[-1].items()
    assert page.is_file()


@pytest.mark.slow
def test_a_job_file_reports_the_results_its_run_wrote(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A JOB.toml names its run's results file, as `run` resolves it; a job never run says so."""
    shutil.copy(SAMPLE, tmp_path / "changes.csv")
    job = tmp_path / "nightly.toml"
    job.write_text(
        'input = "changes.csv"\nresults = "night.csv"\n'
        f'[target]\nbase_url = "{live_sandbox.base_url}"\n[pace]\nrate = "50/s"\n'
    )
    never = runner.invoke(app, ["report", str(job)])
    assert never.exit_code == 2
    assert "no run of this job yet" in never.stderr
    env = {"VOCOBASE_API_KEY": live_sandbox.api_key}
    ran = runner.invoke(app, ["run", str(job), "--no-report"], env=env)
    assert ran.exit_code == 0, ran.output
    made = runner.invoke(app, ["report", str(job), "--format", "md", "--out", "-"], env=env)
    assert made.exit_code == 0, made.output
    assert "night.csv" in made.stdout


@pytest.mark.slow
def test_retry_writes_the_report_of_the_run_and_the_retry(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """`retry` ends with the report too, and it tells both segments: the run and the retry."""
    sandbox = start_sandbox(not_found_ids=frozenset({4105}))
    results = tmp_path / "out.results.csv"
    env = {"VOCOBASE_API_KEY": sandbox.api_key}
    args = ["run", str(SAMPLE), "--base-url", sandbox.base_url, "--rate", "100/s"]
    first = runner.invoke(app, [*args, "--results", str(results), "--yes"], env=env)
    assert first.exit_code == 1, first.output
    again = runner.invoke(app, ["retry", str(results), "--yes"], env=env)
    assert again.exit_code == 1, again.output
    page = tmp_path / "out.results.report.html"
    assert f"report: {page}" in again.stdout.splitlines()
    text = render(results, "md")
    assert "| 2 | retry | " in text
    assert "| failed | 1 |" in text


@pytest.mark.slow
def test_a_job_can_turn_the_report_off_and_the_flag_beats_the_job(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """`report = false` in a reviewed job file: its nightly runs write no report; `--no-report`
    beats a job that asks for one; a value that is not true or false names the key."""
    shutil.copy(SAMPLE, tmp_path / "changes.csv")
    env = {"VOCOBASE_API_KEY": live_sandbox.api_key}

    def job(name: str, report: str) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(
            f'input = "changes.csv"\nresults = "{name}.csv"\nreport = {report}\n'
            f'[target]\nbase_url = "{live_sandbox.base_url}"\n[pace]\nrate = "50/s"\n'
        )
        return path

    quiet = runner.invoke(app, ["run", str(job("quiet", "false"))], env=env)
    assert quiet.exit_code == 0, quiet.output
    assert (tmp_path / "quiet.csv").is_file()
    assert not (tmp_path / "quiet.report.html").exists()
    assert "report:" not in quiet.stdout
    flagged = runner.invoke(app, ["run", str(job("loud", "true")), "--no-report"], env=env)
    assert flagged.exit_code == 0, flagged.output
    assert not (tmp_path / "loud.report.html").exists()
    wrong = runner.invoke(app, ["run", str(job("odd", '"no"'))], env=env)
    assert wrong.exit_code == 2
    assert "key report: expected true or false" in wrong.stderr


@pytest.mark.slow
def test_ctrl_c_after_the_outcome_is_decided_changes_nothing(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Once the run has ended (the summary, the report, the exit), a Ctrl-C, like the second
    press after the one that stopped a run, neither interrupts nor changes the exit status."""
    import os
    import signal

    env = {"VOCOBASE_API_KEY": live_sandbox.api_key}
    args = ["run", str(SAMPLE), "--base-url", live_sandbox.base_url, "--rate", "50/s",
            "--results", str(tmp_path / "out.csv")]  # fmt: skip
    done = runner.invoke(app, args, env=env)
    assert done.exit_code == 0, done.output
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # even while the interpreter ends
    os.kill(os.getpid(), signal.SIGINT)  # ignored: no KeyboardInterrupt here
