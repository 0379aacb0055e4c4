"""`reroute run` and `reroute retry`: send the changes, paced, retried, resumable.

Everything here is the command-line edge: flags and environment in, settings out; signals;
the confirmation prompt; progress and summary; exit statuses. The work is done by the stages
(load, validate, journal, run, results).
"""

from __future__ import annotations

import gc
import json
import os
import shlex
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn
from urllib.parse import urlsplit

import anyio
import polars as pl
import typer
from anyio.abc import TaskStatus

from batch import journal as journal_mod
from batch import voicelink, window
from batch.cli.app import Exit, app, console, err_console, fail, stdin_is_terminal
from batch.cli.progress import LogFormat, RunProgress, stamp, summary_lines, summary_record
from batch.current import gate
from batch.cutover import read_checked, refuse_overwrites, require_current
from batch.errors import RerouteError, UsageError
from batch.jobs import Job, is_job_file, load_job, resolve_run_settings
from batch.journal import Journal, RunIdentity
from batch.lock import RunLock
from batch.model import RESULT_COLUMNS, RETRYABLE_OUTCOMES, Call, Outcome, RowResult
from batch.run import (
    BudgetWatch,
    Observer,
    Observers,
    RunReport,
    StopReason,
    StopToken,
    Summary,
    merge_results,
    pending,
    run_calls,
    with_canary,
    within_window,
)
from batch.send import SendPolicy, build_client
from batch.settings import RunSettings, is_loopback_host
from batch.validate import Validation

SANDBOX_RATE: Final = "20/s"  # --sandbox without --rate: quick demo (40 rows in ~2 s)
SANDBOX_IDENTITY: Final = "embedded-sandbox"  # its port changes each time; the run does not

# -- options shared by run and retry ----------------------------------------------------------

BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help=f"API base URL (env REROUTE_BASE_URL; default {voicelink.DEFAULT_BASE_URL}). "
        "http:// only to loopback.",
    ),
]
RateOpt = Annotated[
    str | None,
    typer.Option(
        "--rate",
        help="Requests per unit: N/s, N/min or N/h (default 60/min; 20/s with --sandbox).",
    ),
]
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", min=1, help="Requests in flight at most (4).")
]
MaxAttemptsOpt = Annotated[
    int | None, typer.Option("--max-attempts", min=1, help="Requests per row at most (5).")
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        help="Seconds per request (30); also how long a first Ctrl-C lets requests finish.",
    ),
]
MaxRetryAfterOpt = Annotated[
    float | None,
    typer.Option(
        "--max-retry-after",
        help="A 429 asking to wait longer than this many seconds fails the row (300).",
    ),
]
FreshOpt = Annotated[
    bool, typer.Option("--fresh", help="Forget the journal of an earlier run and start over.")
]
SandboxOpt = Annotated[
    bool,
    typer.Option(
        "--sandbox",
        help="Start the embedded stand-in API on loopback and run against it (no key needed).",
    ),
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation on a terminal.")
]
LogFormatOpt = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        help="text: progress bar on a terminal, else a line every few seconds; json: JSON lines.",
    ),
]
NotBeforeOpt = Annotated[
    str | None,
    typer.Option(
        "--not-before",
        help="Start of the change window: ISO-8601 with offset (2026-12-05T01:00:00+00:00), or "
        "a time of day with offset (01:00:00+00:00, every night). Waits until then.",
        metavar="WHEN",
    ),
]
NotAfterOpt = Annotated[
    str | None,
    typer.Option(
        "--not-after",
        help="End of the change window (same forms): no new row starts after it; in-flight "
        "rows finish, the results are written, exit 3; the same command resumes next window.",
        metavar="WHEN",
    ),
]
ApiKeyFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--api-key-file",
        help="Read the API key from this file instead of VOCOBASE_API_KEY.",
        dir_okay=False,
    ),
]


@dataclass(frozen=True, slots=True)
class Target:
    """Where requests go and with which key (never printed)."""

    base_url: str
    api_key: str | None
    identity: str  # what the journal records as the target
    host: str
    sandbox: bool

    @property
    def needs_confirmation(self) -> bool:
        return not self.sandbox and not is_loopback_host(self.host)


