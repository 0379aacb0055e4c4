"""`reroute validate` and `reroute plan`: read and check every row, show what would be sent.

Neither command sends anything. Exit 0 when every row is valid, 1 when some are invalid, 2 when
the input (or a flag) cannot be used. `plan --current` also judges every row against a snapshot
of the current records (exit 1 too when some row would erase a field the record has).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from batch.cli.app import Exit, app, examples, reporting_errors, say
from batch.cli.options import (
    ApiKeyFileOpt,
    BaseUrlOpt,
    EncodingOpt,
    JsonOpt,
    SeparatorOpt,
    SheetOpt,
)
from batch.errors import UsageError
from batch.sheets.dialect import Reading, check_encoding, check_separator, check_sheet

if TYPE_CHECKING:  # polars behind these is imported when a command runs (start-up time)
    from batch.prepare.current import Diff
    from batch.prepare.validate import Validation


InputArg = Annotated[
    Path,
    typer.Argument(
        help="Routing changes: .csv, .xlsx, .parquet, .jsonl or .ndjson (.tsv, .txt)",
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
AccountOpt = Annotated[
    bool,
    typer.Option(
        "--account",
        help="Also check every bot and connection the rows name against the account's lists "
        "(read-only GETs, paced like run; needs the key: VOCOBASE_API_KEY or --api-key-file).",
    ),
]


def _not_the_input(input_path: Path, output: Path | None, flag: str) -> None:
    """Refuse to write over the input: a typo there would destroy the sheet being checked."""
    if output is not None and output.resolve() == input_path.resolve():
        raise UsageError(f"{flag} {output} is the input file; write to another path")


def check_reading(sheet: str | None, separator: str | None, encoding: str | None) -> Reading:
    """--sheet, --separator and --encoding, checked (a UsageError says what would do)."""
    checked: list[str | None] = []
    for flag, value, check in (
        ("--sheet", sheet, check_sheet),
        ("--separator", separator, check_separator),
        ("--encoding", encoding, check_encoding),
    ):
        try:
            checked.append(None if value is None else check(value))
        except UsageError as exc:
            raise UsageError(f"{flag}: {exc}") from None
    return Reading(*checked)


def exit_status(v: Validation, diff: Diff | None = None) -> Exit:
    wipes = 0
    if diff is not None:  # batch.prepare.current only with --current (start-up)
        from batch.prepare.current import Verdict

        wipes = diff.counts()[Verdict.WIPES]
    return Exit.OK if v.invalid == 0 and wipes == 0 else Exit.SOME_FAILED


@app.command(
    "validate",
    epilog=examples(
        "reroute validate samples/routing-changes.csv",
        "reroute validate samples/routing-changes.csv --results checked.csv",
    ),
)
def validate_command(
    input_path: InputArg,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            help="Write the results file here (.csv, .xlsx, .parquet, .jsonl): invalid rows "
            "with their codes, valid rows as not_attempted with the request they would send.",
            metavar="PATH",
            show_default=False,
        ),
    ] = None,
    connection_id: ConnectionOpt = None,
    sheet: SheetOpt = None,
    separator: SeparatorOpt = None,
    encoding: EncodingOpt = None,
    account: AccountOpt = False,
    base_url: BaseUrlOpt = None,
    api_key_file: ApiKeyFileOpt = None,
    json_document: JsonOpt = False,
) -> None:
    """Read and check every row; send nothing. Exit 0 all valid, 1 some invalid, 2 unreadable."""
    from batch.cli.summary import print_validation_summary
    from batch.prepare.validate import validate
    from batch.sheets.load import load_table
    from batch.sheets.results import write_results

    with reporting_errors():
        _not_the_input(input_path, results, "--results")
        table = load_table(input_path, reading=check_reading(sheet, separator, encoding))
        v = validate(table, connection_id=connection_id)
        if account:
            v = account_check(input_path, v, base_url, api_key_file, on_stderr=json_document)
        if results is not None:
            write_results(results, v.preview_results(), table.passthrough_frame())
        if json_document:
            from batch.cli import documents

            code = exit_status(v)
            documents.emit(
                {
                    **documents.envelope("validate", code),
                    **documents.validation(v, table.notes),
                    "results_file": None if results is None else str(results),
                }
            )
            raise typer.Exit(code)
        for note in table.notes:
            _say(note)
        if not len(table):
            _say(f"{input_path}: a header and no rows; nothing to do")
            raise typer.Exit(Exit.OK)
        print_validation_summary(v)
        if results is not None:
            _say(f"results written to {results}")
    raise typer.Exit(exit_status(v))


def account_check(
    input_path: Path,
    v: Validation,
    base_url: str | None,
    key_file: Path | None,
    *,
    on_stderr: bool = False,
) -> Validation:
    """--account: the account's lists read (target and key as `run` finds them), the valid rows
    judged against them; its lines said (on stderr when stdout holds a JSON document). Raises
    AccountUnreadable when a list cannot be read."""

    from batch.cli import terminal
    from batch.config import resolve as invocation
    from batch.prepare.preflight import check_validation

    flags = {"input": input_path, "base_url": base_url}
    settings = invocation.settings_from(flags, os.environ, sandbox=False)
    key = terminal.read_api_key(settings, key_file, os.environ)
    source = f"--api-key-file {key_file}" if key_file is not None else None
    judged, lines = check_validation(
        v, settings, key, terminal.network_from(os.environ), key_source=source
    )
    for line in lines:
        if on_stderr:
            print(line, file=sys.stderr, flush=True)
        else:
            _say(line)
    return judged


def _say(text: str) -> None:
    say(text)
