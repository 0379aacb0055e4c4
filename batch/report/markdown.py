"""The report as Markdown, to paste into a change ticket (Jira and ServiceNow do not show an
attached page inline; a comment is what people read).

The sections in the page's order (batch.report.sections), shorter: the verdict line first, the
counts, the top causes, the first rows that did not succeed with the sheet's own ids (then a
pointer to the results file), a summary of the changes, the undo and next commands (never cut:
they are pasted), the settings chosen and the hashes. Under ``LIMIT`` bytes for any run: cells
are cut as written (escapes included), and should a run's text still be too long, fewer rows
and records are listed.
"""

from __future__ import annotations

from typing import Any, Final

from batch.report.failures import FailedRow
from batch.report.sections import Sections

LIMIT: Final = 10_000  # bytes: a ticket comment, for any run
MAX_ROWS: Final = 20
MAX_RECORDS: Final = 10
MAX_CAUSES: Final = 5
MAX_IDS: Final = 3  # the sheet's own columns shown per row
MAX_SEGMENTS: Final = 10  # the last ones, when a run has more
CELL: Final = 100  # characters of a message per cell, as written
ID_CELL: Final = 30  # characters of an id cell (or a column's name)
LINE: Final = 300  # characters of a line of text (a path, a summary)
_ESCAPED: Final = {"\\": "\\\\", "|": "\\|", "<": "&lt;", ">": "&gt;"}


def md_cell(value: object, limit: int = CELL) -> str:
    """One line of text, pipes and markup escaped, cut to ``limit`` characters as written (an
    escape is never cut in two)."""
    text = " ".join(("" if value is None else str(value)).split())
    pieces = [_ESCAPED.get(char, char) for char in text[: 4 * limit]]
    if len(text) <= limit and sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    out: list[str] = []
    size = 0
    for piece in pieces:
        if size + len(piece) > limit - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out) + "…"


