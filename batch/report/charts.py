"""The report's charts, drawn from the series (batch.report.series) as inline SVG.

Drawn when the report is made (batch.report.svg), not in the browser: the page needs no
charting library (Vega's 900 KB bundle was most of a small run's report) and shows its charts
with scripts off, in a mail client's preview, printed. A chart with nothing to draw says so in
words instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from batch.report import svg
from batch.report.series import Series
from batch.report.svg import NARROW, WIDE, Frame

# Fixed colours per outcome, the same in every chart and in the page's badges.
OUTCOME_COLOURS: Final = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "unknown": "#ef6c00",
    "invalid": "#6a1b9a",
    "not_attempted": "#757575",
    "skipped": "#0277bd",
}
QUANTILE_COLOURS: Final = {"p50": "#1565c0", "p95": "#ef6c00", "p99": "#c62828"}
# Events (window, canary, budget, pauses, stops, segments), a colour each, in order met.
EVENT_COLOURS: Final = ("#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666")
BAR: Final = "#1565c0"
_SECONDS_PER_UNIT: Final = {"s": 1, "min": 60, "h": 3600}


@dataclass(frozen=True)
class Chart:
    key: str  # the element id, and what the browser test looks for
    title: str
    caption: str
    svg: str  # the drawing; "" when there is nothing to draw (``note`` says so)
    note: str = ""


class _Time:
    """The x axis of a chart over time: the clock (epoch ms, UTC), or, for a run with long
    gaps between segments, the time it was running (``x``, the segments end to end)."""

    def __init__(self, s: Series) -> None:
        self.line = s.timeline
        if self.line is None:
            self.width = s.bucket_seconds * 1000
        else:
            self.width = s.bucket_seconds / _SECONDS_PER_UNIT[self.line.unit]

    def at(self, point: dict[str, Any], key: str = "t") -> float:
        if self.line is not None:
            return float(point[{"t": "x", "start": "x", "end": "x2"}[key]])
        return float(point[key])

    def ticks(self, lo: float, hi: float) -> list[tuple[float, str]]:
        if self.line is None:
            return svg.time_ticks(lo, hi)
        return [(v, svg.number_label(v)) for v in svg.nice_ticks(lo, hi, 8)]

    @property
    def title(self) -> str:
        if self.line is None:
            return "time (UTC)"
        return f"time running ({self.line.unit}), segments end to end"

    def words(self, point: dict[str, Any], key: str = "t") -> str:
        """A moment for a tooltip: the clock time, always (the axis may be time running)."""
        ms = point[key]
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _y_ticks(top: float) -> list[tuple[float, str]]:
    return [(v, svg.number_label(v)) for v in svg.nice_ticks(0, top)]


def _top(values: list[float]) -> float:
    return max([*values, 1e-9]) * 1.08


def rate_chart(s: Series) -> str:
    """Requests per second per bucket, the configured rate, 429 answers, pauses, events."""
    if not s.rate:
        return ""
    time = _Time(s)
    xs = [time.at(p) for p in s.rate] + [time.at(p, "end") for p in s.limits]
    lo, hi = min(xs), max(xs) + time.width
    top = _top([p["rps"] for p in s.rate] + [p["rps"] for p in s.limits])
    f = Frame.of(WIDE, (lo, hi), (0, top))
    for p in s.pauses:
        f.add(svg.rect(f.x(time.at(p, "start")), f.x(time.at(p, "end")), f.y(0), f.y(top),
                       "#c62828", f"paused {p['seconds']} s after a 429", 0.15))  # fmt: skip
    for p in s.rate:
        x = time.at(p)
        tip = f"{time.words(p)}: {p['rps']:g} requests/s"
        f.add(svg.rect(f.x(x), f.x(x + time.width) - 0.5, f.y(0), f.y(p["rps"]), BAR, tip))
    for p in s.limits:
        y = f.y(p["rps"])
        points = [(f.x(time.at(p, "start")), y), (f.x(time.at(p, "end")), y)]
        f.add(svg.polyline(points, "#ef6c00", p["label"], dash="6 4", width=2))
    for p in s.throttled:
        x = f.x(time.at(p) + time.width / 2)
        tip = f"{time.words(p)}: {p['answers']} answers 429"
        f.add(svg.polyline([(x - 4, svg.TOP), (x + 4, svg.TOP), (x, svg.TOP + 7)], "#c62828",
                           tip, fill="#c62828", width=1))  # fmt: skip
    kinds = list(dict.fromkeys(m["kind"] for m in s.marks))
    colour = {k: EVENT_COLOURS[i % len(EVENT_COLOURS)] for i, k in enumerate(kinds)}
    for m in s.marks:
        x = f.x(time.at(m))
        tip = f"{m['kind']} at {time.words(m)}: {m['detail']}"
        f.add(svg.polyline([(x, f.y(0)), (x, f.y(top))], colour[m["kind"]], tip, width=1.5))
    f.legend = [(BAR, "requests/s")]
    if s.limits:
        f.legend.append(("#ef6c00", "--rate"))
    f.legend += [(colour[k], k) for k in kinds]
    return f.svg("requests per second", x_ticks=time.ticks(lo, hi), y_ticks=_y_ticks(top),
                 x_title=time.title, y_title="requests / s")  # fmt: skip


def outcomes_chart(s: Series) -> str:
    """Rows decided so far, by outcome, stacked (steps: a bucket's count holds until the
    next)."""
    if not s.outcomes:
        return ""
    time = _Time(s)
    by: dict[str, dict[float, int]] = {}
    for p in s.outcomes:
        by.setdefault(p["outcome"], {})[time.at(p)] = p["rows"]
    xs = sorted({x for values in by.values() for x in values})
    lo, hi = xs[0], xs[-1] + time.width
    order = [o for o in OUTCOME_COLOURS if o in by]
    base = [0.0] * len(xs)
    bands = []
    for outcome in order:
        top = [b + by[outcome].get(x, 0) for b, x in zip(base, xs, strict=True)]
        bands.append((outcome, base, top))
        base = top
    f = Frame.of(WIDE, (lo, hi), (0, _top(base)))
    edges = [*xs[1:], hi]

    def steps(values: list[float]) -> list[tuple[float, float]]:
        return [(f.x(at), f.y(v)) for x, e, v in zip(xs, edges, values, strict=True)
                for at in (x, e)]  # fmt: skip

    for outcome, under, over in bands:
        tip = f"{outcome}: {int(over[-1] - under[-1]):,} rows by the end"
        colour = OUTCOME_COLOURS[outcome]
        f.add(svg.polyline(steps(over) + steps(under)[::-1], colour, tip, fill=colour, width=0.5))
    f.legend = [(OUTCOME_COLOURS[o], o) for o in order]
    return f.svg("rows decided over time", x_ticks=time.ticks(lo, hi),
                 y_ticks=_y_ticks(_top(base)), x_title=time.title,
                 y_title="rows decided")  # fmt: skip


def latency_chart(s: Series) -> str:
    """p50, p95 and p99 of the time to answer, per bucket."""
    if not s.latency:
        return ""
    time = _Time(s)
    xs = [time.at(p) + time.width / 2 for p in s.latency]
    lo, hi = min(xs) - time.width / 2, max(xs) + time.width / 2
    top = _top([p["ms"] for p in s.latency])
    f = Frame.of(WIDE, (lo, hi), (0, top))
    few = len(s.latency) <= 3 * 60
    for quantile, colour in QUANTILE_COLOURS.items():
        points = [p for p in s.latency if p["quantile"] == quantile]
        line = [(f.x(time.at(p) + time.width / 2), f.y(p["ms"])) for p in points]
        f.add(svg.polyline(line, colour, quantile))
        if few:
            for p, (x, y) in zip(points, line, strict=True):
                f.add(svg.dot(x, y, colour, f"{time.words(p)}: {quantile} {p['ms']:g} ms"))
    f.legend = [(c, q) for q, c in QUANTILE_COLOURS.items()]
    return f.svg("latency over time", x_ticks=time.ticks(lo, hi), y_ticks=_y_ticks(top),
                 x_title=time.title, y_title="latency (ms)")  # fmt: skip


def _columns(values: list[tuple[str, int]], x_title: str, y_title: str, rotate: bool) -> str:
    """Vertical bars, one per labelled category."""
    if not values or not any(n for _, n in values):
        return ""
    top = _top([float(n) for _, n in values])
    room = 110 if rotate else svg.BOTTOM  # slanted labels need the room below
    f = Frame.of(NARROW, (0, len(values)), (0, top), height=svg.HEIGHT - svg.BOTTOM + room,
                 bottom=room)  # fmt: skip
    for i, (label, n) in enumerate(values):
        f.add(svg.rect(f.x(i + 0.12), f.x(i + 0.88), f.y(0), f.y(n), BAR, f"{label}: {n:,}"))
    ticks = [(i + 0.5, label) for i, (label, _) in enumerate(values)]
    return f.svg(y_title, x_ticks=ticks, y_ticks=_y_ticks(top), x_title=x_title,
                 y_title=y_title, rotate=rotate)  # fmt: skip


def latency_bins_chart(s: Series) -> str:
    values = [(p["bin"], p["requests"]) for p in sorted(s.latency_bins, key=lambda p: p["order"])]
    return _columns(values, "time to answer", "requests", rotate=True)


def attempts_chart(s: Series) -> str:
    values = [(str(p["attempts"]), p["rows"]) for p in s.attempts]
    return _columns(values, "requests sent for the row", "rows", rotate=False)


def codes_chart(s: Series) -> str:
    """Rows that did not succeed by error code, a bar per code, coloured by outcome."""
    if not s.codes:
        return ""
    codes = list(dict.fromkeys(p["code"] for p in s.codes))
    totals = {c: sum(p["rows"] for p in s.codes if p["code"] == c) for c in codes}
    codes.sort(key=lambda c: -totals[c])
    label_room = min(260, 7 * max(len(c) for c in codes) + 12)
    height = svg.TOP + svg.BOTTOM + 24 * len(codes)
    top = _top(list(map(float, totals.values())))
    f = Frame.of(NARROW, (0, top), (len(codes), 0), height=height)
    f.x = svg.Scale(0, top, svg.LEFT + label_room, NARROW - svg.RIGHT)
    done = dict.fromkeys(codes, 0)
    for p in sorted(s.codes, key=lambda p: list(OUTCOME_COLOURS).index(p["outcome"])):
        i, start = codes.index(p["code"]), done[p["code"]]
        done[p["code"]] += p["rows"]
        f.add(svg.rect(f.x(start), f.x(done[p["code"]]), f.y(i + 0.15), f.y(i + 0.85),
                       OUTCOME_COLOURS.get(p["outcome"], "#555"),
                       f"{p['code']} ({p['outcome']}): {p['rows']:,} rows"))  # fmt: skip
    present = {p["outcome"] for p in s.codes}
    f.legend = [(colour, o) for o, colour in OUTCOME_COLOURS.items() if o in present]
    labels = "".join(
        f'<text x="{svg.LEFT + label_room - 6}" y="{svg.num(f.y(i + 0.5) + 4)}" '
        f'text-anchor="end" {svg.FONT}>{svg.esc(c)}</text>'
        for i, c in enumerate(codes)
    )
    f.add(labels)
    x_ticks = [(v, svg.number_label(v)) for v in svg.nice_ticks(0, top) if v == int(v)]
    return f.svg("failures by error code", x_ticks=x_ticks, y_ticks=[], x_title="rows",
                 y_title="")  # fmt: skip


def charts(s: Series) -> list[Chart]:
    every = f"one bar per {_spell(s.bucket_seconds)}"
    if s.timeline is not None:
        every += "; the segments end to end, the time between them left out"
    points = every.replace("bar", "point", 1)
    found: list[tuple[str, str, str, Callable[[Series], str], str]] = [
        ("rate", "Requests per second",
         f"Every request sent, retries included ({every}); dashed: the configured --rate; red "
         "triangles: 429 answers; shaded red: the run paused on a 429's Retry-After; vertical "
         "rules: window, canary, error budget, server pauses, outages, stops and segment "
         "boundaries.", rate_chart, "no request sent yet"),
        ("outcomes", "Rows decided over time",
         "Rows by outcome, accumulated (rows never sent have no time and are not here).",
         outcomes_chart, "no row decided yet"),
        ("latency", "Latency over time",
         f"Time from sending a request to its answer: p50, p95, p99 ({points}).",
         latency_chart, "no answer yet"),
        ("latency-bins", "Latency distribution",
         "Requests by time to answer; requests never answered at the right.",
         latency_bins_chart, "no answer yet"),
        ("attempts", "Rows by number of requests",
         "How many requests each row took (0: never sent).", attempts_chart, "no row yet"),
        ("codes", "Failures by error code",
         "Rows that did not succeed, by error code (the commonest 20).", codes_chart,
         "no row failed"),
    ]  # fmt: skip
    made = []
    for key, name, caption, draw, empty in found:
        drawing = draw(s)
        made.append(Chart(key, name, caption, drawing, "" if drawing else empty))
    return made


def _spell(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"
