"""The row rules as polars expressions: the validation codes, the per-field columns a check
reads (``num``, ``is_set``, ...), one ``Check`` per rule and field, and the request body a valid
row sends. ``batch.prepare.validate`` applies them to a table; ``batch.prepare.rulemessages`` words
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import polars as pl

from batch import voicelink as vl
from batch.sheets.load import WHITESPACE


class Code(StrEnum):
    """Row validation codes (the results file's ``error_code`` of an ``invalid`` row)."""

    MISSING_FIELD = "MISSING_FIELD"
    NOT_AN_INTEGER = "NOT_AN_INTEGER"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    UNKNOWN_MODE = "UNKNOWN_MODE"
    MISSING_TARGET = "MISSING_TARGET"
    UNUSED_TARGET = "UNUSED_TARGET"
    BAD_UUID = "BAD_UUID"
    CONFLICTING_CONNECTION_ID = "CONFLICTING_CONNECTION_ID"
    DUPLICATE_ROUTING_ID = "DUPLICATE_ROUTING_ID"
    # Found against the current records (batch.prepare.current, batch.prepare.fill), fed in as extra
    # errors.
    UNKNOWN_RECORD = "UNKNOWN_RECORD"
    WIPES = "WIPES"
    # Found against the account's lists (batch.prepare.preflight: --account, run's default check).
    UNKNOWN_BOT = "UNKNOWN_BOT"
    INACTIVE_BOT = "INACTIVE_BOT"
    UNKNOWN_CONNECTION = "UNKNOWN_CONNECTION"
    INACTIVE_CONNECTION = "INACTIVE_CONNECTION"
    MISSING_CONNECTION_ID = "MISSING_CONNECTION_ID"


# A whole number as a sheet writes it: "93", "+93", "-3", "093", "93.0", "93." (not 1e3, 9,300).
INTEGER_PATTERN: Final = r"^[+-]?[0-9]+(\.0*)?$"
CONNECTION_FIELDS: Final = (vl.CONNECTION_ID, vl.CONNECTION_ID_OLD)
KNOWN_FIELDS: Final = (*vl.INTEGER_FIELDS, *CONNECTION_FIELDS)


# --- column names and per-field expressions ---


def num(name: str) -> str:
    return f"{name}#int"


def intlike(name: str) -> str:
    return f"{name}#intlike"


def text(name: str) -> pl.Expr:
    """The cell trimmed; null when empty (whatever produced the table)."""
    trimmed = pl.col(name).cast(pl.String).str.strip_chars(WHITESPACE)
    return pl.when(trimmed == "").then(None).otherwise(trimmed).alias(name)


def parsed(name: str) -> list[pl.Expr]:
    col = pl.col(name)
    return [
        col.str.contains(INTEGER_PATTERN).fill_null(False).alias(intlike(name)),
        # Null when not an integer, or too large for any real id (that is OUT_OF_RANGE).
        col.str.replace(r"\.0*$", "").cast(pl.Int64, strict=False).alias(num(name)),
    ]


def is_set(name: str) -> str:
    return f"{name}#set"


def is_uuid(name: str) -> str:
    return f"{name}#uuid"


def duplicates(ids: pl.Series) -> pl.Expr:
    """``#duplicate``: the row's usable routing id is in another row too."""
    usable_ids = ids.filter(ids >= vl.MIN_ID)
    if usable_ids.n_unique() == usable_ids.len():
        # The usual case, settled by one count (near free on a sorted sheet).
        return pl.lit(False).alias("#duplicate")
    rid = pl.col(num(vl.ROUTING_ID))
    usable = rid >= vl.MIN_ID
    # Nulls count as duplicates of each other: only usable ids can be duplicates.
    return (usable & rid.is_duplicated()).fill_null(False).alias("#duplicate")


@dataclass(frozen=True)
class Check:
    """One rule on one field: when it fails (a bool expression) and the code it reports."""

    field: str
    code: Code
    when: pl.Expr


def mode_known(field: str) -> pl.Expr:
    return pl.col(num(field)).is_in(sorted(vl.ALLOWED[field])).fill_null(False)


def _build_checks() -> dict[str, Check]:
    checks: list[Check] = []

    def integer_checks(field: str, applies: pl.Expr) -> None:
        value = pl.col(num(field))
        whole = pl.col(intlike(field))
        checks.append(Check(field, Code.NOT_AN_INTEGER, applies & pl.col(is_set(field)) & ~whole))
        if field in vl.ALLOWED:
            checks.append(Check(field, Code.UNKNOWN_MODE, whole & ~mode_known(field)))
        else:
            out = (value < vl.MIN_ID).fill_null(True)  # null here: too large for an id
            checks.append(Check(field, Code.OUT_OF_RANGE, applies & whole & out))

    for field in vl.REQUIRED_FIELDS:
        checks.append(Check(field, Code.MISSING_FIELD, ~pl.col(is_set(field))))
        integer_checks(field, pl.lit(True))
        if field == vl.ROUTING_ID:
            checks.append(Check(field, Code.DUPLICATE_ROUTING_ID, pl.col("#duplicate")))
    for target in vl.TARGET_FIELDS:
        mode_field, mode_value = vl.MODE_FOR_TARGET[target]
        known = mode_known(mode_field)
        uses = pl.col(num(mode_field)) == mode_value
        unused = known & ~uses
        checks.append(Check(target, Code.MISSING_TARGET, known & uses & ~pl.col(is_set(target))))
        checks.append(Check(target, Code.UNUSED_TARGET, unused & pl.col(is_set(target))))
        # A cell to be cleared anyway is not also judged as a number.
        integer_checks(target, ~unused)
    new, old = vl.CONNECTION_ID, vl.CONNECTION_ID_OLD
    for field in (new, old):
        checks.append(Check(field, Code.BAD_UUID, pl.col(is_set(field)) & ~pl.col(is_uuid(field))))
    checks.append(Check(new, Code.CONFLICTING_CONNECTION_ID, pl.col("#conflict")))
    return {f"#{i}:{c.field}:{c.code}": c for i, c in enumerate(checks)}


CHECKS: Final = _build_checks()


def flags_by_code() -> dict[Code, list[pl.Expr]]:
    by_code: dict[Code, list[pl.Expr]] = {code: [] for code in Code}
    for flag, check in CHECKS.items():
        by_code[check.code].append(pl.col(flag))
    return {code: flags for code, flags in by_code.items() if flags}


def flags() -> list[pl.Expr]:
    return [check.when.fill_null(False).alias(flag) for flag, check in CHECKS.items()]


def request_expr() -> pl.Expr:
    """The compact JSON body of a row of ``numbers`` (meaningful where the row is valid).

    Built as text in the key order of ``voicelink.BODY_FIELDS``, which is what
    ``voicelink.encode_body`` produces for the same dict (pinned by a test). A valid row has
    exactly the target ids its modes use, so "set" is "used" here.
    """
    parts: list[pl.Expr] = [pl.lit("{")]
    for index, field in enumerate(vl.BODY_FIELDS):
        comma = "," if index else ""
        if field == vl.CONNECTION_ID:
            # A valid UUID needs no JSON escaping: hex digits and hyphens.
            value = pl.concat_str(pl.lit(f'{comma}"{field}":"'), pl.col(field), pl.lit('"'))
        else:
            value = pl.concat_str(pl.lit(f'{comma}"{field}":'), pl.col(field).cast(pl.String))
        parts.append(value)
    parts.append(pl.lit("}"))
    return pl.concat_str(parts, ignore_nulls=True)
