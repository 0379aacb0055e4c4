"""`reroute retry`: send again the rows of a results file that did not succeed.

The command-line edge only, like `run`: the results file becomes a batch (``batch.prepare.batch``),
the run that wrote it lends its target, key variable and pace (``batch.config.resolve``), and the
engine does the rest, continuing that run's journal so nothing succeeded is ever sent again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from batch.cli.app import app, examples, stdin_is_terminal
from batch.cli.options import (
    AccountCheckOpt,
    ApiKeyFileOpt,
    ApprovedPlanOpt,
    BaseUrlOpt,
    ConcurrencyOpt,
    FreshOpt,
    JsonOpt,
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
    RowsAreCompleteOpt,
    SandboxOpt,
    TimeoutOpt,
    YesOpt,
)


@app.command(
    epilog=examples(
        "reroute retry routing-changes.results.csv",
        "reroute retry routing-changes.results.csv --rate 30/min --results second-try.csv",
    )
)
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
    max_outage: MaxOutageOpt = None,
    not_before: NotBeforeOpt = None,
    not_after: NotAfterOpt = None,
    rows_are_complete: RowsAreCompleteOpt = False,
    approved_plan: ApprovedPlanOpt = None,
    yes: YesOpt = False,
    account_check: AccountCheckOpt = None,
    recheck_account: RecheckAccountOpt = False,
    no_report: NoReportOpt = False,
    log_format: LogFormatOpt = LogFormat.TEXT,
    json_document: JsonOpt = False,
    api_key_file: ApiKeyFileOpt = None,
) -> None:
    """Send again the rows of RESULTS whose outcome is failed, unknown or not_attempted.

    Rows are matched by their `row` number (a file sorted in a spreadsheet retries the same);
    each request body comes from the `request` column. The target, key variable and pace are
    the ones the run used, unless a flag overrides them. Rows succeeded or skipped are never
    sent. Exit statuses as for `reroute run`.
    """
    from batch.cli import terminal
    from batch.config import resolve as invocation
    from batch.config.jobs import is_job_file
    from batch.engine.invocation import Invocation
    from batch.errors import UsageError
    from batch.invoked import command, started_as
    from batch.prepare.batch import batch_for_retry

    flags = terminal.given(
        input=results_file,
        base_url=base_url,
        rate=rate,
        concurrency=concurrency,
        max_attempts=max_attempts,
        timeout=timeout,
        results=results or results_file,
        max_retry_after=max_retry_after,
        max_outage=max_outage,
        not_before=not_before,
        not_after=not_after,
        rows_are_complete=rows_are_complete,
        approved_plan=approved_plan,
    )
    flags["account_check"] = account_check  # False too: --no-account-check beats the job file
    with terminal.reporting_errors_and_interrupts(log_format):
        if is_job_file(results_file):
            run = command(started_as(os.environ), "run", str(results_file))
            raise UsageError(
                f"{results_file} is a job file: `{run}` runs (and resumes) it; retry takes the "
                "results file a run wrote"
            )
        settings, on_sandbox, earlier = invocation.for_retry(flags, os.environ, sandbox=sandbox)
        key = terminal.key_for(settings, sandbox=on_sandbox, key_file=api_key_file, earlier=earlier)
        batch = batch_for_retry(settings.input)
        key_file = api_key_file or terminal.remembered_key_file(earlier)
        record = invocation.record_of(
            settings, kind="retry", sandbox=on_sandbox, api_key_file=key_file, earlier=earlier
        )
        inv = Invocation(batch, settings, record, key, on_sandbox, fresh=fresh,
                         recheck_account=recheck_account,
                         ask=not yes and stdin_is_terminal(),
                         network=terminal.network_from(os.environ),
                         started=started_as(os.environ),
                         pace_dir=terminal.pace_dir(os.environ))  # fmt: skip
        again = {**flags, "results": results, "sandbox": sandbox, "yes": yes,
                 "api_key_file": api_key_file, "no_report": no_report}  # fmt: skip
        code = terminal.send(
            inv,
            log_format,
            command="retry",
            target=results_file,
            again=again,
            report=not no_report,
            as_json=json_document,
        )
    raise typer.Exit(code)
