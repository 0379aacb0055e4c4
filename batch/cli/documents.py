"""The one JSON document each command prints on stdout with ``--json`` (docs/json/*.schema.json).

Fields hold values: numbers, booleans, ISO-8601 UTC times, codes, paths, commands, cells as
read. Text written for a person is only in fields named so (``message``, ``*_message``,
``notes``, ``detail``), each beside the code it explains. Every document opens with the same
four keys (:func:`envelope`); a command that cannot start (bad usage, unreadable input, a run
refused before sending) prints no document: its one line is on stderr, as without ``--json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import batch
from batch.model import Outcome

if TYPE_CHECKING:
    from batch.config.jobcheck import Report as JobReport
    from batch.engine.ending import Result
    from batch.engine.guards import BudgetUse
    from batch.prepare.current import Diff
    from batch.prepare.validate import Validation
    from batch.settings import ErrorBudget


def iso(moment: datetime | None) -> str | None:
    """An ISO-8601 UTC time, ``Z`` for the zone (None stays None)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def envelope(command: str, exit_status: int) -> dict[str, Any]:
    """The keys every document starts with: which command, which reroute, when, how it ended."""
    return {
        "command": command,
        "version": batch.__version__,
        "time": iso(datetime.now(UTC)),
        "exit_status": int(exit_status),
    }


def emit(document: Mapping[str, Any]) -> None:
    """The document, on one line of stdout (a watcher prints one per refresh: JSON lines)."""
    print(json.dumps(document, ensure_ascii=False), flush=True)


def validation(v: Validation, notes: Iterable[str] = ()) -> dict[str, Any]:
    """What `validate` (and the start of `plan`) found: counts, rows per code, every invalid
    row (the results file of ``--results`` has them too)."""
    return {
        "input": str(v.table.path),
        "rows": v.total,
        "valid": v.valid,
        "invalid": v.invalid,
        "codes": v.code_counts(),
        "invalid_rows": [
            {
                "row": r.row,
                "routing_id": r.routing_id,
                "error_code": r.error_code,
                "error_message": r.error_message,
            }
            for r in v.invalid_results()
        ],
        "notes": list(notes),
    }


def plan(
    counts: list[tuple[int, int, int, int]],
    diff: Diff | None,
    *,
    applied: int | None,
    out: Path | None,
    rollback: Path | None,
    restored: int | None,
) -> dict[str, Any]:
    """What `plan` adds to the validation: the requests by mode, the verdicts against a
    snapshot (with ``--current``) or the requests an earlier run applied, the files written."""
    from batch import voicelink as vl

    judged: dict[str, Any] | None = None
    if diff is not None:
        from batch.prepare.current import Verdict

        judged = {
            "snapshot": str(diff.snapshot),
            "verdicts": {str(verdict): n for verdict, n in diff.counts().items()},
            "wipes": [
                {"row": d.row, "routing_id": d.routing_id, "fields": list(d.wipes)}
                for d in diff.rows(verdicts=(Verdict.WIPES,))
            ],
        }
    return {
        "requests": sum(n for *_, n in counts),
        "by_mode": [
            {vl.FOR_INBOUND_CALL: a, vl.FOR_OUTBOUND_CALL: b, vl.STATUS: c, "rows": n}
            for a, b, c, n in counts
        ],
        "current": judged,
        "already_applied": applied,
        "plan_file": None if out is None else str(out),
        "rollback": None if rollback is None else {"path": str(rollback), "records": restored},
    }


def error_budget(use: BudgetUse | None, budget: ErrorBudget | None) -> dict[str, Any]:
    """The error budget as values: its limit (``percent``/``rows``, both null: off) and what
    this invocation used (nothing sent: none)."""
    from batch.settings import ErrorBudget

    return {
        "percent": use.percent if use else (budget.percent if budget else None),
        "rows": use.rows if use else (budget.count if budget else None),
        "window_rows": ErrorBudget.WINDOW,
        "finished_rows": use.finished_rows if use else 0,
        "failed_rows": use.failed_rows if use else 0,
        "failed_percent": use.failed_percent if use else 0.0,
        "exceeded": use.exceeded if use else False,
    }