@dataclass(frozen=True, slots=True)
class Batch:
    """What one invocation sends, independent of where the rows came from (input or results).

    ``calls()``: the candidate requests in row order; ``base()``: every row as it stands before
    sending (invalid, not_attempted, or an earlier result), in row order.
    """

    calls: Callable[[], Iterator[Call]]
    base: Callable[[], Iterator[RowResult]]
    passthrough: pl.DataFrame
    candidates: int
    # retry: attempts of the earlier run are added, so `attempts` counts every request sent
    carry_attempts: bool = False
    # valid rows deliberately not sent (--skip-unchanged): they do not make the exit status 1
    unsent: int = 0


# -- settings ---------------------------------------------------------------------------------


def settings_from(
    flags: Mapping[str, object | None],
    env: Mapping[str, str],
    *,
    sandbox: bool,
    job: Job | None = None,
) -> RunSettings:
    """Merge flags > job file > environment > defaults (batch.jobs.resolve_run_settings).

    ``job``: the job file given as INPUT (its ``input`` is then the rows file). With
    ``--sandbox`` the embedded sandbox is the target, whatever the job's base_url says, and
    paces at SANDBOX_RATE unless a flag or the job sets a rate.
    """
    if sandbox:
        if flags.get("base_url") is not None:
            raise UsageError("--sandbox runs against the embedded sandbox: drop --base-url")
        if flags.get("rate") is None and (job is None or job.rate is None):
            flags = {**flags, "rate": SANDBOX_RATE}
        env = {k: v for k, v in env.items() if k != "REROUTE_BASE_URL"}
        if job is not None and job.base_url is not None:
            job = replace(job, base_url=None)  # the sandbox's URL wins over the job's
    return resolve_run_settings(flags, job, env)


def job_from(path: Path) -> Job | None:
    """The job file given as INPUT (``.toml``), loaded and checked; None for a rows file."""
    return load_job(path) if is_job_file(path) else None


def read_api_key(settings: RunSettings, key_file: Path | None, env: Mapping[str, str]) -> str:
    """The key from --api-key-file, else the environment; never echoed in any message."""
    if key_file is not None:
        try:
            key = key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise UsageError(f"--api-key-file {key_file}: cannot read it ({reason})") from None
        if not key:
            raise UsageError(f"--api-key-file {key_file} is empty: put the API key in it")
        return key
    key = env.get(settings.api_key_env, "").strip()
    if not key:
        raise UsageError(
            f"no API key: set {settings.api_key_env} (or use --api-key-file PATH); "
            "to rehearse without a key use --sandbox"
        )
    return key


def _flags(**given: Any) -> dict[str, object | None]:
    # Booleans pass None when off, so a job file's value can win (resolve_run_settings).
    return {k: (None if v is False else v) for k, v in given.items()}


def _command(
    name: str, target: Path | str, flags: Mapping[str, object | None], **extra: Any
) -> str:
    """The shell command that repeats this invocation (resume) or retries its failures."""
    words = ["reroute", name, str(target)]
    for key, value in {**flags, **extra}.items():
        if value is None or value is False or key == "input":
            continue
        option = "--" + key.replace("_", "-")
        words += [option] if value is True else [option, str(value)]
    return shlex.join(words)


# -- the commands -----------------------------------------------------------------------------


