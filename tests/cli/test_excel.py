"""Workbooks and Excel's CSV dialects through the command line, in process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import xlsxwriter
from typer.testing import CliRunner

from batch.cli import app
from batch.config.jobs import load_job
from batch.journal.record import RECORD_KEY, RunIdentity, RunRecord, reading_text
from batch.sandbox import RunningSandbox
from batch.sheets.results import read_results
from tests.conftest import StartSandbox

HEADER = ["routing_id", "for_inbound_call", "for_outbound_call", "status", "ticket"]


def invoke(*args: str, key: str | None = None) -> Any:
    env = {"VOCOBASE_API_KEY": key or "", "REROUTE_BASE_URL": ""}
    return CliRunner().invoke(app, list(args), env=env)


def sheet(path: Path, n: int, *, sheets: tuple[str, ...] = ("Changes",)) -> Path:
    """``n`` valid rows for routing ids 1001.. on the sheet named Changes; others hold notes."""
    book = xlsxwriter.Workbook(path)
    for name in sheets:
        page = book.add_worksheet(name)
        if name != "Changes":
            page.write_row(0, 0, ["notes"])
            continue
        page.write_row(0, 0, HEADER)
        for row in range(1, n + 1):
            page.write_row(row, 0, [1000 + row, 1, 4, 1, f"T-{row}"])
    book.close()
    return path


@pytest.mark.slow
def test_sandbox_run_writes_a_workbook_that_retry_reads_back(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """`run BOOK.xlsx --sandbox --results out.xlsx` then `retry out.xlsx`: read back by row."""
    monkeypatch.chdir(tmp_path)
    book = sheet(tmp_path / "changes.xlsx", 5, sheets=("Changes", "Notes"))
    result = invoke("run", str(book), "--sandbox", "--results", "out.xlsx")
    assert result.exit_code == 0, result.output
    assert "read sheet 'Changes', the first of 2 (also 'Notes')" in result.output
    frame = read_results(tmp_path / "out.xlsx")
    assert frame.get_column("outcome").to_list() == ["succeeded"] * 5
    assert frame.get_column("ticket").to_list() == [f"T-{i}" for i in range(1, 6)]
    again = invoke("retry", "out.xlsx")
    assert again.exit_code == 0, again.output
    assert read_results(tmp_path / "out.xlsx").get_column("attempts").to_list() == [1] * 5


@pytest.mark.slow
def test_retry_of_a_workbook_resends_only_the_failed_rows(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """A failed row in an .xlsx results file is sent again by `retry`, in place."""
    sandbox = start_sandbox(script={1002: ("404",)})
    book, out = sheet(tmp_path / "in.xlsx", 3), tmp_path / "out.xlsx"
    args = ["--base-url", sandbox.base_url, "--rate", "100/s"]
    first = invoke("run", str(book), "--results", str(out), *args, key=sandbox.api_key)
    assert first.exit_code == 1, first.output
    assert read_results(out).get_column("outcome").to_list() == ["succeeded", "failed", "succeeded"]
    result = invoke("retry", str(out), *args, key=sandbox.api_key)
    assert result.exit_code == 0, result.output
    frame = read_results(out)
    assert frame.get_column("outcome").to_list() == ["succeeded"] * 3
    assert frame.get_column("attempts").to_list() == [1, 2, 1]


@pytest.mark.slow
def test_validate_reads_excel_csv_dialects_with_flags(tmp_path: Path) -> None:
    """`;` + cp1252 read with --separator/--encoding; without them the message names them."""
    path = tmp_path / "eu.csv"
    path.write_bytes("routing_id;for_inbound_call;for_outbound_call;status;note\r\n"
                     "1;1;4;1;Caf\u00e9\r\n".encode("cp1252"))  # fmt: skip
    plain = invoke("validate", str(path))
    assert plain.exit_code == 2
    assert "--encoding cp1252" in plain.stderr
    result = invoke("validate", str(path), "--separator", ";", "--encoding", "windows-1252")
    assert result.exit_code == 0, result.output
    assert "1 rows read, 1 valid" in result.stdout
    bad = invoke("validate", str(path), "--separator", "tab", "--encoding", "klingon")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("reroute: --encoding: encoding 'klingon' is not one Python")


def test_validate_sheet_flag_and_workbook_results(tmp_path: Path) -> None:
    """--sheet picks the sheet; --results check.xlsx writes every verdict as a workbook."""
    book = sheet(tmp_path / "b.xlsx", 2, sheets=("Notes", "Changes"))
    wrong = invoke("validate", str(book))
    assert wrong.exit_code == 2
    assert "required columns" in wrong.stderr
    result = invoke(
        "validate", str(book), "--sheet", "Changes", "--results", str(tmp_path / "c.xlsx")
    )
    assert result.exit_code == 0, result.output
    frame = read_results(tmp_path / "c.xlsx")
    assert frame.get_column("outcome").to_list() == ["not_attempted"] * 2


def test_job_file_reading_keys_and_a_resume_with_another_sheet(tmp_path: Path) -> None:
    """Top-level sheet/separator/encoding keys load checked; another sheet is another run."""
    sheet(tmp_path / "b.xlsx", 1)
    job = tmp_path / "j.toml"
    job.write_text('input = "b.xlsx"\nsheet = "Changes"\nseparator = "tab"\nencoding = "CP1252"\n')
    loaded = load_job(job)
    reading = [loaded.get(name) for name in ("sheet", "separator", "encoding")]
    assert reading == ["Changes", "\t", "cp1252"]
    job.write_text('input = "b.xlsx"\nseparator = ";;"\n')
    result = invoke("jobs", "check", str(job))
    assert result.exit_code != 0
    assert "key separator: separator ';;' is not one character" in result.output
    run = {"input_sha256": "x", "base_url": "u", "results": "r", "snapshot": ""}
    before = RunIdentity("x", "u", "r", reading=reading_text("Changes", None, None))
    assert before.differences({**run, "reading": reading_text("CHANGES", None, None)}) == []
    assert before.differences({**run, "reading": reading_text("Old", None, None)}) == [
        "the sheet read (--sheet)"
    ]
    # a journal of an older reroute: its record's flags say how the input was read
    older = {**run, RECORD_KEY: RunRecord(settings={"sheet": "changes"}).to_json()}
    assert before.differences(older) == []


def weeks(path: Path) -> Path:
    """A workbook with two tabs of four rows each: Week 49 (ids 4901..) and Week 50 (5001..)."""
    book = xlsxwriter.Workbook(path)
    for name, first in (("Week 49", 4900), ("Week 50", 5000)):
        page = book.add_worksheet(name)
        page.write_row(0, 0, HEADER)
        for row in range(1, 5):
            page.write_row(row, 0, [first + row, 1, 4, 1, f"{name}-{row}"])
    book.close()
    return path


@pytest.mark.slow
def test_the_next_tab_of_the_same_workbook_is_a_new_run(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """`run book.xlsx --sheet "Week 50"` after Week 49 finished: a new run at that results path
    (Week 49's results archived, its rows sent), not a refused resume; the same tab again
    resumes (nothing sent)."""
    book, out = weeks(tmp_path / "book.xlsx"), tmp_path / "out.csv"
    args = ["run", str(book), "--base-url", live_sandbox.base_url, "--results", str(out)]
    first = invoke(*args, "--sheet", "Week 49", key=live_sandbox.api_key)
    assert first.exit_code == 0, first.output
    second = invoke(*args, "--sheet", "Week 50", key=live_sandbox.api_key)
    assert second.exit_code == 0, second.output
    frame = read_results(out)
    assert frame["routing_id"].to_list() == ["5001", "5002", "5003", "5004"]
    assert frame["outcome"].to_list() == ["succeeded"] * 4
    (archived,) = (tmp_path / "out.runs").iterdir()
    assert read_results(archived / "out.csv")["routing_id"].to_list()[0] == "4901"
    assert live_sandbox.stats()["total"] == 8
    again = invoke(*args, "--sheet", "week 50", key=live_sandbox.api_key)  # any case
    assert again.exit_code == 0, again.output
    assert live_sandbox.stats()["total"] == 8
    assert len(list((tmp_path / "out.runs").iterdir())) == 1


@pytest.mark.slow
def test_another_tab_over_an_unfinished_run_is_refused_and_the_same_tab_resumes(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """While Week 49's run is unfinished, Week 50 is a changed input (refused, naming --sheet);
    Week 49 again resumes it."""
    sandbox = start_sandbox(script={4902: ("401",)})  # the run stops at once: rows left
    book, out = weeks(tmp_path / "book.xlsx"), tmp_path / "out.csv"
    args = ["run", str(book), "--base-url", sandbox.base_url, "--results", str(out),
            "--concurrency", "1"]  # fmt: skip
    assert invoke(*args, "--sheet", "Week 49", key=sandbox.api_key).exit_code == 3
    other = invoke(*args, "--sheet", "Week 50", key=sandbox.api_key)
    assert other.exit_code == 2, other.output
    assert "the sheet read (--sheet) changed: finish it first" in other.stderr
    resumed = invoke(*args, "--sheet", "Week 49", key=sandbox.api_key)
    assert resumed.exit_code == 0, resumed.output
    assert read_results(out)["outcome"].to_list() == ["succeeded"] * 4
    assert not (tmp_path / "out.runs").exists()


@pytest.mark.slow
def test_the_same_bytes_read_with_another_dialect_is_a_new_input(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """--separator and --encoding are part of the input: the same file read with another
    encoding after a finished run is a new run, whose rows already applied are not sent."""
    path = tmp_path / "eu.csv"
    path.write_bytes(b"routing_id;for_inbound_call;for_outbound_call;status\r\n"
                     b"1;1;4;1\r\n2;1;4;1\r\n")  # fmt: skip
    out = tmp_path / "out.csv"
    args = ["run", str(path), "--base-url", live_sandbox.base_url, "--results", str(out),
            "--separator", ";"]  # fmt: skip
    assert invoke(*args, key=live_sandbox.api_key).exit_code == 0
    again = invoke(*args, "--encoding", "cp1252", key=live_sandbox.api_key)
    assert again.exit_code == 0, again.output
    assert live_sandbox.stats()["total"] == 2  # nothing sent twice
    frame = read_results(out)
    assert frame["error_code"].to_list() == ["ALREADY_APPLIED"] * 2
    assert len(list((tmp_path / "out.runs").iterdir())) == 1