def run(
    command: str,
    result: Result,
    exit_status: int,
    *,
    budget: ErrorBudget | None,
    resume_command: str | None,
    retry_command: str | None,
    report: Path | None,
) -> dict[str, Any]:
    """The end of `run` or `retry`: how it ended, rows per outcome, the top error codes,
    requests and pace, where the results and report are, the command to run next. The keys of
    the summary object ``--log-format json`` printed before ``--json`` existed are kept."""
    from batch.engine.ending import Status

    summary, ran = result.summary, result.report
    stopped = ran.stopped if ran else None
    elapsed = ran.elapsed if ran else 0.0
    resume = resume_command if result.status is Status.STOPPED else None
    retry = retry_command if summary.retryable and resume is None else None
    return {
        **envelope(command, exit_status),
        "event": "summary",
        "ending": str(result.status),
        "status": "stopped" if resume else "finished",
        "stop_reason": stopped.reason if stopped else None,
        "stop_message": stopped.message if stopped else None,
        "target_host": result.host or None,
        "rows": summary.total,
        "outcomes": {o.value: summary.counts[o] for o in Outcome},
        "left": summary.left,
        "top_error_codes": [
            {
                "code": code,
                "count": count,
                "example_row": example.row,
                "example_routing_id": example.routing_id,
                "example_message": example.error_message,
            }
            for code, count, example in summary.top_codes()
        ],
        "elapsed_s": round(elapsed, 3),
        "requests": result.requests,
        "effective_rate_per_s": round(result.requests / elapsed, 3) if elapsed > 0 else 0.0,
        "results": str(result.results),
        "results_written": not result.message,
        "results_message": result.message or None,
        "report": None if report is None else str(report),
        "error_budget": error_budget(result.budget, budget),
        "skipped_unchanged": summary.counts[Outcome.SKIPPED] - summary.already_applied,
        "already_applied": summary.already_applied,
        "resume_command": resume,
        "retry_command": retry,
    }


def job(report: JobReport, env: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """One job of `jobs check`: its verdict, and what running it from here and now would do
    (the facts its lines tell, as values). An unusable job has only its error."""
    from batch.config.jobcheck import Verdict
    from batch.engine import window

    status = {Verdict.OK: "ok", Verdict.INVALID_ROWS: "invalid_rows"}.get(report.status)
    found: dict[str, Any] = {
        "job": str(report.path),
        "status": status or "unusable",
        "exit_status": int(report.status),
        "description": report.about or None,
        "error_message": report.problems[0] if status is None and report.problems else None,
    }
    settings, v = report.settings, report.validation
    if settings is None or v is None:
        return {**found, "problems": list(report.problems), "notes": list(report.notes)}
    win = window.Window(settings.not_before, settings.not_after, settings.window_daily)
    held = env.get(settings.api_key_env, "").strip()
    zone = win.zone
    budget = settings.error_budget
    journal = settings.results.with_name(settings.results.name + ".journal")
    return {
        **found,
        **validation(v),
        "requests": report.sending,
        "base_url": settings.base_url,
        "rate": str(settings.rate),
        "concurrency": settings.concurrency,
        "duration_s": (window.eta(now, report.sending, settings.rate) - now).total_seconds(),
        "window": {
            "daily": win.daily,
            "zone": None if zone is None else zone.key,
            "not_before": iso(win.not_before),
            "not_after": iso(win.not_after),
            "open_now": window.is_open(win, now),
        },
        "results": str(settings.results),
        "current": None
        if settings.current is None
        else {"snapshot": str(settings.current), "verdicts": report.verdicts},
        "already_applied": report.applied,
        "skip_invalid": settings.skip_invalid,
        "key_variable": settings.api_key_env,
        "key_set": bool(held),
        "resumes": journal.exists() and not settings.fresh,
        "running": report.running,
        "canary": settings.canary or None,
        "error_budget": None
        if budget is None
        else {"percent": budget.percent, "rows": budget.count, "window_rows": budget.WINDOW},
        "rollback": None if settings.rollback is None else str(settings.rollback),
        "problems": list(report.problems),
        "notes": list(report.notes),
    }
