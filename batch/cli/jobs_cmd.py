"""`reroute jobs check JOB...`: load, validate and plan job files without sending anything.

Meant for the pull request that changes a job file, and for CI: one line per job (what it
would send, where, how fast, in which window), then its problems. Exit 0 when every job is
fine, 1 when some job has invalid rows, 2 when some job file (or its input) is unusable. The
checking is ``batch.config.jobcheck``, imported when the command runs.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from batch.cli.app import Exit, app, examples, say
from batch.cli.options import JsonOpt

jobs_app = typer.Typer(
    name="jobs",
    help="Job files (TOML): check them before a scheduler runs them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(jobs_app, name="jobs")


def _say(text: str) -> None:
    say(text)


@jobs_app.command(
    "check",
    epilog=examples("reroute jobs check jobs/*.toml", "reroute jobs check nightly.toml"),
)
def check_command(
    jobs: Annotated[
        list[Path],
        typer.Argument(
            help="Job files (.toml), e.g. jobs/*.toml", metavar="JOB", show_default=False
        ),
    ],
    account: Annotated[
        bool,
        typer.Option(
            "--account",
            help="Also read the account's bots and connections with the key each job names "
            "(a read-only key will do) and check every row against them, as run would.",
        ),
    ] = False,
    json_document: JsonOpt = False,
) -> None:
    """Load, validate and plan each job file; send nothing.

    Exit 0 all fine, 1 some job has invalid rows, 2 some job file or input is unusable.
    """
    from batch.config.jobcheck import Verdict, check_job
    from batch.invoked import started_as

    now, started = datetime.now(UTC), started_as(os.environ)
    worst = Verdict.OK
    found = []
    for path in jobs:
        network = None
        if account:
            from batch.cli.terminal import network_from

            network = network_from(os.environ)
        report = check_job(path, os.environ, now, account=network, started=started)
        worst = max(worst, report.status)
        if json_document:
            from batch.cli.documents import job

            found.append(job(report, os.environ, now))
            continue
        verdict = {Verdict.OK: "ok", Verdict.INVALID_ROWS: "invalid rows"}.get(report.status, "")
        head = f"{path}: {verdict}: {report.summary}" if verdict else f"{path}: unusable"
        _say(head)
        if report.about:
            _say(f"  about: {report.about}")
        for problem in report.problems:
            _say(f"  problem: {problem}")
        for note in report.notes:
            _say(f"  note: {note}")
    if json_document:
        from batch.cli import documents

        documents.emit({**documents.envelope("jobs check", worst), "jobs": found})
    raise typer.Exit(Exit(int(worst)))
