"""The report's first line, and its last word: how the run ended, and what to run next.

"39 of 40 succeeded, 1 failed"; "stopped early: window closed, 120 rows left — resume with
…". The same words open the page and the Markdown, so a ticket and the page agree; the
``tone`` colours the page's banner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from batch.model import Exit, Outcome
from batch.report import commands
from batch.report.data import OUTCOME_ORDER, Facts


class Tone(StrEnum):
    GOOD = "good"  # every row succeeded (or was left out on purpose)
    BAD = "bad"  # finished, some rows did not succeed
    STOPPED = "stopped"  # stopped early, rows left: resumable
    RUNNING = "running"  # not finished: still going, or died before it could say


@dataclass(frozen=True)
class NextStep:
    """What to run next: a sentence, and the command (None: nothing to run)."""

    text: str
    command: str | None = None


@dataclass(frozen=True)
class Verdict:
    tone: Tone
    line: str  # "39 of 40 succeeded, 1 failed"
    resume: str | None  # the command, when the verdict is "resume with …"
    next: list[NextStep]


# How the outcomes other than succeeded are named in the verdict line.
_NAMES: Final = {
    Outcome.FAILED: "failed",
    Outcome.UNKNOWN: "in doubt (unknown)",
    Outcome.INVALID: "invalid",
    Outcome.NOT_ATTEMPTED: "not attempted",
    Outcome.SKIPPED: "skipped",
}
NOTHING_TO_DO: Final = "Nothing to do: every row is where the input wanted it."


def verdict(facts: Facts, started: Sequence[str]) -> Verdict:
    """How the run ended, and what to run next (commands start as ``started``)."""
    counts = facts.outcome_counts()
    total = sum(counts.values())
    line = f"{counts[Outcome.SUCCEEDED]:,} of {total:,} succeeded" + "".join(
        f", {counts[o]:,} {_NAMES[o]}" for o in OUTCOME_ORDER[1:] if counts[o]
    )
    left = counts[Outcome.NOT_ATTEMPTED] + counts[Outcome.UNKNOWN]
    last = facts.segments[-1] if facts.segments else None
    if last is None:
        return Verdict(
            Tone.RUNNING, f"nothing sent yet: {line}", None, _after(facts, counts, started)
        )
    status = last["exit_status"]
    # A retry in a run's journal goes on by retrying in place; a run, or a retry that wrote
    # another results file, by the same command again.
    in_place = last["kind"] == "retry" and facts.settings.get("kind") != "retry"
    resume = commands.retry(facts, started) if in_place else commands.resume(facts, started)
    if last["finished_at"] is None:
        text = (
            f"not finished: {line} so far; still running, or its process died before it could say"
        )
        step = NextStep("If it is no longer running, resume it:", resume)
        return Verdict(Tone.RUNNING, text, None, [step])
    if status in (Exit.STOPPED, Exit.RESULTS_NOT_WRITTEN):
        why = (
            "the results file could not be written"
            if status == Exit.RESULTS_NOT_WRITTEN
            else _reason(last["stop_reason"])
        )
        text = f"stopped early: {why}, {left:,} rows left"
        step = NextStep("Resume: the same command sends the rows left, never one done.", resume)
        return Verdict(Tone.STOPPED, text, resume, [step])
    not_ok = sum(counts[o] for o in OUTCOME_ORDER[1:5])
    if total and counts[Outcome.SKIPPED] == total:
        line = f"nothing to send: all {total:,} rows were already as wanted (skipped)"
    return Verdict(Tone.BAD if not_ok else Tone.GOOD, line, None, _after(facts, counts, started))


def _after(facts: Facts, counts: dict[str, int], started: Sequence[str]) -> list[NextStep]:
    """What to run once the run is over: retry what can be sent again; fix what is invalid."""
    steps = []
    again = sum(counts[o] for o in (Outcome.FAILED, Outcome.UNKNOWN, Outcome.NOT_ATTEMPTED))
    if again:
        steps.append(
            NextStep(
                f"Send the {again:,} rows that failed or were left again, once their cause is "
                "fixed (same target and pace; rows that succeeded are never sent again):",
                commands.retry(facts, started),
            )
        )
    if counts[Outcome.INVALID]:
        where = facts.settings.get("input") or "the input"
        steps.append(
            NextStep(
                f"Fix the {counts[Outcome.INVALID]:,} invalid rows in {where} and run it "
                "again: rows already applied are not sent twice."
            )
        )
    return steps or [NextStep(NOTHING_TO_DO)]


def _reason(stop_reason: str | None) -> str:
    """``window_closed: the window closed at 05:00`` -> ``window closed``."""
    head = (stop_reason or "stopped").split(":", 1)[0].strip()
    return head.replace("_", " ") or "stopped"
