"""The rows that did not succeed, and why: the failure table and the top causes.

Each row is named as the people on a cutover bridge name it: its row number and routing id,
and the sheet's own columns the results file carries (a DID, a ticket number).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from batch.report.data import MAX_FAILED_ROWS, Facts, not_succeeded

RESPONSE_EXCERPT: Final = 600  # characters of a response shown per row
REQUEST_EXCERPT: Final = 2_000
PASSTHROUGH_EXCERPT: Final = 200  # characters of a sheet's own cell
TOP_CAUSES: Final = 10


@dataclass(frozen=True)
class FailedRow:
    """A row that did not succeed, as the failure table shows it."""

    row: int
    where: str  # the row as the operator finds it: "3 (line 4)" (batch.sheets.rownames)
    routing_id: str
    outcome: str
    http_status: int | None
    attempts: int
    error_code: str
    error_message: str
    request: str
    response: str
    history: list[dict[str, Any]]  # its requests: attempt, sent_at, status, code, ms, wait
    passthrough: dict[str, str]  # the sheet's own columns (column -> cell), in their order


@dataclass(frozen=True)
class Cause:
    """One error cause: how many rows it stopped, with one of them as an example."""

    outcome: str
    error_code: str
    http_status: int | None
    rows: int
    example_row: int
    example_name: str  # "row 3 (line 4, routing_id 1003)"
    example_routing_id: str
    example_message: str


def failed_rows(facts: Facts, *, cap: int = MAX_FAILED_ROWS) -> tuple[list[FailedRow], int]:
    """Up to ``cap`` rows that did not succeed, each with its attempt history; and how many
    there are in all."""
    every = not_succeeded(facts.rows)
    shown = every.head(min(cap, MAX_FAILED_ROWS))
    columns, names = facts.passthrough, facts.row_names
    found = [
        FailedRow(
            row=r["row"],
            where=names.where(r["row"]),
            routing_id=r["routing_id"] or "",
            outcome=r["outcome"],
            http_status=r["http_status"],
            attempts=r["attempts"] or 0,
            error_code=r["error_code"] or "",
            error_message=r["error_message"] or "",
            request=excerpt(r["request"] or "", REQUEST_EXCERPT),
            response=excerpt(r["response"] or "", RESPONSE_EXCERPT),
            history=facts.history.get(r["row"], []),
            passthrough={name: excerpt(_text(r[name]), PASSTHROUGH_EXCERPT) for name in columns},
        )
        for r in shown.iter_rows(named=True)
    ]
    return found, every.height


def causes(facts: Facts, *, top: int = TOP_CAUSES) -> tuple[list[Cause], int]:
    """The commonest reasons rows did not succeed, each with its first row as an example; and
    how many distinct causes there are."""
    keyed = not_succeeded(facts.rows).with_columns(pl.col("error_code").fill_null(""))
    grouped = (
        keyed.group_by("outcome", "error_code", "http_status", maintain_order=True)
        .agg(
            pl.len().alias("rows"),
            pl.col("row").first().alias("example_row"),
            pl.col("routing_id").first().alias("example_routing_id"),
            pl.col("error_message").first().alias("example_message"),
        )
        .sort("rows", descending=True, maintain_order=True)
    )
    names = facts.row_names
    found = [
        Cause(
            outcome=g["outcome"],
            error_code=g["error_code"],
            http_status=g["http_status"],
            rows=g["rows"],
            example_row=g["example_row"],
            example_name=names.name(
                g["example_row"], f"routing_id {g['example_routing_id'] or ''}"
            ),
            example_routing_id=g["example_routing_id"] or "",
            example_message=excerpt(g["example_message"] or "", 300),
        )
        for g in grouped.head(top).iter_rows(named=True)
    ]
    return found, grouped.height


def excerpt(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters with a note of how many more there were."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more chars)"


def _text(value: object) -> str:
    return "" if value is None else str(value)
