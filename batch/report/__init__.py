"""`reroute report`: a run's story in one file, made from its journal (and results file).

    data      read the journal (read-only) and the results file: plain facts and frames
    series    aggregate requests and rows into time buckets and counts (the charts' data)
    headline  what, where, when, who, how it ended, each segment: in words
    charts    Vega-Lite specs of the series
    html      one self-contained page (Vega inlined, everything escaped)
    markdown  the headline, causes and failures, to paste into a ticket

`run` and `retry` write ``<results stem>.report.html`` (:func:`default_path`) when they end;
`reroute report` writes it (or Markdown) on demand, also for a run still going or one that
stopped early.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from batch.errors import UsageError
from batch.paths import FORMATS as FORMATS
from batch.paths import default_path as default_path

if TYPE_CHECKING:
    from batch.report.data import Facts


def render(results: Path, fmt: str = "html") -> str:
    """The report of the run that writes ``results``, as text (HTML or Markdown)."""
    from batch.report import data

    return _text(data.read(Path(results)), fmt)


def _text(facts: Facts, fmt: str) -> str:
    from batch.report import charts, data, headline, html, markdown, series

    if fmt not in FORMATS:
        raise UsageError(f"report format {fmt!r}: use html or md")
    head = headline.headline(facts)
    causes = data.causes(facts)
    if fmt == "md":
        return markdown.text(head, causes, data.failed_rows(facts, cap=markdown.MAX_ROWS))
    return html.page(head, charts.charts(series.build(facts)), causes, data.failed_rows(facts))


def write_report(results: Path, *, out: Path | None = None, fmt: str = "html") -> Path:
    """Write the report of ``results`` to ``out`` (default :func:`default_path`); returns
    where. Never over a file of the run, never replacing a pipe or device
    (``batch.report.destination``). A run still going, or one that stopped early, gets a
    report of what its journal holds. Raises RerouteError (no journal, an older one, an
    unreadable results file, an unknown format, a forbidden ``out``) or OSError: the caller of
    a run notes it, the run's exit status stands.
    """
    from batch.engine.target import check_results_argument
    from batch.report import data
    from batch.report.destination import check_destination, write_text

    if fmt not in FORMATS:
        raise UsageError(f"report format {fmt!r}: use html or md")
    results = Path(results)
    check_results_argument(results)
    target = Path(out) if out is not None else default_path(results, fmt)
    facts = data.read(results)
    check_destination(target, results, facts.record)
    write_text(target, _text(facts, fmt))
    return target
