"""`reroute sandbox`: refusals in one line, and a real start, serve, Ctrl-C, clean stop."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batch.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "refusing to serve on non-loopback host 0.0.0.0"),
        (["--rate-limit", "lots"], "is not a rate"),
        (["--max-concurrent", "many"], "--max-concurrent 'many'"),
        (["--api-key", "rg_live_123"], "looks like a live key"),
        (["--error-rate", "2"], "error-rate 2.0 is not a share"),
        (["--state", "/nonexistent/state.csv"], "/nonexistent/state.csv: no such sandbox state"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    """Each refusal is a single stderr line saying what to fix, exit 2, no traceback."""
    result = CliRunner().invoke(app, ["sandbox", "--port", "0", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_port_in_use_is_named() -> None:
    """A busy port is refused with the address and a fix, not a traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["sandbox", "--port", str(port)])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_help_marks_sandbox_only_extras() -> None:
    """--help says which features the real API does not have."""
    result = CliRunner().invoke(app, ["sandbox", "--help"], terminal_width=100)
    assert result.exit_code == 0
    assert "[sandbox-only]" in result.output
    assert "--state" in result.output
    assert "/sandbox/stats" in result.output


@pytest.mark.slow
def test_serves_until_ctrl_c_and_stops_cleanly() -> None:
    """The command prints its URL and key, answers requests, and exits 0 on SIGINT."""
    key = "rg_test_cli_0001"
    process = subprocess.Popen(
        [sys.executable, "-m", "batch", "sandbox", "--port", "0", "--api-key", key],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        printed = "".join(lines)
        base_url = next(ln.split()[2] for ln in lines if ln.strip().startswith("base URL"))
        assert key in printed
        request = urllib.request.Request(
            base_url + "/voicelink/call-routing/3",
            data=json.dumps({"for_inbound_call": 1, "for_outbound_call": 4, "status": 1}).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["success"] is True
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err
