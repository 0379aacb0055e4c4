"""The error budget: stop starting rows once failed rows exceed it; shown in every summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from batch.cli import app
from batch.engine.guards import BudgetWatch
from batch.engine.stop import StopReason, StopToken
from batch.errors import UsageError
from batch.model import Outcome, RowResult
from batch.settings import ErrorBudget
from tests.conftest import StartSandbox

HEADER = "routing_id,for_inbound_call,for_outbound_call,status,outbound_sip_trunk_id"


def row(n: int, failed: bool) -> RowResult:
    outcome = Outcome.FAILED if failed else Outcome.SUCCEEDED
    return RowResult(row=n, routing_id=str(n), outcome=outcome, http_status=200, attempts=1)


def feed(watch: BudgetWatch, pattern: list[bool]) -> None:
    for n, failed in enumerate(pattern, start=1):
        watch.row_finished(row(n, failed))


@pytest.mark.parametrize(
    ("text", "budget"),
    [("5%", ErrorBudget(percent=5.0)), ("2.5 %", ErrorBudget(percent=2.5)),
     ("10", ErrorBudget(count=10)), (0, ErrorBudget(count=0))],
)  # fmt: skip
def test_budget_forms_parse(text: str | int, budget: ErrorBudget) -> None:
    """A share ends in %, a count is a whole number (TOML may give it as an integer)."""
    assert ErrorBudget.parse(text) == budget


@pytest.mark.parametrize("text", ["", "five", "100%", "-1", "1.5", "5%%"])
def test_bad_budgets_say_both_forms(text: str) -> None:
    """Anything else is a usage error showing both forms."""
    with pytest.raises(UsageError, match=r"like 5%.*like 10"):
        ErrorBudget.parse(text)


def test_share_is_over_the_last_100_finished_rows() -> None:
    """5 failed in the last 100 is within 5%; the 6th failure in the window exceeds it."""
    stop = StopToken()
    watch = BudgetWatch(ErrorBudget(percent=5.0), stop)
    # While fewer than 100 rows have finished, all of them count: a first failure is 100%.
    feed(watch, [True])
    assert stop.first is not None
    stop = StopToken()
    watch = BudgetWatch(ErrorBudget(percent=5.0), stop)
    feed(watch, [False] * 95 + [True] * 5)
    assert not stop.requested
    assert watch.describe() == "error budget: 5% of last 100: 5% used"
    feed(watch, [True])
    assert stop.first is not None
    assert stop.first.reason == StopReason.ERROR_BUDGET
    assert not stop.first.hard  # in-flight rows finish


def test_old_failures_leave_the_window() -> None:
    """Failures more than 100 finished rows ago no longer count against the share."""
    stop = StopToken()
    watch = BudgetWatch(ErrorBudget(percent=5.0), stop)
    feed(watch, [False] * 95 + [True] * 5 + [False] * 100)
    assert watch.share == 0.0
    feed(watch, [True] * 5)
    assert not stop.requested


def test_count_form_counts_every_failure() -> None:
    """A count budget of 3: the 4th failed row stops the run, however many succeeded."""
    stop = StopToken()
    watch = BudgetWatch(ErrorBudget(count=3), stop)
    feed(watch, [False] * 500 + [True] * 3)
    assert not stop.requested
    assert watch.describe() == "error budget: 3 failed rows: 3 used"
    feed(watch, [True])
    assert stop.requested


def test_off_never_stops_and_says_off() -> None:
    """Without a budget nothing stops the run and the summary says "error budget: off"."""
    stop = StopToken()
    watch = BudgetWatch(None, stop)
    feed(watch, [True] * 50)
    assert not stop.requested
    assert watch.describe() == "error budget: off"


# -- end to end against a sandbox that answers 404 for part of the ids -----------------------


def write_input(path: Path, n: int) -> Path:
    rows = [f"{1000 + r},1,2,1,{r + 500}" for r in range(1, n + 1)]
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def invoke(sandbox: Any, source: Path, out: Path, *extra: object) -> Any:
    args = ["run", source, "--base-url", sandbox.base_url, "--results", out, "--rate", "500/s",
            "--concurrency", "1", *extra]  # fmt: skip
    env = {"VOCOBASE_API_KEY": sandbox.api_key, "REROUTE_BASE_URL": ""}
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


@pytest.mark.slow
def test_budget_halts_a_run_against_404s(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """Every 4th id answers 404 (25% failed) against a 10% budget: exit 3, the rest not sent."""
    missing = frozenset(1000 + r for r in range(4, 61, 4))
    sandbox = start_sandbox(not_found_ids=missing)
    out = tmp_path / "out.csv"
    result = invoke(sandbox, write_input(tmp_path / "in.csv", 60), out, "--error-budget", "10%")
    assert result.exit_code == 3, result.output
    frame = pl.read_csv(out, infer_schema=False)
    # Row 4 fails first: 1 of 4 finished = 25% > 10%, so nothing after it starts.
    assert frame["outcome"].to_list()[:4] == ["succeeded"] * 3 + ["failed"]
    assert set(frame["outcome"].to_list()[4:]) == {"not_attempted"}
    assert "error budget exceeded" in result.stdout
    assert "error budget: 10% of last 100: 25% used" in result.stdout
    assert sandbox.stats()["total"] == 4


@pytest.mark.slow
def test_count_budget_against_404s(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """A budget of 2 failed rows: the third 404 stops the run (exit 3)."""
    missing = frozenset(1000 + r for r in range(4, 61, 4))
    sandbox = start_sandbox(not_found_ids=missing)
    out = tmp_path / "out.csv"
    result = invoke(sandbox, write_input(tmp_path / "in.csv", 60), out, "--error-budget", "2")
    assert result.exit_code == 3, result.output
    assert sandbox.stats()["total"] == 12
    assert "error budget: 2 failed rows: 3 used" in result.stdout


@pytest.mark.slow
def test_summary_says_off_by_default(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """Without --error-budget, 404s do not stop the run (exit 1) and the summary says off."""
    sandbox = start_sandbox(not_found_ids=frozenset({1002}))
    out = tmp_path / "out.csv"
    result = invoke(sandbox, write_input(tmp_path / "in.csv", 5), out)
    assert result.exit_code == 1, result.output
    assert "error budget: off" in result.stdout


def test_bad_budget_flag_is_exit_2(tmp_path: Path) -> None:
    """An unreadable --error-budget is one line naming the flag, exit 2."""
    source = write_input(tmp_path / "in.csv", 2)
    result = CliRunner().invoke(app, ["run", str(source), "--sandbox", "--error-budget", "lots"])
    assert result.exit_code == 2
    assert "--error-budget" in result.stderr


@pytest.mark.slow
def test_json_summary_carries_the_budget(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """--log-format json: the summary object has the budget as values and the stop reason."""
    sandbox = start_sandbox(not_found_ids=frozenset({1001}))
    out = tmp_path / "out.csv"
    result = invoke(sandbox, write_input(tmp_path / "in.csv", 5), out, "--error-budget", "0",
                    "--log-format", "json")  # fmt: skip
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["stop_reason"] == "error_budget"
    assert summary["error_budget"] == {
        "percent": None, "rows": 0, "window_rows": 100, "finished_rows": 1, "failed_rows": 1,
        "failed_percent": 100.0, "exceeded": True,
    }  # fmt: skip
