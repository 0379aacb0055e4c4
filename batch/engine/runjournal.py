"""The journal an invocation works in, and which of the batch's rows it still sends.

A run's own journal resumes it; a retry continues the journal of the run that wrote the results
file; a new input at a results path whose previous run finished starts a new run in the same
journal, where the rows already applied (batch.journal.applied) are recorded ``skipped`` rather than
sent, and the previous results are archived (batch.journal.archive). Nothing here is destroyed
before the engine has the operator's yes: it opens and counts first, and switches runs after.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from batch.engine import window
from batch.engine.merge import ALREADY_APPLIED
from batch.engine.rowloop import pending
from batch.errors import JournalError
from batch.journal import counts as runcounts
from batch.journal.journal import Journal
from batch.journal.record import RECORD_KEY, RunIdentity, RunRecord
from batch.model import Call, Outcome, RowResult
from batch.prepare.batch import Batch
from batch.settings import RunSettings
from batch.sheets import rownames


def open_journal(
    batch: Batch,
    settings: RunSettings,
    record: RunRecord,
    path: Path,
    identity_url: str,
    *,
    abandon_previous: bool = False,
) -> tuple[Journal, RunIdentity | None]:
    """The journal of this results path, and the identity of a new run to start in it once
    confirmed (None: this invocation continues the journal's run, or starts its first).

    A run's own journal resumes (the settings that change what is sent checked). Another
    input (or target) at the same path starts a new run there when the previous one finished,
    or with --abandon-previous; else it is refused. A retry continues whatever run wrote the
    results file (same target), else starts a journal of its own.
    """
    if batch.kind == "retry" and path.exists():
        journal = Journal.open(path, None)
        recorded = journal.meta("base_url")
        if recorded is not None and recorded != identity_url.rstrip("/"):
            journal.close()
            raise JournalError(
                f"{settings.results} was sent to {recorded}; a retry in place goes to the "
                "same target: drop --base-url/--sandbox, or write elsewhere with --results"
            )
        return journal, None
    identity = RunIdentity.of(
        settings.input, identity_url, settings.results, batch.snapshot, settings.reading
    )
    if not path.exists():
        journal = Journal.open(path, identity)
        journal.set_meta("started_at", now_text())
        return journal, None
    journal = Journal.open(path, None)
    meta = journal.metadata()
    if differs := identity.differences(meta):
        if meta.get("finished") == "1" or abandon_previous:
            journal.remember_applied()  # should the last invocation have died before it did
            return journal, identity
        unsent = unfinished(journal, meta)
        journal.close()
        raise JournalError(
            f"{path.name}: the previous run at {settings.results} is unfinished ({unsent} "
            f"rows not sent or in doubt) and {' and '.join(differs)} changed: finish it first "
            "(run the same command with its input), start over with --fresh (asked before "
            f"anything is forgotten), or pass --abandon-previous to leave those {unsent} rows "
            "unsent and start this run"
        )
    earlier = RunRecord.from_json(journal.meta(RECORD_KEY) or "")
    if journal.resumed and earlier is not None and earlier.kind == record.kind == "run":
        changed = earlier.changed_content(record)
        if changed:
            journal.close()
            raise JournalError(
                f"{path.name}: this run was started with other values for "
                f"{', '.join(changed)}; a resume must send what the run started sending: "
                "give the same values, or start over with --fresh"
            )
    return journal, None


def unfinished(journal: Journal, meta: dict[str, str]) -> int:
    """Rows the journal's unfinished run has not decided (its candidates less its decided)."""
    return max(0, int(meta.get("candidates", "0") or 0) - journal.final_count())


def now_text() -> str:
    """Now, ISO-8601 UTC to the microsecond: two runs started in the same second still get
    their own archive folder, in the order they started (batch.journal.archive sorts by name)."""
    return window.utc_now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def archive_previous(settings: RunSettings, journal: Journal | None = None) -> None:
    """Move the previous run's results aside (batch.journal.archive) before a new run replaces
    them."""
    from batch.journal.archive import archive

    results = settings.results
    if not results.exists():
        return
    meta = journal.metadata() if journal is not None else {}
    about: dict[str, object] = {k: v for k, v in meta.items() if k != RECORD_KEY}
    if RECORD_KEY in meta:
        about["settings"] = json.loads(meta[RECORD_KEY])
    archive(results, started=meta.get("started_at"), about=about, keep=settings.keep_runs)


def count(batch: Batch, journal: Journal | None, *, resumed: bool) -> tuple[int, int]:
    """(rows to send, rows already applied by an earlier run and not to be sent). ``resumed``:
    the journal's rows are this run's (else a new run starts in it and they are not)."""
    if journal is None:
        return batch.candidates, 0
    left = applied = 0
    for _, was_applied in _considered(batch, journal, resumed=resumed):
        if was_applied:
            applied += 1
        else:
            left += 1
    return left, applied


def to_send(batch: Batch, journal: Journal | None, *, resumed: bool) -> Iterator[Call]:
    """The calls :func:`count` counts as left to send, in row order."""
    if journal is None:
        return iter(batch.plan.calls)
    return (call for call, was_applied in _considered(batch, journal, resumed=resumed)
            if not was_applied)  # fmt: skip


def _considered(batch: Batch, journal: Journal, *, resumed: bool) -> Iterator[tuple[Call, bool]]:
    """The calls not yet decided, each with whether an earlier run already applied it."""
    memory = batch.kind == "run" and not batch.snapshot and journal.has_applied()
    calls: Iterable[Call] = todo(batch, journal) if resumed else batch.plan.calls
    for call in calls:
        yield call, memory and journal.applied_at(call) is not None


def mark_applied(batch: Batch, journal: Journal) -> None:
    """Record as ``skipped`` the rows an earlier run of this results path already applied."""
    for call in pending(batch.plan.calls, journal):
        at = journal.applied_at(call)
        if at is not None:
            when = window.format_moment(at)
            journal.record(RowResult(
                call.row, str(call.routing_id), Outcome.SKIPPED, error_code=ALREADY_APPLIED,
                error_message=f"already applied at {when} by an earlier run of this results "
                "path (same routing id, same body, same target): not sent again",
                request=call.body,
            ))  # fmt: skip


def remember(journal: Journal, record: RunRecord, batch: Batch) -> None:
    """Store the invocation's settings; a retry continuing a run's journal updates the target
    and pace only (the run's own settings stay, for its resume). A run (or a retry into a new
    results file) also stores how many rows it may send (``candidates``) and, per outcome, the
    rows of its results file it never sends (``others``: invalid, skipped, and a retry's rows
    that succeeded before) and the requests those rows already count (a retry written to
    another results file counts on from them), so ``reroute status`` and ``reroute report``
    count every row and request of the results file (batch.journal.counts), and how its input's
    rows are found in an editor (batch.sheets.rownames), so they name rows as the run did."""
    earlier = RunRecord.from_json(journal.meta(RECORD_KEY) or "")
    if record.kind == "retry" and earlier is not None:
        record = earlier.retargeted(record)
    else:
        others, carried = _never_sent(batch)
        journal.set_meta(runcounts.CANDIDATES_KEY, str(batch.candidates))
        journal.set_meta(runcounts.OTHERS_KEY, json.dumps(others, sort_keys=True))
        journal.set_meta(runcounts.CARRIED_KEY, str(carried))
        journal.set_meta(rownames.META_KEY, batch.row_names.to_text())
    journal.set_meta(RECORD_KEY, record.to_json())


# Outcomes a row of the batch's base can have and still be one the invocation sends.
_SENDABLE: Final = frozenset({Outcome.NOT_ATTEMPTED, Outcome.FAILED, Outcome.UNKNOWN})


def _never_sent(batch: Batch) -> tuple[dict[str, int], int]:
    """Rows of the batch the invocation never sends, per outcome, and the requests its rows
    already count (a retry's results file; 0 for a run's input), in one pass over its rows."""
    counts: Counter[str] = Counter()
    carried = 0
    for result in batch.plan.known():  # the others: not attempted, no attempts
        carried += result.attempts
        if result.outcome not in _SENDABLE:
            counts[result.outcome] += 1
    return {str(outcome): n for outcome, n in counts.items()}, carried


def todo(batch: Batch, journal: Journal | None) -> tuple[Call, ...]:
    """The plan's calls still to send: a run skips rows its journal decided; a retry sends
    failures again but never a row any journal of the results path holds as succeeded."""
    calls = batch.plan.calls
    if journal is None:
        return calls
    if batch.kind == "run":
        return pending(calls, journal)
    return tuple(call for call in calls if not _succeeded(journal.get(call.row)))


def _succeeded(record: RowResult | None) -> bool:
    """A row a retry never sends again: it succeeded, or was left out on purpose."""
    return record is not None and record.outcome in (Outcome.SUCCEEDED, Outcome.SKIPPED)
