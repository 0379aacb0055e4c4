"""Edit the sheet and run again (issue 17): only what is new or changed goes out; past runs are
archived; an unfinished run is protected; recurring jobs get a results file per batch."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console

from batch.cli.options import LogFormat
from batch.cli.terminal import TerminalOperator
from batch.config.jobs import load_job
from batch.config.precedence import resolve_run_settings
from batch.engine.replacing import Confirmation
from batch.journal.record import sha256_file
from batch.sandbox import RunningSandbox
from batch.settings import Rate
from tests.cli.test_run import HEADER, invoke, read, run_args, write_input
from tests.conftest import StartSandbox


def write_rows(path: Path, rows: list[tuple[int, int, str]]) -> Path:
    """Rows (routing_id, outbound trunk id, ticket), in this order."""
    lines = [HEADER] + [f"{rid},1,2,1,{trunk},{ticket}" for rid, trunk, ticket in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_editing_one_body_sends_only_that_row(live_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """A fixed cell after a finished run: that row is sent, the others are already applied."""
    source = write_input(tmp_path / "in.csv", 5)
    out = tmp_path / "out.csv"
    args = run_args(live_sandbox, source, out)
    assert invoke(*args, key=live_sandbox.api_key).exit_code == 0
    source.write_text(source.read_text().replace("1003,1,2,1,503", "1003,1,2,1,999"))
    again = invoke(*args, key=live_sandbox.api_key)
    assert again.exit_code == 0, again.output
    assert live_sandbox.stats()["total"] == 6
    assert live_sandbox.record(1003)["outbound_sip_trunk_id"] == 999  # type: ignore[index]
    frame = read(out)
    assert frame["outcome"].to_list() == ["skipped", "skipped", "succeeded", "skipped", "skipped"]
    assert set(frame.filter(pl.col("outcome") == "skipped")["error_code"]) == {"ALREADY_APPLIED"}
    assert "4 already applied by an earlier run" in again.stdout


@pytest.mark.slow
def test_editing_only_a_passthrough_column_sends_nothing(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A new ticket number changes no body: nothing is sent, the results carry the new value."""
    source = write_input(tmp_path / "in.csv", 4)
    out = tmp_path / "out.csv"
    args = run_args(live_sandbox, source, out)
    assert invoke(*args, key=live_sandbox.api_key).exit_code == 0
    source.write_text(source.read_text().replace("T-2", "CHG-77"))
    again = invoke(*args, key=live_sandbox.api_key)
    assert again.exit_code == 0, again.output
    assert live_sandbox.stats()["total"] == 4
    assert read(out)["ticket"].to_list() == ["T-1", "CHG-77", "T-3", "T-4"]


