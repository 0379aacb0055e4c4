"""`reroute status` shown: a few lines of text for people, one JSON object for scripts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from batch.engine.window import format_duration, format_moment
from batch.model import Outcome
from batch.send.keyshare import Member
from batch.status.state import RunStatus

_STATES: Final = {
    "running": "running",
    "waiting_for_window": "running, waiting for the change window to open",
    "stopped": "stopped with rows left to send (the same command resumes)",
    "finished": "finished",
    "not_started": "nothing sent yet",
}
_MESSAGE: Final = 100  # characters of an error message shown


def lines(status: RunStatus) -> list[str]:
    """The status as a few lines of plain text (ASCII: any console, any code page)."""
    now = status.now
    head = f"{status.results}: {_STATES.get(status.state, status.state)}"
    if status.running and status.holder is not None:
        who = f"; {status.operator}" if status.operator else ""
        head += f" ({status.holder.describe()}{who})"
    out = [head]
    about = [status.kind or "run"]
    if status.target:
        about.append(
            f"to {'the embedded sandbox' if status.target == 'sandbox' else status.target}"
        )
    if status.job is not None:
        about.append(f"job {status.job}")
    if status.started_at is not None:
        about.append(f"started {format_moment(status.started_at)}")
    out.append("  " + ", ".join(about))
    of = status.total if status.total is not None else status.candidates
    rows = f"{status.done:,} decided"
    if of:
        rows = f"{status.done:,} of {of:,} {'rows' if status.total is not None else 'rows to send'}"
        rows += f" decided ({100 * status.done / of:.1f}%)"
    if status.left is not None:
        rows += f", {status.left:,} left to send"
    if status.in_flight:
        rows += f", {status.in_flight} in flight"
    out.append(f"  rows      {rows}")
    counts = [
        f"{o.value} {'?' if (n := status.outcomes.get(o.value)) is None else f'{n:,}'}"
        for o in Outcome
    ]
    out.append(f"  outcomes  {', '.join(counts)}")
    requests = f"  requests  {status.requests:,} sent in all"
    if status.requests_carried and status.requests_trail is not None:
        requests += (
            f": {status.requests_trail:,} by this results path (its attempts file), "
            f"{status.requests_carried:,} before, as the results file it retried counts them"
        )
    out.append(requests)
    out += _rates(status)
    if status.eta is not None:
        out.append(
            f"  eta       {format_moment(status.eta)} (in {format_duration(status.eta - now)})"
        )
    out.append(f"  window    {_window(status, now)}")
    if status.sharing is not None:
        out.append(f"  key       {_sharing(status.sharing)}")
    if status.failures:
        out.append("  last failures:")
        for f in status.failures:
            answer = f"HTTP {f.http_status}" if f.http_status is not None else "no answer"
            when = f" at {format_moment(f.at)}" if f.at is not None else ""
            message = _short(f.error_message)
            named = status.row_names.name(f.row, f"routing id {f.routing_id}")
            out.append(
                f"    {named}: {answer} {f.error_code} after "
                f"{f.attempts} attempt{'s' if f.attempts != 1 else ''}{when}: {message}"
            )
    if status.segments:
        out.append("  segments:")
        for seg in status.segments:
            end = (
                f" -> {format_moment(seg.finished_at)}, {seg.stop_reason.split(':')[0] or 'ended'}"
                f" (exit {seg.exit_status})"
                if seg.finished_at is not None
                else (" -> running" if status.running else " -> never ended (died)")
            )
            out.append(
                f"    #{seg.number} {seg.kind} by {seg.operator} (reroute {seg.version}) to "
                f"{seg.target_host}: {format_moment(seg.started_at)}{end}"
            )
    elif not status.trail:
        out.append("  segments: not recorded (a journal of an older reroute)")
    if status.events:
        out.append("  events:")
        out += [f"    {format_moment(e.at)} {e.kind}: {_short(e.detail)}" for e in status.events]
    out += [f"  note: {text}" for text in status.notes]
    return out


def _sharing(others: tuple[Member, ...]) -> str:
    """Who else on this machine paces with the same API key (taking turns at its limit)."""
    if not others:
        return "no other run on this machine uses this API key"
    plural = "s" if len(others) > 1 else ""
    runs = "; ".join(
        f"pid {m.pid} writing {m.results} (--rate {m.rate}, since {format_moment(m.started_at)})"
        for m in others
    )
    return f"its limit shared, in turns, with {len(others)} other run{plural} here: {runs}"


def _short(text: str) -> str:
    """One line of at most _MESSAGE characters (the JSON has the whole text)."""
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE else text[: _MESSAGE - 3] + "..."


def _per(per_min: float, what: str) -> str:
    """A rate as people set it: per second from one a second up, else per minute."""
    return f"{per_min / 60:,.2f} {what}/s" if per_min >= 60 else f"{per_min:,.1f} {what}/min"


def _rates(status: RunStatus) -> list[str]:
    parts = []
    if status.rows_per_min is not None:
        parts.append(f"{_per(status.rows_per_min, 'rows')} over the last minute")
    if status.requests_per_min is not None:
        parts.append(_per(status.requests_per_min, "requests"))
    if status.average_rows_per_min is not None:
        parts.append(f"{_per(status.average_rows_per_min, 'rows')} on average")
    if not parts:
        parts.append("not measured" + (" (not running)" if not status.running else ""))
    shown = [f"  rate      {', '.join(parts)}"]
    pace = [f"--rate {status.rate}"] if status.rate else []
    pace += [f"--concurrency {status.concurrency}"] if status.concurrency else []
    if pace:
        shown.append(f"  pace set  {' '.join(pace)}")
    return shown


def _window(status: RunStatus, now: datetime) -> str:
    win = status.window
    if win.state == "none":
        return "none (sends at any time)"
    span = f"{format_moment(win.not_before) if win.not_before else 'any time'} -> "
    span += format_moment(win.not_after) if win.not_after else "no end"
    if win.state == "not_yet_open" and win.not_before is not None:
        return f"opens in {format_duration(win.not_before - now)}: {span}"
    if win.state == "open" and win.not_after is not None:
        return f"open, closes in {format_duration(win.not_after - now)}: {span}"
    return f"{win.state}: {span}"


def _iso(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC (a window agreed in a named zone is shown in it by the text only)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _rate(per_min: float | None) -> float | None:
    return None if per_min is None else round(per_min, 2)


def _stop(recorded: str | None) -> dict[str, str | None]:
    """A segment's end as the journal records it (``window_closed: the window closed ...``,
    or ``finished``): the code, and the sentence after it."""
    code, _, message = (recorded or "").partition(":")
    return {"stop_reason": code.strip() or None, "stop_message": message.strip() or None}


def as_json(status: RunStatus, version: str) -> dict[str, Any]:
    """The status as one JSON object for monitoring scripts (docs/json/status.schema.json).
    The keys are stable: always present, null where the journal cannot say."""
    holder = status.holder
    return {
        "command": "status",
        "exit_status": 0,
        "event": "status",
        "time": _iso(status.now),
        "version": version,
        "results": str(status.results),
        "journal": str(status.journal),
        "job": None if status.job is None else str(status.job),
        "state": status.state,
        "running": status.running,
        "lock": None
        if holder is None
        else {
            "held": status.running,
            "pid": holder.pid,
            "host": holder.host,
            "started_at": _iso(holder.started_at),
            "operator": status.operator,
        },
        "kind": status.kind or None,
        "target": status.target or None,
        "started_at": _iso(status.started_at),
        "finished": status.finished,
        "total": status.total,
        "candidates": status.candidates,
        "done": status.done,
        "left": status.left,
        "in_flight": status.in_flight,
        "outcomes": dict(status.outcomes),
        "requests": status.requests,
        "requests_trail": status.requests_trail,
        "requests_carried": status.requests_carried,
        "rate": status.rate,
        "concurrency": status.concurrency,
        "rows_per_min": _rate(status.rows_per_min),
        "average_rows_per_min": _rate(status.average_rows_per_min),
        "requests_per_min": _rate(status.requests_per_min),
        "eta": _iso(status.eta),
        "window": {
            "state": status.window.state,
            "not_before": _iso(status.window.not_before),
            "not_after": _iso(status.window.not_after),
        },
        "last_failures": [
            {
                "row": f.row,
                "routing_id": f.routing_id,
                "http_status": f.http_status,
                "error_code": f.error_code,
                "error_message": f.error_message,
                "attempts": f.attempts,
                "at": _iso(f.at),
            }
            for f in status.failures
        ],
        "segments": [
            {
                "segment": s.number,
                "kind": s.kind,
                "operator": s.operator,
                "version": s.version,
                "started_at": _iso(s.started_at),
                "finished_at": _iso(s.finished_at),
                **_stop(s.stop_reason),
                "exit_status": s.exit_status,
                "target_host": s.target_host,
            }
            for s in status.segments
        ],
        "events": [
            {"segment": e.segment, "at": _iso(e.at), "kind": e.kind, "detail": e.detail}
            for e in status.events
        ],
        "audit_trail": status.trail,
        "notes": list(status.notes),
        "sharing_key_with": None if status.sharing is None else list(map(_member, status.sharing)),
    }


def _member(m: Member) -> dict[str, Any]:
    return {"pid": m.pid, "host": m.host, "started_at": _iso(m.started_at),
            "results": m.results, "rate": m.rate}  # fmt: skip
