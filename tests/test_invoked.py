"""Commands printed for the operator start the way reroute was started, quoted for the shell."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from batch import invoked

MAIN = str(Path(invoked.__file__).with_name("__main__.py"))
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "routing-changes.csv"


def test_the_installed_script_prints_reroute(tmp_path: Path) -> None:
    """Installed (the script on PATH), `reroute` is what the shell runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "reroute"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert invoked.started_as({"PATH": str(bin_dir)}, [str(script), "run"]) == ("reroute",)


def test_a_script_the_shell_would_not_find_is_spelled_in_full(tmp_path: Path) -> None:
    """A venv's `bin/reroute` run without activating the venv: `reroute` alone would be
    "command not found", its full path runs."""
    script = tmp_path / ".venv" / "bin" / "reroute"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    assert invoked.started_as({"PATH": str(tmp_path)}, [str(script)]) == (str(script),)


def test_a_venvs_python_is_not_the_python_it_links_to(tmp_path: Path) -> None:
    """`python -m batch` with a venv's python: a `python` on PATH that is the interpreter the
    venv links to runs without the venv (no reroute there), so the venv's path is printed."""
    base, venv = tmp_path / "usr" / "bin", tmp_path / "venv" / "bin"
    base.mkdir(parents=True)
    venv.mkdir(parents=True)
    (base / "python").write_text("#!/bin/sh\n")
    (base / "python").chmod(0o755)
    (venv / "python").symlink_to(base / "python")
    env = {"PATH": str(base)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "executable", str(venv / "python"))
        patch.setenv("PATH", str(base))
        assert invoked.started_as(env, [MAIN]) == (str(venv / "python"), "-m", "batch")


def test_under_uv_run_the_command_starts_with_uv_run() -> None:
    """`uv run` sets UV: pasted without it, `reroute` is "command not found"."""
    env = {"UV": "/usr/bin/uv"}
    assert invoked.started_as(env, ["/p/.venv/bin/reroute"]) == ("uv", "run", "reroute")
    assert invoked.started_as(env, [MAIN]) == ("uv", "run", "python", "-m", "batch")


def test_python_dash_m_is_spelled_with_an_interpreter_that_runs_it() -> None:
    """`python -m batch`: `python` when that name is this interpreter, else its full path."""
    words = invoked.started_as({}, [MAIN])
    assert words[1:] == ("-m", "batch")
    assert words[0] in ("python", sys.executable)


def test_arguments_are_quoted_for_the_shell() -> None:
    """A path with a space or a `;` stays one argument when the line is pasted."""
    line = invoked.command(("uv", "run", "reroute"), "retry", "night run;1.csv", platform="linux")
    assert line == "uv run reroute retry 'night run;1.csv'"
    assert shlex.split(line)[-1] == "night run;1.csv"
    windows = invoked.command(("reroute",), "retry", "C:\\runs\\night run.csv", platform="win32")
    assert windows == 'reroute retry "C:\\runs\\night run.csv"'


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_a_printed_command_runs_verbatim_through_a_shell(tmp_path: Path) -> None:
    """`python -m batch validate '<a path with a space>'`, as printed, runs through bash."""
    sheet = tmp_path / "night run; 1.csv"
    shutil.copyfile(SAMPLE, sheet)
    line = invoked.command((sys.executable, "-m", "batch"), "validate", sheet)
    done = subprocess.run(
        ["bash", "-c", line], capture_output=True, text=True, cwd=Path(__file__).parents[1]
    )
    assert done.returncode == 0, done.stderr
    assert "40 rows read, 40 valid" in done.stdout
