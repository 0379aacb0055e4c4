"""The report as Markdown, to paste into a ticket: the headline figures, the top causes and
the rows that did not succeed (fewer than the page: a ticket is read, not searched)."""

from __future__ import annotations

from typing import Any, Final

from batch.report.data import Cause, FailedRow
from batch.report.headline import Headline

MAX_ROWS: Final = 100
CELL: Final = 160  # characters of a message per cell


def _cell(value: object, limit: int = CELL) -> str:
    """A table cell: one line, pipes escaped, long text cut."""
    text = " ".join(("" if value is None else str(value)).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def text(
    head: Headline,
    causes: tuple[list[Cause], int],
    failures: tuple[list[FailedRow], int],
) -> str:
    lines = [f"## {_cell(head.title, 200)}", ""]
    lines += [f"- **{label}:** {_cell(value, 300)}" for label, value in head.facts]
    lines += ["", "### Rows by outcome", ""]
    lines += _table(
        ("outcome", "rows"), [(name, f"{n:,}") for name, n in head.outcomes.items() if n]
    )
    lines += ["", f"{head.total:,} rows, {head.requests:,} requests sent."]
    if len(head.segments) > 1:
        lines += ["", "### Segments", ""]
        lines += _table(
            ("#", "kind", "operator", "started", "finished", "requests", "ended"),
            [
                (
                    s["segment"],
                    s["kind"],
                    s["operator"],
                    s["started"],
                    s["finished"],
                    s["requests"],
                    s["ended"],
                )
                for s in head.segments
            ],
        )
    found, distinct = causes
    if found:
        lines += ["", "### Top error causes", ""]
        lines += _table(
            ("rows", "outcome", "error code", "HTTP", "example row", "message"),
            [
                (
                    c.rows,
                    c.outcome,
                    c.error_code or "(none)",
                    c.http_status or "",
                    f"{c.example_row} (routing_id {c.example_routing_id})",
                    c.example_message,
                )
                for c in found
            ],
        )
        if distinct > len(found):
            lines.append(f"\n{distinct - len(found)} less common causes not shown.")
    rows, total = failures
    if total:
        lines += ["", "### Rows that did not succeed", ""]
        shown = rows[:MAX_ROWS]
        lines += _table(
            ("row", "routing_id", "outcome", "HTTP", "attempts", "error code", "message"),
            [
                (
                    f.row,
                    f.routing_id,
                    f.outcome,
                    f.http_status or "",
                    f.attempts,
                    f.error_code,
                    f.error_message,
                )
                for f in shown
            ],
        )
        if total > len(shown):
            lines.append(
                f"\nThe first {len(shown):,} of {total:,}; every row is in `{head.results}`."
            )
    return "\n".join(lines) + "\n"
