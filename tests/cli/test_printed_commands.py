"""The resume and retry lines a run prints run as printed (issue 25): pasted into a shell, under
each way of starting reroute, they continue the same run, never "command not found" (127)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import polars as pl
import pytest
from typer.testing import CliRunner

from batch.cli import app
from batch.cli.sandbox_cmd import _try_line
from batch.config.resolve import for_run
from batch.prepare.batch import batch_for_run
from tests.cli.test_run import write_input
from tests.conftest import StartSandbox

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# The ways an operator starts reroute, and how the lines it prints must start.
WAYS = {
    "uv run reroute": (["uv", "run", "reroute"], "uv run reroute "),
    "uv run python -m batch": (["uv", "run", "python", "-m", "batch"], "uv run python -m batch "),
    # A venv not activated: its programs are not on PATH, so only their full paths run.
    "the venv's reroute": ([str(VENV_BIN / "reroute")], f"{VENV_BIN / 'reroute'} "),
    "python -m batch": ([sys.executable, "-m", "batch"], f"{sys.executable} -m batch "),
}


def _environment(way: str, key: str) -> dict[str, str]:
    """The shell's environment: under uv, uv's own (it sets UV for reroute); otherwise no uv
    and the venv not activated (its bin/ off PATH)."""
    env = {k: v for k, v in os.environ.items() if k not in ("REROUTE_BASE_URL", "UV")}
    env["VOCOBASE_API_KEY"] = key
    if not way.startswith("uv "):
        env.pop("VIRTUAL_ENV", None)
        dirs = env.get("PATH", "").split(os.pathsep)
        env["PATH"] = os.pathsep.join(d for d in dirs if Path(d) != VENV_BIN)
    return env


def _line(pattern: str, output: str) -> str:
    found = re.search(pattern, output)
    assert found, output
    return found.group(1)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.skipif(sys.platform == "win32", reason="quoted for cmd.exe and PowerShell there")
@pytest.mark.parametrize("way", list(WAYS))
def test_the_printed_resume_and_retry_lines_run_verbatim(
    way: str, start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """A run stopped by its canary prints a resume line; pasted, it continues the run (exit 1:
    the canary's row failed); the retry line it then prints sends that row again (exit 0)."""
    if way.startswith("uv ") and shutil.which("uv") is None:
        pytest.skip("uv is not on PATH")
    sandbox = start_sandbox(script={1001: ("404",)})  # the first row fails once
    folder = tmp_path / "night run; 1"  # a space and a shell separator in every path
    folder.mkdir()
    source = write_input(folder / "changes.csv", 5)
    results = folder / "out.csv"
    start, prefix = WAYS[way]
    env = _environment(way, sandbox.api_key)
    cwd = ROOT if way.startswith("uv ") else tmp_path  # uv finds the project from here

    def shell(line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", line], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
        )

    first = subprocess.run(
        [*start, "run", str(source), "--base-url", sandbox.base_url, "--results", str(results),
         "--canary", "1", "--rate", "200/s", "--no-report"],
        env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert first.returncode == 3, first.stdout + first.stderr
    resume = _line(r"to resume, run the same command again: (.+)", first.stdout)
    assert resume.startswith(prefix), resume
    assert sandbox.stats()["total"] == 1

    resumed = shell(resume)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr  # not 127: it ran
    stats = sandbox.stats()["by_routing_id"]
    assert {rid: stats.get(str(rid), stats.get(rid)) for rid in range(1001, 1006)} == dict.fromkeys(
        range(1001, 1006), 1
    )  # the same run: rows 2-5 sent once, the canary's failed row not again
    retry = _line(r"did not succeed again: (.+)", resumed.stdout)
    assert retry.startswith(prefix), retry

    retried = shell(retry)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    frame = pl.read_csv(results, infer_schema=False)
    assert set(frame["outcome"]) == {"succeeded"}
    assert frame.filter(pl.col("row") == "1")["attempts"].to_list() == ["2"]
    assert sandbox.stats()["total"] == 6


# -- the other commands reroute prints, started as `uv run` starts it (in process) ----------

UV = {"UV": "/usr/bin/uv", "VOCOBASE_API_KEY": None, "REROUTE_BASE_URL": None}
SAMPLES = ROOT / "samples"
JOB_HEADER = "routing_id,for_inbound_call,for_outbound_call,status,inbound_sip_trunk_id\n"


def _invoke(*args: str | Path) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args], env=UV)