@pytest.mark.slow
def test_a_nightly_export_sends_only_the_rows_not_applied(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Tonight's export overlaps yesterday's by 30%: only the 70% new or changed rows go out,
    and yesterday's results are archived beside the path, not overwritten."""
    out = tmp_path / "nightly.csv"
    source = tmp_path / "export.csv"
    write_rows(source, [(2000 + i, 600 + i, f"N1-{i}") for i in range(10)])
    args = run_args(live_sandbox, source, out)
    assert invoke(*args, key=live_sandbox.api_key).exit_code == 0
    tonight = [(2000 + i, 600 + i, f"N2-{i}") for i in range(7, 10)]  # same bodies: 3 rows
    tonight += [(3000 + i, 700 + i, f"N2-{i}") for i in range(7)]  # new records: 7 rows
    write_rows(source, tonight)
    again = invoke(*args, key=live_sandbox.api_key)
    assert again.exit_code == 0, again.output
    assert live_sandbox.stats()["total"] == 17
    assert read(out)["outcome"].to_list() == ["skipped"] * 3 + ["succeeded"] * 7
    (archived,) = (tmp_path / "nightly.runs").iterdir()
    assert read(archived / "nightly.csv")["ticket"].to_list() == [f"N1-{i}" for i in range(10)]
    assert '"finished": "1"' in (archived / "run.json").read_text()


@pytest.mark.slow
def test_an_unfinished_run_with_a_changed_input_is_refused_with_three_choices(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """Rows not yet sent keep their protection: refused naming the choices; --abandon-previous
    starts the new run and says how many rows it leaves unsent."""
    sandbox = start_sandbox(script={1001: ("404",)})
    # An unfinished run: its canary's one row fails, the other 5 are not sent.
    other = write_input(tmp_path / "other.csv", 6)
    first = invoke(*run_args(sandbox, other, tmp_path / "b.csv", "--canary", "1"),
                   key=sandbox.api_key)  # fmt: skip
    assert first.exit_code == 3, first.output
    source = write_input(tmp_path / "in.csv", 6)
    out = tmp_path / "out.csv"
    args = run_args(sandbox, source, out)
    stopped = invoke(*args, "--canary", "2", "--error-budget", "0", key=sandbox.api_key)
    assert stopped.exit_code == 0, stopped.output  # all succeed: the canary is not a stop
    other.write_text(other.read_text().replace("T-1", "T-one").replace(",501,", ",777,"))
    refused = invoke(*run_args(sandbox, other, tmp_path / "b.csv"), key=sandbox.api_key)
    assert refused.exit_code == 2
    for choice in ("unfinished", "finish it", "--fresh", "--abandon-previous", "5 rows"):
        assert choice in refused.stderr
    before = sandbox.stats()["total"]
    abandoned = invoke(
        *run_args(sandbox, other, tmp_path / "b.csv", "--abandon-previous"), key=sandbox.api_key
    )
    assert abandoned.exit_code == 0, abandoned.output
    assert "leaves 5 rows unsent" in abandoned.stderr
    assert sandbox.stats()["total"] == before + 6


@pytest.mark.slow
def test_the_archive_keeps_the_newest_runs(live_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """--keep-runs bounds the archive: after five runs with --keep-runs 2, two past runs stay."""
    out = tmp_path / "out.csv"
    source = tmp_path / "in.csv"
    for night in range(5):
        write_rows(source, [(4000 + night, 500, f"T-{night}")])
        result = invoke(
            *run_args(live_sandbox, source, out, "--keep-runs", "2"), key=live_sandbox.api_key
        )
        assert result.exit_code == 0, result.output
    runs = sorted((tmp_path / "out.runs").iterdir())
    assert len(runs) == 2
    assert read(runs[-1] / "out.csv")["ticket"].to_list() == ["T-3"]
    assert read(out)["ticket"].to_list() == ["T-4"]


@pytest.mark.slow
def test_with_a_snapshot_the_snapshot_is_the_truth(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """--current: a row applied before is sent again when the snapshot says the record differs
    (someone changed it since); the memory is not consulted."""
    sandbox = start_sandbox()
    source = write_input(tmp_path / "in.csv", 2)
    out = tmp_path / "out.csv"
    assert invoke(*run_args(sandbox, source, out), key=sandbox.api_key).exit_code == 0
    snapshot = tmp_path / "current.csv"
    snapshot.write_text(f"{HEADER}\n1001,1,2,1,501,x\n1002,1,2,1,888,x\n")  # 1002 changed since
    source.write_text(source.read_text().replace("T-1", "T-1b"))  # a new input, same bodies
    again = invoke(*run_args(sandbox, source, out, "--current", str(snapshot)), key=sandbox.api_key)
    assert again.exit_code == 0, again.output
    assert sandbox.stats()["by_routing_id"] == {"1001": 2, "1002": 2}  # type: ignore[comparison-overlap]


@pytest.mark.slow
def test_plan_counts_rows_already_applied(live_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """`plan --results` says how many requests an earlier run already applied there."""
    source = write_input(tmp_path / "in.csv", 3)
    out = tmp_path / "out.csv"
    assert invoke(*run_args(live_sandbox, source, out), key=live_sandbox.api_key).exit_code == 0
    source.write_text(source.read_text().replace("1003,1,2,1,503", "1003,1,2,1,9"))
    plan = invoke("plan", str(source), "--results", str(out))
    assert plan.exit_code == 0, plan.output
    assert "2 of the 3 requests were already applied" in plan.stdout


def test_the_confirmation_says_how_many_rows_are_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The question before a real run counts the rows already applied separately."""
    console = Console(record=True, width=200)
    monkeypatch.setattr("batch.cli.terminal.err_console", console)
    monkeypatch.setattr("typer.confirm", lambda *args, **kwargs: False)
    operator = TerminalOperator(LogFormat.TEXT)
    sending = Confirmation(7, "api.example.com", Rate(60, 60.0), 4, applied=3)
    assert not operator.confirm(sending)
    assert "7 records to replace on api.example.com (3 already applied, not sent) at 60/min" in (
        console.export_text()
    )


def test_job_results_placeholders(tmp_path: Path) -> None:
    """{date}, {input_stem} and {input_sha8} give one results file per batch."""
    source = write_input(tmp_path / "export-2026-12-01.csv", 2)
    job = tmp_path / "nightly.toml"
    job.write_text(
        f'input = "{source.name}"\nresults = "out/{{input_stem}}-{{date}}-{{input_sha8}}.csv"\n'
    )
    now = datetime(2026, 12, 1, 0, 55, tzinfo=UTC)
    settings = resolve_run_settings({}, load_job(job), {}, now=now)
    sha8 = sha256_file(source)[:8]
    assert settings.results.name == f"export-2026-12-01-2026-12-01-{sha8}.csv"
    assert re.fullmatch(r"[0-9a-f]{8}", sha8)


@pytest.mark.slow
def test_a_new_run_archives_the_old_trail_and_starts_its_own(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """The audit files of a finished run go to its archive folder with its results; the new
    run's attempts and run.json tell only the new run (one segment, its own requests)."""
    import json

    out = tmp_path / "out.csv"
    source = tmp_path / "in.csv"
    write_rows(source, [(4100, 500, "T-0"), (4101, 501, "T-0")])
    assert invoke(*run_args(live_sandbox, source, out), key=live_sandbox.api_key).exit_code == 0
    write_rows(source, [(4102, 502, "T-1")])
    again = invoke(*run_args(live_sandbox, source, out), key=live_sandbox.api_key)
    assert again.exit_code == 0, again.output
    [old] = (tmp_path / "out.runs").iterdir()
    assert (old / "out.report.html").is_file()  # the page of the run it tells
    assert read(old / "out.csv.attempts.csv")["routing_id"].to_list() == ["4100", "4101"]
    assert len(json.loads((old / "out.csv.run.json").read_text())["segments"]) == 1
    assert read(tmp_path / "out.csv.attempts.csv")["routing_id"].to_list() == ["4102"]
    about = json.loads((tmp_path / "out.csv.run.json").read_text())
    assert [s["kind"] for s in about["segments"]] == ["run"]
    assert about["totals"]["requests"] == 1


@pytest.mark.slow
def test_running_a_finished_run_again_adds_no_segment(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """The same command again over a finished run sends nothing, and run.json still tells one
    segment (segments are the invocations that had rows to send), with the run's requests."""
    import json

    out = tmp_path / "out.csv"
    source = write_rows(tmp_path / "in.csv", [(4200, 500, "T-0"), (4201, 501, "T-0")])
    assert invoke(*run_args(live_sandbox, source, out), key=live_sandbox.api_key).exit_code == 0
    again = invoke(*run_args(live_sandbox, source, out), key=live_sandbox.api_key)
    assert again.exit_code == 0, again.output
    about = json.loads((tmp_path / "out.csv.run.json").read_text())
    assert [s["kind"] for s in about["segments"]] == ["run"]
    assert about["totals"]["requests"] == 2
    assert read(tmp_path / "out.csv.attempts.csv")["routing_id"].to_list() == ["4200", "4201"]
