"""`reroute jobs check JOB...`: load, validate and plan job files without sending anything.

Meant for the pull request that changes a job file, and for CI: one line per job (what it
would send, where, how fast, in which window), then its problems. Exit 0 when every job is
fine, 1 when some job has invalid rows, 2 when some job file (or its input) is unusable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from batch import window
from batch.cli.app import Exit, app, console
from batch.errors import LockedError, RerouteError
from batch.jobs import Job, load_job, resolve_run_settings
from batch.lock import RunLock
from batch.settings import RunSettings

jobs_app = typer.Typer(
    name="jobs",
    help="Job files (TOML): check them before a scheduler runs them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(jobs_app, name="jobs")

# How many invalid rows a job's report lists (the results file of a run lists them all).
SHOWN_PROBLEMS = 5


@dataclass
class Report:
    """What `jobs check` found about one job file."""

    path: Path
    status: Exit = Exit.OK
    summary: str = ""
    about: str = ""  # the job's description
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_job(path: Path, env: Mapping[str, str], now: datetime) -> Report:
    """Load, resolve, validate and plan one job; never sends, never raises a RerouteError."""
    # polars behind these is imported when the command runs (start-up time).
    from batch.current import gate
    from batch.cutover import read_checked
    from batch.plan import plan_counts

    report = Report(path)
    try:
        job = load_job(path)
        settings = resolve_run_settings({}, job, env, now=now)
        checked = read_checked(
            settings.input,
            current=settings.current,
            fill=settings.fill_from_current,
            connection_id=settings.connection_id,
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
            verdicts = ", ".join(f"{verdict.value} {n}" for verdict, n in judged.items() if n)
            verdicts = f"against {checked.current.path}: {verdicts or 'no valid rows'}"
    except RerouteError as exc:
        report.status = Exit.NOTHING_SENT
        report.summary = "unusable"
        # A JobFileError already starts with the job's path; others name their own file.
        report.problems.append(str(exc).removeprefix(f"{path}: "))
        return report
    report.summary = (
        f"{v.total} rows, {v.valid} valid, {v.invalid} invalid; "
        f"would send {sending} request{'' if sending == 1 else 's'} "
        f"to {settings.base_url} at {settings.rate} (concurrency {settings.concurrency}, "
        f"about {window.format_duration(_pace_time(sending, settings))}); "
        f"window {_window_text(job, settings, now)}; results {settings.results}"
    )
    if v.invalid:
        report.status = Exit.SOME_FAILED
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
            report.problems.append(
                f"... and {v.invalid - SHOWN_PROBLEMS} more "
                f"(reroute validate {settings.input} --results PATH lists them all)"
            )
    if job.description:
        report.about = job.description
    if verdicts:
        report.notes.append(verdicts)
    if settings.rollback is not None:
        report.notes.append(f"the run writes its rollback file to {settings.rollback} first")
    if settings.canary:
        report.notes.append(
            f"canary: the first {settings.canary} rows are sent first; the run stops if any fails"
        )
    if settings.error_budget is not None:
        report.notes.append(f"error budget: {settings.error_budget}")
    report.notes += _notes(settings, sending, env, now)
    return report


def _notes(settings: RunSettings, sending: int, env: Mapping[str, str], now: datetime) -> list[str]:
    """Facts about running the job from here and now; they do not change the exit status."""
    notes = []
    win = window.Window(settings.not_before, settings.not_after)
    if win.not_after is not None and window.is_closed(win, now):
        notes.append(
            f"the window closed at {window.format_moment(win.not_after)}: a run now would "
            "send nothing; move [window] or pass --not-after"
        )
    elif warning := window.fit_warning(win, now, sending, settings.rate):
        notes.append(warning)
    if not env.get(settings.api_key_env, "").strip():
        notes.append(
            f"{settings.api_key_env} is not set here: the scheduler's environment must set it "
            "(the job file names the variable, never the key)"
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
    if job.not_before is None and job.not_after is None:
        return "none (sends as soon as it starts)"
    win = window.Window(settings.not_before, settings.not_after)
    if isinstance(job.not_before or job.not_after, datetime):
        return win.describe()
    # A daily window was resolved at the time of the check: say which night that is.
    return f"every night, {'open now' if window.is_open(win, now) else 'next'}: {win.describe()}"


def _say(text: str) -> None:
    console.print(text, markup=False, soft_wrap=True, highlight=False)


@jobs_app.command("check")
def check_command(
    jobs: Annotated[
        list[Path],
        typer.Argument(
            help="Job files (.toml), e.g. jobs/*.toml", metavar="JOB", show_default=False
        ),
    ],
) -> None:
    """Load, validate and plan each job file; send nothing.

    Exit 0 all fine, 1 some job has invalid rows, 2 some job file or input is unusable.
    """
    now = datetime.now(UTC)
    worst = Exit.OK
    for path in jobs:
        report = check_job(path, os.environ, now)
        verdict = {Exit.OK: "ok", Exit.SOME_FAILED: "invalid rows"}.get(report.status, "")
        head = f"{path}: {verdict}: {report.summary}" if verdict else f"{path}: unusable"
        _say(head)
        if report.about:
            _say(f"  about: {report.about}")
        for problem in report.problems:
            _say(f"  problem: {problem}")
        for note in report.notes:
            _say(f"  note: {note}")
        worst = max(worst, report.status)
    raise typer.Exit(worst)
