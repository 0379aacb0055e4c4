"""`reroute validate` and `reroute plan`: read and check every row, show what would be sent.

Neither command sends anything. Exit 0 when every row is valid, 1 when some are invalid, 2 when
the input (or a flag) cannot be used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batch.cli.app import Exit, app, console, reporting_errors
from batch.cli.summary import print_plan_counts, print_validation_summary
from batch.errors import UsageError
from batch.load import load_table
from batch.plan import plan_counts, write_plan
from batch.results import write_results
from batch.validate import Validation, validate

InputArg = Annotated[
    Path,
    typer.Argument(
        help="Routing changes: .csv, .parquet, .jsonl or .ndjson",
        metavar="INPUT",
        show_default=False,
    ),
]
ConnectionOpt = Annotated[
    str | None,
    typer.Option(
        "--connection-id",
        help="Connection UUID for rows whose connection id is empty.",
        metavar="UUID",
        show_default=False,
    ),
]


def _not_the_input(input_path: Path, output: Path | None, flag: str) -> None:
    """Refuse to write over the input: a typo there would destroy the sheet being checked."""
    if output is not None and output.resolve() == input_path.resolve():
        raise UsageError(f"{flag} {output} is the input file; write to another path")


def _exit_status(v: Validation) -> Exit:
    return Exit.OK if v.invalid == 0 else Exit.SOME_FAILED


@app.command("validate")
def validate_command(
    input_path: InputArg,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            help="Write the results file here (.csv, .parquet, .jsonl): invalid rows with "
            "their codes, valid rows as not_attempted with the request they would send.",
            metavar="PATH",
            show_default=False,
        ),
    ] = None,
    connection_id: ConnectionOpt = None,
) -> None:
    """Read and check every row; send nothing. Exit 0 all valid, 1 some invalid, 2 unreadable."""
    with reporting_errors():
        _not_the_input(input_path, results, "--results")
        table = load_table(input_path)
        v = validate(table, connection_id=connection_id)
        if results is not None:
            write_results(results, v.preview_results(), table.passthrough_frame())
        if not len(table):
            _say(f"{input_path}: a header and no rows; nothing to do")
            raise typer.Exit(Exit.OK)
        print_validation_summary(v)
        if results is not None:
            _say(f"results written to {results}")
    raise typer.Exit(_exit_status(v))


@app.command("plan")
def plan_command(
    input_path: InputArg,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write one JSON line per valid row: {row, routing_id, method, path, body}.",
            metavar="PLAN.jsonl",
            show_default=False,
        ),
    ] = None,
    connection_id: ConnectionOpt = None,
) -> None:
    """Dry run: what `run` would send, per row; send nothing. Exit statuses as `validate`."""
    with reporting_errors():
        _not_the_input(input_path, out, "--out")
        table = load_table(input_path)
        v = validate(table, connection_id=connection_id)
        if out is not None:
            write_plan(out, v)
        if not len(table):
            _say(f"{input_path}: a header and no rows; nothing to do")
            raise typer.Exit(Exit.OK)
        print_validation_summary(v)
        print_plan_counts(plan_counts(v))
        if out is not None:
            _say(f"plan of {v.valid} requests written to {out}")
    raise typer.Exit(_exit_status(v))


def _say(text: str) -> None:
    console.print(text, markup=False, soft_wrap=True)
