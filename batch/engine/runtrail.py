"""The engine's side of the audit trail (batch.journal.audit): a segment per invocation that sends,
the guards' events as they happen, and the two files written beside the results file at the end:
``<results>.attempts.csv`` (``.parquet`` beside Parquet results), one line per request, and
``<results>.run.json``, the segments and totals a change ticket can cite.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from batch.engine.stop import StopReason, StopRequest
from batch.journal import audit
from batch.journal import counts as runcounts
from batch.journal.journal import Journal
from batch.journal.record import RunRecord
from batch.model import Call
from batch.send.outage import HostNews, HostState
from batch.settings import RunSettings

# What a stop is, as an event of the trail.
_STOP_EVENTS: Final[dict[str, str]] = {
    StopReason.WINDOW_CLOSED: audit.WINDOW_CLOSED,
    StopReason.ERROR_BUDGET: audit.BUDGET_EXCEEDED,
    StopReason.CANARY_FAILED: audit.CANARY_STOPPED,
    StopReason.CANARY_DECLINED: audit.CANARY_STOPPED,
    StopReason.PAUSED_BY_SERVER: audit.SERVER_PAUSE,
    StopReason.THROTTLED: audit.SERVER_PAUSE,
    StopReason.HOST_UNREACHABLE: audit.HOST_DOWN_EVENT,
    StopReason.HOST_UNUSABLE: audit.HOST_DOWN_EVENT,
}


def segment_start(
    *,
    kind: str,
    settings: RunSettings,
    record: RunRecord,
    input_sha256: str,
    calls: Iterable[Call],
    host: str,
    sandbox: bool,
) -> audit.SegmentStart:
    """What a segment records when it starts: who, what (the input's and the plan's sha256),
    where, with which key variable (its name) and every setting. Never the key."""
    from batch import __version__

    key = "(none: the embedded sandbox)" if sandbox else (
        f"file {record.api_key_file}" if record.api_key_file else record.api_key_env
    )  # fmt: skip
    values: dict[str, Any] = asdict(record)
    values.update(
        results=str(settings.results),
        not_before=_iso(settings.not_before),
        not_after=_iso(settings.not_after),
        canary=settings.canary,
        error_budget=None if settings.error_budget is None else str(settings.error_budget),
        skip_invalid=settings.skip_invalid,
        account_check=settings.account_check,
    )
    plan = audit.plan_sha256((c.row, str(c.routing_id), c.body) for c in calls)
    return audit.SegmentStart(
        kind=kind, version=str(__version__), operator=audit.operator_name(),
        input_sha256=input_sha256, plan_sha256=plan, target_host=host, key_variable=key,
        settings=values,
    )  # fmt: skip


def on_stop(journal: Journal) -> Callable[[StopRequest], None]:
    """A stop listener that records the stop as an event (window, budget, canary, ...)."""

    def record(request: StopRequest) -> None:
        kind = _STOP_EVENTS.get(request.reason, audit.STOP)
        journal.event(kind, f"{request.reason}: {request.message}")

    return record


def on_host_news(journal: Journal) -> Callable[[HostNews], None]:
    def record(news: HostNews) -> None:
        if news.state is HostState.UP:
            journal.event(audit.HOST_UP, "the host answers again")
        elif news.state is HostState.DOWN:
            journal.event(audit.HOST_DOWN_EVENT, f"the host stopped answering ({news.cause})")

    return record


def attempts_path(results: Path) -> Path:
    """``<results>.attempts.parquet`` beside Parquet results, else ``<results>.attempts.csv``."""
    suffix = ".parquet" if results.suffix.lower() == ".parquet" else ".csv"
    return results.with_name(f"{results.name}.attempts{suffix}")


def run_json_path(results: Path) -> Path:
    return results.with_name(f"{results.name}.run.json")


# The attempts file's columns: the table's, times as ISO-8601 UTC.
ATTEMPT_FILE_COLUMNS: Final = audit.ATTEMPT_COLUMNS
_TIMES: Final = frozenset(
    {audit.ATTEMPT_COLUMNS.index("sent_at"), audit.ATTEMPT_COLUMNS.index("answered_at")}
)


def write_attempts(results: Path, records: Iterable[tuple[Any, ...]]) -> Path:
    """Write every request of the run to the attempts file, streamed from the journal (memory
    stays flat whatever the size of the run); returns its path. Written to a temporary file
    first, then moved into place: a reader never sees half of it."""
    path = attempts_path(results)
    folder = path.parent
    with tempfile.NamedTemporaryFile(
        "w", dir=folder, prefix=f".{path.name}.", suffix=".csv", delete=False,
        newline="", encoding="utf-8",
    ) as handle:  # fmt: skip
        scratch = Path(handle.name)
        writer = csv.writer(handle)
        writer.writerow(ATTEMPT_FILE_COLUMNS)
        for record in records:
            writer.writerow(
                [_iso_us(v) if i in _TIMES else ("" if v is None else v)
                 for i, v in enumerate(record)]
            )  # fmt: skip
    try:
        if path.suffix == ".parquet":
            _csv_to_parquet(scratch, path)
        else:
            os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)
    return path


def _csv_to_parquet(source: Path, path: Path) -> None:
    """The CSV as Parquet, streamed by polars (never the whole file in memory)."""
    import polars as pl

    schema = {
        "row": pl.Int64, "routing_id": pl.String, "attempt": pl.Int64, "segment": pl.Int64,
        "sent_at": pl.String, "answered_at": pl.String, "http_status": pl.Int64,
        "error_code": pl.String, "waited_ms": pl.Int64, "wait_cause": pl.String,
        "retry_after": pl.Float64,
    }  # fmt: skip
    scratch = path.with_name(f".{path.name}.part")
    try:
        pl.scan_csv(source, schema=schema).sink_parquet(scratch)
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def write_run_json(
    results: Path,
    journal: Journal,
    *,
    outcomes: Mapping[str, int],
    status: str,
    exit_status: int,
) -> Path:
    """``<results>.run.json``: the run's identity, each segment, the events and the totals
    (rows by outcome, requests by answer). Never the key: nothing here ever held it."""
    requests, segments_, events = journal.audit_summary()
    meta = journal.metadata()
    segments = [_readable(s) for s in segments_]
    about = {
        "results": results.name,
        "journal": journal.path.name,
        "attempts_file": attempts_path(results).name,
        "input_sha256": meta.get("input_sha256", ""),
        "status": status,
        "exit_status": exit_status,
        "segments": segments,
        "events": [_readable(e) for e in events],
        "totals": {
            "rows": sum(outcomes.values()),
            "outcomes": dict(sorted(outcomes.items())),
            "requests": sum(requests.values()),
            "requests_by_answer": dict(sorted(requests.items())),
            # a retry written to another results file: what its rows counted before (the
            # results file's attempts add up to requests + requests_carried)
            "requests_carried": runcounts.carried_of(meta),
        },
    }
    path = run_json_path(results)
    scratch = path.with_name(f".{path.name}.part")
    scratch.write_text(json.dumps(about, indent=2) + "\n", encoding="utf-8")
    os.replace(scratch, path)
    return path


def _readable(record: Mapping[str, Any]) -> dict[str, Any]:
    """A segment or event with its times as ISO-8601 UTC."""
    return {k: _iso_us(v) if k in ("started_at", "finished_at", "at") else v
            for k, v in record.items()}  # fmt: skip


def _iso_us(value: Any) -> str:
    if value is None or value == "":
        return ""
    moment = datetime.fromtimestamp(int(value) / 1_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