@app.command()
def run(
    input: Annotated[
        Path,
        typer.Argument(
            help="Input file (.csv, .parquet, .jsonl, .ndjson) or a job file (.toml; flags "
            "given here override it).",
            metavar="INPUT|JOB.toml",
        ),
    ],
    base_url: BaseUrlOpt = None,
    rate: RateOpt = None,
    concurrency: ConcurrencyOpt = None,
    max_attempts: MaxAttemptsOpt = None,
    timeout: TimeoutOpt = None,
    results: Annotated[
        Path | None,
        typer.Option("--results", help="Results file (default <input stem>.results.csv here)."),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Send the valid rows even if some are invalid.")
    ] = False,
    connection_id: Annotated[
        str | None,
        typer.Option("--connection-id", help="Connection UUID for rows whose cell is empty."),
    ] = None,
    fresh: FreshOpt = False,
    sandbox: SandboxOpt = False,
    max_retry_after: MaxRetryAfterOpt = None,
    not_before: NotBeforeOpt = None,
    not_after: NotAfterOpt = None,
    current: Annotated[
        Path | None,
        typer.Option(
            "--current",
            help="Snapshot of the current records (.csv, .parquet, .jsonl; the input columns): "
            "rows that would erase a field the record has (wipes) are refused as invalid.",
            metavar="SNAPSHOT",
        ),
    ] = None,
    fill_from_current: Annotated[
        bool,
        typer.Option(
            "--fill-from-current",
            help="Empty cells (and absent columns) take the snapshot's value; a bot or trunk id "
            "the row's modes do not use is dropped. Needs --current.",
        ),
    ] = False,
    allow_wipe: Annotated[
        bool,
        typer.Option(
            "--allow-wipe", help="Send rows that erase a field the record has. Needs --current."
        ),
    ] = False,
    skip_unchanged: Annotated[
        bool,
        typer.Option(
            "--skip-unchanged",
            help="Leave out rows identical to the current record (not_attempted, with a note). "
            "Needs --current.",
        ),
    ] = False,
    rollback: Annotated[
        Path | None,
        typer.Option(
            "--rollback",
            help="Before the first request, write the current values of every record this run "
            "changes (input format by extension): `reroute run PATH` puts them back. Needs "
            "--current.",
            metavar="PATH",
        ),
    ] = None,
    canary: Annotated[
        int | None,
        typer.Option(
            "--canary",
            min=1,
            help="Send the first N rows, then stop if any failed (exit 3); if all succeeded, ask "
            "on a terminal (--yes: go on), go on elsewhere.",
            metavar="N",
        ),
    ] = None,
    error_budget: Annotated[
        str | None,
        typer.Option(
            "--error-budget",
            help="Stop starting rows (exit 3) when failed rows exceed 5% of the last 100 "
            "finished, or a count like 10. Default off.",
            metavar="5%|N",
        ),
    ] = None,
    yes: YesOpt = False,
    log_format: LogFormatOpt = LogFormat.TEXT,
    api_key_file: ApiKeyFileOpt = None,
) -> None:
    """Send the changes of INPUT: validated, paced, retried, resumable.

    Running the same command again after an interruption resumes: rows already decided are
    not sent again. Exit 0 all rows succeeded, 1 some did not, 2 nothing sent (bad usage,
    unreadable input, invalid rows without --skip-invalid), 3 stopped early (resumable).
    """
    flags = _flags(
        input=input,
        base_url=base_url,
        rate=rate,
        concurrency=concurrency,
        max_attempts=max_attempts,
        timeout=timeout,
        results=results,
        skip_invalid=skip_invalid,
        connection_id=connection_id,
        max_retry_after=max_retry_after,
        not_before=not_before,
        not_after=not_after,
        current=current,
        fill_from_current=fill_from_current,
        allow_wipe=allow_wipe,
        skip_unchanged=skip_unchanged,
        rollback=rollback,
        canary=canary,
        error_budget=error_budget,
    )
    with reporting_errors_and_interrupts():
        job = job_from(input)
        settings = settings_from(flags, os.environ, sandbox=sandbox, job=job)
        key = None if sandbox else read_api_key(settings, api_key_file, os.environ)
        batch, validation, before = batch_for_run(settings, log_format)
        if validation.invalid and not settings.skip_invalid:
            from batch.cli.summary import print_validation_summary

            print_validation_summary(validation)
            fail_nothing_sent(
                f"{validation.invalid} of {validation.total} rows are invalid, so nothing was "
                "sent: fix them (see above), or pass --skip-invalid to send the valid rows only"
            )
        extra = {"fresh": None, "sandbox": sandbox, "yes": yes, "api_key_file": api_key_file}
        code = send_batch(
            batch,
            settings=settings,
            key=key,
            sandbox=sandbox,
            fresh=fresh,
            yes=yes,
            log_format=log_format,
            resume_command=_command("run", input, flags, **extra),
            retry_flags={"sandbox": sandbox, "api_key_file": api_key_file, "base_url": base_url},
            before_sending=before,
            identity_extra=_snapshot_identity(settings),
        )
    raise typer.Exit(code)


