"""Checking a job file without sending anything: what `reroute jobs check` reports.

Loads the job, resolves its settings as `run` would, validates and plans its input (gated by its
snapshot when it has one), and notes what running it from here and now would meet: a closed
window, a missing key variable, a journal to resume, a run holding the lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from batch.config.jobs import Job, load_job
from batch.config.precedence import resolve_run_settings
from batch.engine import window
from batch.errors import LockedError, RerouteError, UsageError
from batch.invoked import INSTALLED, command
from batch.journal.lock import RunLock, peek
from batch.model import Exit
from batch.prepare.current import gate
from batch.prepare.cutover import read_checked
from batch.prepare.plan import plan_counts
from batch.secrets import is_api_key, not_a_key
from batch.send.client import Network
from batch.settings import RunSettings

if TYPE_CHECKING:
    from batch.prepare.validate import Validation

# How many invalid rows a job's report lists (the results file of a run lists them all).
SHOWN_PROBLEMS = 5


class Verdict(IntEnum):
    """How a job file stands, worst last: the exit status `jobs check` gives for it."""

    OK = Exit.OK
    INVALID_ROWS = Exit.SOME_FAILED
    UNUSABLE = Exit.NOTHING_SENT


@dataclass
class Report:
    """What `jobs check` found about one job file."""

    path: Path
    status: Verdict = Verdict.OK
    summary: str = ""
    about: str = ""  # the job's description
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The same facts as values, for `jobs check --json` (batch.cli.documents.job):
    settings: RunSettings | None = None  # None: the job is unusable
    validation: Validation | None = None
    sending: int = 0  # requests a run would send
    verdicts: dict[str, int] | None = None  # valid rows per verdict against [safety].current
    applied: int | None = None  # requests an earlier run at the results path applied
    running: bool | None = None  # a run holds the job's lock now (None: cannot be told)


def check_job(
    path: Path,
    env: Mapping[str, str],
    now: datetime,
    *,
    account: Network | None = None,
    started: Sequence[str] = INSTALLED,
) -> Report:
    """Load, resolve, validate and plan one job; never sends, never raises a RerouteError.

    ``account`` (``jobs check --account``, the network as the CLI read it): also read the
    account's lists with the key the job names (a read-only key will do: only GETs) and judge
    every valid row as `run` would (batch.prepare.preflight); rows it rejects count as invalid.
    ``started``: how the commands the report names start (batch.invoked.started_as).
    """
    report = Report(path)
    lines: tuple[str, ...] = ()
    try:
        job = load_job(path)
        settings = resolve_run_settings({}, job, env, now=now)
        win = window.Window(settings.not_before, settings.not_after, settings.window_daily)
        if over := window.ended(win, now):
            raise UsageError(over)
        _says_how_records_are_replaced(job, settings, started)
        checked = read_checked(
            settings.input,
            current=settings.current,
            fill=settings.fill_from_current,
            connection_id=settings.connection_id,
            reading=settings.reading,
        )
        v, verdicts = checked.validation, ""
        sending = sum(n for *_, n in plan_counts(v))
        if checked.current is not None:  # [safety].current: plan as `run` would gate the rows
            g = gate(
                v,
                checked.current,
                allow_wipe=settings.allow_wipe,
                skip_unchanged=settings.skip_unchanged,
            )
            v, sending = g.validation, int(g.send_mask().sum())
            judged = g.diff.counts()
            report.verdicts = {str(verdict): n for verdict, n in judged.items()}
            verdicts = ", ".join(f"{verdict.value} {n}" for verdict, n in judged.items() if n)
            verdicts = f"against {checked.current.path}: {verdicts or 'no valid rows'}"
        if account is not None:
            from batch.prepare.preflight import check_validation

            key = env.get(settings.api_key_env, "").strip()
            if not key:
                raise UsageError(
                    f"--account needs the key: set {settings.api_key_env} (a read-only key "
                    "will do: the check only reads the account's lists)"
                )
            if not is_api_key(key):
                raise UsageError(not_a_key(settings.api_key_env))
            v, lines = check_validation(v, settings, key, account)
            sending = min(sending, v.valid)
    except RerouteError as exc:
        report.status = Verdict.UNUSABLE
        report.summary = "unusable"
        # A JobFileError already starts with the job's path; others name their own file.
        report.problems.append(str(exc).removeprefix(f"{path}: "))
        return report
    report.settings, report.validation, report.sending = settings, v, sending
    report.running = peek(settings.results).held
    report.summary = (
        f"{v.total} rows, {v.valid} valid, {v.invalid} invalid; "
        f"would send {sending} request{'' if sending == 1 else 's'} "
        f"to {settings.base_url} at {settings.rate} (concurrency {settings.concurrency}, "
        f"about {window.format_duration(_pace_time(sending, settings))}); "
        f"window {_window_text(job, settings, now)}; results {settings.results}"
    )
    if v.invalid:
        report.status = Verdict.INVALID_ROWS
        counts = ", ".join(f"{code} {n}" for code, n in v.code_counts().items())
        skipping = (
            "skipped by [safety].skip_invalid"
            if settings.skip_invalid
            else (
                "the run would send nothing until they are fixed (or [safety].skip_invalid = true)"
            )
        )
        report.problems.append(f"{v.invalid} invalid rows ({counts}): {skipping}")
        report.problems += [r.error_message for r in v.invalid_results(SHOWN_PROBLEMS)]
        if v.invalid > SHOWN_PROBLEMS:
            listing = command(started, "validate", settings.input, *_reading_flags(settings))
            report.problems.append(
                f"... and {v.invalid - SHOWN_PROBLEMS} more ({listing} --results PATH lists "
                "them all)"
            )
    if job.description:
        report.about = job.description
    if verdicts:
        report.notes.append(verdicts)
    report.notes += [f"account check: {line}" for line in lines]
    if settings.rollback is not None:
        report.notes.append(f"the run writes its rollback file to {settings.rollback} first")
    if settings.canary:
        report.notes.append(
            f"canary: the first {settings.canary} rows are sent first; the run stops if any fails"
        )
    if settings.error_budget is not None:
        report.notes.append(f"error budget: {settings.error_budget}")
    report.notes += _notes(settings, sending, env, now)
    if checked.current is None:  # with a snapshot, the snapshot is the truth (issue 17)
        from batch.journal.applied import count_applied

        calls = ((call.routing_id, call.body) for call in v.calls())
        applied, target = count_applied(settings.results, calls)
        report.applied = applied
        if applied:
            report.notes.append(
                f"{applied} rows were already applied by an earlier run of {settings.results} "
                f"(same body, on {target}): a run will not send them"
            )
    return report


def _says_how_records_are_replaced(job: Job, settings: RunSettings, started: Sequence[str]) -> None:
    """A job for a real host names its snapshot or states that its rows are complete, else its
    run would send nothing (batch.engine.replacing): a UsageError with the run's message."""
    from batch.config.resolve import record_of
    from batch.engine.replacing import chosen
    from batch.engine.target import Target

    host = urlsplit(settings.base_url).hostname or settings.base_url
    chosen(record_of(settings, kind="run", sandbox=False, job=job), None,
           Target(settings.base_url, None, host, sandbox=False), started)  # fmt: skip


