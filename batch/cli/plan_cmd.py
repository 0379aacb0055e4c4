"""`reroute plan`: what `run` would send, per row, judged against a snapshot when one is given;
the plan's sha256 and the requests it hashed, kept for `run --approved-plan`. Sends nothing."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from batch.cli.app import Exit, app, examples, reporting_errors, say
from batch.cli.options import (
    AllowWipeOpt,
    ApiKeyFileOpt,
    BaseUrlOpt,
    EncodingOpt,
    JsonOpt,
    SeparatorOpt,
    SheetOpt,
    SkipUnchangedOpt,
)
from batch.cli.validate_cmd import (
    AccountOpt,
    ConnectionOpt,
    InputArg,
    account_check,
    check_reading,
    exit_status,
)
from batch.invoked import command, started_as

if TYPE_CHECKING:  # polars behind these is imported when a command runs (start-up time)
    from batch.prepare.approval import Kept, Request
    from batch.prepare.current import Diff
    from batch.prepare.validate import Validation
    from batch.sheets.load import Table


class PlanFormat(StrEnum):
    TEXT = "text"
    MD = "md"


@app.command(
    "plan",
    epilog=examples(
        "reroute plan samples/routing-changes.csv",
        "reroute plan samples/routing-changes.csv --current samples/routing-current.csv",
    ),
)
def plan_command(
    input_path: InputArg,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write one JSON line per valid row: {row, routing_id, method, path, body} "
            "(with --current also verdict, changes, wipes).",
            metavar="PLAN.jsonl",
            show_default=False,
        ),
    ] = None,
    connection_id: ConnectionOpt = None,
    current: Annotated[
        Path | None,
        typer.Option(
            "--current",
            help="Snapshot of the current records (.csv, .parquet, .jsonl; the input columns): "
            "show per row what changes, and judge it change, no_change, wipes (erases a field "
            "the record has) or unknown_record.",
            metavar="SNAPSHOT",
            show_default=False,
        ),
    ] = None,
    fill: Annotated[
        bool,
        typer.Option(
            "--fill-from-current",
            help="Empty cells (and absent columns) take the current record's value; a bot or "
            "trunk id the row's modes do not use is dropped. Needs --current.",
        ),
    ] = False,
    rollback: Annotated[
        Path | None,
        typer.Option(
            "--rollback",
            help="Write the current values of every record the plan changes, in the input "
            "format (by extension): a run of PATH puts them back. Needs --current.",
            metavar="PATH",
            show_default=False,
        ),
    ] = None,
    allow_wipe: AllowWipeOpt = False,
    skip_unchanged: SkipUnchangedOpt = False,
    fmt: Annotated[
        PlanFormat,
        typer.Option(
            "--format",
            help="text: the summary; md: the plan as Markdown for the change ticket (counts, "
            "changes old -> new and values cleared with --current, the sha256), on stdout.",
        ),
    ] = PlanFormat.TEXT,
    sheet: SheetOpt = None,
    separator: SeparatorOpt = None,
    encoding: EncodingOpt = None,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            help="The results path `run` would write (default <input stem>.results.csv here): "
            "rows an earlier run there already applied are counted (run will not send them); "
            "the plan is kept beside it, in .reroute-plans/<sha256>.tsv, for `run "
            "--approved-plan`.",
            metavar="PATH",
            show_default=False,
        ),
    ] = None,
    account: AccountOpt = False,
    base_url: BaseUrlOpt = None,
    api_key_file: ApiKeyFileOpt = None,
    json_document: JsonOpt = False,
) -> None:
    """Dry run: what `run` would send, per row; send nothing. Prints the plan's sha256 (what
    `run --approved-plan` checks). Exit statuses as `validate`; with --current, also 1 when a
    row would wipe a field the current record has (unless --allow-wipe).
    """
    from batch.cli.summary import print_plan_counts, print_validation_summary
    from batch.prepare import approval
    from batch.prepare.cutover import read_checked, refuse_overwrites, require_current
    from batch.prepare.plan import plan_counts, write_plan
    from batch.prepare.rollback import write_rollback

    markdown = fmt is PlanFormat.MD
    tell = _note if markdown else _say  # with --format md, stdout is the Markdown alone
    with reporting_errors():
        refuse_overwrites(input_path, current, ((out, "--out"), (rollback, "--rollback")))
        needs_current = {"--rollback": rollback, "--allow-wipe": allow_wipe}
        require_current(current, needs_current | {"--skip-unchanged": skip_unchanged})
        reading = check_reading(sheet, separator, encoding)
        checked = read_checked(
            input_path, current=current, fill=fill, connection_id=connection_id, reading=reading
        )
        table, v, snapshot = checked.table, checked.validation, checked.current
        if account:
            v = account_check(input_path, v, base_url, api_key_file, on_stderr=json_document)
        requests, diff = approval.plan_requests(
            v, snapshot, allow_wipe=allow_wipe, skip_unchanged=skip_unchanged
        )
        results_path = results or Path(f"{input_path.stem}.results.csv")
        kept = approval.keep(results_path.parent, requests)
        if out is not None:
            write_plan(out, v, diff)
        restored = write_rollback(rollback, diff) if rollback and diff else None
        if json_document:
            from batch.cli import documents
            from batch.prepare.plan import already_applied

            code = exit_status(v, diff if not allow_wipe else None) if len(table) else Exit.OK
            applied = None
            if diff is None:  # with a snapshot the snapshot is the truth, not the memory
                applied, _ = already_applied(results_path, v)
            documents.emit(
                {
                    **documents.envelope("plan", code),
                    **documents.validation(v, table.notes),
                    **documents.plan(plan_counts(v), diff, applied=applied, out=out,
                                     rollback=rollback if diff else None, restored=restored),
                    "plan_sha256": kept.sha256,
                    "planned_requests": kept.requests,
                    "kept_plan": str(kept.path),
                }
            )  # fmt: skip
            raise typer.Exit(code)
        for note in table.notes:
            tell(note)
        if markdown:
            _print_markdown(input_path, checked.table, v, diff, kept, requests, allow_wipe)
        elif not len(table):
            _say(f"{input_path}: a header and no rows; nothing to do")
        else:
            print_validation_summary(v)
            print_plan_counts(plan_counts(v))
            if diff is not None:
                _print_diff(diff, allow_wipe=allow_wipe)
            else:  # with a snapshot the snapshot is the truth, not the memory
                _print_applied(results_path, v)
        if out is not None:
            tell(f"plan of {v.valid} requests written to {out}")
        if restored is not None:
            again = command(started_as(os.environ), "run", str(rollback))
            tell(
                f"rollback of {restored} records written to {rollback}: "
                f"`{again}` puts them back as {current} has them"
            )
        tell(f"plan sha256: {kept.sha256} ({kept.requests} requests)")
        tell(f"kept in {kept.path}: `run --approved-plan {kept.sha256}` sends this plan or nothing")
    if not len(table):
        raise typer.Exit(Exit.OK)
    raise typer.Exit(exit_status(v, diff if not allow_wipe else None))


def _print_markdown(
    input_path: Path,
    table: Table,
    v: Validation,
    diff: Diff | None,
    kept: Kept,
    requests: list[Request],
    allow_wipe: bool,
) -> None:
    from batch.prepare.plan import plan_counts
    from batch.report import planmd

    facts = planmd.PlanFacts(
        source=input_path, validation=v, diff=diff, kept=kept, counts=plan_counts(v),
        passthrough=table.passthrough_frame(), planned_rows=frozenset(r[0] for r in requests),
        allow_wipe=allow_wipe, row_names=table.row_names,
    )  # fmt: skip
    sys.stdout.write(planmd.text(facts))
    sys.stdout.flush()


def _print_applied(results: Path, v: Validation) -> None:
    """How many planned requests an earlier run at ``results`` already applied (issue 17)."""
    from batch.prepare.plan import already_applied

    applied, target = already_applied(results, v)
    if applied:
        _say(
            f"{applied} of the {v.valid} requests were already applied by an earlier run of "
            f"{results} (same routing id, same body, on {target}): `run` will not send them"
        )


def _print_diff(diff: Diff, *, allow_wipe: bool = False) -> None:
    from batch.cli.summary import SHOWN_PROBLEMS
    from batch.prepare.current import Verdict

    for line in diff.summary_lines(SHOWN_PROBLEMS):
        _say(line)
    wipes = diff.counts()[Verdict.WIPES]
    if wipes and not allow_wipe:
        _say(
            f"{wipes} rows would erase a value the current record has (the update replaces "
            "the whole record): fill those cells, use --fill-from-current, or, if erasing is "
            "intended, pass --allow-wipe to `run`"
        )


def _note(text: str) -> None:
    """A line on stderr (stdout holds a document: the Markdown plan)."""
    print(text, file=sys.stderr, flush=True)


def _say(text: str) -> None:
    say(text)
