"""The report as one self-contained HTML page: styles, scripts, charts and data inline.

It opens from disk on a machine with no network (a jump host, an email attachment): no CDN, no
web font, no request of any kind, and its Content-Security-Policy forbids every load. Every
value from the run is escaped: response bodies and error messages are whatever a server sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any, Final

from batch.report.charts import OUTCOME_COLOURS, Chart
from batch.report.data import Cause, FailedRow
from batch.report.headline import Headline, when

_HERE: Final = Path(__file__).parent
# Nothing may be loaded from anywhere. Vega compiles its expressions into functions (the bundle
# does not expose its interpreter), hence 'unsafe-eval'.
CSP: Final = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'"
)
_WIDE: Final = frozenset({"rate", "outcomes", "latency"})


def _asset(name: str) -> str:
    return (_HERE / name).read_text(encoding="utf-8")


def _e(value: object) -> str:
    """Text for an attribute or an element, escaped."""
    return escape("" if value is None else str(value), quote=True)


def _t(value: object) -> str:
    """Text for an element's content only (quotes need no escaping there: JSON bodies stay
    readable in the source and a third smaller)."""
    return escape("" if value is None else str(value), quote=False)


def _script_json(value: Any) -> str:
    """JSON that cannot end the <script> element it sits in, whatever its strings hold."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(
    head: Headline,
    charts: list[Chart],
    causes: tuple[list[Cause], int],
    failures: tuple[list[FailedRow], int],
) -> str:
    """The whole page, as text."""
    specs = {chart.key: chart.spec for chart in charts}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(head.title)}</title>",
        f"<style>{_asset('static/page.css')}</style>",
        "</head><body>",
        f"<h1>{_e(head.title)}</h1>",
        _summary(head),
        _settings(head.settings),
        _segments(head.segments),
        '<h2 id="charts">Charts</h2><div class="charts">',
        *(_chart_box(c) for c in charts),
        "</div>",
        _causes(*causes),
        _failures(*failures, results=head.results),
        '<p class="note">Made by reroute report. Times in UTC.</p>',
        f'<script type="application/json" id="report-specs">{_script_json(specs)}</script>',
        f"<script>{_asset('vendor/vega.js')}</script>",
        f"<script>{_asset('static/page.js')}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _summary(head: Headline) -> str:
    facts = "".join(f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in head.facts)
    badges = "".join(
        f'<div class="badge{" zero" if n == 0 else ""}" '
        f'style="background:{OUTCOME_COLOURS.get(name, "#555")}">'
        f"{n:,}<span>{_e(name)}</span></div>"
        for name, n in head.outcomes.items()
    )
    return (
        f'<dl class="facts">{facts}</dl>'
        f'<h2 id="outcomes">Rows by outcome</h2><div class="badges">{badges}</div>'
        f'<p class="note">{head.total:,} rows, {head.requests:,} requests sent.</p>'
    )


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_t(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _settings(settings: dict[str, Any]) -> str:
    rows = [(k, json.dumps(v) if isinstance(v, dict | list) else v) for k, v in settings.items()]
    return '<h2 id="settings">Settings</h2>' + _table(("setting", "value"), rows)


def _segments(segments: list[dict[str, str]]) -> str:
    if not segments:
        return '<h2 id="segments">Segments</h2><p class="note">No segment recorded.</p>'
    header = list(segments[0])
    return (
        '<h2 id="segments">Segments</h2>'
        '<p class="note">Each invocation that sent: the start, each resume, each retry.</p>'
        + _table(header, ([s[h] for h in header] for s in segments))
    )


def _chart_box(chart: Chart) -> str:
    wide = " wide" if chart.key in _WIDE else ""
    return (
        f'<section class="chart-box{wide}"><h3>{_e(chart.title)}</h3>'
        f"<p>{_e(chart.caption)}</p>"
        f'<div class="chart" id="chart-{_e(chart.key)}" data-chart="{_e(chart.key)}"></div>'
        "</section>"
    )


def _causes(causes: list[Cause], distinct: int) -> str:
    title = '<h2 id="causes">Top error causes</h2>'
    if not causes:
        return title + '<p class="note">Every row sent succeeded.</p>'
    rows = [
        (
            c.rows,
            c.outcome,
            c.error_code or "(none)",
            c.http_status or "",
            f"row {c.example_row} (routing_id {c.example_routing_id})",
            c.example_message,
        )
        for c in causes
    ]
    more = (
        f'<p class="note">{distinct - len(causes)} less common causes not shown.</p>'
        if distinct > len(causes)
        else ""
    )
    header = ("rows", "outcome", "error code", "HTTP", "example", "its message")
    return title + _table(header, rows) + more


_COLUMNS: Final = (
    ("row", True),
    ("routing_id", False),
    ("outcome", False),
    ("HTTP", True),
    ("attempts", True),
    ("error code", False),
    ("message", False),
    ("details", False),
)


def _failures(found: list[FailedRow], total: int, *, results: str) -> str:
    title = '<h2 id="failures-title">Rows that did not succeed</h2>'
    if not total:
        return title + '<p class="note">None.</p>'
    capped = (
        f'<p class="note">The first {len(found):,} of {total:,} are here; every row is in '
        f"{_e(results)}.</p>"
        if total > len(found)
        else ""
    )
    outcomes = sorted({f.outcome for f in found})
    choices = '<option value="">every outcome</option>' + "".join(
        f'<option value="{_e(o)}">{_e(o)}</option>' for o in outcomes
    )
    head = "".join(
        f'<th class="sortable{" num" if num else ""}">{_e(name)}</th>'
        if name != "details"
        else f"<th>{_e(name)}</th>"
        for name, num in _COLUMNS
    )
    body = "".join(_failure_row(f) for f in found)
    return (
        f"{title}{capped}"
        '<div class="controls"><input id="failure-filter" type="search" '
        'placeholder="Filter: routing id, code, message, body…" aria-label="Filter rows">'
        f'<select id="failure-outcome" aria-label="Outcome">{choices}</select>'
        '<span id="failure-count" class="note"></span></div>'
        f'<div class="scroll"><table id="failures"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _failure_row(f: FailedRow) -> str:
    colour = OUTCOME_COLOURS.get(f.outcome, "#555")
    cells = [
        f'<td class="num">{f.row}</td>',
        f"<td>{_e(f.routing_id)}</td>",
        f'<td class="outcome" style="color:{colour}">{_e(f.outcome)}</td>',
        f'<td class="num">{_e(f.http_status or "")}</td>',
        f'<td class="num">{f.attempts}</td>',
        f"<td>{_e(f.error_code)}</td>",
        f"<td>{_t(f.error_message)}</td>",
        f"<td>{_details(f)}</td>",
    ]
    return f'<tr data-outcome="{_e(f.outcome)}">{"".join(cells)}</tr>'


_HISTORY_HEAD: Final = ("#", "seg", "sent (UTC)", "answer", "HTTP", "code", "waited before")


def _history(f: FailedRow) -> str:
    """The row's requests as a fixed-width text table: a third the size of an HTML one, and
    1,000 rows of it are most of the page."""
    lines = [
        (
            str(a["attempt"]),
            str(a["segment"]),
            when(a["sent_at"], ms=True),
            f"{(a['answered_at'] - a['sent_at']) / 1000:,.0f} ms"
            if a["answered_at"] is not None
            else "no answer",
            str(a["http_status"] or ""),
            a["error_code"],
            (f"{a['waited_ms']:,} ms ({a['wait_cause']})" if a["waited_ms"] else "")
            + ("" if a["retry_after"] is None else f", Retry-After {a['retry_after']:g} s"),
        )
        for a in f.history
    ]
    widths = [max(len(x) for x in column) for column in zip(_HISTORY_HEAD, *lines, strict=True)]
    text = "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in (_HISTORY_HEAD, *lines)
    )
    return f"<pre>{_t(text)}</pre>"


def _details(f: FailedRow) -> str:
    return (
        f"<details><summary>request, response, {len(f.history)} requests</summary>"
        f"<h3>Request body</h3><pre>{_t(f.request) or '(none)'}</pre>"
        f"<h3>Response</h3><pre>{_t(f.response) or '(none)'}</pre>"
        f"<h3>Requests</h3>{_history(f) if f.history else '<p class=note>none recorded</p>'}"
        "</details>"
    )
