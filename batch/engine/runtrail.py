"""The engine's side of the audit trail (batch.journal.audit): a segment per invocation that sends,
the guards' events as they happen, and the two files written beside the results file at the end:
``<results>.attempts.csv`` (``.parquet`` beside Parquet results), one line per request, and
``<results>.run.json``, the segments and totals a change ticket can cite.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

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
        f"file {record.api_key_file}" if record.api_key_file else record.settings["api_key_env"]
    )  # fmt: skip
    values: dict[str, Any] = record.as_dict()
    values.update(
        results=str(settings.results),
        not_before=_iso(settings.not_before),
        not_after=_iso(settings.not_after),
        window_zone=_zone(settings.not_before, settings.not_after),
        canary=settings.canary,
        error_budget=None if settings.error_budget is None else str(settings.error_budget),
        skip_invalid=settings.skip_invalid,
        account_check=settings.account_check,
        approved_plan=settings.approved_plan,  # the plan the board approved (its sha256)
        # Absolute: the report finds it (and spells the command that applies it) from anywhere.
        rollback=None if settings.rollback is None else str(settings.rollback.resolve()),
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


def host_event(journal: Journal, news: HostNews) -> None:
    """Record the host's news as an event: down, or back."""
    if news.state is HostState.UP:
        journal.event(audit.HOST_UP, "the host answers again")
    elif news.state is HostState.DOWN:
        journal.event(audit.HOST_DOWN_EVENT, f"the host stopped answering ({news.cause})")


def attempts_path(results: Path) -> Path:
    """``<results>.attempts.parquet`` beside Parquet results, else ``<results>.attempts.csv``."""
    suffix = ".parquet" if results.suffix.lower() == ".parquet" else ".csv"
    return results.with_name(f"{results.name}.attempts{suffix}")


def run_json_path(results: Path) -> Path:
    return results.with_name(f"{results.name}.run.json")


def kept_snapshot_path(results: Path, snapshot: Path) -> Path:
    """``<results>.snapshot.csv`` (the snapshot's own extension): the records as they were
    before the run, kept with it."""
    return results.with_name(f"{results.name}.snapshot{snapshot.suffix.lower()}")


def keep_snapshot(results: Path, snapshot: Path, note: Callable[[str], None]) -> None:
    """Copy the snapshot the run is judged against beside its results (archived with them):
    its report says what changed, old -> new, after the snapshot file has moved on. The
    journal holds its sha256, so a copy is known to be that snapshot. Should the copy fail,
    a note: the run goes on (the report then reads the snapshot where it was given)."""
    kept = kept_snapshot_path(results, snapshot)
    scratch = kept.with_name(f".{kept.name}.part")
    try:
        if kept.exists() and os.path.samefile(kept, snapshot):
            return
        shutil.copyfile(snapshot, scratch)
        os.replace(scratch, kept)
    except OSError as exc:
        scratch.unlink(missing_ok=True)
        note(
            f"the snapshot could not be kept beside {results.name} ({exc.strerror or exc}); "
            f"the report reads it from {snapshot} while it is there"
        )


# The attempts file's columns: the table's (audit.Attempt), times as ISO-8601 UTC.
ATTEMPT_FILE_COLUMNS: Final = audit.ATTEMPT_COLUMNS
_TIMES: Final = ("sent_at", "answered_at")
_IS_TIME: Final = tuple(name in _TIMES for name in ATTEMPT_FILE_COLUMNS)


def write_attempts(results: Path, records: Iterable[audit.Attempt]) -> Path:
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
        for request in records:
            writer.writerow(
                [_iso_us(v) if time else ("" if v is None else v)
                 for time, v in zip(_IS_TIME, request, strict=True)]
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

    from batch.sheets.results import polars_schema

    schema = {**polars_schema(audit.Attempt), **dict.fromkeys(_TIMES, pl.String())}
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


def _zone(*bounds: datetime | None) -> str | None:
    """The IANA zone a window was agreed in (``Europe/London``), so status can show it so."""
    for bound in bounds:
        if bound is not None and isinstance(bound.tzinfo, ZoneInfo):
            return bound.tzinfo.key
    return None
