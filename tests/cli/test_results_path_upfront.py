"""Everything `run` and `retry` will write is checked before anything is sent or created: a
results path reroute cannot write is exit 2, nothing sent, nothing created (issue 28, item 10);
under `--log-format json` the refusal is one JSON line."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from batch.sandbox import RunningSandbox
from tests.cli.test_run import invoke, run_args, write_input
from tests.conftest import StartSandbox


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "taken").mkdir()
    return tmp_path / "taken"


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "pipe.csv")
    return tmp_path / "pipe.csv"


def _report_is_a_folder(tmp_path: Path) -> Path:
    (tmp_path / "out.report.html").mkdir()
    return tmp_path / "out.csv"


UNWRITABLE: dict[str, Callable[[Path], Path]] = {
    "unsupported extension": lambda d: d / "out.tsv",
    "no extension": lambda d: d / "out",
    "a folder": _folder,
    "the current folder": lambda d: Path("."),
    "a FIFO": _fifo,
    "in a missing folder": lambda d: d / "nowhere" / "out.csv",
    "under a file": lambda d: d / "in.csv" / "out.csv",
    "its report path is a folder": _report_is_a_folder,
}


@pytest.mark.slow
@pytest.mark.parametrize("case", UNWRITABLE)
def test_run_refuses_an_unwritable_results_path_before_sending(
    live_sandbox: RunningSandbox, tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --results PATH` reroute cannot write: exit 2, nothing sent, nothing created,
    one line naming --results and the path."""
    monkeypatch.chdir(tmp_path)
    source = write_input(tmp_path / "in.csv", 3)
    out = UNWRITABLE[case](tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    result = invoke(*run_args(live_sandbox, source, out), key=live_sandbox.api_key)
    assert result.exit_code == 2, result.output
    assert live_sandbox.stats()["total"] == 0
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"reroute: --results {out}")


@pytest.mark.slow
def test_the_same_command_is_refused_every_time_not_exit_4(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """`run --results out.tsv` twice: refused up front both times (it sent every row and then
    exited 4, forever)."""
    source = write_input(tmp_path / "in.csv", 3)
    args = run_args(live_sandbox, source, tmp_path / "out.tsv")
    for _ in range(2):
        result = invoke(*args, key=live_sandbox.api_key)
        assert result.exit_code == 2, result.output
        assert "unknown results file type '.tsv'" in result.stderr
    assert live_sandbox.stats()["total"] == 0


@pytest.mark.slow
def test_an_unwritable_folder_is_refused_before_sending(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A folder the user cannot write to: exit 2, nothing sent (skipped where the test runs as
    a user every folder is writable to, root)."""
    source = write_input(tmp_path / "in.csv", 3)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user may write to any folder")
        args = run_args(live_sandbox, source, locked / "out.csv")
        result = invoke(*args, key=live_sandbox.api_key)
        assert result.exit_code == 2, result.output
        assert "is not writable" in result.stderr
        assert live_sandbox.stats()["total"] == 0
    finally:
        locked.chmod(0o700)


@pytest.mark.slow
def test_retry_refuses_an_unwritable_results_path_before_sending(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """`retry RESULTS --results out.tsv`: exit 2 before sending the failed rows again."""
    sandbox = start_sandbox(script={1002: ("404",)})
    source = write_input(tmp_path / "in.csv", 3)
    out = tmp_path / "out.csv"
    assert invoke(*run_args(sandbox, source, out), key=sandbox.api_key).exit_code == 1
    sent = sandbox.stats()["total"]
    again = str(tmp_path / "again.tsv")
    retried = invoke("retry", str(out), "--results", again, key=sandbox.api_key)
    assert retried.exit_code == 2, retried.output
    assert retried.stderr.startswith(f"reroute: --results {again}")
    assert sandbox.stats()["total"] == sent
    assert not list(tmp_path.glob("again.tsv*"))


@pytest.mark.slow
def test_a_refusal_under_log_format_json_is_one_json_line(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """`--log-format json`: a refusal is one JSON object on stderr (event refused, the message,
    exit status 2), never plain text."""
    source = write_input(tmp_path / "in.csv", 3)
    args = run_args(live_sandbox, source, tmp_path / "out.tsv", "--log-format", "json")
    result = invoke(*args, key=live_sandbox.api_key)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    record = json.loads(line)
    assert record["event"] == "refused"
    assert record["exit_status"] == 2
    assert "out.tsv" in record["message"]
    invalid = write_input(tmp_path / "bad.csv", 3, bad_rows=(2,))
    refused = invoke(*run_args(live_sandbox, invalid, tmp_path / "b.csv", "--log-format", "json"))
    assert refused.exit_code == 2
    assert json.loads(refused.stderr.splitlines()[-1])["event"] == "refused"
    status = invoke("status", str(tmp_path), "--log-format", "json")
    assert status.exit_code == 2
    assert json.loads(status.stderr)["event"] == "refused"
