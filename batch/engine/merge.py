"""Every row's final word: the rows as they stood before sending, merged with the journal.

Rows are matched by row number, never by position (a results file sorted in a spreadsheet
merges the same). An outcome only moves forward: a ``succeeded`` row stays ``succeeded``
whichever side says so, and ``attempts`` is never less than either side counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from batch.journal.journal import Journal
from batch.model import RETRYABLE_OUTCOMES, Outcome, RowResult

ALREADY_APPLIED: Final = "ALREADY_APPLIED"  # error_code of a row the memory left out


def later(base: RowResult, record: RowResult) -> RowResult:
    """The row's word when ``base`` (the input's verdict, or an earlier results file) and the
    journal's ``record`` both speak: the record, unless that would undo a success."""
    if base.outcome is Outcome.INVALID or base.outcome is Outcome.SKIPPED:
        return base
    attempts = max(base.attempts, record.attempts)
    if base.outcome is Outcome.SUCCEEDED and record.outcome is not Outcome.SUCCEEDED:
        return base._replace(attempts=attempts)
    moments = [m for m in (base.started_at, record.started_at) if m is not None]
    started = min(moments) if moments else None
    # routing_id as the user wrote it (the journal has the parsed integer).
    return record._replace(routing_id=base.routing_id, attempts=attempts, started_at=started)


def merge_results(base: Iterable[RowResult], journal: Journal) -> Iterator[RowResult]:
    """One result per row of ``base`` (every input row, in row order), the journal's record
    merged in by row number (:func:`later`). Streams: both sides are read in row order."""
    records = journal.results()
    record = next(records, None)
    for row in base:
        while record is not None and record.row < row.row:
            record = next(records, None)  # a journal row the base does not have: ignore
        if record is None or record.row != row.row:
            yield row
        else:
            yield later(row, record)


@dataclass
class Summary:
    """Counts per outcome and the top error codes, tallied while the results are written."""

    counts: Counter[Outcome] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    examples: dict[str, RowResult] = field(default_factory=dict)
    left: int = 0  # rows a resume would still send (not attempted, unknown, key or pause)
    already_applied: int = 0  # skipped rows an earlier run of the results path applied

    def tally(self, results: Iterable[RowResult]) -> Iterator[RowResult]:
        """Pass ``results`` through unchanged, counting them."""
        for result in results:
            self.counts[result.outcome] += 1
            if result.outcome is not Outcome.INVALID and not result.decided:
                self.left += 1
            if result.outcome is Outcome.SKIPPED:
                self.already_applied += result.error_code == ALREADY_APPLIED
            elif result.outcome is not Outcome.SUCCEEDED and result.error_code:
                for code in result.error_code.split(";"):
                    self.codes[code] += 1
                    self.examples.setdefault(code, result)
            yield result

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def all_succeeded(self) -> bool:
        """Every row succeeded, or was left out on purpose (skipped)."""
        return self.counts[Outcome.SUCCEEDED] + self.counts[Outcome.SKIPPED] == self.total

    @property
    def retryable(self) -> int:
        """Rows `reroute retry` would send again."""
        return sum(self.counts[o] for o in RETRYABLE_OUTCOMES)

    def top_codes(self, n: int = 5) -> list[tuple[str, int, RowResult]]:
        return [(code, k, self.examples[code]) for code, k in self.codes.most_common(n)]
