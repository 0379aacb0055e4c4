"""`reroute report`: a run's story in one file, made from its journal (and results file).

    data      read the journal (read-only) and the results file: plain facts and frames
    series    aggregate requests and rows into time buckets and counts (the charts' data)
    headline  what, where, when, who, how it ended, each segment: in words
    charts    Vega-Lite specs of the series
    html      one self-contained page (Vega inlined, everything escaped)
    markdown  the headline, causes and failures, to paste into a ticket

`run` and `retry` write ``<results stem>.report.html`` when they end; `reroute report` writes
it (or Markdown) on demand, also for a run still going or one that stopped early.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from batch.errors import UsageError

FORMATS: Final = {"html": ".report.html", "md": ".report.md"}


def default_path(results: Path, fmt: str = "html") -> Path:
    """``<results stem>.report.html`` (or ``.report.md``) beside the results file."""
    return results.with_name(results.stem + FORMATS[fmt])


def render(results: Path, fmt: str = "html") -> str:
    """The report of the run that writes ``results``, as text (HTML or Markdown)."""
    from batch.report import charts, data, headline, html, markdown, series

    if fmt not in FORMATS:
        raise UsageError(f"report format {fmt!r}: use html or md")
    facts = data.read(Path(results))
    head = headline.headline(facts)
    causes = data.causes(facts)
    if fmt == "md":
        return markdown.text(head, causes, data.failed_rows(facts, cap=markdown.MAX_ROWS))
    return html.page(head, charts.charts(series.build(facts)), causes, data.failed_rows(facts))


def write_report(results: Path, *, out: Path | None = None, fmt: str = "html") -> Path:
    """Write the report of ``results`` to ``out`` (default :func:`default_path`), atomically;
    returns where. A run still going, or one that stopped early, gets a report of what its
    journal holds. Raises RerouteError (no journal, an older one, an unreadable results file,
    an unknown format) or OSError: the caller of a run notes it, the run's exit status stands.
    """
    from batch.results import atomic_file

    if fmt not in FORMATS:
        raise UsageError(f"report format {fmt!r}: use html or md")
    results = Path(results)
    target = Path(out) if out is not None else default_path(results, fmt)
    text = render(results, fmt)
    with atomic_file(target) as file:
        file.write(text.encode("utf-8"))
    return target
