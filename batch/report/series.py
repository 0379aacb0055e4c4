"""The charts' data: the run's requests and rows aggregated into time buckets and counts.

A 200,000-row run is a quarter of a million requests: the report embeds a few hundred points
per chart, never a point per request (size, and the time a browser takes to draw it). Bucket
widths are round durations chosen from the time the run was active (its segments, not the
nights between them): at most ``BUCKETS`` buckets, at least a second and a few requests each.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Final

import polars as pl

from batch.errors import UsageError
from batch.report.data import Facts, not_succeeded
from batch.settings import Rate

BUCKETS: Final = 300
# A bucket lasts at least a second (the charts count requests per second) and holds a few
# requests on average: a 5-second run is five bars, not ten half-second edges.
MIN_PER_BUCKET: Final = 5
_WIDTHS_S: Final = (
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    21600,
    43200,
    86400,
)
# Latency histogram: upper edges in milliseconds (the last bin is open).
LATENCY_EDGES_MS: Final = (10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000)
TOP_CODES: Final = 20
NO_ANSWER: Final = "no answer"

Points = list[dict[str, Any]]


@dataclass(frozen=True)
class Timeline:
    """Where a moment sits on the charts' x axis when the run has long gaps (a job resumed
    across three nights reads as one story): its time running, the segments end to end.

    ``spans`` are the active intervals in microseconds, sorted; a moment outside them sits at
    the nearest edge (an event while waiting for the window: where the segment starts)."""

    spans: list[tuple[int, int]]
    unit: str  # "s", "min" or "h"

    def at(self, us: int) -> float:
        done = 0
        for start, end in self.spans:
            if us < start:
                break
            if us <= end:
                done += us - start
                break
            done += end - start
        return round(done / 1e6 / _UNIT_SECONDS[self.unit], 4)

    def active_us(self) -> int:
        return sum(end - start for start, end in self.spans)


_UNIT_SECONDS: Final = {"s": 1, "min": 60, "h": 3600}


def timeline(spans: list[tuple[int, int]]) -> Timeline | None:
    """A timeline of the active time when the gaps between segments are most of the run (else
    None: the charts use the clock)."""
    if len(spans) < 2:
        return None
    active = sum(end - start for start, end in spans)
    overall = spans[-1][1] - spans[0][0]
    if overall <= 1.5 * max(active, 1):
        return None
    seconds = active / 1e6
    unit = "s" if seconds < 300 else ("min" if seconds < 5 * 3600 else "h")
    return Timeline(spans, unit)


@dataclass(frozen=True)
class Series:
    """Plain lists of records, ready to be a chart's inline data (times in epoch ms; with a
    ``timeline``, each point's position on it as ``x``, and ``x2`` for spans)."""

    timeline: Timeline | None
    bucket_seconds: float
    rate: Points  # t, rps: requests sent per second in each bucket
    limits: Points  # start, end, rps, label: the configured rate of each segment
    throttled: Points  # t, answers: 429 answers in the bucket
    pauses: Points  # start, end, seconds: the run paused on a 429's Retry-After
    marks: Points  # t, kind, detail: window, canary, budget, pause, stop, segment boundaries
    outcomes: Points  # t, outcome, rows: rows decided so far, by outcome
    latency: Points  # t, quantile, ms
    latency_bins: Points  # bin, order, requests
    attempts: Points  # attempts, rows
    codes: Points  # code, outcome, rows


