"""The report's header in words: what, where, when, who, how it ended, and each segment.

Shared by the HTML page and the Markdown text, so a ticket and the page say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from batch.engine.merge import ALREADY_APPLIED
from batch.engine.window import format_duration
from batch.model import Exit
from batch.report.data import Facts


def when(us: int | None, *, ms: bool = False) -> str:
    """A journal time (microseconds since the epoch) as text a person reads, in UTC (``ms``:
    to the millisecond, without the zone, for a table that names it once)."""
    if us is None:
        return ""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    if ms:
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def lasted(start: int | None, end: int | None) -> str:
    if start is None or end is None:
        return ""
    return format_duration(timedelta(microseconds=end - start))


def ended(segment: dict[str, Any]) -> str:
    """How a segment ended, in words, with the meaning of its exit status."""
    if segment["finished_at"] is None:
        return "not finished: still running, or its process died before it could say"
    status = segment["exit_status"]
    words = Exit(status).meaning if status in set(Exit) else ""
    reason = segment["stop_reason"] or ""
    if reason == "finished":  # nothing stopped it: the exit status says it all
        reason = ""
    parts = [f"exit {status}: {words}" if status is not None else "ended"]
    if reason:
        parts.append(reason)
    return "; ".join(parts)


@dataclass(frozen=True)
class Headline:
    title: str
    results: str  # the results file: where every row is
    about: str  # what, where, when, who: the line under the verdict
    outcomes: dict[str, int]
    total: int
    requests: int
    provenance: list[tuple[str, str]]  # (label, value): hashes, versions, files, the ending
    segments: list[dict[str, str]]  # each segment's fields, as text


def headline(facts: Facts) -> Headline:
    segs = facts.segments
    record = facts.record
    first = segs[0]["started_at"] if segs else _attempt_time(facts, "min")
    last_seg = segs[-1] if segs else None
    last = (
        last_seg["finished_at"] if last_seg and last_seg["finished_at"] else None
    ) or _attempt_time(facts, "max")
    hosts = sorted({s["target_host"] for s in segs if s["target_host"]})
    base_url = facts.meta.get("base_url", "")
    where = ", ".join(hosts) or base_url or "unknown"
    if record.get("sandbox"):
        where += " (the embedded sandbox)"
    what = record.get("job") or record.get("input") or ""
    kind = record.get("kind", "run")
    operators = sorted({s["operator"] for s in segs})
    versions = sorted({s["version"] for s in segs})
    ending = ended(last_seg) if last_seg else "no segment recorded"
    if len(segs) > 1 and last_seg is not None:
        ending = f"{ending} (segment {last_seg['segment']} of {len(segs)})"
    outcomes = facts.outcome_counts()
    total = facts.total
    applied = _already_applied(facts)
    if applied and applied == total and last_seg and last_seg["exit_status"] == 0:
        ending = (
            f"exit 0: finished; all {total:,} rows were already applied by an earlier run of "
            "this results path, so none needed sending"
        )
    elif applied:
        ending = f"{ending}; {applied:,} rows were already applied by an earlier run (not sent)"
    who = ", ".join(operators) or "unknown"
    about = (
        f"reroute {kind} of {what or 'an input'} ({total:,} rows) to {where}; "
        f"{_period(first, last, segs)}; by {who}"
    )
    provenance = [
        ("How it ended", ending),
        ("Outcomes from", f"the {facts.source}"),
        ("Results file", str(facts.results)),
        ("Journal", str(facts.journal)),
        ("Input sha256", facts.meta.get("input_sha256", "")),
        ("Plan sha256", last_seg["plan_sha256"] if last_seg else ""),
    ]
    if facts.meta.get("snapshot"):
        provenance.append(("Snapshot sha256", facts.meta["snapshot"]))
    if approved := _approved_plan(facts):
        provenance.append(("Approved plan", approved))
    provenance += [("reroute", ", ".join(versions) or "unknown"), ("Who", who)]
    return Headline(
        title=f"reroute report: {facts.results.name}",
        results=str(facts.results),
        about=about,
        outcomes=outcomes,
        total=total,
        requests=facts.requests,
        provenance=[(label, value) for label, value in provenance if value],
        segments=[_segment_row(facts, s) for s in segs],
    )


def _approved_plan(facts: Facts) -> str:
    """The plan hash the run was approved with (``--approved-plan``), wherever the run
    recorded it: its record, a segment's settings, or the journal's meta."""
    found = facts.record.get("approved_plan") or facts.latest("approved_plan")
    return str(found or facts.meta.get("approved_plan", "") or "")


def _period(first: int | None, last: int | None, segs: list[dict[str, Any]]) -> str:
    if first is None:
        return "nothing sent yet"
    text = f"{when(first)} to {when(last) or 'now'}"
    if len(segs) > 1:
        active = sum((s["finished_at"] or s["started_at"]) - s["started_at"] for s in segs)
        return f"{text} ({len(segs)} segments, {lasted(0, active)} active)"
    return f"{text} ({lasted(first, last)})" if last else text


def _already_applied(facts: Facts) -> int:
    """Rows left out because an earlier run at this results path applied them already."""
    if "error_code" not in facts.rows.columns:
        return 0
    return int((facts.rows.get_column("error_code") == ALREADY_APPLIED).sum())


def _attempt_time(facts: Facts, which: str) -> int | None:
    sent = facts.attempts.get_column("sent_at")
    if not sent.len():
        return None
    value = sent.min() if which == "min" else sent.max()
    return int(value)  # type: ignore[arg-type]


def _segment_row(facts: Facts, s: dict[str, Any]) -> dict[str, str]:
    requests = facts.attempts.filter(facts.attempts.get_column("segment") == s["segment"]).height
    return {
        "segment": str(s["segment"]),
        "kind": s["kind"],
        "operator": s["operator"],
        "version": s["version"],
        "started": when(s["started_at"]),
        "finished": when(s["finished_at"]) or "not finished",
        "lasted": lasted(s["started_at"], s["finished_at"]),
        "requests": f"{requests:,}",
        "ended": ended(s),
        "target": s["target_host"],
        "key variable": s["key_variable"],
        "input sha256": s["input_sha256"][:12],
        "plan sha256": s["plan_sha256"][:12],
    }
