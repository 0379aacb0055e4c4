"""`status`, `report` and `retry` given odd paths: one clear line and exit 2, never a traceback
(issue 28, item 9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ODD = (".", "/", "..", "a-folder", "missing.results.csv", "notes.txt", "pipe.csv")


def reroute(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "VOCOBASE_API_KEY": "", "REROUTE_BASE_URL": ""},
    )


@pytest.fixture
def odd_places(tmp_path: Path) -> Path:
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "notes.txt").write_text("not a results file\n")
    os.mkfifo(tmp_path / "pipe.csv")
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("command", ["status", "report"])
@pytest.mark.parametrize("path", ODD)
def test_any_path_is_one_line_and_exit_2(odd_places: Path, command: str, path: str) -> None:
    """`status PATH` and `report PATH`: a folder, a missing file, a file that is not a results
    file, a FIFO: exit 2, one stderr line naming the path, nothing written, no traceback."""
    before = sorted(p.name for p in odd_places.iterdir())
    done = reroute(command, path, cwd=odd_places)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"reroute: {path}:")
    assert done.stdout == ""
    assert sorted(p.name for p in odd_places.iterdir()) == before


@pytest.mark.slow
@pytest.mark.parametrize("path", [".", "/", "a-folder"])
def test_a_folder_is_named_as_a_folder(odd_places: Path, path: str) -> None:
    """A folder (`.`, `/`) is said to be one, with what to give instead."""
    for command in ("status", "report", "retry"):
        done = reroute(command, path, cwd=odd_places)
        assert done.returncode == 2, done.stderr
        assert "is a folder: give the results file of a run" in done.stderr
