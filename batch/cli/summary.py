"""Printing what validation and planning found: shared by `validate`, `plan` and `run`."""

from __future__ import annotations

import sys

from batch import voicelink as vl
from batch.cli.app import say
from batch.prepare.validate import Validation

# How many problems a summary lists before pointing at the results file.
SHOWN_PROBLEMS = 10


def _say(text: str = "") -> None:
    # User data (cells, file names) must never be read as rich markup, nor wrapped mid-line.
    say(text)


def print_validation_summary(v: Validation, *, on_stderr: bool = False) -> None:
    """Rows read, valid, invalid; counts per code; the first problems with their rows.
    ``on_stderr``: where stdout is kept for a JSON document (`run --json` refusing)."""

    def out(text: str) -> None:
        if on_stderr:
            print(text, file=sys.stderr, flush=True)
        else:
            _say(text)

    out(f"{v.table.path}: {v.total} rows read, {v.valid} valid, {v.invalid} invalid")
    counts = v.code_counts()
    if not counts:
        return
    out("rows per problem: " + ", ".join(f"{code} {n}" for code, n in counts.items()))
    shown = v.invalid_results(SHOWN_PROBLEMS)
    out(f"first {len(shown)} invalid rows:" if v.invalid > len(shown) else "invalid rows:")
    for result in shown:
        out(f"  {result.error_message}")
    if v.invalid > len(shown):
        out(f"  ... and {v.invalid - len(shown)} more (write them all with --results PATH)")


def print_plan_counts(counts: list[tuple[int, int, int, int]]) -> None:
    """The valid rows by (inbound mode, outbound mode, status), one line each."""
    if not counts:
        return
    _say("would send, by mode:")
    labels = vl.VALUE_LABELS
    for inbound, outbound, status, n in counts:
        _say(
            f"  {n:>8}  inbound {inbound} ({labels[vl.FOR_INBOUND_CALL][inbound]}), "
            f"outbound {outbound} ({labels[vl.FOR_OUTBOUND_CALL][outbound]}), "
            f"status {status} ({labels[vl.STATUS][status]})"
        )
