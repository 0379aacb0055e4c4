"""Past runs of a results path, kept: a new run there moves the previous one's files aside.

When a new input starts a new run at the same results path (its previous run finished, was
abandoned, or ``--fresh`` was confirmed), the previous results file and whatever reroute wrote
beside it under the same name (``<results>.attempts.csv``, ``<results>.run.json``, the report)
move to ``<results dir>/<stem>.runs/<start time>/``, with ``run.json`` saying what that run
was. The oldest are removed beyond ``--keep-runs`` (30 by default): disk use stays bounded.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from batch.paths import FORMATS, default_path

KEEP_RUNS: Final = 30
# Files beside the results file that belong to the journal or the lock, never archived.
_STAYS: Final = (".journal", ".journal-wal", ".journal-shm", ".journal-log", ".lock")


def runs_folder(results: Path) -> Path:
    """Where the past runs of ``results`` are kept."""
    return results.parent / f"{results.stem}.runs"


def archive(results: Path, *, started: str | None, about: dict[str, object], keep: int) -> Path:
    """Move the previous run's files aside (see the module docstring); returns its folder.

    ``started``: the previous run's start (ISO-8601), else the results file's modification
    time. ``about``: what ``run.json`` says of it (its settings, identity, counts).
    """
    when = started or _modified(results)
    folder = runs_folder(results) / when.replace(":", "-")
    n = 1
    while folder.exists():  # the same microsecond (a clock that went back): keep both
        n += 1
        folder = runs_folder(results) / f"{when.replace(':', '-')}-{n}"
    folder.mkdir(parents=True)
    reports = {default_path(results, fmt).name for fmt in FORMATS}
    for path in results.parent.iterdir():
        # out.csv's files, never out.csv2.csv's: the name, or the name and a dot
        named = path.name == results.name or path.name.startswith(f"{results.name}.")
        mine = named or path.name in reports
        if mine and path.is_file() and not path.name.endswith(_STAYS):
            os.replace(path, folder / path.name)
    (folder / "run.json").write_text(
        json.dumps(about, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    prune(results, keep)
    return folder


def prune(results: Path, keep: int) -> list[Path]:
    """Remove the oldest archived runs beyond ``keep``; returns what was removed."""
    folder = runs_folder(results)
    if not folder.is_dir():
        return []
    runs = sorted(p for p in folder.iterdir() if p.is_dir())
    gone = runs[: max(0, len(runs) - keep)]
    for path in gone:
        shutil.rmtree(path)
    return gone


def _modified(path: Path) -> str:
    if not path.exists():
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    moment = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
