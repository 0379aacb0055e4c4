"""How to undo the run: its rollback file, how many records it restores, the command to apply it.

``--rollback PATH`` (with ``--current``) writes, before the first request, every record the run
changes as the snapshot had it (batch.prepare.rollback); the run's segment records the file's
absolute path (batch.engine.runtrail.segment_start). Applying it is a run of it, to the same
target (:func:`batch.report.commands.rollback`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from batch.report import commands
from batch.report.data import Facts
from batch.sheets.load import JSONL_EXTENSIONS, PARQUET_EXTENSIONS


@dataclass(frozen=True)
class Undo:
    text: str
    path: str | None = None  # the rollback file, when the run wrote one
    records: int | None = None  # how many records it restores (None: not readable now)
    command: str | None = None


def undo(facts: Facts, started: Sequence[str]) -> Undo:
    path = facts.latest("rollback")
    if not path:
        if facts.meta.get("snapshot"):
            return Undo(
                "No rollback file was written (--rollback PATH writes one before the first "
                "request): the snapshot the run was given holds the old values."
            )
        return Undo(
            "No rollback file: without a snapshot of the records (--current) reroute does not "
            "know the values to put back."
        )
    records = _records(Path(path))
    if records is None:
        return Undo(
            f"The rollback file {path} is no longer there (or cannot be read): it was written "
            "before the first request; find it, then apply it with:",
            path,
            None,
            commands.rollback(facts, path, started),
        )
    return Undo(
        f"The rollback file {path} holds the {records:,} records this run was to change, as "
        "the snapshot had them (a record whose update failed is written back as it is). "
        "Applying it puts them back:",
        path,
        records,
        commands.rollback(facts, path, started),
    )


def _records(path: Path) -> int | None:
    """The rows of a rollback file (input format by extension), None when unreadable."""
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_EXTENSIONS:
            frame = pl.scan_parquet(path)
        elif suffix in JSONL_EXTENSIONS:
            frame = pl.scan_ndjson(path)
        else:
            frame = pl.scan_csv(path, infer_schema=False)
        return int(frame.select(pl.len()).collect().item())
    except (OSError, pl.exceptions.PolarsError):
        return None
