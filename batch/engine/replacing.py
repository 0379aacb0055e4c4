"""Safe by default against a real host: the update replaces the whole record.

A row that leaves a field empty erases it. So before a run or retry sends anything to a real
host (not the embedded sandbox, not loopback), the operator has said, once per run, how that is
handled: a snapshot of the current records (``--current``: wipes refused, ``--fill-from-current``
keeps the values), or the statement that every row is the complete record wanted
(``--rows-are-complete``). The run's record keeps the choice; its resumes and retries take it
from there (batch.journal.record). Without one, nothing is sent and nothing is made.

Then the question before sending (and the line a run that may not ask logs instead) says what
will happen in those terms: the records replaced, how many of them change and how many values
are cleared, and where the rollback file is (:class:`Confirmation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from batch.engine import runjournal, window
from batch.engine.target import Target
from batch.errors import UsageError
from batch.invoked import INSTALLED, command
from batch.journal.journal import Journal
from batch.journal.record import RECORD_KEY, RunRecord
from batch.prepare.effects import Tally
from batch.settings import Rate

if TYPE_CHECKING:
    from batch.engine.invocation import Invocation


def chosen(
    record: RunRecord,
    journal: Journal | None,
    target: Target,
    started: Sequence[str] = INSTALLED,
) -> RunRecord:
    """The invocation's record, holding the run's replace choice: its own, else the one the run
    it continues (``journal``: this run's own, None for a new run) made. Against a real host
    with none, a UsageError (exit 2) before any request, the account check's included."""
    kept = RunRecord.from_json(journal.meta(RECORD_KEY) or "") if journal is not None else None
    record = record.keeping_choice(kept)
    if record.replace_choice is None and target.needs_confirmation:
        raise UsageError(refusal(target.host, record, started))
    return record


def refusal(host: str, record: RunRecord, started: Sequence[str] = INSTALLED) -> str:
    """The one message of a run or retry refused for want of a replace choice (and of a job
    file that would be: batch.config.jobcheck). ``started``: how reroute was started, so the
    plan command it names runs as printed (batch.invoked)."""
    plan = command(started, "plan", record.input if record.kind == "run" else "INPUT")
    head = (
        f"{host} is a real host and the update replaces the whole record (a field a row leaves "
        "empty is erased), so nothing is sent until the run says how that is handled"
    )
    how = (
        "--current SNAPSHOT, the records as they are now (a row that would erase a value is "
        "refused; --fill-from-current keeps it), or --rows-are-complete if every row is the "
        "complete record you want (in a job file: [safety].current or [safety].rows_are_complete"
        " = true)"
    )
    if record.kind == "retry":
        how = (
            f"the run that wrote {record.input} did not say: pass --rows-are-complete if every "
            "request in it is the complete record you want, or run the input again with "
            "--current SNAPSHOT"
        )
    return f"{head}: {how}. To see what would change: {plan} --current SNAPSHOT"


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What sending will do, in the words of the question before a real run and of the line a
    run that may not ask (``--yes``, no terminal) logs instead."""

    rows: int  # records to replace (this invocation's requests)
    host: str
    rate: Rate
    concurrency: int
    applied: int = 0  # left out: already applied by an earlier run
    tally: Tally | None = None  # None: a retry, its requests as the results file recorded them
    snapshot: Path | None = None
    rollback: Path | None = None
    retry: bool = False

    def describe(self) -> str:
        """One line: ``40 records to replace on HOST at 60/min (concurrency 4), about 40s: 9 of
        them change against SNAPSHOT, 0 values cleared; rollback file: PATH (...)``."""
        eta = window.format_duration(timedelta(seconds=self.rows / self.rate.per_second))
        left_out = f" ({self.applied} already applied, not sent)" if self.applied else ""
        head = (
            f"{_count(self.rows, 'record')} to replace on {self.host}{left_out} at {self.rate} "
            f"(concurrency {self.concurrency}), about {eta}"
        )
        return f"{head}: {self._what()}; {self._undo()}"

    def _what(self) -> str:
        tally = self.tally
        if tally is None:
            return "each with the request the results file recorded"
        if tally.changing is None:
            return (
                "no snapshot, so how many of them change is not known; "
                f"{tally.cleared} of them send no connection_id (any the record holds is cleared)"
            )
        what = (
            f"{tally.changing} of them change against {self.snapshot}, "
            f"{_count(tally.cleared, 'value')} cleared"
        )
        return what + (f", {tally.unknown} not in the snapshot" if tally.unknown else "")

    def _undo(self) -> str:
        if self.rollback is not None:
            return f"rollback file: {self.rollback} (written before the first request)"
        if self.retry:
            return "no rollback file"
        if self.snapshot is not None:
            return "no rollback file (--rollback PATH writes one)"
        return "no rollback file (it needs --current)"


def confirmation(
    inv: Invocation, target: Target, journal: Journal | None, *, resumed: bool, left: int,
    applied: int,
) -> Confirmation:  # fmt: skip
    """The facts of this invocation's sending, counted over exactly the rows it sends."""
    batch, settings = inv.batch, inv.settings
    effects = batch.effects() if batch.effects is not None else None
    tally = None
    if effects is not None:
        tally = effects.tally(c.row for c in runjournal.to_send(batch, journal, resumed=resumed))
    return Confirmation(
        rows=left, host=target.host, rate=settings.rate, concurrency=settings.concurrency,
        applied=applied, tally=tally, snapshot=effects.snapshot if effects else None,
        rollback=settings.rollback, retry=batch.kind == "retry",
    )  # fmt: skip


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
