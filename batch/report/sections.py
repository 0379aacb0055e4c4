"""The report's sections, in the order both forms show them.

    verdict -> counts by outcome -> top causes -> rows that did not succeed -> what changed
    -> how to undo -> what to run next -> charts -> settings -> provenance

Built once from the run's facts; the HTML page (batch.report.html) and the Markdown
(batch.report.markdown) only lay them out, so a ticket and the page say the same thing.
Making them writes the full list of changes beside the results (batch.report.changes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from batch.errors import RerouteError
from batch.report import changes as changes_mod
from batch.report import failures as failures_mod
from batch.report import flags, headline, undo, verdict
from batch.report.changes import Changes
from batch.report.data import Facts
from batch.report.failures import Cause, FailedRow
from batch.report.flags import Setting
from batch.report.headline import Headline
from batch.report.undo import Undo
from batch.report.verdict import Verdict


@dataclass(frozen=True)
class Sections:
    head: Headline
    verdict: Verdict
    causes: tuple[list[Cause], int]  # the commonest, and how many causes in all
    failures: tuple[list[FailedRow], int]  # the first ones, and how many in all
    changes: Changes
    changes_file: str | None  # the full list of changes, beside the results
    undo: Undo
    settings: list[Setting]
    chosen: str  # the settings not at their default, on one line


def build(facts: Facts, *, rows: int, records: int, started: Sequence[str]) -> Sections:
    """Every section; at most ``rows`` rows that did not succeed and ``records`` records
    changed are listed (the results file and the changes file have them all); the commands
    start as ``started`` (batch.invoked)."""
    changed = changes_mod.compare(facts, cap=records)
    written: Path | None = None
    try:
        written = changes_mod.write_full(changed, facts.results)
    except (OSError, RerouteError) as exc:  # the report goes on: it says so where it points
        note = f"{changed.summary} (The full list could not be written: {exc}.)"
        changed = replace(changed, summary=note)
    return Sections(
        head=headline.headline(facts),
        verdict=verdict.verdict(facts, started),
        causes=failures_mod.causes(facts),
        failures=failures_mod.failed_rows(facts, cap=rows),
        changes=changed,
        changes_file=str(written) if written is not None else None,
        undo=undo.undo(facts, started),
        settings=flags.shown(facts.settings),
        chosen=flags.chosen(facts.settings),
    )