def build(facts: Facts) -> Series:
    spans = _spans(facts)
    width_us = _width_us(sum(end - start for start, end in spans), facts.attempts.height)
    attempts = facts.attempts.with_columns((pl.col("sent_at") // width_us).alias("b"))
    buckets = _buckets(spans, width_us, attempts.get_column("b"))
    series = Series(
        timeline=timeline(sorted(spans)),
        bucket_seconds=width_us / 1e6,
        rate=_rate(attempts, buckets, width_us),
        limits=_limits(facts, spans),
        throttled=_records(
            attempts.filter(pl.col("http_status") == 429)
            .group_by("b")
            .agg(pl.len().alias("answers"))
            .sort("b")
            .select(_t("b", width_us), "answers")
        ),
        pauses=_pauses(facts.pauses, width_us),
        marks=_marks(facts),
        outcomes=_outcomes(facts, buckets, width_us),
        latency=_latency(attempts, width_us),
        latency_bins=_latency_bins(facts.attempts),
        attempts=_records(
            facts.rows.group_by("attempts").agg(pl.len().alias("rows")).sort("attempts")
        ),
        codes=_codes(facts),
    )
    if series.timeline is not None:
        _place(series, series.timeline)
    return series


def _place(series: Series, line: Timeline) -> None:
    """Add each point's position on the timeline (``x``; ``x2`` for a span's end)."""
    for points in (series.rate, series.throttled, series.marks, series.outcomes, series.latency):
        for point in points:
            point["x"] = line.at(point["t"] * 1000)
    # Buckets that fall between two segments sit on the boundary: a stacked chart must see
    # each (outcome, x) once, the latest.
    latest = {(p["outcome"], p["x"]): p for p in series.outcomes}
    series.outcomes[:] = list(latest.values())
    for span in (*series.limits, *series.pauses):
        span["x"] = line.at(span["start"] * 1000)
        span["x2"] = line.at(span["end"] * 1000)


def _spans(facts: Facts) -> list[tuple[int, int]]:
    """When the run was active (microseconds): each segment from its start to its end (or its
    last request, while it runs); the requests' own span when no segment is recorded."""
    sent = facts.attempts.get_column("sent_at")
    last: dict[int, int] = dict(
        facts.attempts.group_by("segment").agg(pl.col("sent_at").max()).iter_rows()
    )
    spans = []
    for seg in facts.segments:
        start = seg["started_at"]
        end = seg["finished_at"] or last.get(seg["segment"]) or start
        spans.append((start, max(start, end)))
    if not spans and sent.len():
        spans.append((int(sent.min()), int(sent.max())))  # type: ignore[arg-type]
    return spans


def _width_us(active_us: int, requests: int) -> int:
    """The bucket width: the shortest round width that makes at most ``BUCKETS`` buckets of
    the run's active time, each holding ``MIN_PER_BUCKET`` requests on average."""
    least = max(active_us / BUCKETS, MIN_PER_BUCKET * active_us / max(requests, 1))
    for seconds in _WIDTHS_S:
        if seconds * 1e6 >= least:
            return int(seconds * 1e6)
    return int(_WIDTHS_S[-1] * 1e6)


def _buckets(spans: list[tuple[int, int]], width_us: int, used: pl.Series) -> pl.Series:
    """Every bucket of every segment (a quiet one counts as zero), the one after each segment
    (the charts drop to zero between nights), and any other bucket with a request."""
    ids: set[int] = set()
    for start, end in spans:
        ids.update(range(start // width_us, end // width_us + 2))
    ids.update(used.unique().to_list())
    return pl.Series("b", sorted(ids), dtype=pl.Int64)


def _t(column: str, width_us: int) -> pl.Expr:
    """A bucket's start as epoch milliseconds (what the charts take as a time)."""
    return (pl.col(column) * (width_us // 1000)).alias("t")


def _records(frame: pl.DataFrame) -> Points:
    return frame.to_dicts()


def _rate(attempts: pl.DataFrame, buckets: pl.Series, width_us: int) -> Points:
    counts = attempts.group_by("b").agg(pl.len().alias("n"))
    frame = (
        buckets.to_frame()
        .join(counts, on="b", how="left")
        .with_columns(pl.col("n").fill_null(0))
        .select(_t("b", width_us), (pl.col("n") / (width_us / 1e6)).round(3).alias("rps"))
    )
    return _records(frame)


def _limits(facts: Facts, spans: list[tuple[int, int]]) -> Points:
    found = []
    for seg, (start, end) in zip(facts.segments, spans, strict=False):
        text = str(seg["settings"].get("rate") or facts.record.get("rate") or "")
        try:
            rate = Rate.parse(text)
        except UsageError:
            continue
        found.append(
            {
                "start": start // 1000,
                "end": end // 1000,
                "rps": round(rate.per_second, 4),
                "label": f"--rate {rate} (segment {seg['segment']})",
            }
        )
    return found


def _pauses(spans: list[tuple[int, int]], width_us: int) -> Points:
    """The pauses, those less than a bucket apart drawn as one (at most a few hundred spans
    however many requests waited); ``seconds`` is the time actually paused within."""
    found: list[dict[str, Any]] = []
    for start, end in spans:
        if found and start - found[-1]["_end"] < width_us:
            found[-1]["_end"] = max(end, found[-1]["_end"])
            found[-1]["_paused"] += end - start
        else:
            found.append({"_start": start, "_end": end, "_paused": end - start})
    return [
        {"start": p["_start"] // 1000, "end": p["_end"] // 1000,
         "seconds": round(p["_paused"] / 1e6, 1)}
        for p in found
    ]  # fmt: skip


def _marks(facts: Facts) -> Points:
    marks = [{"t": e["at"] // 1000, "kind": e["kind"], "detail": e["detail"]} for e in facts.events]
    for seg in facts.segments:
        marks.append(
            {
                "t": seg["started_at"] // 1000,
                "kind": f"{seg['kind']} started",
                "detail": f"segment {seg['segment']} by {seg['operator']}",
            }
        )
        if seg["finished_at"] is not None:
            marks.append(
                {
                    "t": seg["finished_at"] // 1000,
                    "kind": "segment ended",
                    "detail": f"segment {seg['segment']}: {seg['stop_reason'] or 'done'}",
                }
            )
    return sorted(marks, key=lambda m: m["t"])


def _outcomes(facts: Facts, buckets: pl.Series, width_us: int) -> Points:
    """Rows decided by the end of each bucket, by outcome (rows never sent have no time)."""
    decided = facts.rows.filter(pl.col("started_at").is_not_null()).select(
        (pl.coalesce("finished_at", "started_at") // width_us).alias("b"), "outcome"
    )
    if decided.is_empty():
        return []
    counts = decided.group_by("b", "outcome").agg(pl.len().alias("n"))
    grid = (
        pl.concat([buckets.to_frame(), decided.select("b")])
        .unique()
        .join(decided.select("outcome").unique(), how="cross")
    )
    frame = (
        grid.join(counts, on=["b", "outcome"], how="left")
        .with_columns(pl.col("n").fill_null(0))
        .sort("outcome", "b")
        .with_columns(pl.col("n").cum_sum().over("outcome").alias("rows"))
        .select(_t("b", width_us), "outcome", "rows")
        .sort("t", "outcome")
    )
    return _records(frame)


def _latency(attempts: pl.DataFrame, width_us: int) -> Points:
    answered = attempts.filter(pl.col("answered_at").is_not_null()).with_columns(
        ((pl.col("answered_at") - pl.col("sent_at")) / 1000).alias("ms")
    )
    frame = (
        answered.group_by("b")
        .agg(
            pl.col("ms").quantile(0.5).alias("p50"),
            pl.col("ms").quantile(0.95).alias("p95"),
            pl.col("ms").quantile(0.99).alias("p99"),
        )
        .sort("b")
        .select(_t("b", width_us), "p50", "p95", "p99")
        .unpivot(index="t", variable_name="quantile", value_name="ms")
        .with_columns(pl.col("ms").round(1))
    )
    return _records(frame)


def _latency_bins(attempts: pl.DataFrame) -> Points:
    ms = (
        attempts.filter(pl.col("answered_at").is_not_null())
        .select(((pl.col("answered_at") - pl.col("sent_at")) / 1000).alias("ms"))
        .get_column("ms")
    )
    labels = _bin_labels()
    # The bin of each answer: how many edges are at or below it (bins are closed on the left).
    index = pl.Series(LATENCY_EDGES_MS, dtype=pl.Float64).search_sorted(ms, side="right")
    counts = dict(index.value_counts().iter_rows())
    found = [
        {"bin": label, "order": i, "requests": int(counts.get(i, 0))}
        for i, label in enumerate(labels)
    ]
    unanswered = attempts.height - ms.len()
    found.append({"bin": NO_ANSWER, "order": len(labels), "requests": unanswered})
    return found


def _bin_labels() -> list[str]:
    def spell(ms: int) -> str:
        return f"{ms // 1000} s" if ms >= 1000 else f"{ms} ms"

    edges = LATENCY_EDGES_MS
    labels = [f"< {spell(edges[0])}"]
    labels += [f"{spell(a)} to {spell(b)}" for a, b in pairwise(edges)]
    return [*labels, f"≥ {spell(edges[-1])}"]


def _codes(facts: Facts) -> Points:
    """Rows that did not succeed by error code (a row with several validation codes counts
    under each); a row with no code (never sent, in flight) under its outcome."""
    rows = not_succeeded(facts.rows).select(
        pl.when(pl.col("error_code").fill_null("") == "")
        .then(pl.col("outcome"))
        .otherwise(pl.col("error_code"))
        .str.split(";")
        .alias("code"),
        "outcome",
    )
    frame = (
        rows.explode("code")
        .group_by("code", "outcome")
        .agg(pl.len().alias("rows"))
        .sort("rows", "code", descending=[True, False])
        .head(TOP_CODES)
    )
    return _records(frame)
