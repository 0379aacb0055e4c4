"""What a run's results file holds, counted from its journal: rows per outcome and requests.

One definition for ``reroute status``, ``reroute report`` and ``run.json``, so the three never
disagree with each other or with the results file:

- **Rows**: the journal has a record for every row ever sent; the candidates without one are
  ``not_attempted``, and the rows the run never sends (invalid, skipped, and a retry's rows that
  succeeded before) are the ``others`` meta key, per outcome, stored as the run starts.
- **Requests**: the results file's ``attempts`` add up to the requests of this results path's
  audit trail (its attempts file) plus those recorded before it (``carried_requests``): a retry
  written to another results file counts on from the attempts of the file it retried, and its
  trail holds only its own requests.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from batch.journal.rowrecords import stamp
from batch.model import Outcome, RowResult

# Meta keys of the journal, stored by batch.engine.runjournal.remember as an invocation starts a
# run.
OTHERS_KEY: Final = "others"  # rows of the results file the run never sends, per outcome
CANDIDATES_KEY: Final = "candidates"  # rows the run may send
CARRIED_KEY: Final = "carried_requests"  # requests recorded before this journal's trail


def later(a: RowResult, b: RowResult) -> RowResult:
    """The later of two records of one row: more attempts, or as many and a final outcome
    (an outcome only moves forward; attempts only accumulate). Ties go to ``b``."""
    return a if _progress(a) > _progress(b) else b


def _progress(result: RowResult) -> tuple[int, bool]:
    return result.attempts, result.outcome is not Outcome.UNKNOWN


@dataclass
class Tally:
    outcomes: Counter[str] = field(default_factory=Counter)
    resend: int = 0
    attempts: int = 0
    recent: int = 0  # rows decided since the current rate's start
    active: int = 0  # rows decided since the segment's active start

    def add(self, result: RowResult, sign: int, recent: int, active: int) -> None:
        """Count ``result`` in (``sign`` 1) or out (-1); ``recent`` and ``active`` are the
        thresholds of ``self.recent`` and ``self.active`` (microseconds since the epoch)."""
        outcome = result.outcome
        self.outcomes[outcome.value] += sign
        self.resend += sign * (outcome is Outcome.FAILED and not result.decided)
        self.attempts += sign * result.attempts
        finished = stamp(result.finished_at)
        if finished is not None and outcome is not Outcome.UNKNOWN:
            self.recent += sign * (finished >= recent)
            self.active += sign * (finished >= active)


def others_of(text: str | None) -> dict[str, int] | None:
    """The ``others`` meta key: rows of the results file the run never sends, per outcome."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    known = {o.value for o in Outcome}
    if not isinstance(data, dict):
        return None
    return {k: int(v) for k, v in data.items() if k in known and isinstance(v, int)}


def rows_of(
    recorded: Mapping[str, int], candidates: int | None, others: Mapping[str, int] | None
) -> tuple[dict[str, int | None], int | None]:
    """Rows per outcome as the results file will have them, and the total (None: unknown),
    from the journal's records per outcome. Candidates without a record are not_attempted;
    ``others`` are the rows the run never sends (without it, invalid is unknown)."""
    outcomes: dict[str, int | None] = {o.value: recorded.get(o.value, 0) for o in Outcome}
    found = sum(recorded.values())
    sent_at_most = found if candidates is None else candidates
    # Recorded not_attempted: rows only ever answered 429 when the run stopped (a 429 is never
    # a row's failure); the rest never had a record.
    outcomes[Outcome.NOT_ATTEMPTED] = recorded.get(Outcome.NOT_ATTEMPTED.value, 0) + max(
        0, sent_at_most - found
    )
    total = None
    if others is None:
        outcomes[Outcome.INVALID] = None
    else:
        for outcome, n in others.items():
            outcomes[outcome] = (outcomes[outcome] or 0) + n
        total = max(sent_at_most, found) + sum(others.values())
    return outcomes, total


def count(
    tally: Tally, candidates: int | None, others: Mapping[str, int] | None
) -> tuple[dict[str, int | None], int | None, int]:
    """Rows per outcome as the results file will have them (:func:`rows_of`), the total
    (None: unknown) and the rows decided."""
    outcomes, total = rows_of(tally.outcomes, candidates, others)
    decided = Outcome.SUCCEEDED, Outcome.SKIPPED, Outcome.FAILED
    done = sum(tally.outcomes[o.value] for o in decided) - tally.resend
    return outcomes, total, done


def carried_of(meta: Mapping[str, str]) -> int:
    """Requests the results file counts from before this journal's trail (0 when none: a run,
    a retry in place, or a journal of an older reroute)."""
    try:
        return max(0, int(meta.get(CARRIED_KEY) or 0))
    except ValueError:
        return 0


def requests(meta: Mapping[str, str], in_trail: int) -> int:
    """Every request ever sent for the rows of the results file (the sum of its ``attempts``):
    those of the trail and those carried from before it."""
    return carried_of(meta) + in_trail