def batch_for_run(
    settings: RunSettings, log_format: LogFormat
) -> tuple[Batch, Validation, Callable[[], None] | None]:
    """Read and check the input (against the snapshot with --current): the batch to send, its
    validation (wipes refused unless --allow-wipe), and what to do just before sending (write
    the rollback file)."""
    refuse_overwrites(
        settings.input,
        settings.current,
        ((settings.rollback, "--rollback"), (settings.results, "--results")),
    )
    if settings.rollback is not None and settings.rollback.resolve() == settings.results.resolve():
        raise UsageError(f"--rollback {settings.rollback} is the results file; use another path")
    require_current(
        settings.current,
        {
            "--allow-wipe": settings.allow_wipe,
            "--skip-unchanged": settings.skip_unchanged,
            "--rollback": settings.rollback,
        },
    )
    checked = read_checked(
        settings.input,
        current=settings.current,
        fill=settings.fill_from_current,
        connection_id=settings.connection_id,
    )
    v, passthrough = checked.validation, checked.table.passthrough_frame()
    if checked.current is None:
        batch = Batch(
            calls=v.calls, base=v.preview_results, passthrough=passthrough, candidates=v.valid
        )
        return batch, v, None
    g = gate(
        v,
        checked.current,
        allow_wipe=settings.allow_wipe,
        skip_unchanged=settings.skip_unchanged,
    )
    counts = ", ".join(f"{verdict.value} {n}" for verdict, n in g.diff.counts().items() if n)
    _note(log_format, f"against {checked.current.path}: {counts or 'no valid rows'}")
    skipped = {r.row: r for r in g.skipped_results()}

    def base() -> Iterator[RowResult]:
        for result in g.validation.preview_results():
            yield skipped.get(result.row, result)

    batch = Batch(
        calls=g.calls,
        base=base,
        passthrough=passthrough,
        candidates=int(g.send_mask().sum()),
        unsent=len(skipped),
    )
    rollback_path, snapshot = settings.rollback, checked.current.path
    if rollback_path is None:
        return batch, g.validation, None

    def write() -> None:
        from batch.rollback import write_rollback

        restored = write_rollback(rollback_path, g.diff, include=g.send_mask())
        _note(
            log_format,
            f"rollback of {restored} records written to {rollback_path} before sending: "
            f"`reroute run {rollback_path}` puts them back as {snapshot} has them",
        )

    return batch, g.validation, write


def _snapshot_identity(settings: RunSettings) -> str:
    """With --current the bodies depend on the snapshot (and on filling): part of the run."""
    if settings.current is None:
        return ""
    digest = journal_mod.sha256_file(settings.current)
    return f"current={digest};fill={settings.fill_from_current}"