def _reading_flags(settings: RunSettings) -> list[str]:
    """The flags that read the job's input as its run does (a sheet, a CSV dialect)."""
    words: list[str] = []
    separator = "tab" if settings.separator == "\t" else settings.separator
    for flag, value in (
        ("--sheet", settings.sheet),
        ("--separator", separator),
        ("--encoding", settings.encoding),
    ):
        if value is not None:
            words += [flag, value]
    return words


def _notes(settings: RunSettings, sending: int, env: Mapping[str, str], now: datetime) -> list[str]:
    """Facts about running the job from here and now; they do not change the exit status."""
    notes = []
    win = window.Window(settings.not_before, settings.not_after, settings.window_daily)
    if warning := window.fit_warning(win, now, sending, settings.rate):
        notes.append(warning)
    held = env.get(settings.api_key_env, "").strip()
    if not held:
        notes.append(
            f"{settings.api_key_env} is not set here: the scheduler's environment must set it "
            "(the job file names the variable, never the key)"
        )
    elif not is_api_key(held):
        notes.append(
            f"{settings.api_key_env} does not hold an API key here (keys look like rg_live_...): "
            "a run would be refused; the value is not shown"
        )
    journal = settings.results.with_name(settings.results.name + ".journal")
    if journal.exists() and not settings.fresh:
        notes.append(f"{journal} exists: a run resumes that run where it stopped")
    try:
        with RunLock(settings.results):
            pass
    except LockedError as exc:
        notes.append(f"running now: {exc}")
    except RerouteError as exc:  # e.g. the results folder does not exist yet
        notes.append(str(exc))
    return notes


def _pace_time(rows: int, settings: RunSettings) -> timedelta:
    start = datetime(2000, 1, 1, tzinfo=UTC)
    return window.eta(start, rows, settings.rate) - start


def _window_text(job: Job, settings: RunSettings, now: datetime) -> str:
    before, after = job.get("not_before"), job.get("not_after")
    if before is None and after is None:
        return "none (sends as soon as it starts)"
    win = window.Window(settings.not_before, settings.not_after, settings.window_daily)
    if isinstance(before or after, datetime):
        return win.describe()
    # A daily window was resolved at the time of the check: say which night that is.
    return f"every night, {'open now' if window.is_open(win, now) else 'next'}: {win.describe()}"
