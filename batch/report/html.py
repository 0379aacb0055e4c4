"""The report as one self-contained HTML page: styles, script and charts inline.

It opens from disk on a machine with no network (a jump host, an email attachment): no CDN, no
web font, no request of any kind, and its Content-Security-Policy forbids every load. The
charts are SVG drawn when the report is made (batch.report.charts); the one script sorts and
filters the failure table. Every value from the run is escaped: response bodies and error
messages are whatever a server sent. The sections come in the order of
:mod:`batch.report.sections`: the verdict, the failures and what changed within the first
screen, the charts and the engineering detail after.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Final

from batch.report.changes import Changes
from batch.report.charts import OUTCOME_COLOURS, Chart
from batch.report.failures import Cause, FailedRow
from batch.report.headline import when
from batch.report.sections import Sections
from batch.report.undo import Undo
from batch.report.verdict import NextStep, Verdict

_HERE: Final = Path(__file__).parent
# Nothing may be loaded from anywhere; the page's own script and styles are inline.
CSP: Final = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'"
)
_WIDE: Final = frozenset({"rate", "outcomes", "latency"})
CELL: Final = 80  # characters of a sheet's own cell shown in the table (all of it on hover)
CAUSE_MESSAGE: Final = 160


def _asset(name: str) -> str:
    return (_HERE / name).read_text(encoding="utf-8")


def _e(value: object) -> str:
    """Text for an attribute or an element, escaped."""
    return escape("" if value is None else str(value), quote=True)


def _t(value: object) -> str:
    """Text for an element's content only (quotes need no escaping there: JSON bodies stay
    readable in the source and a third smaller)."""
    return escape("" if value is None else str(value), quote=False)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def page(parts: Sections, charts: list[Chart]) -> str:
    """The whole page, as text."""
    head = parts.head
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(head.title)}</title>",
        f"<style>{_asset('static/page.css')}</style>",
        "</head><body>",
        _banner(parts.verdict, head.title, head.about),
        _section(
            "outcomes", "Rows by outcome", _outcomes(head.outcomes, head.total, head.requests)
        ),
        _section("causes", "Top causes", _causes(*parts.causes)),
        _section(
            "failed-rows",
            "Rows that did not succeed",
            _failures(*parts.failures, results=head.results),
        ),
        _section("changes", "What changed", _changes(parts.changes, parts.changes_file)),
        _section("undo", "How to undo", _undo(parts.undo)),
        _section("next", "What to run next", _next(parts.verdict.next)),
        _section(
            "charts",
            "Charts",
            '<div class="charts">' + "".join(_chart_box(c) for c in charts) + "</div>",
        ),
        _section("settings", "Settings", _settings(parts)),
        _section("provenance", "Provenance", _provenance(head.provenance, head.segments)),
        '<p class="note">Made by reroute report. Times in UTC.</p>',
        f"<script>{_asset('static/page.js')}</script>",
        "</body></html>",
    ]
    return "\n".join(body) + "\n"


def _section(key: str, title: str, content: str) -> str:
    return f'<section id="{key}"><h2>{_e(title)}</h2>{content}</section>'


def _command(command: str) -> str:
    return f'<pre class="command"><code>{_t(command)}</code></pre>'


def _banner(v: Verdict, title: str, about: str) -> str:
    resume = (
        f'<div class="resume">resume with <code>{_t(v.resume)}</code></div>' if v.resume else ""
    )
    return (
        f'<header id="verdict" class="verdict {v.tone}"><div class="title">{_e(title)}</div>'
        f'<div class="line">{_e(v.line)}</div>{resume}'
        f'<div class="about">{_e(about)}</div></header>'
    )


def _outcomes(outcomes: dict[str, int], total: int, requests: int) -> str:
    badges = "".join(
        f'<div class="badge{" zero" if n == 0 else ""}" '
        f'style="background:{OUTCOME_COLOURS.get(name, "#555")}">'
        f"{n:,}<span>{_e(name)}</span></div>"
        for name, n in outcomes.items()
    )
    return (
        f'<div class="badges">{badges}'
        f'<span class="note">{total:,} rows, {requests:,} requests sent</span></div>'
    )


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_t(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _causes(causes: list[Cause], distinct: int) -> str:
    if not causes:
        return '<p class="note">Every row sent succeeded.</p>'
    rows = [
        (
            f"{c.rows:,}",
            c.outcome,
            c.error_code or "(none)",
            c.http_status or "",
            f"{c.example_name}: " + _cut(c.example_message, CAUSE_MESSAGE),
        )
        for c in causes
    ]
    more = (
        f'<p class="note">{distinct - len(causes)} less common causes not shown.</p>'
        if distinct > len(causes)
        else ""
    )
    header = ("rows", "outcome", "error code", "HTTP", "example")
    return '<div class="causes">' + _table(header, rows) + "</div>" + more


def _failures(found: list[FailedRow], total: int, *, results: str) -> str:
    if not total:
        return '<p class="note">None.</p>'
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
    ids = list(found[0].passthrough) if found else []
    columns = [("row", True), ("routing_id", False), *((name, False) for name in ids),
               ("outcome", False), ("HTTP", True), ("attempts", True), ("error code", False),
               ("message", False)]  # fmt: skip
    head = "".join(
        f'<th class="sortable{" num" if num else ""}">{_e(name)}</th>' for name, num in columns
    )
    body = "".join(_failure_row(f) for f in found)
    return (
        f"{capped}"
        '<div class="controls"><input id="failure-filter" type="search" '
        'placeholder="Filter: routing id, ticket, code, message, body…" '
        'aria-label="Filter rows">'
        f'<select id="failure-outcome" aria-label="Outcome">{choices}</select>'
        '<span id="failure-count" class="note"></span></div>'
        f'<div class="scroll"><table id="failures"><thead><tr>{head}<th>details</th></tr>'
        f"</thead><tbody>{body}</tbody></table></div>"
    )


def _failure_row(f: FailedRow) -> str:
    colour = OUTCOME_COLOURS.get(f.outcome, "#555")
    cells = [
        f'<td class="num" data-sort="{f.row}">{_e(f.where)}</td>',
        f"<td>{_e(f.routing_id)}</td>",
        *(
            f'<td title="{_e(v)}">{_t(_cut(v, CELL))}</td>'
            if len(v) > CELL
            else f"<td>{_t(v)}</td>"
            for v in f.passthrough.values()
        ),
        f'<td class="outcome" style="color:{colour}">{_e(f.outcome)}</td>',
        f'<td class="num">{_e(f.http_status or "")}</td>',
        f'<td class="num">{f.attempts}</td>',
        f"<td>{_e(f.error_code)}</td>",
        f"<td>{_t(f.error_message)}</td>",
        f"<td>{_details(f)}</td>",
    ]
    return f'<tr data-outcome="{_e(f.outcome)}">{"".join(cells)}</tr>'


def _changes(c: Changes, full: str | None) -> str:
    if not c.known:
        return f'<p class="note">{_e(c.summary)}</p>'
    listed = "".join(_record(r.routing_id, r.where, r.ids, r.fields) for r in c.records)
    more = ""
    if full is not None:
        shown = f"The first {len(c.records):,} of {c.changed:,} are here; every" if (
            c.changed > len(c.records)) else "Every"  # fmt: skip
        more = (
            f'<p class="note">{shown} row sent that differs from its record (with its '
            f"outcome) is in <code>{_t(full)}</code>.</p>"
        )
    block = f'<div class="plan">{listed}</div>' if listed else ""
    return f"<p>{_e(c.summary)}</p>{block}{more}"


def _record(routing_id: str, row: str, ids: dict[str, str],
            fields: list[tuple[str, str, str]]) -> str:  # fmt: skip
    named = "".join(f" · {_t(k)} {_t(_cut(v, 40))}" for k, v in list(ids.items())[:2] if v)
    lines = "".join(
        f'<div class="field"><span class="name">{_t(name)}</span> '
        f'<span class="old">{_t(old)}</span> → <span class="new">{_t(new)}</span></div>'
        for name, old, new in fields
    )
    return (
        f'<div class="record"><div class="head">~ routing_id {_t(routing_id)} '
        f'<span class="note">row {_t(row)}{named}</span></div>{lines}</div>'
    )


def _undo(u: Undo) -> str:
    text = f"<p>{_e(u.text)}</p>"
    return text + (_command(u.command) if u.command else "")


def _next(steps: list[NextStep]) -> str:
    return "".join(
        f"<p>{_e(s.text)}</p>" + (_command(s.command) if s.command else "") for s in steps
    )


def _chart_box(chart: Chart) -> str:
    wide = " wide" if chart.key in _WIDE else ""
    drawing = chart.svg or f'<p class="chart-note">{_e(chart.note)}</p>'
    return (
        f'<section class="chart-box{wide}"><h3>{_e(chart.title)}</h3>'
        f"<p>{_e(chart.caption)}</p>"
        f'<div class="chart" id="chart-{_e(chart.key)}" data-chart="{_e(chart.key)}" '
        f'data-drawn="yes">{drawing}</div></section>'
    )


def _settings(parts: Sections) -> str:
    rows = [
        (s.flag or "(job file only)", s.value, s.job_key or "(flag only)")
        for s in parts.settings
        if not s.default
    ]
    defaults = [(s.flag or "(job file only)", s.value, s.job_key or "(flag only)")
                for s in parts.settings if s.default]  # fmt: skip
    header = ("flag", "value", "job file key")
    chosen = _table(header, rows) if rows else '<p class="note">Every setting at its default.</p>'
    rest = (
        f"<details><summary>{len(defaults)} settings at their default</summary>"
        f"{_table(header, defaults)}</details>"
        if defaults
        else ""
    )
    return f"{chosen}{rest}"


def _provenance(facts: list[tuple[str, str]], segments: list[dict[str, str]]) -> str:
    listed = "".join(f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in facts)
    out = f'<dl class="facts">{listed}</dl>'
    if segments:
        header = list(segments[0])
        out += (
            '<h3 class="sub">Segments</h3>'
            '<p class="note">Each invocation that sent: the start, each resume, each retry.</p>'
            + _table(header, ([s[h] for h in header] for s in segments))
        )
    return out


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
        f"<details><summary>{len(f.history)} request{'' if len(f.history) == 1 else 's'}"
        "</summary>"
        f"<h3>Request body</h3><pre>{_t(f.request) or '(none)'}</pre>"
        f"<h3>Response</h3><pre>{_t(f.response) or '(none)'}</pre>"
        f"<h3>Requests</h3>{_history(f) if f.history else '<p class=note>none recorded</p>'}"
        "</details>"
    )
