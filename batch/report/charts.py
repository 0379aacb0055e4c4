"""The report's charts as Vega-Lite specifications (plain JSON values, data inline).

Vega-Lite is the charting library: the report inlines its JavaScript (``vendor/vega.js``) and
each spec here is drawn by ``vegaEmbed`` in the browser. The specs are written as values rather
than through Altair: Altair would add over a second of imports to the end of every `run` (it
writes a report) for what is, here, six small dictionaries; the tests compile every spec with
Vega-Lite's own compiler (vl-convert) and draw them in a real browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from batch.report.series import Series

VEGA_LITE: Final = "6.4"  # the version of the inlined bundle (tools/vega_bundle.py)
SCHEMA: Final = "https://vega.github.io/schema/vega-lite/v6.json"  # a name, never fetched
HEIGHT: Final = 220
# Fixed colours per outcome, the same in every chart and in the page's badges.
OUTCOME_COLOURS: Final = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "unknown": "#ef6c00",
    "invalid": "#6a1b9a",
    "not_attempted": "#757575",
    "skipped": "#0277bd",
}
_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"

Spec = dict[str, Any]


@dataclass(frozen=True)
class Chart:
    key: str  # the element id, and what the browser test looks for
    title: str
    caption: str
    spec: Spec


def _x_time(s: Series, field: str = "t") -> dict[str, Any]:
    """The x axis of a chart over time: the clock (UTC), or, for a run with long gaps between
    its segments, the time it was running (``x``: the segments end to end, each marked)."""
    if s.timeline is not None:
        name = {"t": "x", "start": "x", "end": "x2"}[field]
        return {
            "field": name,
            "type": "quantitative",
            "title": f"time running ({s.timeline.unit}), segments end to end",
        }
    return {"field": field, "type": "temporal", "title": "time (UTC)", "scale": {"type": "utc"},
            "axis": {"format": _clock_format(s)}}  # fmt: skip


def _clock_format(s: Series) -> str:
    """Whole seconds for a run within a day (Vega's own ticks would say ".800"), the date too
    for a longer one."""
    times = [p["t"] for p in s.rate]
    if times and max(times) - min(times) > 86_400_000:
        return "%b %d %H:%M"
    return "%H:%M:%S"


def _tip_time(field: str = "t", title: str = "time (UTC)") -> dict[str, Any]:
    return {
        "field": field,
        "type": "temporal",
        "title": title,
        "format": _TIME_FORMAT,
        "formatType": "utc",
    }


def _base(**more: Any) -> Spec:
    # fit-x: as wide as the page allows, as tall as the chart says.
    return {
        "$schema": SCHEMA,
        "width": "container",
        "height": HEIGHT,
        "autosize": {"type": "fit-x", "contains": "padding"},
        **more,
    }


def _outcome_colour(*, legend: bool = True) -> dict[str, Any]:
    return {
        "field": "outcome",
        "type": "nominal",
        "title": "outcome",
        "scale": {"domain": list(OUTCOME_COLOURS), "range": list(OUTCOME_COLOURS.values())},
        **({} if legend else {"legend": None}),
    }


def rate_chart(s: Series) -> Spec:
    """Requests per second, the configured rate, 429 answers, and what happened when."""
    layers: list[Spec] = [
        {
            "data": {"values": s.pauses},
            "mark": {"type": "rect", "color": "#c62828", "opacity": 0.15},
            "encoding": {
                "x": _x_time(s, "start"),
                "x2": {"field": "x2" if s.timeline else "end"},
                "tooltip": [
                    _tip_time("start", "paused from (UTC)"),
                    {"field": "seconds", "title": "paused after a 429 (s)"},
                ],
            },
        },
        {
            "data": {"values": s.rate},
            "mark": {"type": "line", "interpolate": "step-after", "color": "#1565c0"},
            "encoding": {
                "x": _x_time(s),
                "y": {"field": "rps", "type": "quantitative", "title": "requests / s"},
                "tooltip": [_tip_time(), {"field": "rps", "title": "requests / s"}],
            },
        },
        {
            "data": {"values": s.limits},
            "mark": {"type": "rule", "strokeDash": [6, 4], "color": "#ef6c00", "size": 2},
            "encoding": {
                "x": _x_time(s, "start"),
                "x2": {"field": "x2" if s.timeline else "end"},
                "y": {"field": "rps", "type": "quantitative"},
                "tooltip": [
                    {"field": "label", "title": "configured rate"},
                    {"field": "rps", "title": "requests / s"},
                ],
            },
        },
        {
            "data": {"values": s.throttled},
            "mark": {
                "type": "point",
                "shape": "triangle-down",
                "filled": True,
                "color": "#c62828",
                "size": 60,
            },
            "encoding": {
                "x": _x_time(s),
                "y": {"value": 6},
                "tooltip": [_tip_time(), {"field": "answers", "title": "429 answers"}],
            },
        },
        {
            "data": {"values": s.marks},
            "mark": {"type": "rule", "strokeWidth": 1.5, "opacity": 0.8},
            "encoding": {
                "x": _x_time(s),
                "color": {
                    "field": "kind",
                    "type": "nominal",
                    "title": "event",
                    "scale": {"scheme": "dark2"},
                },
                "tooltip": [
                    _tip_time(),
                    {"field": "kind", "title": "event"},
                    {"field": "detail", "title": "detail"},
                ],
            },
        },
    ]
    # A layer with nothing to draw (no pause, no 429, no event) is left out: Vega warns of an
    # infinite extent for its empty field. The rate line stays, whatever it holds.
    return _base(
        layer=[layer for i, layer in enumerate(layers) if i == 1 or layer["data"]["values"]]
    )


def outcomes_chart(s: Series) -> Spec:
    return _base(
        data={"values": s.outcomes},
        mark={"type": "area", "interpolate": "step-after"},
        encoding={
            "x": _x_time(s),
            "y": {
                "field": "rows",
                "type": "quantitative",
                "stack": "zero",
                "title": "rows decided",
            },
            "color": _outcome_colour(),
            "tooltip": [_tip_time(), {"field": "outcome"}, {"field": "rows"}],
        },
    )


def latency_chart(s: Series) -> Spec:
    return _base(
        data={"values": s.latency},
        mark={"type": "line", "point": {"size": 12}},
        encoding={
            "x": _x_time(s),
            "y": {"field": "ms", "type": "quantitative", "title": "latency (ms)"},
            "color": {
                "field": "quantile",
                "type": "nominal",
                "title": "quantile",
                "scale": {
                    "domain": ["p50", "p95", "p99"],
                    "range": ["#1565c0", "#ef6c00", "#c62828"],
                },
            },
            "tooltip": [_tip_time(), {"field": "quantile"}, {"field": "ms", "title": "ms"}],
        },
    )


def _bars(values: list[dict[str, Any]], x: dict[str, Any], y: dict[str, Any], **more: Any) -> Spec:
    return _base(
        data={"values": values},
        mark={"type": "bar", "color": "#1565c0"},
        encoding={"x": x, "y": y, **more},
    )


def latency_bins_chart(s: Series) -> Spec:
    return _bars(
        s.latency_bins,
        {
            "field": "bin",
            "type": "ordinal",
            "title": "time to answer",
            "sort": {"field": "order"},
            "axis": {"labelAngle": -30},
        },
        {"field": "requests", "type": "quantitative", "title": "requests"},
        tooltip=[{"field": "bin", "title": "time to answer"}, {"field": "requests"}],
    )


def attempts_chart(s: Series) -> Spec:
    return _bars(
        s.attempts,
        {
            "field": "attempts",
            "type": "ordinal",
            "title": "requests sent for the row",
            "axis": {"labelAngle": 0},
        },
        {"field": "rows", "type": "quantitative", "title": "rows"},
        tooltip=[{"field": "attempts"}, {"field": "rows"}],
    )


def codes_chart(s: Series) -> Spec:
    spec = _bars(
        s.codes,
        {"field": "rows", "type": "quantitative", "title": "rows", "stack": "zero"},
        {"field": "code", "type": "nominal", "title": None, "sort": "-x"},
        color=_outcome_colour(),
        tooltip=[
            {"field": "code", "title": "error code"},
            {"field": "outcome"},
            {"field": "rows"},
        ],
    )
    spec["height"] = max(60, 22 * len({c["code"] for c in s.codes}))  # a bar per code
    return spec


def _or_note(spec: Spec, note: str) -> Spec:
    """``spec``, or a line of text saying there is nothing to draw (an empty chart makes Vega
    warn of an infinite extent, and shows an empty frame)."""
    layers = spec.get("layer", [spec])
    if any(layer.get("data", {}).get("values") for layer in layers):
        return spec
    return _base(
        height=40,
        data={"values": [{"note": note}]},
        mark={"type": "text", "fontSize": 14, "color": "#555"},
        encoding={"text": {"field": "note"}},
    )


def charts(s: Series) -> list[Chart]:
    every = f"one point per {_spell(s.bucket_seconds)}"
    if s.timeline is not None:
        every += "; the segments end to end, the time between them left out"
    return [
        Chart(
            "rate",
            "Requests per second",
            f"Every request sent, retries included ({every}); dashed: the configured "
            "--rate; red triangles: 429 answers; shaded red: the run paused on a 429's "
            "Retry-After; vertical rules: window, canary, error budget, server pauses, outages, "
            "stops and segment boundaries.",
            _or_note(rate_chart(s), "no request sent yet"),
        ),
        Chart(
            "outcomes",
            "Rows decided over time",
            "Rows by outcome, accumulated (rows never sent have no time and are not here).",
            _or_note(outcomes_chart(s), "no row decided yet"),
        ),
        Chart(
            "latency",
            "Latency over time",
            f"Time from sending a request to its answer: p50, p95, p99 ({every}).",
            _or_note(latency_chart(s), "no answer yet"),
        ),
        Chart(
            "latency-bins",
            "Latency distribution",
            "Requests by time to answer; requests never answered at the right.",
            _or_note(latency_bins_chart(s), "no answer yet"),
        ),
        Chart(
            "attempts",
            "Rows by number of requests",
            "How many requests each row took (0: never sent).",
            _or_note(attempts_chart(s), "no row yet"),
        ),
        Chart(
            "codes",
            "Failures by error code",
            "Rows that did not succeed, by error code (the commonest 20).",
            _or_note(codes_chart(s), "no row failed"),
        ),
    ]


def _spell(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"
