"""Where a report goes: never over a file of the run it tells, into a pipe or device as given,
each results file its own report name; a run that found every row applied says so (issue 28,
item 13 and what was seen beside it)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batch.cli import app
from batch.journal.archive import archive
from batch.report import default_path, write_report
from batch.sandbox import RunningSandbox
from tests.cli.test_run import invoke, run_args, write_input
from tests.report_fixtures import make_run

runner = CliRunner()

RUN_FILES = (
    "out.csv",
    "out.csv.journal",
    "out.csv.journal-wal",
    "out.csv.journal-log",
    "out.csv.attempts.csv",
    "out.csv.run.json",
    "out.csv.account.json",
    "out.csv.lock",
    "changes.csv",  # the run's input, as its journal records it
)


@pytest.mark.parametrize("name", RUN_FILES)
def test_report_never_overwrites_a_file_of_its_run(tmp_path: Path, name: str) -> None:
    """`report RESULTS --out F` where F is the results file, the journal, its log, the attempts
    file, run.json, the account lists, the lock or the input: exit 2, F untouched."""
    made = make_run(tmp_path / "out.csv")
    target = tmp_path / name
    if not target.exists():
        target.write_bytes(b"kept as it was\n")
    before = target.read_bytes()
    result = runner.invoke(app, ["report", str(made.results), "--out", str(target)])
    assert result.exit_code == 2, result.output
    assert "a report never overwrites it" in result.stderr
    assert target.read_bytes() == before


@pytest.mark.parametrize("name", ["rollback.csv", "out.csv.snapshot.csv", "out.csv.changes.csv"])
def test_report_never_overwrites_the_files_that_undo_and_explain_the_run(
    tmp_path: Path, name: str
) -> None:
    """The rollback file (its segment records it), the snapshot kept beside the results and the
    list of changes: exit 2, the file untouched."""
    made = make_run(tmp_path / "out.csv", snapshot=frozenset({9}), rollback=True)
    write_report(made.results)  # writes out.csv.changes.csv
    target = tmp_path / name
    before = target.read_bytes()
    result = runner.invoke(app, ["report", str(made.results), "--out", str(target)])
    assert result.exit_code == 2, result.output
    assert "a report never overwrites it" in result.stderr
    assert target.read_bytes() == before


def test_report_never_overwrites_an_archived_run_or_its_input(tmp_path: Path) -> None:
    """Past runs in `<stem>.runs/` and the input a past run read are the run's files too."""
    results = tmp_path / "out.csv"
    make_run(results)
    (tmp_path / "old-input.csv").write_text("routing_id\n1\n")
    about = {"settings": {"input": "old-input.csv"}}
    folder = archive(results, started="2025-11-29T17:00:00Z", about=about, keep=30)
    for target in (folder / "out.csv", folder / "run.json", tmp_path / "old-input.csv"):
        before = target.read_bytes()
        result = runner.invoke(app, ["report", str(results), "--out", str(target)])
        assert result.exit_code == 2, (target, result.output)
        assert target.read_bytes() == before


def test_report_refuses_a_folder_as_out(tmp_path: Path) -> None:
    """`--out FOLDER`: one line saying it is a folder, exit 2, nothing written in it."""
    made = make_run(tmp_path / "out.csv")
    folder = tmp_path / "reports"
    folder.mkdir()
    result = runner.invoke(app, ["report", str(made.results), "--out", str(folder)])
    assert result.exit_code == 2
    assert f"--out {folder} is a folder" in result.stderr
    assert list(folder.iterdir()) == []


def test_report_writes_into_a_fifo_and_leaves_it_a_fifo(tmp_path: Path) -> None:
    """`--out FIFO` writes the page into the pipe (a reader gets it) and the FIFO stays one:
    a rename over it replaced it (as it replaced /dev/null with a plain file)."""
    made = make_run(tmp_path / "out.csv")
    fifo = tmp_path / "page.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = runner.invoke(app, ["report", str(made.results), "--format", "md", "--out", str(fifo)])
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert got
    assert got[0].startswith(b"**37 of 40 succeeded, 2 failed, 1 invalid**\n")
    assert fifo.is_fifo()


def test_report_out_a_character_device_stays_a_device(tmp_path: Path) -> None:
    """`--out` a character device (a null device made in the test's folder, never the real
    /dev/null, which the old code replaced): exit 0, and it is still a character device."""
    made = make_run(tmp_path / "out.csv")
    device = tmp_path / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (OSError, AttributeError):
        pytest.skip("cannot make a device node here (not root)")
    result = runner.invoke(app, ["report", str(made.results), "--out", str(device)])
    assert result.exit_code == 0, result.output
    assert device.is_char_device()


def test_each_results_file_gets_its_own_report_name() -> None:
    """out.csv keeps `out.report.html`; out.xlsx, out.parquet, out.jsonl are named after the
    whole name, as their attempts file and run.json are: no two share a report."""
    names = {default_path(Path(f"/x/out{ext}")).name for ext in (".csv", ".xlsx", ".parquet")}
    assert names == {"out.report.html", "out.xlsx.report.html", "out.parquet.report.html"}
    assert default_path(Path("/x/out.jsonl"), "md").name == "out.jsonl.report.md"


def test_archiving_one_results_file_leaves_anothers_files(tmp_path: Path) -> None:
    """Archiving out.xlsx's run moves its own report, never out.csv's, nor out.csv2.csv's."""
    for name in ("out.xlsx", "out.xlsx.run.json", "out.xlsx.report.html", "out.report.html"):
        (tmp_path / name).write_text(name)
    (tmp_path / "out.xlsx2.csv").write_text("another results file")
    folder = archive(tmp_path / "out.xlsx", started=None, about={}, keep=30)
    moved = sorted(p.name for p in folder.iterdir())
    assert moved == ["out.xlsx", "out.xlsx.report.html", "out.xlsx.run.json", "run.json"]
    assert (tmp_path / "out.report.html").read_text() == "out.report.html"
    assert (tmp_path / "out.xlsx2.csv").exists()


@pytest.mark.slow
def test_a_run_with_every_row_already_applied_reports_what_happened(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A new input whose rows were all applied by the finished run there: exit 0, and the
    report says who ran it, when, that it finished and that every row was already applied."""
    source = write_input(tmp_path / "in.csv", 3)
    out = tmp_path / "out.csv"
    args = run_args(live_sandbox, source, out)
    assert invoke(*args, key=live_sandbox.api_key).exit_code == 0
    source.write_text(source.read_text().replace("T-2", "CHG-2"))  # a new run, same bodies
    again = invoke(*args, key=live_sandbox.api_key)
    assert again.exit_code == 0, again.output
    assert live_sandbox.stats()["total"] == 3
    page = runner.invoke(app, ["report", str(out), "--format", "md", "--out", "-"])
    assert page.exit_code == 0, page.output
    assert "nothing sent yet" not in page.stdout
    assert "**Who:** unknown" not in page.stdout
    assert "exit 0: finished; all 3 rows were already applied by an earlier run" in page.stdout
