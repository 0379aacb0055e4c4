"""What the import contracts (pyproject.toml, `lint-imports`) cannot say: what `--help` loads."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
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
