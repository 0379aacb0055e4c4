"""`reroute status RESULTS|JOB.toml`: a run's state, read-only, while it runs or after.

The command-line edge only: the argument located, the state read (``batch.status.reader``: the
journal as a WAL reader, the lock looked at, never taken), shown as text or one JSON object.
``--watch`` shows it again every two seconds until Ctrl-C (exit 0). Exit 2 when there is no
run to show (no journal beside RESULTS, a job never run, an unreadable job file).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from batch.cli.app import Exit, app, examples, reporting_errors, say
from batch.cli.options import LogFormat
from batch.errors import RerouteError

if TYPE_CHECKING:
    from batch.config.jobs import Job

EVERY: Final = 2.0  # seconds between two refreshes of --watch


@app.command(
    "status",
    epilog=examples(
        "reroute status routing-changes.results.csv",
        "reroute status jobs/nightly-reroute.toml --watch",
        "reroute status routing-changes.results.csv --json",
    ),
)
def status_command(
    target: Annotated[
        Path,
        typer.Argument(
            help="The results file a run writes (its journal beside it is read), or the job "
            "file that runs it.",
            metavar="RESULTS|JOB.toml",
            show_default=False,
        ),
    ],
    watch: Annotated[
        bool,
        typer.Option("--watch", help="Show it again every 2 s until Ctrl-C."),
    ] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="json: the same as --json (its older spelling).",
        ),
    ] = LogFormat.TEXT,
    json_document: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON document on stdout (docs/json/status.schema.json); with --watch, "
            "one per line per refresh.",
        ),
    ] = False,
) -> None:
    """A run's state, read-only (never slows or blocks it): running or not and who holds it,
    rows decided per outcome, rate, ETA, window, the last failures and segments.

    Exit 0 shown, 2 no run to show (no journal beside RESULTS, a job never run).
    """
    from batch.invoked import started_as
    from batch.status.state import locate

    as_json = json_document or log_format is LogFormat.JSON
    with reporting_errors(as_json=log_format is LogFormat.JSON):
        results, job = locate(target, os.environ, started=started_as(os.environ))
    show = _json if as_json else _text
    if not watch:
        with reporting_errors(as_json=log_format is LogFormat.JSON):
            show(results, job)
        raise typer.Exit(Exit.OK)
    try:
        if not as_json and sys.stdout.isatty():
            _watch_live(results, job)
        while True:  # not a terminal (or JSON): one block or line per refresh
            try:
                show(results, job)
                if not as_json:
                    say()
            except RerouteError as exc:  # a journal being replaced (--fresh): try again
                print(f"reroute: {exc}", file=sys.stderr, flush=True)
            time.sleep(EVERY)
    except KeyboardInterrupt:
        raise typer.Exit(Exit.OK) from None


def _pace_dir() -> Path:
    """Where runs on this machine share their key's pace: `status` lists the others. (Not
    through batch.cli.terminal, which imports httpx and rich: seconds of a status's start.)"""
    from batch.send.keyshare import pace_root

    return pace_root(os.environ, sys.platform, Path.home())


def _text(results: Path, job: Job | None) -> None:
    from batch.status.reader import read_status
    from batch.status.text import lines

    for line in lines(read_status(results, job=job, pace_dir=_pace_dir())):
        say(line)


def _json(results: Path, job: Job | None) -> None:
    from batch import __version__
    from batch.cli.documents import emit
    from batch.status.reader import read_status
    from batch.status.text import as_json

    emit(as_json(read_status(results, job=job, pace_dir=_pace_dir()), __version__))


def _watch_live(results: Path, job: Job | None) -> None:
    """Redraw in place on a terminal (rich, imported only here) until Ctrl-C."""
    from rich.live import Live
    from rich.text import Text

    from batch.status.reader import read_status
    from batch.status.text import lines

    def frame() -> Text:
        try:
            shown = lines(read_status(results, job=job, pace_dir=_pace_dir()))
        except RerouteError as exc:
            shown = [f"reroute: {exc}"]
        stamp = time.strftime("%H:%M:%S")
        return Text("\n".join([*shown, f"  (every {EVERY:g} s, {stamp}; Ctrl-C to stop)"]))

    with Live(frame(), auto_refresh=False) as live:
        while True:
            time.sleep(EVERY)
            live.update(frame(), refresh=True)
