"""What each row's request does to its record: the facts the question before a real run states.

The update replaces the whole record. Against a snapshot (``--current``) each row's verdict says
whether its record changes, how many values it erases (a wipe sent with ``--allow-wipe``) and
whether the record is in the snapshot at all (batch.prepare.current). Without one, only the rows
are known: a row that sends no connection id erases whatever connection id its record holds.

The facts are a table by row number, one byte a row (a million rows: 1 MB), so the engine can
count them over exactly the rows an invocation sends (a resume sends fewer than the batch).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl

from batch import voicelink as vl
from batch.prepare.current import Diff, Verdict, sent_connection
from batch.prepare.validate import Validation

# One byte a row: bit 0 the record changes, bit 1 the record is not in the snapshot, and the
# values the row erases from bit 2 up (at most the body's 8 fields).
_CHANGES: Final = 1
_UNKNOWN: Final = 2
_CLEARED_SHIFT: Final = 2


@dataclass(frozen=True, slots=True)
class Tally:
    """The facts counted over the rows an invocation sends.

    With a snapshot: ``changing`` records change, ``unknown`` are not in it, ``cleared`` values
    are erased. Without one (``changing`` None): ``cleared`` rows send no connection id.
    """

    changing: int | None
    unknown: int
    cleared: int


@dataclass(frozen=True, slots=True)
class Effects:
    """What each row's request does to its record, by row number (see the module docstring)."""

    snapshot: Path | None  # None: judged from the rows alone
    table: bytes  # index: row number

    def tally(self, rows: Iterable[int]) -> Tally:
        """The facts over ``rows`` (row numbers this table knows)."""
        changing = unknown = cleared = 0
        for row in rows:
            facts = self.table[row]
            changing += facts & _CHANGES
            unknown += (facts & _UNKNOWN) >> 1
            cleared += facts >> _CLEARED_SHIFT
        return Tally(changing if self.snapshot is not None else None, unknown, cleared)


def judged(diff: Diff) -> Effects:
    """The facts of every row against the snapshot (rows not sent are never counted)."""
    verdict = pl.col("verdict")
    facts = diff.frame.select(
        "row",
        (
            verdict.is_in([Verdict.CHANGE.value, Verdict.WIPES.value]).cast(pl.UInt8)
            | (verdict == Verdict.UNKNOWN_RECORD.value).cast(pl.UInt8) * _UNKNOWN
            | pl.col("wipes").list.len().cast(pl.UInt8) * (1 << _CLEARED_SHIFT)
        )
        .fill_null(0)
        .alias("facts"),
    )
    return Effects(diff.snapshot, _by_row(facts))


def unjudged(v: Validation) -> Effects:
    """Without a snapshot: the rows that send no connection id (each erases the record's)."""
    sent = v.connections.select(sent_connection(v.default_connection_id)).get_column(
        vl.CONNECTION_ID
    )
    facts = v.judged.select("row").with_columns(
        pl.Series("facts", sent.is_null().cast(pl.UInt8) * (1 << _CLEARED_SHIFT))
    )
    return Effects(None, _by_row(facts))


def _by_row(facts: pl.DataFrame) -> bytes:
    """``row, facts`` as bytes indexed by row number (only rows with facts are written)."""
    found = facts.filter(pl.col("facts") != 0)
    last = facts.select(pl.col("row").max().fill_null(0)).item()
    table = bytearray(int(last) + 1)
    for row, value in found.iter_rows():
        table[row] = value
    return bytes(table)
