"""`reroute report`: a run's report, from its journal (and results file, once written).

The command-line edge only: the report is ``batch.report`` (imported when the command runs, so
``--help`` stays quick). Exit 0 when the report is written, 2 when it cannot be (no journal
beside RESULTS, a journal of an older reroute, a file that cannot be written).
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from batch.cli.app import app, examples, reporting_errors, say
from batch.errors import UsageError


class ReportFormat(StrEnum):
    HTML = "html"
    MD = "md"


@app.command(
    "report",
    epilog=examples(
        "reroute report routing-changes.results.csv",
        "reroute report routing-changes.results.csv --format md --out -",
        "reroute report routing-changes.results.csv --json",
    ),
)
def report_command(
    results: Annotated[
        Path,
        typer.Argument(
            help="The results file of a run or retry (its journal, RESULTS.journal, beside it; "
            "the run may still be going).",
            metavar="RESULTS",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the report here ('-': standard output). Default: <results stem>"
            ".report.html (.report.md) beside RESULTS.",
            metavar="PATH",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            help="html: one self-contained page with charts (opens with no network); md: the "
            "verdict, failures, changes and commands as Markdown for a ticket (under 10 KB).",
        ),
    ] = ReportFormat.HTML,
    json_document: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Also print the report's facts as one JSON document on stdout (verdict, "
            "counts, causes, segments, commands; docs/json/report.schema.json). Not with "
            "--out -.",
        ),
    ] = False,
) -> None:
    """Write the report of a run: how it ended, the rows that did not succeed, what changed,
    how to undo it, what to run next; then charts, settings and provenance."""
    from batch.config.jobs import is_job_file
    from batch.invoked import started_as
    from batch.report import render, write_and_read

    started = started_as(os.environ)  # the commands it prints: as this one was started

    with reporting_errors():
        if is_job_file(results):  # the results file the job's run writes, as `run` resolves it
            from batch.status.state import locate

            results, _ = locate(results, os.environ, started=started)
        to_stdout = out is not None and str(out) == "-"
        if to_stdout and json_document:
            raise UsageError(
                "--json and --out - both want standard output: write the report to a file "
                "(--out PATH), or leave out --json"
            )
        if to_stdout:
            sys.stdout.write(render(results, fmt.value, started=started))
            sys.stdout.flush()
            return
        path, facts = write_and_read(results, out=out, fmt=fmt.value, started=started)
    if json_document:
        from batch.cli import documents
        from batch.report.document import document

        found = document(facts, started)
        documents.emit({**documents.envelope("report", 0), **found,
                        "report": str(path), "format": fmt.value})  # fmt: skip
        return
    say(f"report: {path}")
