"""`reroute report`: a run's story in one file, made from its journal (and results file).

    data      read the journal (read-only) and the results file: plain facts and frames
    verdict   how it ended in a line, and what to run next
    failures  the rows that did not succeed (with the sheet's own ids), and the top causes
    changes   what changed, old -> new, against the snapshot the run kept
    undo      the rollback file and the command that applies it
    commands  the resume, retry and rollback commands, as this process was started
    flags     the settings as the operator wrote them
    headline  what, where, when, who; provenance; each segment
    series    aggregate requests and rows into time buckets and counts (the charts' data)
    charts    the charts, drawn as SVG (svg: the drawing)
    sections  every section, once, in the order both forms show them
    document  the same facts as values, for `reroute report --json`
    html      one self-contained page (everything inline and escaped)
    markdown  the same sections, shorter, to paste into a ticket (under 10 KB)

`run` and `retry` write ``<results stem>.report.html`` (:func:`default_path`) when they end;
`reroute report` writes it (or Markdown) on demand, also for a run still going or one that
stopped early. Making a report of a run with a snapshot also writes the full list of changes
beside the results (``<results>.changes.csv``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from batch.errors import UsageError
from batch.invoked import INSTALLED
from batch.paths import FORMATS as FORMATS
from batch.paths import default_path as default_path

if TYPE_CHECKING:
    from batch.report.data import Facts


def render(results: Path, fmt: str = "html", *, started: Sequence[str] = INSTALLED) -> str:
    """The report of the run that writes ``results``, as text (HTML or Markdown); the
    commands it prints start as ``started`` (:func:`batch.invoked.started_as`)."""
    from batch.report import data

    return _text(data.read(Path(results)), fmt, started)


def _text(facts: Facts, fmt: str, started: Sequence[str]) -> str:
    from batch.report import charts, html, markdown, sections, series
    from batch.report.changes import MAX_RECORDS
    from batch.report.data import MAX_FAILED_ROWS

    if fmt not in FORMATS:
        raise UsageError(f"report format {fmt!r}: use html or md")
    if fmt == "md":
        parts = sections.build(
            facts, rows=markdown.MAX_ROWS, records=markdown.MAX_RECORDS, started=started
        )
        return markdown.text(parts)
    parts = sections.build(facts, rows=MAX_FAILED_ROWS, records=MAX_RECORDS, started=started)
    return html.page(parts, charts.charts(series.build(facts)))


def write_report(
    results: Path,
    *,
    out: Path | None = None,
    fmt: str = "html",
    started: Sequence[str] = INSTALLED,
) -> Path:
    """Write the report of ``results`` to ``out`` (default :func:`default_path`); returns
    where. Never over a file of the run, never replacing a pipe or device
    (``batch.report.destination``). A run still going, or one that stopped early, gets a
    report of what its journal holds. Raises RerouteError (no journal, an older one, an
    unreadable results file, an unknown format, a forbidden ``out``) or OSError: the caller of
    a run notes it, the run's exit status stands. The commands it prints start as
    ``started`` (:func:`batch.invoked.started_as`).
    """
    return write_and_read(results, out=out, fmt=fmt, started=started)[0]


def write_and_read(
    results: Path,
    *,
    out: Path | None = None,
    fmt: str = "html",
    started: Sequence[str] = INSTALLED,
) -> tuple[Path, Facts]:
    """:func:`write_report`, and the facts it was made from (`reroute report --json` shows
    them as values: batch.report.document), read once."""
    from batch.engine.target import check_results_argument
    from batch.report import data
    from batch.report.destination import check_destination, write_text

    if fmt not in FORMATS:
        raise UsageError(f"report format {fmt!r}: use html or md")
    results = Path(results)
    check_results_argument(results)
    target = Path(out) if out is not None else default_path(results, fmt)
    facts = data.read(results)
    check_destination(target, results, {**facts.settings, "rollback": facts.latest("rollback")})
    write_text(target, _text(facts, fmt, started))
    return target, facts
