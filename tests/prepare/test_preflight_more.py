"""The preflight asked for again: a resumed run that re-reads the lists, and `jobs check
--account` running the same check in CI with the key a job names."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import StartSandbox
from tests.prepare.test_preflight import bots, invoke, run, write_rows


@pytest.mark.slow
def test_a_resumed_run_rereads_the_lists_when_asked(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """--recheck-account reads the lists again instead of the ones the run kept."""
    sandbox = start_sandbox(bots=bots(3), script={12: ("503", "503")})
    source = write_rows(tmp_path / "in.csv", ["11,1,3,1,,,,2,", "12,1,3,1,,,,3,"])
    out = tmp_path / "out.csv"
    first = run(sandbox, source, out, "--account-check", "--max-attempts", "2")
    assert first.exit_code == 1, first.output
    assert sandbox.stats()["lists"] == {"connections": 1, "bots": 1}
    again = invoke("retry", str(out), "--account-check", "--recheck-account",
                   key=sandbox.api_key)  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "are reused" not in again.output
    assert sandbox.stats()["lists"] == {"connections": 2, "bots": 2}


def write_job(folder: Path, base_url: str, rows: list[str]) -> Path:
    write_rows(folder / "in.csv", rows)
    job = folder / "job.toml"
    job.write_text(
        f'input = "in.csv"\n[target]\nbase_url = "{base_url}"\napi_key_env = "CI_READ_KEY"\n'
        '[pace]\nrate = "200/s"\n'
    )
    return job


@pytest.mark.slow
def test_jobs_check_account_judges_rows_with_the_jobs_key(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """`jobs check --account` reads the lists with the job's key variable and reports the rows
    the account rejects (exit 1), sending no update."""
    sandbox = start_sandbox(bots=bots(3))
    job = write_job(tmp_path, sandbox.base_url, ["11,1,3,1,,,,2,", "12,1,3,1,,,,9,"])
    from typer.testing import CliRunner

    from batch.cli import app

    env = {"CI_READ_KEY": sandbox.api_key, "VOCOBASE_API_KEY": "", "REROUTE_BASE_URL": ""}
    result = CliRunner().invoke(app, ["jobs", "check", "--account", str(job)], env=env)
    assert result.exit_code == 1, result.output
    assert "UNKNOWN_BOT" in result.output
    assert "account check:" in result.output
    assert sandbox.stats()["lists"] == {"connections": 1, "bots": 1}
    assert sandbox.stats()["total"] == 0
    plain = CliRunner().invoke(app, ["jobs", "check", str(job)], env=env)
    assert plain.exit_code == 0, plain.output  # without --account the rows are well formed
    missing = CliRunner().invoke(
        app, ["jobs", "check", "--account", str(job)], env={**env, "CI_READ_KEY": ""}
    )
    assert missing.exit_code == 2
    assert "set CI_READ_KEY" in missing.output


def test_the_resume_command_keeps_no_account_check() -> None:
    """A check switched off on purpose stays off in the printed resume command."""
    from batch.cli.terminal import command_line

    assert command_line("run", "in.csv", {"account_check": False}) == (
        "reroute run in.csv --no-account-check"
    )
    assert command_line("run", "in.csv", {"account_check": None}) == "reroute run in.csv"


def test_a_retried_row_the_account_rejects_keeps_its_history() -> None:
    """A row sent before and rejected by the account check on retry stays failed with its
    attempts; a row never sent becomes invalid."""
    from datetime import UTC, datetime

    import polars as pl

    from batch.model import Call, Outcome, RowResult
    from batch.prepare.batch import Batch
    from batch.prepare.plan import Plan
    from batch.prepare.preflight import reject

    first = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    sent = RowResult(1, "11", Outcome.FAILED, 503, 2, "HTTP_503", "gateway", "{}", "", first)
    never = RowResult(2, "12", Outcome.NOT_ATTEMPTED, request="{}")
    calls = (Call(1, 11, "{}"), Call(2, 12, "{}"))
    batch = Batch(Plan(calls, (sent, never)), pl.DataFrame())
    errors = pl.DataFrame(
        {"row": [1, 2], "error_code": ["UNKNOWN_BOT"] * 2, "error_message": ["bot 9"] * 2}
    )
    judged = reject(batch, errors)
    old, new = judged.plan.base()
    assert (old.outcome, old.attempts, old.started_at) == (Outcome.FAILED, 2, first)
    assert old.error_code == "UNKNOWN_BOT"
    assert new.outcome is Outcome.INVALID
    assert judged.plan.calls == ()
    assert judged.candidates == 0