def test_the_plans_rollback_line_runs_as_printed(tmp_path: Path) -> None:
    """plan --rollback: the command that applies the file starts as `uv run` started this one
    and keeps a path with a space in one argument."""
    rollback = tmp_path / "undo it.csv"
    done = _invoke("plan", SAMPLES / "routing-changes.csv", "--current",
                   SAMPLES / "routing-current.csv", "--rollback", rollback)  # fmt: skip
    line = _line(r"`([^`]+)` puts them back", done.stdout)
    assert shlex.split(line) == ["uv", "run", "reroute", "run", str(rollback)]


def test_the_runs_rollback_note_runs_as_printed(tmp_path: Path) -> None:
    """The note a run gives when it writes its rollback file names the command, as started."""
    rollback = tmp_path / "undo it.csv"
    given = {"input": SAMPLES / "routing-changes.csv", "results": tmp_path / "out.csv",
             "current": SAMPLES / "routing-current.csv", "rollback": rollback,
             "allow_wipe": True}  # fmt: skip
    settings, _, _ = for_run(given, {}, sandbox=True, job=None)
    batch, _ = batch_for_run(settings, started=("python", "-m", "batch"))
    assert batch.before_sending is not None
    line = _line(r"`([^`]+)` puts them back", batch.before_sending())
    assert shlex.split(line) == ["python", "-m", "batch", "run", str(rollback)]


def test_retry_of_a_job_file_names_the_run_as_started(tmp_path: Path) -> None:
    """`retry JOB.toml` is refused with the command that runs the job, as started."""
    job = tmp_path / "night job.toml"
    job.write_text('input = "in.csv"\n')
    done = _invoke("retry", job)
    assert done.exit_code == 2
    line = _line(r"`([^`]+)` runs \(and resumes\) it", done.stderr)
    assert shlex.split(line) == ["uv", "run", "reroute", "run", str(job)]


def test_jobs_checks_hint_runs_as_printed(tmp_path: Path) -> None:
    """More invalid rows than jobs check lists: the validate command that lists them all, as
    started, reading the input as the job does (its separator)."""
    data = tmp_path / "night rows.csv"
    data.write_text(JOB_HEADER.replace(",", ";") + "".join(f"{n};2;4;1;\n" for n in range(1, 8)))
    job = tmp_path / "night.toml"
    job.write_text(f'input = "{data.name}"\nseparator = ";"\n[safety]\nrows_are_complete = true\n')
    done = _invoke("jobs", "check", job)
    assert done.exit_code == 1, done.output
    line = _line(r"\((.+) --results PATH lists them all\)", done.stdout)
    assert shlex.split(line) == [
        "uv", "run", "reroute", "validate", str(data), "--separator", ";"
    ]  # fmt: skip


def test_status_of_a_job_never_run_names_the_run_as_started(tmp_path: Path) -> None:
    """status JOB.toml before its first run: the command that starts it, as started."""
    (tmp_path / "in.csv").write_text(JOB_HEADER + "1,1,4,1,\n")
    job = tmp_path / "night job.toml"
    job.write_text('input = "in.csv"\n')
    done = _invoke("status", job)
    assert done.exit_code == 2
    line = _line(r"`([^`]+)` starts it", done.stderr)
    assert shlex.split(line) == ["uv", "run", "reroute", "run", str(job)]


def test_the_sandboxs_try_line_runs_as_printed() -> None:
    """The sandbox's "try" line sets the variables and starts reroute as this one started."""
    sandbox = cast(Any, SimpleNamespace(base_url="http://127.0.0.1:8787/api/v2", api_key="k"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UV", "/usr/bin/uv")
        line = _try_line(sandbox)
    assert shlex.split(line) == [
        "REROUTE_BASE_URL=http://127.0.0.1:8787/api/v2", "VOCOBASE_API_KEY=k",
        "uv", "run", "reroute", "run", "FILE",
    ]  # fmt: skip


def test_the_refusal_for_want_of_a_replace_choice_names_plan_as_started(tmp_path: Path) -> None:
    """A job for a real host with neither a snapshot nor the statement: jobs check's problem
    names the plan command the way reroute was started."""
    (tmp_path / "in rows.csv").write_text(JOB_HEADER + "1,1,4,1,\n")
    job = tmp_path / "night.toml"
    job.write_text('input = "in rows.csv"\n')
    done = _invoke("jobs", "check", job)
    assert done.exit_code == 2, done.output
    line = _line(r"To see what would change: (.+) --current SNAPSHOT", done.stdout)
    assert shlex.split(line) == ["uv", "run", "reroute", "plan", str(tmp_path / "in rows.csv")]
