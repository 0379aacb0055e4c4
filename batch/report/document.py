"""The report as values, for `reroute report --json` (docs/json/report.schema.json).

The same facts the page and the Markdown open with (how the run ended, the counts, the causes,
each segment, the commands to run next, the rollback file), as numbers, codes, times and
commands: a script reads these, a person reads the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from batch.report import commands, failures, undo
from batch.report.data import FROM_RESULTS, Facts, not_succeeded
from batch.report.verdict import verdict


def _iso(us: int | None) -> str | None:
    """A journal time (microseconds since the epoch) as ISO-8601 UTC."""
    if us is None:
        return None
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _stop(recorded: str | None) -> tuple[str | None, str | None]:
    """``window_closed: the window closed ...`` -> the code and the sentence."""
    code, _, message = (recorded or "").partition(":")
    return code.strip() or None, message.strip() or None


def document(facts: Facts, started: Sequence[str]) -> dict[str, Any]:
    """The report of ``facts`` as one JSON-ready object (commands start as ``started``)."""
    told = verdict(facts, started)
    counts = facts.outcome_counts()
    causes, every_cause = failures.causes(facts)
    back = undo.undo(facts, started)
    again = sum(counts[o] for o in ("failed", "unknown", "not_attempted"))
    segments = []
    for s in facts.segments:
        reason, message = _stop(s["stop_reason"])
        segments.append({
            "segment": s["segment"], "kind": s["kind"], "operator": s["operator"],
            "version": s["version"], "started_at": _iso(s["started_at"]),
            "finished_at": _iso(s["finished_at"]), "stop_reason": reason,
            "stop_message": message, "exit_status": s["exit_status"],
            "target_host": s["target_host"],
        })  # fmt: skip
    return {
        "results": str(facts.results),
        "journal": str(facts.journal),
        "source": "results_file" if facts.source == FROM_RESULTS else "journal",
        "verdict": str(told.tone),
        "finished": facts.finished,
        "rows": sum(counts.values()),
        "outcomes": counts,
        "not_succeeded": not_succeeded(facts.rows).height,
        "requests": facts.requests,
        "causes": [
            {
                "outcome": c.outcome,
                "error_code": c.error_code or None,
                "http_status": c.http_status,
                "rows": c.rows,
                "example_row": c.example_row,
                "example_routing_id": c.example_routing_id,
                "example_message": c.example_message,
            }
            for c in causes
        ],
        "causes_total": every_cause,
        "segments": segments,
        "resume_command": told.resume,
        "retry_command": commands.retry(facts, started) if again and told.resume is None else None,
        "rollback": None
        if back.path is None
        else {"path": back.path, "records": back.records, "command": back.command},
    }
