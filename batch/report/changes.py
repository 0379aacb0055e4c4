"""What the run changed: each record's old -> new values, against the snapshot it was judged by.

A run with ``--current`` keeps that snapshot beside its results (``<results>.snapshot.csv``,
batch.engine.runtrail.keep_snapshot; its sha256 is in the journal). The report compares the
bodies the run sent with it, as ``plan --current`` compares an input's rows
(batch.prepare.current.diff_sent): a record changed, replaced unchanged, or not in the
snapshot. Only rows that succeeded changed their record; failed ones did not, and an
``unknown`` one may have. The page lists the first records changed, Terraform-like, and the full
list goes to ``<results>.changes.csv`` beside the results (every row sent that differs from
its record, with its outcome). Without a snapshot the report says so in a line: the API has no
call to read a record back, so nothing else knows the old values.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

import polars as pl

from batch import voicelink as vl
from batch.engine.runtrail import kept_snapshot_path
from batch.errors import RerouteError
from batch.journal.record import sha256_file
from batch.model import Outcome
from batch.prepare.current import Verdict, diff_sent, load_current
from batch.report.data import Facts
from batch.sheets.results import atomic_file
from batch.sheets.rownames import RowNames

NO_SNAPSHOT: Final = (
    "No snapshot of the records as they were (--current) was given: the report cannot say "
    "what each record held before."
)
MAX_RECORDS: Final = 200  # records listed on the page (the changes file has them all)
CHANGED: Final = (Verdict.CHANGE.value, Verdict.WIPES.value)
_BODY: Final = pl.Struct(
    {name: (pl.String if name == vl.CONNECTION_ID else pl.Int64) for name in vl.BODY_FIELDS}
)


@dataclass(frozen=True)
class RecordChange:
    """One record the run changed: its row, routing id, the sheet's ids, each field's change."""

    row: int
    where: str  # the row as the operator finds it: "3 (line 4)" (batch.sheets.rownames)
    routing_id: str
    ids: dict[str, str]  # the sheet's own columns (a DID, a ticket), as the results carry them
    fields: list[tuple[str, str, str]]  # (field, old, new)


@dataclass(frozen=True)
class Changes:
    """What changed, or why the report cannot tell (``known`` False: ``summary`` says why)."""

    known: bool
    summary: str
    snapshot: str = ""  # where the old values were read
    changed: int = 0  # records the run changed (rows that succeeded)
    unchanged: int = 0  # records replaced with exactly what they held
    in_doubt: int = 0  # rows sent, no answer: changed or not
    not_applied: int = 0  # rows that would have changed a record, and failed
    unknown_records: int = 0  # rows that succeeded for records the snapshot does not hold
    records: list[RecordChange] = field(default_factory=list)  # the first ``changed`` ones
    full: pl.DataFrame | None = None  # every row sent that differs from its record


def changes_path(results: Path) -> Path:
    """``<results>.changes.csv``: the full list, beside the results (archived with them)."""
    return results.with_name(f"{results.name}.changes.csv")


def compare(facts: Facts, *, cap: int) -> Changes:
    """The records the run changed (the first ``cap`` of them listed), from its snapshot."""
    sha = facts.meta.get("snapshot", "")
    if not sha:
        return Changes(False, NO_SNAPSHOT)
    found = _snapshot(facts, sha)
    if isinstance(found, str):
        return Changes(False, found)
    try:
        current = load_current(found)
        sent = _sent(facts)
    except (RerouteError, pl.exceptions.PolarsError) as exc:
        return Changes(False, f"The snapshot or the bodies sent could not be read ({exc}).")
    judged = (
        diff_sent(sent, current)
        .frame.select("row", "verdict", "changes")
        .join(facts.rows.select("row", "routing_id", "outcome", *facts.passthrough), on="row")
        .sort("row")
    )
    outcome, verdict = pl.col("outcome"), pl.col("verdict")
    succeeded = outcome == Outcome.SUCCEEDED.value
    differs = verdict.is_in(CHANGED)

    def count(mask: pl.Expr) -> int:
        return int(judged.select(mask.sum()).item())

    changed = judged.filter(succeeded & differs)
    result = Changes(
        known=True,
        summary="",
        snapshot=str(found),
        changed=changed.height,
        unchanged=count(succeeded & (verdict == Verdict.NO_CHANGE.value)),
        in_doubt=count((outcome == Outcome.UNKNOWN.value) & differs),
        not_applied=count((outcome == Outcome.FAILED.value) & differs),
        unknown_records=count(succeeded & (verdict == Verdict.UNKNOWN_RECORD.value)),
        records=[
            record_change(r, facts.passthrough, facts.row_names)
            for r in changed.head(cap).iter_rows(named=True)
        ],
        full=judged.filter(differs)
        .with_columns(pl.col("changes").list.join("; "))
        .select("row", "routing_id", "outcome", "verdict", "changes", *facts.passthrough),
    )
    named = Path(str(facts.settings.get("current") or found)).name
    return _summarised(result, named, facts.settings.get("skip_unchanged") is True)


def write_full(changes: Changes, results: Path) -> Path | None:
    """Write the full list beside ``results`` (atomically); None when there is nothing."""
    if changes.full is None or changes.full.is_empty():
        return None
    path = changes_path(results)
    with atomic_file(path) as file:
        changes.full.write_csv(file)
    return path


def _summarised(c: Changes, named: str, skipped_unchanged: bool) -> Changes:
    parts = [f"{c.changed:,} records changed", f"{c.unchanged:,} replaced unchanged"]
    if c.in_doubt:
        parts.append(f"{c.in_doubt:,} in doubt (sent, no answer: changed or not)")
    if c.not_applied:
        parts.append(f"{c.not_applied:,} not changed (their update failed)")
    if c.unknown_records:
        parts.append(f"{c.unknown_records:,} replaced without a known old value (not in it)")
    text = f"Against the snapshot {named}: " + ", ".join(parts) + "."
    if skipped_unchanged:
        text += " Rows identical to their record were not sent (--skip-unchanged)."
    return replace(c, summary=text)


def _snapshot(facts: Facts, sha: str) -> Path | str:
    """The snapshot file with the run's sha256: the copy kept beside the results, else the
    file the run was given (as given, or beside the results); else why there is none."""
    results = facts.results
    kept = sorted(results.parent.glob(f"{glob.escape(results.name)}.snapshot.*"))
    given = str(facts.settings.get("current") or "")
    places = [*kept, *([Path(given), results.parent / given] if given else [])]
    for place in places:
        try:
            if place.is_file() and sha256_file(place) == sha:
                return place
        except OSError:
            continue
    where = f" or at {given}" if given else ""
    return (
        f"The snapshot this run was judged against (sha256 {sha[:12]}…) is no longer beside "
        f"the results ({kept_snapshot_path(results, Path(given or 'x.csv')).name}){where}: "
        "the report cannot say what each record held before."
    )


def _sent(facts: Facts) -> pl.DataFrame:
    """The rows sent, with each body field as sent (``diff_sent``'s input): the bodies are in
    the facts' rows (the journal's; a results file's, read for a run with a snapshot)."""
    bodies = facts.rows.select("row", "routing_id", "request")
    sent = (Outcome.SUCCEEDED.value, Outcome.FAILED.value, Outcome.UNKNOWN.value)
    bodies = bodies.filter(pl.col("request").fill_null("") != "").join(
        facts.rows.filter(pl.col("outcome").is_in(sent)).select("row"), on="row", how="semi"
    )
    idx = pl.col("routing_id").cast(pl.String).str.strip_chars()
    # Rows share a handful of bodies (a mode, a bot, a trunk): each distinct one is decoded
    # once and joined back, not 200,000 JSON documents parsed.
    distinct = bodies.select(pl.col("request").unique())
    decoded = distinct.with_columns(pl.col("request").str.json_decode(_BODY).alias("#body"))
    return (
        bodies.join(decoded, on="request", how="left", maintain_order="left")
        .select(
            "row",
            "routing_id",
            idx.str.replace(r"\.0*$", "").cast(pl.Int64, strict=False).alias("id"),
            pl.lit(True).alias("valid"),
            "#body",
        )
        .unnest("#body")
    )


def record_change(r: dict[str, object], passthrough: list[str], names: RowNames) -> RecordChange:
    fields = []
    for text in r["changes"] or []:  # type: ignore[attr-defined]
        name, _, values = str(text).partition(": ")
        old, _, new = values.partition(" -> ")
        fields.append((name, old, new))
    row = int(r["row"])  # type: ignore[call-overload]
    return RecordChange(
        row=row,
        where=names.where(row),
        routing_id=str(r["routing_id"] or ""),
        ids={name: str(r[name] or "") for name in passthrough},
        fields=fields,
    )