@app.command()
def retry(
    results_file: Annotated[
        Path, typer.Argument(help="A results file of an earlier run or retry.", metavar="RESULTS")
    ],
    results: Annotated[
        Path | None,
        typer.Option("--results", help="Write here instead of updating RESULTS in place."),
    ] = None,
    base_url: BaseUrlOpt = None,
    rate: RateOpt = None,
    concurrency: ConcurrencyOpt = None,
    max_attempts: MaxAttemptsOpt = None,
    timeout: TimeoutOpt = None,
    fresh: FreshOpt = False,
    sandbox: SandboxOpt = False,
    max_retry_after: MaxRetryAfterOpt = None,
    not_before: NotBeforeOpt = None,
    not_after: NotAfterOpt = None,
    yes: YesOpt = False,
    log_format: LogFormatOpt = LogFormat.TEXT,
    api_key_file: ApiKeyFileOpt = None,
) -> None:
    """Send again the rows of RESULTS whose outcome is failed, unknown or not_attempted.

    Each row's request body is taken from the results file's `request` column. Other rows are
    kept as they were. Exit statuses as for `reroute run`.
    """
    from batch.results import read_results

    flags = _flags(
        input=results_file,
        base_url=base_url,
        rate=rate,
        concurrency=concurrency,
        max_attempts=max_attempts,
        timeout=timeout,
        results=results or results_file,
        max_retry_after=max_retry_after,
        not_before=not_before,
        not_after=not_after,
    )
    with reporting_errors_and_interrupts():
        if is_job_file(results_file):
            raise UsageError(
                f"{results_file} is a job file: `reroute run {results_file}` runs (and resumes) "
                "it; retry takes the results file a run wrote"
            )
        settings = settings_from(flags, os.environ, sandbox=sandbox)
        key = None if sandbox else read_api_key(settings, api_key_file, os.environ)
        frame = read_results(settings.input)
        batch = batch_from_results(frame)
        extra = {"sandbox": sandbox, "yes": yes, "api_key_file": api_key_file}
        in_place = settings.results.resolve() == settings.input.resolve()
        code = send_batch(
            batch,
            settings=settings,
            key=key,
            sandbox=sandbox,
            fresh=fresh,
            yes=yes,
            log_format=log_format,
            resume_command=_command("retry", results_file, {**flags, "results": results}, **extra),
            retry_flags={"sandbox": sandbox, "api_key_file": api_key_file, "base_url": base_url},
            # In place, the rewritten RESULTS holds everything a later retry needs (and its new
            # content would not match this journal's identity anyway).
            drop_journal_after=in_place,
        )
    raise typer.Exit(code)


