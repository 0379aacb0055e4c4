"""The command line stays a thin edge: no polars, no journal, no orchestration below it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parents[1] / "batch" / "cli"
# What batch/cli/ must not import, at any depth of a function: the data and the run's state
# belong to the stages (style.md: "no CLI module that opens a journal or reads a DataFrame").
FORBIDDEN = ("polars", "sqlite3", "batch.journal", "batch.maplog", "batch.rowloop")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CLI.glob("*.py")), ids=lambda p: p.name)
def test_cli_modules_import_no_data_or_run_state(path: Path) -> None:
    """No batch/cli module imports polars, the journal or the row loop, even lazily."""
    bad = [name for name in _imports(path) if name.startswith(FORBIDDEN)]
    assert bad == []


def test_help_imports_neither_polars_nor_rich_nor_the_engine() -> None:
    """`reroute --help` loads only what it shows (start-up time): no polars, rich, httpx."""
    code = (
        "import sys; from batch.cli import main; sys.argv = ['reroute', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('polars', 'rich', 'httpx', 'batch.engine') if m in sys.modules]\n"
        "print('loaded:', ','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "loaded:"
