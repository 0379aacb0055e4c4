"""`reroute status`: a run's state, read from its journal while it runs or after it ended.

Read-only and never in the run's way: the journal is opened as a WAL reader
(``audit.read_only``), its log of records not yet copied into SQLite is read too (so the counts
are not a few hundred rows behind) but never written, and the run lock is looked at, never taken
(``lock.peek``). Counts are SQL aggregates, with the log's few hundred records laid over them:
a refresh costs one scan of the rows table whatever the run's size.

What the journal does not say is left unknown (``None``), never guessed: a journal of an older
reroute has no audit trail (no segments, events or per-request times), and one without the
``others`` meta key cannot say how many rows of the results file the run never sends (invalid,
skipped as unchanged), so ``total`` and ``invalid`` are unknown there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from batch.config.jobs import Job, is_job_file, load_job
from batch.engine.target import check_results_argument
from batch.errors import JournalError
from batch.invoked import INSTALLED, command
from batch.journal.db import SUFFIX, journal_path
from batch.journal.lock import Holder
from batch.send.keyshare import Member
from batch.sheets.rownames import BY_NUMBER, RowNames

SHOWN: Final = 5  # failures, segments and events shown


@dataclass(frozen=True, slots=True)
class Failure:
    row: int
    routing_id: str
    http_status: int | None
    error_code: str
    error_message: str
    attempts: int
    at: datetime | None


@dataclass(frozen=True, slots=True)
class Segment:
    """One invocation that sent (audit.segments), as shown."""

    number: int
    kind: str
    operator: str
    version: str
    started_at: datetime
    finished_at: datetime | None
    stop_reason: str
    exit_status: int | None
    target_host: str


@dataclass(frozen=True, slots=True)
class Event:
    segment: int
    at: datetime
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class Window:
    """The change window and where ``now`` is in it: ``none`` (no window), ``open``,
    ``not_yet_open``, ``closed``."""

    not_before: datetime | None = None
    not_after: datetime | None = None
    state: str = "none"


@dataclass(frozen=True, slots=True)
class RunStatus:
    """Everything ``reroute status`` shows; ``None`` where the journal cannot say."""

    results: Path
    journal: Path
    now: datetime
    state: str  # running, waiting_for_window, stopped, finished, not_started
    running: bool | None  # None: the lock's holder is on another host (cannot be told)
    holder: Holder | None  # who holds the lock (or held it, and died)
    operator: str | None  # user@host of the invocation holding it (its segment)
    kind: str  # run or retry (the last segment's, else the run's)
    target: str  # base URL, or "sandbox"
    job: Path | None
    started_at: datetime | None
    finished: bool
    total: int | None  # rows of the results file
    candidates: int | None  # rows the run sends (valid, not left out)
    outcomes: Mapping[str, int | None]  # every Outcome value; invalid None when unknown
    done: int  # rows decided: never sent again by a resume
    left: int | None  # rows a resume would still send
    in_flight: int | None
    requests: int  # requests ever sent for the rows of the results file (sum of attempts)
    requests_trail: int | None  # ... of them in this results path's audit trail (None: none)
    requests_carried: int  # ... of them recorded before it (a retry written elsewhere)
    rate: str | None  # the configured pace (--rate)
    concurrency: int | None
    rows_per_min: float | None  # rows decided per minute over the last 60 s (while running)
    average_rows_per_min: float | None  # over the current (or last) segment's active time
    requests_per_min: float | None  # requests sent per minute over the last 60 s
    eta: datetime | None
    window: Window
    failures: tuple[Failure, ...]
    segments: tuple[Segment, ...]
    events: tuple[Event, ...]
    trail: bool  # the journal has the audit trail (a journal of an older reroute has not)
    notes: tuple[str, ...] = field(default=())
    row_names: RowNames = BY_NUMBER  # the rows as an editor shows them (sheets.rownames)
    # The other runs on this machine sharing the API key's pace (batch.send.keyshare); None:
    # the run is not running here with a key (nothing to say).
    sharing: tuple[Member, ...] | None = None


def locate(
    target: Path, env: Mapping[str, str], *, started: Sequence[str] = INSTALLED
) -> tuple[Path, Job | None]:
    """The results path a RESULTS, journal or JOB.toml argument names (a job's as `run`
    resolves it), and the job. Raises JobFileError, or JournalError when there is no journal
    (its message names the command to run, started as ``started``: batch.invoked)."""
    check_results_argument(target)
    job = None
    if is_job_file(target):
        from batch.config.resolve import settings_from

        job = load_job(target)
        results = settings_from({"input": target}, env, sandbox=False, job=job).results
    elif target.name.endswith(SUFFIX):
        results = target.with_name(target.name[: -len(SUFFIX)])
    else:
        results = target
    journal = journal_path(results)
    if not journal.is_file():
        raise JournalError(missing(target, results, journal, job, started))
    return results, job


def missing(
    target: Path,
    results: Path,
    journal: Path,
    job: Job | None,
    started: Sequence[str] = INSTALLED,
) -> str:
    if job is not None:
        return (
            f"{target}: no run of this job yet (no journal {journal}): "
            f"`{command(started, 'run', target)}` starts it"
        )
    guess = Path(f"{target.stem}.results.csv")
    if target.exists() and journal_path(guess).is_file():
        meant = command(started, "status", guess)
        return f"{target}: no run journal beside it; did you mean `{meant}`?"
    what = "no run journal beside it" if target.exists() else "no such results file"
    return (
        f"{target}: {what} ({journal.name} not found): give the results path a run writes "
        "(its --results; default <input stem>.results.csv) or the run's job file"
    )


def window_at(before: datetime | None, after: datetime | None, now: datetime) -> Window:
    """Where ``now`` is in the window ``before`` .. ``after``."""
    if before is None and after is None:
        return Window()
    if before is not None and now < before:
        return Window(before, after, "not_yet_open")
    if after is not None and now >= after:
        return Window(before, after, "closed")
    return Window(before, after, "open")


def state_of(running: bool | None, finished: bool, win: Window, *, sent: bool) -> str:
    """running, waiting_for_window, finished, stopped (resumable) or not_started."""
    if running:
        return "waiting_for_window" if win.state == "not_yet_open" else "running"
    if finished:
        return "finished"
    return "stopped" if sent else "not_started"


def lock_notes(running: bool | None, holder: Holder | None) -> list[str]:
    """What the lock file says beyond running or not."""
    if holder is None or running:
        return []
    if running is False:
        return [
            f"the run that held the lock ({holder.describe()}) is gone: it died or was killed; "
            "the same command resumes"
        ]
    return [f"the lock names {holder.describe()}: whether it still runs cannot be told from here"]