# -- retry: rows back from a results file ----------------------------------------------------


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _moment(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _int_or_none(value: object) -> int | None:
    if value is None or value == "":
        return None
    return int(float(str(value)))


def results_rows(frame: pl.DataFrame) -> Iterator[RowResult]:
    """The rows of a results file as RowResults, in file order."""
    for chunk in frame.select(RESULT_COLUMNS).iter_slices(10_000):
        for record in chunk.iter_rows(named=True):
            yield RowResult(
                row=int(record["row"]),
                routing_id=_text(record["routing_id"]),
                outcome=Outcome(str(record["outcome"])),
                http_status=_int_or_none(record["http_status"]),
                attempts=_int_or_none(record["attempts"]) or 0,
                error_code=_text(record["error_code"]),
                error_message=_text(record["error_message"]),
                request=_text(record["request"]),
                response=_text(record["response"]),
                started_at=_moment(record["started_at"]),
                finished_at=_moment(record["finished_at"]),
                duration_ms=_int_or_none(record["duration_ms"]),
            )


def _routing_id(text: str) -> int | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() and number >= 1 else None


def retry_calls(frame: pl.DataFrame) -> Iterator[Call]:
    """The requests to send again: retryable outcomes with a recorded request body."""
    for result in results_rows(frame):
        routing_id = _routing_id(result.routing_id)
        if result.outcome in RETRYABLE_OUTCOMES and result.request and routing_id is not None:
            yield Call(row=result.row, routing_id=routing_id, body=result.request)


def batch_from_results(frame: pl.DataFrame) -> Batch:
    candidates = sum(1 for _ in retry_calls(frame))
    passthrough = [c for c in frame.columns if c not in RESULT_COLUMNS]
    return Batch(
        calls=lambda: retry_calls(frame),
        base=lambda: results_rows(frame),
        passthrough=frame.select(passthrough),
        candidates=candidates,
        carry_attempts=True,
    )


# -- sending, common to run and retry ---------------------------------------------------------


def send_batch(
    batch: Batch,
    *,
    settings: RunSettings,
    key: str | None,
    sandbox: bool,
    fresh: bool,
    yes: bool,
    log_format: LogFormat,
    resume_command: str,
    retry_flags: Mapping[str, object | None],
    drop_journal_after: bool = False,
    before_sending: Callable[[], None] | None = None,
    identity_extra: str = "",
) -> int:
    """Lock, open the journal, confirm, send, write the results, summarise; the exit status."""
    from batch.results import write_results

    policy = SendPolicy(
        max_attempts=settings.max_attempts,
        timeout=settings.timeout,
        max_retry_after=settings.max_retry_after,
    )
    with ExitStack() as stack:
        # Taken before waiting for the window: a second run of the same job is refused at
        # once instead of queueing behind the first one's wait.
        lock = stack.enter_context(RunLock(settings.results))
        if lock.took_over is not None:
            _note(
                log_format,
                f"took over the lock of a run that died ({lock.took_over.describe()}); "
                "resuming what its journal recorded",
            )
        identity_url = SANDBOX_IDENTITY if sandbox else settings.base_url
        identity = RunIdentity.of(settings.input, identity_url, settings.results)
        identity = replace(identity, snapshot=identity_extra)
        journal = stack.enter_context(
            Journal.open(
                journal_mod.journal_path(settings.results, retry=batch.carry_attempts),
                identity,
                fresh=fresh,
            )
        )
        done = journal.final_count()
        if done:
            _note(
                log_format,
                f"resuming: {done} of {batch.candidates} rows already decided in "
                f"{journal.path.name} are not sent again (--fresh starts over)",
            )
        target = (
            stack.enter_context(_sandbox(settings, log_format))
            if sandbox
            else Target(settings.base_url, key, identity_url, _host(settings.base_url), False)
        )
        if target.needs_confirmation and not yes and stdin_is_terminal():
            _confirm(batch.candidates - done, target, settings)

        win = window.Window(settings.not_before, settings.not_after)
        now = window.utc_now()
        # Already closed: the stop message says so; a "would not fit" estimate would only confuse.
        if not window.is_closed(win, now) and (
            warning := window.fit_warning(win, now, batch.candidates - done, settings.rate)
        ):
            _note(log_format, warning)
        if before_sending is not None:
            before_sending()  # the rollback file: on disk before the first request
        progress = RunProgress(style=_style(log_format), err=err_console)
        stop = StopToken()
        budget = BudgetWatch(settings.error_budget, stop)
        phases = Phases(
            canary=canary_left(settings.canary or 0, journal.counts()),
            ask=not yes and stdin_is_terminal(),
            observer=Observers(progress, budget),
        )
        # What exists now (modules, the input and its verdicts) lives until the run ends: frozen,
        # the collector's full passes (every several thousand rows) do not walk it again.
        gc.collect()
        gc.freeze()
        try:
            report = anyio.run(
                _drive, pending(batch.calls(), journal), settings, policy, target, journal,
                progress, stop, Waiting(win, log_format, batch.candidates, done), phases,
            )  # fmt: skip
        except BaseExceptionGroup as group:
            # A task group wraps what escapes it; our own errors (a journal that cannot be
            # written) still deserve their one clear line rather than a traceback.
            error = _first_reroute_error(group)
            if error is None:
                raise
            fail(f"{error}; the run stopped: fix that, then run the same command again", 3)
        finally:
            gc.unfreeze()
            progress.close()

        summary = Summary()
        merged = merge_results(batch.base(), journal, carry_attempts=batch.carry_attempts)
        write_results(settings.results, summary.tally(merged), batch.passthrough)
        _print_summary(
            log_format,
            summary,
            report,
            requests=progress.requests,
            results=str(settings.results),
            resume_command=resume_command,
            retry_command=_command("retry", settings.results, retry_flags),
            error_budget=budget.describe(),
            skipped=batch.unsent,
        )
        if drop_journal_after:
            _update_run_journal(batch, journal, settings.results)
            journal.delete()
    if summary.counts[Outcome.SUCCEEDED] + batch.unsent == summary.total:
        return Exit.OK
    return Exit.STOPPED if report.stopped is not None else Exit.SOME_FAILED


def _update_run_journal(batch: Batch, journal: Journal, results: Path) -> None:
    """After a retry in place: tell the journal of the run that wrote ``results`` (if any)
    what the retry decided, so running that `reroute run` command again reproduces the
    updated file instead of bringing the old failures back."""
    path = journal_mod.journal_path(results)
    if not path.exists():
        return
    with Journal.open(path, None) as run_journal:
        for base, merged in zip(
            batch.base(), merge_results(batch.base(), journal, carry_attempts=True), strict=True
        ):
            if merged is not base and merged.outcome is not Outcome.INVALID:
                run_journal.absorb(merged)


def _first_reroute_error(group: BaseExceptionGroup[BaseException]) -> RerouteError | None:
    for exc in group.exceptions:
        if isinstance(exc, RerouteError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_reroute_error(exc)
            if found is not None:
                return found
    return None


@dataclass(slots=True)
class Waiting:
    """The change window and how the wait for it is shown (a countdown, or a log line)."""

    win: window.Window
    log_format: LogFormat
    total: int
    done: int
    counting_down: bool = False  # a countdown line is on the terminal, to be ended

    @property
    def every(self) -> float:
        return 1.0 if _style(self.log_format) == "bar" else 60.0

    def show(self, remaining: timedelta) -> None:
        text = window.waiting_message(self.win, remaining)
        if _style(self.log_format) == "bar":  # a countdown redrawn in place on a terminal
            # Straight to the stream: rich drops the carriage return that redraws the line.
            err_console.file.write(f"\rreroute: {text}  ")
            err_console.file.flush()
            self.counting_down = True
        else:
            _note(self.log_format, text)


async def _drive(
    calls: Iterator[Call],
    settings: RunSettings,
    policy: SendPolicy,
    target: Target,
    journal: Journal,
    progress: RunProgress,
    stop: StopToken,
    waiting: Waiting,
    phases: Phases,
) -> RunReport:
    """The async part: client, signal watcher, the wait for the window, progress, the run."""
    # The client is built outside the task group: a key it refuses (bad characters) is then a
    # plain UsageError (exit 2, nothing sent), not an error wrapped in an exception group.
    async with (
        build_client(
            target.base_url,
            target.api_key,
            timeout=settings.timeout,
            concurrency=settings.concurrency,
        ) as client,
        anyio.create_task_group() as tasks,
    ):
        # Signals first: Ctrl-C while waiting for the window ends the wait (exit 3).
        await tasks.start(_watch_signals, stop, settings.timeout)

        async def send() -> RunReport:
            if waiting.counting_down:
                err_console.file.write("\n")  # end the countdown line
            progress.run_started(waiting.total, waiting.done)
            tasks.start_soon(_tick, progress)

            async def run(part: Iterable[Call]) -> RunReport:
                return await run_calls(
                    part,
                    client=client,
                    rate=settings.rate,
                    policy=policy,
                    concurrency=settings.concurrency,
                    journal=journal,
                    observer=phases.observer,
                    stop=stop,
                )

            async def proceed(canary: RunReport) -> bool:
                return await _canary_passed(canary, phases, progress, stop, waiting.log_format)

            return await with_canary(calls, run, canary=phases.canary, stop=stop, proceed=proceed)

        report = await within_window(
            waiting.win, send, stop=stop, on_wait=waiting.show, every=waiting.every
        )
        tasks.cancel_scope.cancel()
    return report


@dataclass(frozen=True, slots=True)
class Phases:
    """How the sending goes: the canary rows left, whether to ask after them, who watches."""

    canary: int
    ask: bool
    observer: Observer


def canary_left(canary: int, decided: Mapping[Outcome, int]) -> int:
    """How many canary rows this invocation sends first, given what the journal has decided.

    A resumed run counts its earlier successes towards the canary; but once any row has
    failed, the canary starts again in full: a failed canary means "stop and look", and running
    the same command again must not send everything else unwatched.
    """
    if canary < 1:
        return 0
    if decided.get(Outcome.FAILED, 0):
        return canary
    return max(0, canary - decided.get(Outcome.SUCCEEDED, 0))


async def _canary_passed(
    canary: RunReport, phases: Phases, progress: RunProgress, stop: StopToken, fmt: LogFormat
) -> bool:
    """Every canary row succeeded: go on, after asking on a terminal (a stop asked for while
    the question waits, such as Ctrl-C, is a no)."""
    text = f"canary: the first {canary.started} rows succeeded"
    if not phases.ask:
        _note(fmt, f"{text}; sending the rest")
        return True
    progress.pause()
    try:
        err_console.print(f"reroute: {text}.", markup=False, highlight=False)
        answer = False
        with anyio.CancelScope() as asking:
            unsubscribe = stop.subscribe(lambda _: asking.cancel())
            try:
                answer = await anyio.to_thread.run_sync(_ask_to_go_on, abandon_on_cancel=True)
            finally:
                unsubscribe()
        return answer
    finally:
        progress.resume()


def _ask_to_go_on() -> bool:
    try:
        return typer.confirm("Send the rest?", default=False, err=True)
    except typer.Abort:  # Ctrl-C or end of input at the question: a no
        return False


async def _watch_signals(
    stop: StopToken, timeout: float, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """First Ctrl-C or SIGTERM: soft stop. A second Ctrl-C: hard stop (cancel in-flight)."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
            if not stop.requested:
                stop.request(
                    StopReason.INTERRUPTED,
                    f"interrupted ({name}): no new row starts; requests in flight get up to "
                    f"{timeout:g} s to finish (press Ctrl-C again to cancel them)",
                )
            else:
                stop.request(
                    StopReason.INTERRUPTED,
                    f"interrupted again ({name}): cancelling requests in flight; their rows "
                    "are recorded as unknown and are resent on resume",
                    hard=True,
                )


async def _tick(progress: RunProgress) -> None:
    while True:
        await anyio.sleep(1.0)
        progress.tick()


@contextmanager
def _sandbox(settings: RunSettings, log_format: LogFormat) -> Iterator[Target]:
    """The embedded stand-in API on a free loopback port, limited to the run's own pace."""
    from batch.sandbox.config import SandboxConfig, generate_api_key
    from batch.sandbox.server import serve_in_thread

    config = SandboxConfig(
        api_key=generate_api_key(),
        rate_limit=settings.rate,
        max_concurrent=max(5, settings.concurrency),
    )
    with serve_in_thread(config) as running:
        _note(log_format, f"sandbox: embedded stand-in API at {running.base_url}")
        yield Target(running.base_url, running.api_key, SANDBOX_IDENTITY, "127.0.0.1", True)


def _host(base_url: str) -> str:
    return urlsplit(base_url).hostname or base_url


def _style(log_format: LogFormat) -> str:
    if log_format is LogFormat.JSON:
        return "json"
    return "bar" if err_console.is_terminal else "plain"


def _note(log_format: LogFormat, text: str) -> None:
    if log_format is LogFormat.JSON:
        record = {"time": stamp(), "event": "note", "message": text}
        print(json.dumps(record), file=sys.stderr, flush=True)
    else:
        err_console.print(f"reroute: {text}", markup=False, highlight=False, soft_wrap=True)


def _confirm(rows: int, target: Target, settings: RunSettings) -> None:
    """Show what is about to happen on a real target and ask once."""
    eta = window.format_duration(timedelta(seconds=rows / settings.rate.per_second))
    err_console.print(
        f"About to send {rows} routing changes to {target.host} at {settings.rate} "
        f"(concurrency {settings.concurrency}), about {eta}.",
        markup=False,
        highlight=False,
    )
    try:
        confirmed = typer.confirm("Send them?", default=False, err=True)
    except typer.Abort:  # Ctrl-C or end of input at the question: a no
        confirmed = False
    if not confirmed:
        fail("nothing sent (not confirmed); pass --yes to skip this question", Exit.NOTHING_SENT)


def _print_summary(
    log_format: LogFormat, summary: Summary, report: RunReport, **details: Any
) -> None:
    if log_format is LogFormat.JSON:
        record = summary_record(summary, elapsed=report.elapsed, stopped=report.stopped, **details)
        print(json.dumps(record, ensure_ascii=False), flush=True)
        return
    for line in summary_lines(summary, elapsed=report.elapsed, stopped=report.stopped, **details):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def fail_nothing_sent(message: str) -> NoReturn:
    fail(message, Exit.NOTHING_SENT)


@contextmanager
def reporting_errors_and_interrupts() -> Iterator[None]:
    """A RerouteError is one line and exit 2; a Ctrl-C outside the sending phase is exit 3."""
    try:
        yield
    except RerouteError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        # While rows are being sent, Ctrl-C is a stop request (a signal receiver), not this:
        # here it came before sending began, or while the results were being written.
        fail("interrupted; nothing more was sent: run the same command again", Exit.STOPPED)
