"""The words of each rule: one line per invalid row naming the row, the field, the value and
the fix (built only for the invalid rows)."""

from __future__ import annotations

from typing import Final

import polars as pl

from batch import voicelink as vl
from batch.prepare.rules import CHECKS, Check, Code, num
from batch.sheets.rownames import RowNames

MESSAGE_SEPARATOR: Final = "; "
SHOWN_CHARS: Final = 40  # a value quoted in a message is cut here: messages stay one short line
EXAMPLE_UUID: Final = "123e4567-e89b-12d3-a456-426614174000"


def where(names: RowNames, row: pl.Expr | None = None) -> pl.Expr:
    """Rows as a message names them after the word "row": ``3 (line 4)``, ``3 (sheet row
    4)``, ``3`` (batch.sheets.rownames), for a column of row numbers (``row`` unless given)."""
    row = pl.col("row") if row is None else row
    if not names.unit:
        return row.cast(pl.String)
    number = row + (names.first - 1)
    if names.shifts:  # cells spanning lines above: the lines they add, found by row
        starts = pl.Series([start for start, _ in names.shifts], dtype=pl.Int64)
        added = pl.Series([0, *(extra for _, extra in names.shifts)], dtype=pl.Int64)
        number = number + pl.lit(added).gather(pl.lit(starts).search_sorted(row, side="right"))
    named = pl.format(f"{{}} ({names.unit} {{}})", row, number)
    if names.known_until is not None:
        named = pl.when(row <= names.known_until).then(named).otherwise(row.cast(pl.String))
    return named


def _shown(field: str) -> pl.Expr:
    """The cell as a message quotes it: one line, cut short."""
    text = pl.col(field)
    for char, escape in (("\r", "\\r"), ("\n", "\\n"), ("\t", "\\t")):
        text = text.str.replace_all(char, escape, literal=True)
    return (
        pl.when(text.str.len_chars() > SHOWN_CHARS)
        .then(pl.concat_str(text.str.slice(0, SHOWN_CHARS), pl.lit("...")))
        .otherwise(text)
    )


def _message(check: Check) -> pl.Expr:
    field = check.field
    head = f"row {{}}, field {field}: "
    row = pl.col("#where")  # the row as the operator finds it: "3 (line 4)" (:func:`where`)
    value = _shown(field)
    code = check.code
    if code is Code.MISSING_FIELD:
        if field in vl.ALLOWED:
            fix = f"write one of {vl.allowed_choices(field)}"
        else:
            fix = "write the id of the call-routing record to change"
        return pl.format(head + "the cell is empty; " + fix, row)
    if code is Code.NOT_AN_INTEGER:
        return pl.format(head + "value '{}' is not an integer; write a whole number", row, value)
    if code is Code.UNKNOWN_MODE:
        noun, choices = vl.MODE_NOUNS[field], vl.allowed_choices(field)
        return pl.format(head + f"value '{{}}' is not {noun} ({choices}); fix the cell", row, value)
    if code is Code.OUT_OF_RANGE:
        return pl.format(
            head + "value '{}' is out of range; ids are whole numbers from 1 up, fix the cell",
            row,
            value,
        )
    if code is Code.DUPLICATE_ROUTING_ID:
        return pl.format(
            head + "value '{}' is in rows {}; each update replaces the whole record, so keep "
            "one row per routing_id",
            row,
            value,
            pl.col("#rows"),
        )
    if code in (Code.MISSING_TARGET, Code.UNUSED_TARGET):
        mode_field, mode_value = vl.MODE_FOR_TARGET[field]
        mode = pl.col(num(mode_field))
        label = vl.VALUE_LABELS[mode_field][mode_value]
        if code is Code.MISSING_TARGET:
            return pl.format(
                head + f"the cell is empty but {mode_field} {mode_value} ({label}) needs it; "
                "write the id",
                row,
            )
        labels = {str(key): text for key, text in vl.VALUE_LABELS[mode_field].items()}
        mode_label = mode.cast(pl.String).replace_strict(labels, default="?")
        return pl.format(
            head + f"value '{{}}' is set but {mode_field} {{}} ({{}}) does not use it; clear the "
            f"cell (it is only used when {mode_field} is {mode_value} {label})",
            row,
            value,
            mode,
            mode_label,
        )
    if code is Code.BAD_UUID:
        return pl.format(
            head + f"value '{{}}' is not a UUID; write it like {EXAMPLE_UUID} or leave the "
            "cell empty",
            row,
            value,
        )
    old = vl.CONNECTION_ID_OLD
    return pl.format(
        f"row {{}}, fields {field} and {old}: values '{{}}' and '{{}}' differ; keep one "
        f"({old} is the old spelling of {field})",
        row,
        value,
        _shown(old),
    )


def messages(checked: pl.DataFrame) -> pl.DataFrame:
    """``row`` and ``error_message`` of the invalid rows (``checked`` holds only those)."""
    rid = pl.col(num(vl.ROUTING_ID))
    groups = (
        checked.filter(pl.col("#duplicate"))
        .group_by(rid)
        .agg(pl.col("#where").sort_by("row").head(6).str.join(", ").alias("row"), pl.len())
        .select(
            rid,
            pl.when(pl.col("len") > 6)
            .then(pl.concat_str(pl.col("row"), pl.lit(", ...")))
            .otherwise(pl.col("row"))
            .alias("#rows"),
        )
    )
    checked = checked.join(groups, on=num(vl.ROUTING_ID), how="left")
    message = pl.concat_str(
        [pl.when(pl.col(flag)).then(_message(check)) for flag, check in CHECKS.items()],
        separator=MESSAGE_SEPARATOR,
        ignore_nulls=True,
    )
    return checked.select("row", message.alias("error_message"))
