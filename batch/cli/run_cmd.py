"""`reroute run`: send the changes of an input file or a job file, paced, retried, resumable.

The command-line edge only: flags and environment in, the key read, the engine's
:class:`~batch.engine.invocation.Result` shown and mapped to an exit status. The work (preparing the
batch, the journal, the window, the canary, sending, the results) is ``batch.prepare.batch`` and
``batch.engine.invocation``; they are imported when the command runs, so ``--help`` stays quick.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from batch.cli.app import app, examples, fail, stdin_is_terminal
from batch.cli.options import (
    AccountCheckOpt,
    AllowWipeOpt,
    ApiKeyFileOpt,
    ApprovedPlanOpt,
    BaseUrlOpt,
    CanaryOpt,
    ConcurrencyOpt,
    ConnectionIdOpt,
    CurrentOpt,
    EncodingOpt,
    ErrorBudgetOpt,
    FillFromCurrentOpt,
    FreshOpt,
    JsonOpt,
    KeepRunsOpt,
    LogFormat,
    LogFormatOpt,
    MaxAttemptsOpt,
    MaxOutageOpt,
    MaxRetryAfterOpt,
    NoReportOpt,
    NotAfterOpt,
    NotBeforeOpt,
    RateOpt,
    RecheckAccountOpt,
    RollbackOpt,
    RowsAreCompleteOpt,
    SandboxOpt,
    SeparatorOpt,
    SheetOpt,
    SkipInvalidOpt,
    SkipUnchangedOpt,
    TimeoutOpt,
    YesOpt,
)


@app.command(
    epilog=examples(
        "reroute run samples/routing-changes.csv --sandbox",
        "reroute run jobs/nightly-reroute.toml",
    )
)
def run(
    input: Annotated[
        Path,
        typer.Argument(
            help="Input file (.csv, .xlsx, .parquet, .jsonl, .ndjson; .tsv, .txt) or a job file "
            "(.toml; flags given here override it).",
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
        typer.Option(
            "--results",
            help="Results file: .csv, .xlsx, .parquet, .jsonl (default <input stem>.results.csv "
            "here).",
        ),
    ] = None,
    skip_invalid: SkipInvalidOpt = False,
    connection_id: ConnectionIdOpt = None,
    fresh: FreshOpt = False,
    sandbox: SandboxOpt = False,
    max_retry_after: MaxRetryAfterOpt = None,
    max_outage: MaxOutageOpt = None,
    not_before: NotBeforeOpt = None,
    not_after: NotAfterOpt = None,
    current: CurrentOpt = None,
    rows_are_complete: RowsAreCompleteOpt = False,
    fill_from_current: FillFromCurrentOpt = False,
    allow_wipe: AllowWipeOpt = False,
    skip_unchanged: SkipUnchangedOpt = False,
    rollback: RollbackOpt = None,
    approved_plan: ApprovedPlanOpt = None,
    canary: CanaryOpt = None,
    error_budget: ErrorBudgetOpt = None,
    abandon_previous: Annotated[
        bool,
        typer.Option(
            "--abandon-previous",
            help="Start this run although the previous run at the results path is unfinished "
            "and its input differs (its rows not yet sent stay unsent; the count is shown).",
        ),
    ] = False,
    keep_runs: KeepRunsOpt = None,
    yes: YesOpt = False,
    account_check: AccountCheckOpt = None,
    recheck_account: RecheckAccountOpt = False,
    no_report: NoReportOpt = False,
    log_format: LogFormatOpt = LogFormat.TEXT,
    json_document: JsonOpt = False,
    api_key_file: ApiKeyFileOpt = None,
    sheet: SheetOpt = None,
    separator: SeparatorOpt = None,
    encoding: EncodingOpt = None,
) -> None:
    """Send the changes of INPUT: validated, paced, retried, resumable.

    Running the same command again after an interruption resumes: rows already decided are
    not sent again. Exit 0 all rows succeeded, 1 some did not, 2 nothing sent (bad usage,
    unreadable input, invalid rows without --skip-invalid), 3 stopped early (resumable), 4 sent
    but the results file could not be written (the same command writes it).
    """
    from batch.cli import terminal
    from batch.config import resolve as invocation
    from batch.engine.invocation import Invocation
    from batch.invoked import started_as
    from batch.prepare.batch import batch_for_run

    flags = terminal.given(
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
        max_outage=max_outage,
        not_before=not_before,
        not_after=not_after,
        current=current,
        rows_are_complete=rows_are_complete,
        fill_from_current=fill_from_current,
        allow_wipe=allow_wipe,
        skip_unchanged=skip_unchanged,
        rollback=rollback,
        approved_plan=approved_plan,
        canary=canary,
        error_budget=error_budget,
        keep_runs=keep_runs,
        sheet=sheet,
        separator=separator,
        encoding=encoding,
    )
    flags["account_check"] = account_check  # False too: --no-account-check beats the job file
    flags["report"] = False if no_report else None  # else the job file's `report`, or true
    with terminal.reporting_errors_and_interrupts(log_format):
        job = invocation.job_from(input)
        settings, on_sandbox, earlier = invocation.for_run(
            flags, os.environ, sandbox=sandbox, job=job
        )
        key = terminal.key_for(settings, sandbox=on_sandbox, key_file=api_key_file, earlier=earlier)
        started = started_as(os.environ)  # the commands it prints: as this process started
        batch, validation = batch_for_run(settings, started=started)
        if validation.invalid and not settings.skip_invalid:
            from batch.cli.summary import print_validation_summary

            # With a JSON document wanted, stdout stays empty for a run that cannot start.
            json_wanted = json_document or log_format is LogFormat.JSON
            print_validation_summary(validation, on_stderr=json_wanted)
            fail(
                f"{validation.invalid} of {validation.total} rows are invalid, so nothing was "
                "sent: fix them (see above), or pass --skip-invalid to send the valid rows only",
                as_json=log_format is LogFormat.JSON,
            )
        key_file = api_key_file or terminal.remembered_key_file(earlier)
        record = invocation.record_of(
            settings, kind="run", sandbox=on_sandbox, job=job, api_key_file=key_file
        )
        inv = Invocation(batch, settings, record, key, on_sandbox, fresh=fresh,
                         recheck_account=recheck_account,
                         abandon_previous=abandon_previous,
                         ask=not yes and stdin_is_terminal(),
                         network=terminal.network_from(os.environ),
                         started=started,
                         pace_dir=terminal.pace_dir(os.environ))  # fmt: skip
        again = {**flags, "sandbox": sandbox, "yes": yes, "api_key_file": api_key_file,
                 "no_report": no_report}  # fmt: skip
        code = terminal.send(
            inv, log_format, command="run", target=input, again=again, report=settings.report,
            as_json=json_document,
        )  # fmt: skip
    raise typer.Exit(code)
