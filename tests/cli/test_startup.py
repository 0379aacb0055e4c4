"""Start-up: what `reroute validate` skips at each start, and that skipping it changes nothing.

The figures are in tests/benchmarks/bench_startup.py and docs/dev/benchmarks.md.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import batch.cli
from batch.cli import app

COMMANDS = ["jobs", "plan", "report", "retry", "run", "sandbox", "status", "validate"]


@pytest.fixture
def whole_app() -> Iterator[None]:
    commands, groups = list(app.registered_commands), list(app.registered_groups)
    yield
    app.registered_commands, app.registered_groups = commands, groups


def _shown(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "100"})
    return result.exit_code, result.output


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("tail", [["--help"], ["--no-such-flag"]])
def test_keeping_only_the_named_command_changes_nothing_it_prints(
    name: str, tail: list[str], whole_app: None
) -> None:
    assert len(app.registered_commands) + len(app.registered_groups) == len(COMMANDS)
    before = _shown([name, *tail])
    batch.cli._only_the_command_asked_for([name, *tail])
    assert len(app.registered_commands) + len(app.registered_groups) == 1
    assert _shown([name, *tail]) == before


@pytest.mark.parametrize("args", [[], ["--help"], ["--version"], ["validat", "x.csv"]])
def test_no_command_or_an_unknown_one_keeps_them_all(args: list[str], whole_app: None) -> None:
    batch.cli._only_the_command_asked_for(args)
    assert len(app.registered_commands) + len(app.registered_groups) == len(COMMANDS)


def test_shell_completion_keeps_them_all(whole_app: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_REROUTE_COMPLETE", "complete_bash")
    batch.cli._only_the_command_asked_for(["validate", "x.csv"])
    assert len(app.registered_commands) + len(app.registered_groups) == len(COMMANDS)


# batch.settings comes in (about 5 ms): validate's options take their help from the table of
# settings. Merging a run's settings (batch.config) stays out.
LEFT_OUT = [
    "batch.sheets.xlsxfast",
    "batch.prepare.current",
    "batch.config.resolve",
    "rich",
    "httpx",
]


@pytest.mark.slow
def test_validate_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    """The workbook writer, snapshots, run settings, the progress display and the network stay
    out of `reroute validate` of a CSV file (pydantic comes with typer's own coercion)."""
    sample = Path(__file__).parents[2] / "samples" / "routing-changes.csv"
    code = (
        "import sys\n"
        f"sys.argv = ['reroute', 'validate', {str(sample)!r}]\n"
        "from batch.cli import main\n"
        "try:\n    main()\nexcept SystemExit as end:\n    code = end.code\n"
        f"print([name for name in {LEFT_OUT!r} if name in sys.modules], code)\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert shown.stdout.splitlines()[-1] == "[] 0", shown.stdout + shown.stderr
