"""The values a status is read from, as the journal and run.json hold them: microsecond stamps,
ISO moments (in the window's zone when it named one), segments, the target, the start."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from batch.engine.target import SANDBOX_IDENTITY
from batch.journal import rowrecords
from batch.journal.record import RunRecord
from batch.status.state import Segment


def us(moment: datetime) -> int:
    stamp = rowrecords.stamp(moment)
    assert stamp is not None
    return stamp


def moment_of(text: object, zone: ZoneInfo | None = None) -> datetime | None:
    """A moment run.json holds; shown in the window's zone when the window named one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)
    return moment.astimezone(zone) if zone is not None else moment


def zone_of(name: object) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def when(stamp: int) -> datetime:
    moment = rowrecords.when(stamp)
    assert moment is not None
    return moment


def seg_time(segment: Mapping[str, Any] | None, key: str) -> datetime | None:
    if segment is None or segment.get(key) is None:
        return None
    return when(segment[key])


def segment_of(s: Mapping[str, Any]) -> Segment:
    return Segment(
        s["segment"], s["kind"], s["operator"], s["version"], when(s["started_at"]),
        seg_time(s, "finished_at"), s["stop_reason"], s["exit_status"], s["target_host"],
    )  # fmt: skip


def int_or_none(value: object) -> int | None:
    try:
        return None if value is None else int(str(value))
    except ValueError:
        return None


def text_of(value: object) -> str:
    return "" if value is None else str(value)


def target_of(meta: Mapping[str, str], record: RunRecord | None) -> str:
    if (record is not None and record.sandbox) or meta.get("base_url") == SANDBOX_IDENTITY:
        return "sandbox"
    return meta.get("base_url") or (record.settings["base_url"] if record else "") or ""


def started_of(meta: Mapping[str, str], segments: list[dict[str, Any]]) -> datetime | None:
    if segments:
        return when(segments[0]["started_at"])
    return moment_of(meta.get("started_at"))
