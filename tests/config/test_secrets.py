"""The API key never appears in any output, log, results file, journal or error text."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from batch.cli import app
from batch.report import write_report
from batch.sandbox.config import Faults
from tests.conftest import StartSandbox

# Distinctive, so a match cannot be a coincidence; a test key the sandbox will accept.
KEY = "rg_test_S3cr3tK3yMustNeverLeak0123456789abcdef"
WRONG = "rg_test_Wr0ngK3yMustNeverLeakEither987654321zyx"


def _input(path: Path) -> Path:
    rows = [f"{3000 + i},3,3,1,{i},{i + 50}" for i in range(1, 13)]
    header = "routing_id,for_inbound_call,for_outbound_call,status,"
    header += "inbound_websocket_bot_id,outbound_websocket_bot_id"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _assert_nowhere(secret: str, folder: Path, *texts: str) -> None:
    written = [p for p in folder.rglob("*") if p.is_file() and p.name != "key.txt"]
    assert written, "the run wrote nothing to check"
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    for text in texts:
        assert secret not in text


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_key_from_env_leaks_nowhere(
    start_sandbox: StartSandbox, tmp_path: Path, log_format: str
) -> None:
    """A run with faults and failures: no file it wrote, none of its output and none of
    `reroute status`'s holds the key."""
    sandbox = start_sandbox(
        api_key=KEY,
        not_found_ids=frozenset({3002}),
        script={3003: ("503", "html", "ok"), 3004: ("drop", "ok")},
    )
    source = _input(tmp_path / "in.csv")
    args = ["run", str(source), "--base-url", sandbox.base_url, "--rate", "100/s"]
    args += ["--results", str(tmp_path / "out.csv"), "--log-format", log_format]
    result = CliRunner().invoke(app, args, env={"VOCOBASE_API_KEY": KEY})
    assert result.exit_code == 1, result.output
    status = CliRunner().invoke(
        app, ["status", str(tmp_path / "out.csv"), "--log-format", log_format],
        env={"VOCOBASE_API_KEY": KEY},
    )  # fmt: skip
    assert status.exit_code == 0, status.output
    # The reports (settings, segments, bodies, responses) are looked through too: the page
    # the run wrote at its end, and the Markdown one.
    assert (tmp_path / "out.report.html").is_file()
    write_report(tmp_path / "out.csv", fmt="md")
    _assert_nowhere(KEY, tmp_path, result.stdout, result.stderr, status.stdout, status.stderr)


@pytest.mark.slow
def test_rejected_key_leaks_nowhere(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """A key the server rejects (401) is not echoed in the stop message or the results."""
    sandbox = start_sandbox(api_key=KEY)
    source = _input(tmp_path / "in.csv")
    args = ["run", str(source), "--base-url", sandbox.base_url, "--rate", "100/s"]
    args += ["--results", str(tmp_path / "out.csv")]
    result = CliRunner().invoke(app, args, env={"VOCOBASE_API_KEY": WRONG})
    assert result.exit_code == 3, result.output
    _assert_nowhere(WRONG, tmp_path, result.stdout, result.stderr)


@pytest.mark.slow
def test_key_file_leaks_nowhere_even_on_timeouts(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """With --api-key-file and timed-out requests, the key still appears in no output (every
    request timing out is an outage: --max-outage ends it, exit 3, every row to be sent again)."""
    sandbox = start_sandbox(api_key=KEY, faults=Faults(slow_rate=1.0, slow_seconds=2.0))
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY)
    source = _input(tmp_path / "in.csv")
    args = ["run", str(source), "--base-url", sandbox.base_url, "--rate", "100/s"]
    args += ["--results", str(tmp_path / "out.csv"), "--api-key-file", str(key_file)]
    args += ["--timeout", "0.2", "--max-attempts", "1", "--concurrency", "12"]
    args += ["--max-outage", "1s"]
    result = CliRunner().invoke(app, args, env={"VOCOBASE_API_KEY": ""})
    assert result.exit_code == 3, result.output
    assert "no answer within 0.2 s (--timeout)" in result.stdout
    assert "HOST_UNREACHABLE" in result.stdout  # met the outage: resent by the same command
    _assert_nowhere(KEY, tmp_path, result.stdout, result.stderr)


def test_bad_key_characters_are_not_echoed(tmp_path: Path) -> None:
    """A key with a newline or space inside is refused without printing it (exit 2)."""
    source = _input(tmp_path / "in.csv")
    bad = "rg_live_abc def\nghi"
    args = ["run", str(source), "--base-url", "http://127.0.0.1:9/api/v2"]
    args += ["--results", str(tmp_path / "out.csv")]
    result = CliRunner().invoke(app, args, env={"VOCOBASE_API_KEY": bad})
    assert result.exit_code == 2
    assert "abc def" not in result.output
    assert "ghi" not in result.output
