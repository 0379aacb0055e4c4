"""The rollback file: the current values of every record a change would alter.

Written in the input format (the input columns, CSV/Parquet/JSON lines by extension) so that
``reroute run ROLLBACK`` puts every changed record back as the snapshot had it. Rows judged
``no_change`` are left out (nothing to undo), and so are ``unknown_record`` rows (there is no
known state to go back to).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from batch import voicelink as vl
from batch.errors import InputFileError
from batch.prepare.current import Diff, Verdict, current_name
from batch.sheets.load import CSV_EXTENSIONS, JSONL_EXTENSIONS, PARQUET_EXTENSIONS
from batch.sheets.results import atomic_file

# Rows a rollback file restores: the ones whose update alters the record.
RESTORED = (Verdict.CHANGE, Verdict.WIPES)


def rollback_frame(diff: Diff, include: pl.Series | None = None) -> pl.DataFrame:
    """The records to restore (input columns, input order): rows judged change or wipes, and
    among those only where ``include`` is True (say, the rows a run will actually send)."""
    mask = diff.mask(*RESTORED)
    if include is not None:
        mask = mask & include.fill_null(False)
    return diff.frame.filter(mask).select(
        pl.col("id").alias(vl.ROUTING_ID),
        *[pl.col(current_name(field)).alias(field) for field in vl.BODY_FIELDS],
    )


def write_rollback(path: Path | str, diff: Diff, include: pl.Series | None = None) -> int:
    """Write the rollback file atomically; return how many records it restores.

    The runner writes it before the first request is sent, with ``include`` = the rows it
    sends (``Gate.send_mask()``), so a refused or skipped row is not "rolled back".
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CSV_EXTENSIONS | PARQUET_EXTENSIONS | JSONL_EXTENSIONS:
        raise InputFileError(
            path,
            f"unknown rollback file type {path.suffix or '(no extension)'!r}: "
            "use .csv, .parquet, .jsonl or .ndjson",
        )
    frame = rollback_frame(diff, include)
    with atomic_file(path) as file:
        if suffix in CSV_EXTENSIONS:
            frame.write_csv(file)
        elif suffix in PARQUET_EXTENSIONS:
            frame.write_parquet(file)
        else:
            frame.write_ndjson(file)
    return frame.height
