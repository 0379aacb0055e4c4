"""The plan as Markdown, for the change ticket the board approves (`reroute plan --format md`).

What the run would send, before it runs: the counts, each record's changes old → new and the
values that would be cleared when a snapshot of the current records is given (judged as
``plan --current`` judges them, batch.prepare.current), and the plan's sha256 with how to run
exactly that plan (``--approved-plan``, batch.prepare.approval). Lists are capped: the plan
file (``--out``) has every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl

from batch import voicelink as vl
from batch.prepare.approval import Kept
from batch.prepare.current import DROPPED, EMPTY, Diff, Verdict
from batch.prepare.validate import Validation
from batch.report.changes import RecordChange, record_change
from batch.report.markdown import ID_CELL, LINE, md_cell, md_code, md_table
from batch.sheets.rownames import BY_NUMBER, RowNames

MAX_RECORDS: Final = 30  # records listed with their changes (the plan file has them all)
MAX_IDS: Final = 2  # the sheet's own columns shown per record
_CLEARED: Final = (EMPTY, DROPPED)


@dataclass(frozen=True)
class PlanFacts:
    """What the Markdown plan is made of (``plan``'s values, as it computed them)."""

    source: Path  # the input sheet
    validation: Validation
    diff: Diff | None  # every valid row judged against the snapshot (None: no --current)
    kept: Kept  # the plan's sha256, its requests' count, where they are kept
    counts: list[tuple[int, int, int, int]]  # (inbound, outbound, status, rows) of valid rows
    passthrough: pl.DataFrame  # the sheet's own columns, in row order
    planned_rows: frozenset[int]  # the rows whose request is in the plan
    allow_wipe: bool = False
    row_names: RowNames = BY_NUMBER  # the rows as the sheet's editor shows them


def text(facts: PlanFacts) -> str:
    """The Markdown plan."""
    v, kept = facts.validation, facts.kept
    lines = [
        f"**Plan: {kept.requests:,} requests from {md_cell(facts.source.name, LINE)}** — "
        f"sha256 {md_code(kept.sha256)}",
        "",
        f"{v.total:,} rows read: {v.valid:,} valid, {v.invalid:,} invalid (not sent).",
    ]
    if facts.diff is not None:
        counts = facts.diff.counts()
        judged = ", ".join(f"{verdict} {n:,}" for verdict, n in counts.items())
        lines.append(f"Against the snapshot {md_cell(facts.diff.snapshot.name, LINE)}: {judged}.")
        left_out = v.valid - kept.requests
        if left_out:
            lines.append(
                f"{left_out:,} valid rows are not in the plan (identical to their record with "
                "--skip-unchanged, or erasing a value without --allow-wipe)."
            )
    lines += ["", "### Requests by mode", ""]
    labels = vl.VALUE_LABELS
    lines += md_table(
        ("rows", "inbound", "outbound", "status"),
        [
            (
                f"{n:,}",
                f"{i} ({labels[vl.FOR_INBOUND_CALL][i]})",
                f"{o} ({labels[vl.FOR_OUTBOUND_CALL][o]})",
                f"{s} ({labels[vl.STATUS][s]})",
            )
            for i, o, s, n in facts.counts
        ],
    )
    lines += _changes(facts)
    lines += [
        "",
        "### Approval",
        "",
        f"- **Plan sha256:** {md_code(kept.sha256)}, over every request (row, routing id, body); "
        "the run records the same hash (`run.json`, `plan_sha256`).",
        f"- **Requests kept in:** {md_code(str(kept.path))} (its sha256sum is the plan's hash).",
        f"- **To send exactly this plan:** add {md_code('--approved-plan ' + kept.sha256)} to "
        "`reroute run` (job key `approved_plan` under `[safety]`): a run whose plan differs "
        "sends nothing (exit 2) and names the first row that differs.",
    ]
    return "\n".join(lines) + "\n"


def _changes(facts: PlanFacts) -> list[str]:
    if facts.diff is None:
        return [
            "",
            "### What changes",
            "",
            "No snapshot of the current records (--current) was given: the plan cannot say "
            "what each record holds now, nor which values it would clear.",
        ]
    records = _records(facts)
    changing = [r for r in records if r.fields]
    cleared = [(r, name, old) for r in changing for name, old, new in r.fields if new in _CLEARED]
    lines = ["", "### What changes (old → new)", ""]
    if not changing:
        lines.append("No record in the plan changes: every one is sent as it is now.")
    for r in changing[:MAX_RECORDS]:
        lines.append(f"- {_named(r)}: " + "; ".join(f"{n}: {o} → {w}" for n, o, w in r.fields))
    if len(changing) > MAX_RECORDS:
        lines.append(
            f"\nThe first {MAX_RECORDS} of {len(changing):,} records that change; "
            "`--out PLAN.jsonl` lists every row's changes."
        )
    lines += ["", "### Values that would be cleared", ""]
    if not cleared:
        lines.append("None: no record in the plan loses a value it has.")
        return lines
    lines += md_table(
        ("record", "field", "value now"),
        [(_named(r), name, old) for r, name, old in cleared[:MAX_RECORDS]],
        limits=(2 * ID_CELL + 40, ID_CELL, 60),
    )
    if len(cleared) > MAX_RECORDS:
        lines.append(f"\nThe first {MAX_RECORDS} of {len(cleared):,} values cleared.")
    return lines


def _records(facts: PlanFacts) -> list[RecordChange]:
    """Each planned row's changes against the snapshot, with the sheet's own ids."""
    assert facts.diff is not None
    ids = facts.passthrough.columns[:MAX_IDS]
    frame = facts.diff.frame.select("row", "routing_id", "verdict", "changes")
    if ids:
        frame = frame.hstack(facts.passthrough.select(ids).cast(pl.String))
    planned = frame.filter(
        pl.col("row").is_in(list(facts.planned_rows))
        & pl.col("verdict").is_in([Verdict.CHANGE.value, Verdict.WIPES.value])
    )
    return [record_change(r, ids, facts.row_names) for r in planned.iter_rows(named=True)]


def _named(r: RecordChange) -> str:
    ids = ", ".join(f"{k} {v}" for k, v in r.ids.items() if v)
    return f"`{md_cell(r.routing_id, ID_CELL)}` (row {r.where}{', ' + ids if ids else ''})"
