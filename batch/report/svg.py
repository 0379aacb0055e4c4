"""Charts as inline SVG, drawn when the report is made: the page carries no charting library.

A :class:`Frame` is one chart: a plot area inside margins, linear x and y scales, round ticks
(1-2-5 for numbers, whole seconds to days for clock times, UTC), grid lines, axis titles and a
legend. Marks (bars, lines, bands, rules) are added as SVG text and carry the ``mark`` class;
each says what it shows in a ``<title>`` (the browser's tooltip). Coordinates are written to a
tenth of a pixel: a chart of 300 buckets stays a few tens of kilobytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Final

WIDE: Final = 1200
NARROW: Final = 580
HEIGHT: Final = 240
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 26, 44
FONT: Final = 'font-family="system-ui,sans-serif" font-size="11" fill="#444"'
# Clock ticks: the smallest of these steps that makes at most ~8 ticks.
_TIME_STEPS_S: Final = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800,
)  # fmt: skip


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def num(value: float) -> str:
    """A coordinate, to a tenth of a pixel, with no trailing zeros."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Scale:
    """Maps ``lo..hi`` onto ``start..end`` (pixels); a zero-width domain maps to the middle."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        if self.hi == self.lo:
            return (self.start + self.end) / 2
        return self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round numbers (1, 2 or 5 times a power of ten) from ``lo`` to ``hi``, about ``count``."""
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo] if math.isfinite(lo) else [0.0]
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def number_label(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:g}"


def time_ticks(lo_ms: float, hi_ms: float, count: int = 8) -> list[tuple[float, str]]:
    """Clock times (epoch milliseconds, UTC) on round steps between ``lo_ms`` and ``hi_ms``."""
    span = max(hi_ms - lo_ms, 1.0) / 1000
    step = next((s for s in _TIME_STEPS_S if span / s <= count), _TIME_STEPS_S[-1])
    form = "%b %d %H:%M" if span > 86400 else ("%H:%M:%S" if step < 60 else "%H:%M")
    first = math.ceil(lo_ms / 1000 / step) * step
    ticks = []
    at = first
    while at * 1000 <= hi_ms:
        ticks.append((at * 1000.0, datetime.fromtimestamp(at, UTC).strftime(form)))
        at += step
    return ticks


@dataclass
class Frame:
    """One chart being drawn: add marks with :meth:`add`, then :meth:`svg`."""

    width: int
    x: Scale
    y: Scale
    height: int = HEIGHT
    bottom: int = BOTTOM  # room under the plot: tick labels and the axis title
    marks: list[str] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (colour, label)

    @classmethod
    def of(cls, width: int, x: tuple[float, float], y: tuple[float, float],
           height: int = HEIGHT, bottom: int = BOTTOM) -> Frame:  # fmt: skip
        return cls(
            width,
            Scale(x[0], x[1], LEFT, width - RIGHT),
            Scale(y[0], y[1], height - bottom, TOP),
            height,
            bottom,
        )

    def add(self, mark: str) -> None:
        self.marks.append(mark)

    def svg(
        self,
        label: str,
        *,
        x_ticks: list[tuple[float, str]],
        y_ticks: list[tuple[float, str]],
        x_title: str,
        y_title: str,
        rotate: bool = False,
    ) -> str:
        """The chart as an ``<svg>`` element that fills its box's width."""
        bottom, top = self.height - self.bottom, TOP
        left, right = LEFT, self.width - RIGHT
        # A clock label cut by the edge says less than none.
        x_ticks = [(v, t) for v, t in x_ticks if left - 1 <= self.x(v) <= right - 3 * len(t)]
        grid = "".join(
            f'<line x1="{left}" x2="{right}" y1="{num(self.y(v))}" y2="{num(self.y(v))}"/>'
            for v, _ in y_ticks
        )
        ylabels = "".join(
            f'<text x="{left - 6}" y="{num(self.y(v) + 4)}" text-anchor="end">{esc(t)}</text>'
            for v, t in y_ticks
        )
        xlabels = "".join(_x_label(num(self.x(v)), bottom, t, rotate) for v, t in x_ticks)
        parts = [
            f'<svg viewBox="0 0 {self.width} {self.height}" width="100%" role="img" '
            f'aria-label="{esc(label)}" xmlns="http://www.w3.org/2000/svg">',
            f'<g stroke="#e3e6ea">{grid}</g>',
            f"<g {FONT}>{ylabels}{xlabels}",
            f'<text x="{(left + right) // 2}" y="{self.height - 4}" '
            f'text-anchor="middle">{esc(x_title)}</text>',
            f'<text transform="translate(12 {(top + bottom) // 2}) rotate(-90)" '
            f'text-anchor="middle">{esc(y_title)}</text>',
            self._legend(),
            "</g>",
            *self.marks,
            f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#888"/>',
            "</svg>",
        ]
        return "".join(parts)

    def _legend(self) -> str:
        x = self.width - RIGHT
        items = []
        for colour, text in reversed(self.legend):
            x -= 7 * len(text) + 26
            items.append(
                f'<rect x="{x}" y="6" width="10" height="10" fill="{colour}"/>'
                f'<text x="{x + 14}" y="15">{esc(text)}</text>'
            )
        return "".join(items)


def _x_label(x: str, bottom: int, text: str, rotate: bool) -> str:
    if rotate:
        return (
            f'<text transform="translate({x} {bottom + 12}) rotate(-35)" '
            f'text-anchor="end">{esc(text)}</text>'
        )
    return f'<text x="{x}" y="{bottom + 16}" text-anchor="middle">{esc(text)}</text>'


def title(text: str) -> str:
    return f"<title>{esc(text)}</title>" if text else ""


def rect(x0: float, x1: float, y0: float, y1: float, fill: str, tip: str = "",
         opacity: float | None = None) -> str:  # fmt: skip
    """A rectangle between two x and two y positions (pixels), in either order."""
    left, top = min(x0, x1), min(y0, y1)
    w, h = max(abs(x1 - x0), 0.6), abs(y1 - y0)
    faded = f' fill-opacity="{opacity}"' if opacity is not None else ""
    return (
        f'<rect class="mark" x="{num(left)}" y="{num(top)}" width="{num(w)}" height="{num(h)}" '
        f'fill="{fill}"{faded}>{title(tip)}</rect>'
    )


def polyline(points: list[tuple[float, float]], stroke: str, tip: str = "", *,
             dash: str = "", width: float = 1.8, fill: str = "none") -> str:  # fmt: skip
    """A line through ``points`` (pixels); with ``fill``, a closed band."""
    d = "M" + "L".join(f"{num(x)},{num(y)}" for x, y in points) + ("Z" if fill != "none" else "")
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<path class="mark" d="{d}" fill="{fill}" stroke="{stroke}" '
        f'stroke-width="{width}"{dashed}>{title(tip)}</path>'
    )


def dot(x: float, y: float, colour: str, tip: str = "", r: float = 2.5) -> str:
    return (
        f'<circle class="mark" cx="{num(x)}" cy="{num(y)}" r="{r}" fill="{colour}">'
        f"{title(tip)}</circle>"
    )
