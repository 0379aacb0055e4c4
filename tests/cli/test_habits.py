"""The habits of a command-line tool: --version, shell completion, examples, plain output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batch.cli import app

VERSION = version("voicelink-batch")
ROWS = (
    "routing_id,for_inbound_call,for_outbound_call,status,inbound_websocket_bot_id\n"
    "1,3,4,1,7\n2,1,4,0,\n3,1,4,1,\n"
)
COMMANDS = [["run"], ["retry"], ["validate"], ["plan"], ["sandbox"], ["jobs", "check"]]


def test_version_prints_the_package_version() -> None:
    """`reroute --version` prints the installed distribution's version and exits 0."""
    result = CliRunner().invoke(app, ["--version"], prog_name="reroute")
    assert result.exit_code == 0
    assert result.stdout == f"reroute {VERSION}\n"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_help_ends_with_examples(command: list[str]) -> None:
    """Each command's --help ends with an Examples block of reroute command lines."""
    result = CliRunner().invoke(app, [*command, "--help"], prog_name="reroute")
    assert result.exit_code == 0
    tail = result.stdout.rstrip().split("Examples:")[-1].strip().splitlines()
    assert "Examples:" in result.stdout
    assert 1 <= len(tail) <= 2
    assert all(line.strip().startswith(f"reroute {' '.join(command)}") for line in tail)


@pytest.mark.slow
def test_completion_installs_for_bash(tmp_path: Path) -> None:
    """`reroute --install-completion bash` writes a completion script and sources it."""
    env = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash"}
    done = subprocess.run(
        [sys.executable, "-m", "batch", "--install-completion", "bash"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    script = tmp_path / ".bash_completions" / "reroute.sh"
    assert "_REROUTE_COMPLETE" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()


@pytest.mark.slow
def test_no_color_is_honoured_by_our_consoles() -> None:
    """With NO_COLOR set, even a forced terminal gets no colour codes from reroute's consoles."""
    code = (
        "import sys, batch.cli\n"
        "console = sys.modules['batch.cli.app'].err_console\n"
        "console.print('[red]stop[/red]')\n"
        "print(console.is_terminal, console.no_color)\n"
    )
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "True True"
    assert "\x1b[31m" not in done.stderr
    assert "stop" in done.stderr


@pytest.mark.slow
def test_run_off_a_terminal_is_plain_and_says_its_version(tmp_path: Path) -> None:
    """Not on a terminal: progress as plain lines (no escape codes); the summary names the
    version, as the JSON run_started and summary events do."""
    source = tmp_path / "in.csv"
    source.write_text(ROWS)
    out = tmp_path / "out.csv"
    args = ["run", str(source), "--sandbox", "--results", str(out), "--rate", "50/s"]
    text = CliRunner().invoke(app, args, env={"VOCOBASE_API_KEY": ""}, prog_name="reroute")
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[0].startswith(f"reroute {VERSION}: run finished in ")
    assert "sending 3 of 3 rows" in text.stderr
    assert "\x1b[" not in text.stderr + text.stdout
    logged = CliRunner().invoke(
        app, [*args, "--fresh", "--yes", "--log-format", "json"], prog_name="reroute"
    )
    assert logged.exit_code == 0, logged.output
    events = [json.loads(line) for line in logged.stderr.strip().splitlines()]
    started = next(e for e in events if e["event"] == "run_started")
    assert started["version"] == VERSION
    assert json.loads(logged.stdout.strip().splitlines()[-1])["version"] == VERSION


@pytest.mark.slow
def test_version_loads_nothing_heavy() -> None:
    """`reroute --version` answers without polars, rich, the engine or the lock library."""
    code = (
        "import sys; from batch.cli import main; sys.argv = ['reroute', '--version']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('polars', 'rich', 'httpx', 'batch.engine.invocation', 'filelock')"
        " if m in sys.modules]\n"
        "print('loaded:', ','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [f"reroute {VERSION}", "loaded: "]
