"""``--fill-from-current``: empty cells take the current record's value before validation.

A sheet may then hold only the columns that change (absent columns count as empty), and the
bodies sent are still complete records. One exception makes mode changes work: a bot or trunk
id is filled only when the row's resulting modes use it, so moving outbound from SIP to a bot
drops the old trunk id instead of carrying it over (the API rejects unused ids). A row whose
record is not in the snapshot is not guessed: it becomes invalid with ``UNKNOWN_RECORD``.

A Table -> Table transform (one polars join) plus per-row errors for ``validate``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

import polars as pl

from batch import voicelink as vl
from batch.prepare.current import Current
from batch.prepare.rulemessages import where
from batch.prepare.rules import Code
from batch.sheets.load import WHITESPACE, Table

_ID: Final = "#fill:id"
_FOUND: Final = "#fill:found"
_ROW: Final = "#fill:row"


def _cur(field: str) -> str:
    return f"#fill:{field}"


@dataclass(frozen=True)
class Filled:
    """The table with empty cells filled, and ``errors`` (``row, error_code, error_message``)
    for rows whose record is not in the snapshot: pass them to ``validate(extra_errors=)``."""

    table: Table
    errors: pl.DataFrame


def fill_from_current(table: Table, current: Current) -> Filled:
    """Fill ``table``'s empty known cells from ``current`` (see the module docstring)."""
    frame = table.frame
    columns = frame.columns
    snapshot = current.frame.select(
        pl.col(vl.ROUTING_ID).alias(_ID),
        *[pl.col(field).cast(pl.String).alias(_cur(field)) for field in vl.BODY_FIELDS],
        pl.lit(True).alias(_FOUND),
    )
    joined = frame.with_columns(_integer(_text(vl.ROUTING_ID)).alias(_ID)).join(
        snapshot, on=_ID, how="left", maintain_order="left"
    )
    found = pl.col(_FOUND).fill_null(False)

    def filled(field: str, empty: pl.Expr) -> pl.Expr:
        return (
            pl.when(found & empty).then(pl.col(_cur(field))).otherwise(pl.col(field)).alias(field)
        )

    # Modes first: whether a target id is filled depends on the row's resulting modes.
    joined = joined.with_columns(
        *[filled(field, _text(field).is_null()) for field in vl.MODE_FIELDS],
        # The old spelling counts as the row's own connection id: fill only when both are empty.
        filled(
            vl.CONNECTION_ID,
            _text(vl.CONNECTION_ID).is_null() & _text(vl.CONNECTION_ID_OLD).is_null(),
        ),
    )
    joined = joined.with_columns(
        filled(field, _text(field).is_null() & _uses(field)) for field in vl.TARGET_FIELDS
    )
    unknown = joined.with_row_index(_ROW, offset=1).filter(
        pl.col(_ID).is_not_null() & (pl.col(_ID) >= vl.MIN_ID) & ~found
    )
    errors = unknown.select(
        pl.col(_ROW).cast(pl.Int64).alias("row"),
        pl.lit(Code.UNKNOWN_RECORD.value).alias("error_code"),
        pl.format(
            "row {}, field routing_id: record {} is not in the snapshot {}, so its empty "
            "cells cannot be filled; add the record to the snapshot (export it again), or "
            "fill every cell and send the row without --fill-from-current",
            where(table.row_names, pl.col(_ROW).cast(pl.Int64)),
            pl.col(_ID),
            pl.lit(str(current.path)),
        ).alias("error_message"),
    )
    return Filled(table=replace(table, frame=joined.select(columns)), errors=errors)


def _text(name: str) -> pl.Expr:
    """The cell trimmed; null when empty or blank."""
    text = pl.col(name).cast(pl.String).str.strip_chars(WHITESPACE)
    return pl.when(text == "").then(None).otherwise(text)


def _integer(text: pl.Expr) -> pl.Expr:
    """A trimmed cell as an integer ("93.0" is 93); null when it is not one."""
    return text.str.replace(r"\.0*$", "").cast(pl.Int64, strict=False)


def _uses(field: str) -> pl.Expr:
    """The row's (filled) mode uses this target id field."""
    mode_field, mode_value = vl.MODE_FOR_TARGET[field]
    return (_integer(_text(mode_field)) == mode_value).fill_null(False)