def md_code(text: str) -> str:
    """Inline code holding any text whole (a command is pasted: never cut)."""
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def md_table(
    header: tuple[str, ...], rows: list[tuple[Any, ...]], limits: tuple[int, ...] = ()
) -> list[str]:
    """A table; each column's cells cut to its limit (``limits``, else ``CELL``)."""
    cuts = [*limits, *[CELL] * (len(header) - len(limits))]
    lines = [
        "| " + " | ".join(md_cell(name, ID_CELL) for name in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += [
        "| " + " | ".join(md_cell(v, cut) for v, cut in zip(row, cuts, strict=True)) + " |"
        for row in rows
    ]
    return lines


def text(parts: Sections) -> str:
    """The Markdown, within ``LIMIT`` bytes (fewer rows and records listed if need be)."""
    rows, records = MAX_ROWS, MAX_RECORDS
    while True:
        made = _text(parts, rows, records)
        if len(made.encode()) <= LIMIT or (rows == 0 and records == 0):
            return made
        rows, records = (rows // 2, records) if rows > 2 else (0, records // 2)


def _text(parts: Sections, max_rows: int, max_records: int) -> str:
    head, v = parts.head, parts.verdict
    first = f"**{md_cell(v.line, LINE)}**"
    if v.resume:
        first += f" — resume with {md_code(v.resume)}"
    lines = [first, "", md_cell(head.about, 2 * LINE), "", "### Rows by outcome", ""]
    lines += md_table(("outcome", "rows"), [(o, f"{n:,}") for o, n in head.outcomes.items() if n])
    lines += ["", f"{head.total:,} rows, {head.requests:,} requests sent."]
    lines += _causes(parts)
    lines += _failures(parts, max_rows, head.results)
    lines += _changes(parts, max_records)
    lines += ["", "### How to undo", "", md_cell(parts.undo.text, 2 * LINE)]
    if parts.undo.command:
        lines += ["", f"    {parts.undo.command}"]
    lines += ["", "### What to run next"]
    for step in v.next:
        lines += ["", md_cell(step.text, 2 * LINE)]
        if step.command:
            lines += ["", f"    {step.command}"]
    lines += ["", f"**Settings chosen:** {md_cell(parts.chosen, 2 * LINE)}", ""]
    lines += [f"- **{label}:** {md_cell(value, LINE)}" for label, value in head.provenance]
    lines += _segments(parts)
    return "\n".join(lines) + "\n"


def _segments(parts: Sections) -> list[str]:
    """Each invocation that sent (the start, each resume, each retry), when there were several:
    a job resumed across three nights reads as one story."""
    segments = parts.head.segments
    if len(segments) < 2:
        return []
    shown = segments[-MAX_SEGMENTS:]
    lines = [
        "",
        "| # | kind | operator | started | requests | ended |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        "| " + " | ".join(
            md_cell(s[key], 80) for key in ("segment", "kind", "operator", "started", "requests",
                                          "ended")
        ) + " |"
        for s in shown
    ]  # fmt: skip
    if len(segments) > len(shown):
        lines.append(f"\nThe last {len(shown)} of {len(segments)} segments.")
    return lines


def _causes(parts: Sections) -> list[str]:
    found, distinct = parts.causes
    if not found:
        return []
    shown = found[:MAX_CAUSES]
    lines = ["", "### Top causes", ""]
    lines += md_table(
        ("rows", "outcome", "error code", "HTTP", "example"),
        [
            (
                f"{c.rows:,}",
                c.outcome,
                c.error_code or "(none)",
                c.http_status or "",
                f"{c.example_name}: {c.example_message}",
            )
            for c in shown
        ],
        limits=(12, 14, 40, 4, 140),
    )
    if distinct > len(shown):
        lines.append(f"\n{distinct - len(shown)} less common causes not shown.")
    return lines


def _failures(parts: Sections, max_rows: int, results: str) -> list[str]:
    found, total = parts.failures
    if not total:
        return []
    shown = found[:max_rows]
    ids = list(found[0].passthrough)[:MAX_IDS] if found else []
    lines = ["", "### Rows that did not succeed", ""]
    if shown:
        lines += md_table(
            ("row", "routing_id", *ids, "outcome", "HTTP", "attempts", "error code", "message"),
            [_failure(f, ids) for f in shown],
            limits=(28, ID_CELL, *[ID_CELL] * len(ids), 14, 4, 4, 40, CELL),  # 5 (line 6)
        )
        lines.append("")
    if total > len(shown):
        lines.append(f"The first {len(shown):,} of {total:,}; every row is in {md_code(results)}.")
    return lines


def _failure(f: FailedRow, ids: list[str]) -> tuple[Any, ...]:
    return (
        f.where,
        f.routing_id,
        *(f.passthrough.get(name, "") for name in ids),
        f.outcome,
        f.http_status or "",
        f.attempts,
        f.error_code,
        f.error_message,
    )


def _changes(parts: Sections, max_records: int) -> list[str]:
    c = parts.changes
    lines = ["", "### What changed", "", md_cell(c.summary, 2 * LINE)]
    if not c.known:
        return lines
    listed = c.records[:max_records]
    if listed:
        lines.append("")
    for r in listed:
        ids = ", ".join(
            f"{md_cell(k, ID_CELL)} {md_cell(v, ID_CELL)}" for k, v in list(r.ids.items())[:2] if v
        )
        named = f"row {r.where}, {ids}" if ids else f"row {r.where}"
        fields = "; ".join(f"{name}: {old} → {new}" for name, old, new in r.fields)
        lines.append(f"- `{md_cell(r.routing_id, ID_CELL)}` ({named}): {md_cell(fields, 2 * CELL)}")
    if parts.changes_file is not None:
        more = (
            f"The first {len(listed):,} of {c.changed:,}; every"
            if c.changed > len(listed)
            else "Every"
        )
        lines.append(
            f"\n{more} row sent that differs from its record is in {md_code(parts.changes_file)}."
        )
    return lines
