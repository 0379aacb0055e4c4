"""Judge every row of a loaded table in bulk: one verdict per row, every problem named.

The checks are polars expressions over whole columns (a million rows in well under a second),
never a Python loop over rows. The API's rules (modes, which target each mode needs, the path)
come from ``voicelink``; this module only turns them into per-row verdicts and messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property
from itertools import starmap
from typing import Final

import polars as pl

from batch import voicelink as vl
from batch.errors import UsageError
from batch.load import WHITESPACE, Table
from batch.model import Call, Outcome, RowResult


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
    # Found against the current records (batch.current, batch.fill), fed in as extra errors.
    UNKNOWN_RECORD = "UNKNOWN_RECORD"
    WIPES = "WIPES"
    # Found against the account's lists (batch.preflight: --account, run's default check).
    UNKNOWN_BOT = "UNKNOWN_BOT"
    INACTIVE_BOT = "INACTIVE_BOT"
    UNKNOWN_CONNECTION = "UNKNOWN_CONNECTION"
    INACTIVE_CONNECTION = "INACTIVE_CONNECTION"
    MISSING_CONNECTION_ID = "MISSING_CONNECTION_ID"


# A whole number as a sheet writes it: "93", "+93", "-3", "093", "93.0", "93." (not 1e3, 9,300).
INTEGER_PATTERN: Final = r"^[+-]?[0-9]+(\.0*)?$"
CODE_SEPARATOR: Final = ";"
MESSAGE_SEPARATOR: Final = "; "
_SHOWN_CHARS = 40  # a value quoted in a message is cut here, so messages stay one short line
_CHUNK = 10_000  # rows turned into Python values at a time (calls, results)
_EXAMPLE_UUID = "123e4567-e89b-12d3-a456-426614174000"


VERDICT_COLUMNS: Final = ("row", "routing_id", "error_code", "error_message", "request", "id")


@dataclass(frozen=True)
class Validation:
    """The verdict on every row of ``table``, and what valid rows would send.

    ``judged``: ``row`` (Int64, 1-based), ``routing_id`` (String as read, "" when empty),
    ``error_code`` ("" when valid, codes joined by ";"), ``error_message`` ("" when valid),
    ``id`` (Int64 routing id of valid rows, else null).
    ``numbers``: each integer field as Int64 (null where empty or not a usable integer).
    ``connections``: ``connection_id`` and ``connectionId`` as read, and whether each is set;
    a row sends its own, else the old spelling, else ``default_connection_id``.
    ``verdicts`` is ``judged`` plus ``request`` (the compact JSON body, "" when invalid), built
    on first use: checking a file never pays for a million request bodies it does not need.
    """

    table: Table
    judged: pl.DataFrame
    numbers: pl.DataFrame
    connections: pl.DataFrame
    default_connection_id: str | None = None

    @cached_property
    def verdicts(self) -> pl.DataFrame:
        """Columns VERDICT_COLUMNS, one row per input row."""
        return self._with_requests(self.judged, self.numbers, self.connections)

    @property
    def total(self) -> int:
        return self.judged.height

    @property
    def invalid(self) -> int:
        return self.judged.height - self.valid

    @cached_property
    def valid(self) -> int:
        return int(self.judged.select((pl.col("error_code") == "").sum()).item())

    def valid_mask(self) -> pl.Series:
        """True for each valid row, in input order."""
        return self.judged.get_column("error_code") == ""

    def code_counts(self) -> dict[str, int]:
        """How many rows carry each code, in the contract's order of codes."""
        codes = (
            self.judged.filter(pl.col("error_code") != "")
            .select(pl.col("error_code").str.split(CODE_SEPARATOR).explode())
            .get_column("error_code")
            .value_counts()
        )
        found = dict(zip(codes["error_code"].to_list(), codes["count"].to_list(), strict=True))
        return {code.value: found[code.value] for code in Code if code.value in found}

    def invalid_results(self, limit: int | None = None) -> list[RowResult]:
        """The invalid rows as results (outcome ``invalid``), first ``limit`` of them."""
        rows = self.judged.filter(pl.col("error_code") != "").with_columns(request=pl.lit(""))
        if limit is not None:
            rows = rows.head(limit)
        return [_result(*values) for values in _values(rows)]

    def calls(self) -> Iterator[Call]:
        """The requests of the valid rows, in input order, made a chunk at a time."""
        mask = self.valid_mask()
        frames = (self.judged.filter(mask), self.numbers.filter(mask))
        connections = self.connections.filter(mask)
        for offset in range(0, frames[0].height, _CHUNK):
            judged, numbers = (frame.slice(offset, _CHUNK) for frame in frames)
            chunk = self._with_requests(judged, numbers, connections.slice(offset, _CHUNK))
            # starmap: a Call per row, no loop of ours.
            yield from starmap(Call, chunk.select("row", "id", "request").iter_rows())

    def preview_results(self) -> Iterator[RowResult]:
        """Every row as a result before anything is sent: ``invalid``, or ``not_attempted``."""
        for offset in range(0, self.judged.height, _CHUNK):
            chunk = self._with_requests(
                self.judged.slice(offset, _CHUNK),
                self.numbers.slice(offset, _CHUNK),
                self.connections.slice(offset, _CHUNK),
            )
            yield from (_result(*values) for values in _values(chunk))

    def _with_requests(
        self, judged: pl.DataFrame, numbers: pl.DataFrame, connections: pl.DataFrame
    ) -> pl.DataFrame:
        """``judged`` with the ``request`` column (the three frames' rows aligned)."""
        new, old = _CONNECTION_FIELDS
        connection = (
            pl.when(pl.col(_set(new)))
            .then(pl.col(new))
            .when(pl.col(_set(old)))
            .then(pl.col(old))
            .otherwise(pl.lit(self.default_connection_id, dtype=pl.String))
            .str.strip_chars(WHITESPACE)
        )
        sent = numbers.with_columns(connections.select(connection.alias(vl.CONNECTION_ID)))
        bodies = sent.select(_request().alias("request")).get_column("request")
        return judged.with_columns(
            pl.when(pl.col("error_code") == "").then(bodies).otherwise(pl.lit("")).alias("request")
        ).select(VERDICT_COLUMNS)


def _values(frame: pl.DataFrame) -> Iterator[tuple[int, str, str, str, str]]:
    return frame.select("row", "routing_id", "error_code", "error_message", "request").iter_rows()


def _result(row: int, routing_id: str, code: str, message: str, request: str) -> RowResult:
    if code:
        return RowResult(
            row=row,
            routing_id=routing_id,
            outcome=Outcome.INVALID,
            error_code=code,
            error_message=message,
        )
    return RowResult(row=row, routing_id=routing_id, outcome=Outcome.NOT_ATTEMPTED, request=request)


def check_connection_id(value: str) -> str:
    """The --connection-id default, trimmed, or a UsageError saying what a UUID looks like."""
    text = value.strip(WHITESPACE)
    if not re.match(vl.UUID_PATTERN, text):
        raise UsageError(f"--connection-id {value!r} is not a UUID: write it like {_EXAMPLE_UUID}")
    return text


def add_errors(v: Validation, errors: pl.DataFrame) -> Validation:
    """``v`` with problems found outside the row's own cells (say, against a snapshot).

    ``errors`` has columns ``row`` (1-based), ``error_code`` and ``error_message`` (several
    per row allowed). Those rows become invalid; their codes and messages follow any the row
    already had.
    """
    if not errors.height:
        return v
    extra = (
        errors.group_by("row", maintain_order=True)
        .agg(
            pl.col("error_code").str.join(CODE_SEPARATOR).alias("#code"),
            pl.col("error_message").str.join(MESSAGE_SEPARATOR).alias("#message"),
        )
        .with_columns(pl.col("row").cast(pl.Int64))
    )
    joined = v.judged.join(extra, on="row", how="left", maintain_order="left")
    hit = pl.col("#code").is_not_null()

    def appended(name: str, extra_name: str, separator: str) -> pl.Expr:
        own = pl.when(pl.col(name) != "").then(pl.col(name))
        both = pl.concat_str([own, pl.col(extra_name)], separator=separator, ignore_nulls=True)
        return pl.when(hit).then(both).otherwise(pl.col(name)).alias(name)

    judged = joined.with_columns(
        appended("error_code", "#code", CODE_SEPARATOR),
        appended("error_message", "#message", MESSAGE_SEPARATOR),
        pl.when(hit).then(None).otherwise(pl.col("id")).alias("id"),
    ).select(v.judged.columns)
    return replace(v, judged=judged)


def validate(
    table: Table, *, connection_id: str | None = None, extra_errors: pl.DataFrame | None = None
) -> Validation:
    """Judge every row of ``table``.

    ``connection_id`` is the ``--connection-id`` default, sent for rows whose connection id
    cells are empty. ``extra_errors`` (see ``add_errors``) are problems found elsewhere, such
    as ``UNKNOWN_RECORD`` from ``--fill-from-current``. Raises UsageError only for a bad
    default; bad rows are verdicts.
    """
    default = check_connection_id(connection_id) if connection_id is not None else None
    # Every row gets one yes/no (any check failed?); which checks failed is worked out again
    # for the invalid rows only, so a million rows never carry two dozen flag columns.
    cells = _cells(table.frame)
    checked = (
        cells.lazy()
        .with_columns(_duplicates(cells.get_column(_num(vl.ROUTING_ID))))
        .with_columns(pl.any_horizontal(_flags()).alias("#invalid"))
        .collect()
    )
    invalid = checked.get_column("#invalid")
    judged = _narrow(checked, "row", vl.ROUTING_ID, _num(vl.ROUTING_ID), "#invalid").select(
        "row",
        pl.col(vl.ROUTING_ID).fill_null("").alias("routing_id"),
        pl.lit("").alias("error_code"),
        pl.lit("").alias("error_message"),
        pl.when(~pl.col("#invalid")).then(pl.col(_num(vl.ROUTING_ID))).alias("id"),
    )
    if invalid.any():
        # Codes and messages are text work: do it for the invalid rows only.
        index = invalid.arg_true()
        bad = _explained(checked.filter(invalid).with_columns(_flags()), table.header_row)
        judged = judged.with_columns(
            judged.get_column("error_code").scatter(index, bad.get_column("error_code")),
            judged.get_column("error_message").scatter(index, bad.get_column("error_message")),
        )
    numbers = pl.DataFrame(checked.get_column(_num(name)).alias(name) for name in vl.INTEGER_FIELDS)
    # As read, with whether each is set: the one a row sends is picked when bodies are built.
    connections = _narrow(checked, *_CONNECTION_FIELDS, *map(_set, _CONNECTION_FIELDS))
    v = Validation(
        table=table,
        judged=judged,
        numbers=numbers,
        connections=connections,
        default_connection_id=default,
    )
    return add_errors(v, extra_errors) if extra_errors is not None else v


_CONNECTION_FIELDS: Final = (vl.CONNECTION_ID, vl.CONNECTION_ID_OLD)
_KNOWN_FIELDS: Final = (*vl.INTEGER_FIELDS, *_CONNECTION_FIELDS)


def _narrow(frame: pl.DataFrame, *names: str) -> pl.DataFrame:
    """The named columns of ``frame`` as a frame of their own, without copying them.

    A query on a wide frame costs memory in proportion to the whole frame, not to the
    columns it reads (measured with polars 2.1: selecting 2 columns of the 43-column checked
    frame raised peak memory by 90 bytes a row, from a 4-column frame by 15), and that peak
    stays in the process for the rest of the run. So the frames a run keeps are taken from
    narrow ones.
    """
    return pl.DataFrame([frame.get_column(name) for name in names])


def _cells(frame: pl.DataFrame) -> pl.DataFrame:
    """The known cells as read, and what they hold: set?, integer?, its value, UUID?

    The fast path casts every integer cell as written, which settles ``93``, ``+93`` and
    ``093``, and takes a UUID as written. Only rows with a cell it cannot settle (a blank,
    ``93.0``, text, a UUID with spaces, two connection ids that differ) take the slow path of
    trimming and pattern matching, and its answers are written back in place. Only flags and
    numbers are rewritten, never text, so a million-row file is not copied again.
    """
    new, old = (pl.col(name) for name in _CONNECTION_FIELDS)
    unsettled = [
        pl.col(name).is_not_null() & pl.col(_num(name)).is_null() for name in vl.INTEGER_FIELDS
    ] + [pl.col(_set(name)) & ~pl.col(_uuid(name)) for name in _CONNECTION_FIELDS]
    unsettled.append((new != old).fill_null(False))
    cells = (
        frame.lazy()
        .select(
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("row"),
            *[pl.col(name).cast(pl.String) for name in _KNOWN_FIELDS],
        )
        .with_columns(
            *[pl.col(name).is_not_null().alias(_set(name)) for name in _KNOWN_FIELDS],
            *[
                pl.col(name).cast(pl.Int64, strict=False).alias(_num(name))
                for name in vl.INTEGER_FIELDS
            ],
            *[
                pl.col(name).str.contains(vl.UUID_PATTERN).fill_null(False).alias(_uuid(name))
                for name in _CONNECTION_FIELDS
            ],
            pl.lit(False).alias("#conflict"),
        )
        .with_columns(
            pl.col(_num(name)).is_not_null().alias(_intlike(name)) for name in vl.INTEGER_FIELDS
        )
        .with_columns(pl.any_horizontal(unsettled).alias("#slow"))
        .collect()
    )
    slow = cells.get_column("#slow")
    if not slow.any():
        return cells
    index = slow.arg_true()
    settled = (
        cells.lazy()
        .filter(pl.col("#slow"))
        .select(_text(name) for name in _KNOWN_FIELDS)
        .select(
            *[pl.col(name).is_not_null().alias(_set(name)) for name in _KNOWN_FIELDS],
            *[expr for name in vl.INTEGER_FIELDS for expr in _parsed(name)],
            *[
                pl.col(name).str.contains(vl.UUID_PATTERN).fill_null(False).alias(_uuid(name))
                for name in _CONNECTION_FIELDS
            ],
            (new.str.to_lowercase() != old.str.to_lowercase()).fill_null(False).alias("#conflict"),
        )
        .collect()
    )
    return cells.with_columns(
        cells.get_column(name).scatter(index, settled.get_column(name)) for name in settled.columns
    )


def _explained(bad: pl.DataFrame, header_row: int | None = None) -> pl.DataFrame:
    """``error_code`` and ``error_message`` of the invalid rows (``bad`` holds only those).

    ``header_row``: a workbook's header row number; messages then name the spreadsheet's own
    row too ("row 3 (sheet row 4)"), so the cell is found at once.
    """
    # One mention of each code per row, in the contract's order of codes.
    codes = pl.concat_str(
        [
            pl.when(pl.any_horizontal(flags)).then(pl.lit(code.value))
            for code, flags in _flags_by_code().items()
        ],
        separator=CODE_SEPARATOR,
        ignore_nulls=True,
    )
    where = pl.col("row").cast(pl.String)
    if header_row is not None:
        where = pl.format("{} (sheet row {})", pl.col("row"), pl.col("row") + header_row)
    messages = _messages(
        bad.with_columns(*[_text(name) for name in _KNOWN_FIELDS], where.alias("#where"))
    )
    return bad.select(codes.alias("error_code")).with_columns(messages.get_column("error_message"))


# --- column names and per-field expressions ---


def _num(name: str) -> str:
    return f"{name}#int"


def _intlike(name: str) -> str:
    return f"{name}#intlike"


def _text(name: str) -> pl.Expr:
    """The cell trimmed; null when empty (whatever produced the table)."""
    trimmed = pl.col(name).cast(pl.String).str.strip_chars(WHITESPACE)
    return pl.when(trimmed == "").then(None).otherwise(trimmed).alias(name)


def _parsed(name: str) -> list[pl.Expr]:
    col = pl.col(name)
    return [
        col.str.contains(INTEGER_PATTERN).fill_null(False).alias(_intlike(name)),
        # Null when not an integer, or too large for any real id (that is OUT_OF_RANGE).
        col.str.replace(r"\.0*$", "").cast(pl.Int64, strict=False).alias(_num(name)),
    ]


def _set(name: str) -> str:
    return f"{name}#set"


def _uuid(name: str) -> str:
    return f"{name}#uuid"


def _duplicates(ids: pl.Series) -> pl.Expr:
    """``#duplicate``: the row's usable routing id is in another row too."""
    usable_ids = ids.filter(ids >= vl.MIN_ID)
    if usable_ids.n_unique() == usable_ids.len():
        # The usual case, settled by one count (near free on a sorted sheet).
        return pl.lit(False).alias("#duplicate")
    rid = pl.col(_num(vl.ROUTING_ID))
    usable = rid >= vl.MIN_ID
    # Nulls count as duplicates of each other: only usable ids can be duplicates.
    return (usable & rid.is_duplicated()).fill_null(False).alias("#duplicate")


@dataclass(frozen=True)
class _Check:
    """One rule on one field: when it fails (a bool expression) and the code it reports."""

    field: str
    code: Code
    when: pl.Expr


def _mode_known(field: str) -> pl.Expr:
    return pl.col(_num(field)).is_in(sorted(vl.ALLOWED[field])).fill_null(False)


def _build_checks() -> dict[str, _Check]:
    checks: list[_Check] = []

    def integer_checks(field: str, applies: pl.Expr) -> None:
        value = pl.col(_num(field))
        intlike = pl.col(_intlike(field))
        checks.append(_Check(field, Code.NOT_AN_INTEGER, applies & pl.col(_set(field)) & ~intlike))
        if field in vl.ALLOWED:
            checks.append(_Check(field, Code.UNKNOWN_MODE, intlike & ~_mode_known(field)))
        else:
            out = (value < vl.MIN_ID).fill_null(True)  # null here: too large for an id
            checks.append(_Check(field, Code.OUT_OF_RANGE, applies & intlike & out))

    for field in vl.REQUIRED_FIELDS:
        checks.append(_Check(field, Code.MISSING_FIELD, ~pl.col(_set(field))))
        integer_checks(field, pl.lit(True))
        if field == vl.ROUTING_ID:
            checks.append(_Check(field, Code.DUPLICATE_ROUTING_ID, pl.col("#duplicate")))
    for target in vl.TARGET_FIELDS:
        mode_field, mode_value = vl.MODE_FOR_TARGET[target]
        known = _mode_known(mode_field)
        uses = pl.col(_num(mode_field)) == mode_value
        unused = known & ~uses
        checks.append(_Check(target, Code.MISSING_TARGET, known & uses & ~pl.col(_set(target))))
        checks.append(_Check(target, Code.UNUSED_TARGET, unused & pl.col(_set(target))))
        # A cell to be cleared anyway is not also judged as a number.
        integer_checks(target, ~unused)
    new, old = vl.CONNECTION_ID, vl.CONNECTION_ID_OLD
    for field in (new, old):
        checks.append(_Check(field, Code.BAD_UUID, pl.col(_set(field)) & ~pl.col(_uuid(field))))
    checks.append(_Check(new, Code.CONFLICTING_CONNECTION_ID, pl.col("#conflict")))
    return {f"#{i}:{c.field}:{c.code}": c for i, c in enumerate(checks)}


_CHECKS: Final = _build_checks()


def _flags_by_code() -> dict[Code, list[pl.Expr]]:
    by_code: dict[Code, list[pl.Expr]] = {code: [] for code in Code}
    for flag, check in _CHECKS.items():
        by_code[check.code].append(pl.col(flag))
    return {code: flags for code, flags in by_code.items() if flags}


def _flags() -> list[pl.Expr]:
    return [check.when.fill_null(False).alias(flag) for flag, check in _CHECKS.items()]


def _request() -> pl.Expr:
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


# --- messages: built only for the invalid rows ---


def _shown(field: str) -> pl.Expr:
    """The cell as a message quotes it: one line, cut short."""
    text = pl.col(field)
    for char, escape in (("\r", "\\r"), ("\n", "\\n"), ("\t", "\\t")):
        text = text.str.replace_all(char, escape, literal=True)
    return (
        pl.when(text.str.len_chars() > _SHOWN_CHARS)
        .then(pl.concat_str(text.str.slice(0, _SHOWN_CHARS), pl.lit("...")))
        .otherwise(text)
    )


def _message(check: _Check) -> pl.Expr:
    field = check.field
    head = f"row {{}}, field {field}: "
    row = pl.col("#where")  # the row's number ("3", or "3 (sheet row 4)" in a workbook)
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
        mode = pl.col(_num(mode_field))
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
            head + f"value '{{}}' is not a UUID; write it like {_EXAMPLE_UUID} or leave the "
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


def _messages(checked: pl.DataFrame) -> pl.DataFrame:
    """``row`` and ``error_message`` of the invalid rows (``checked`` holds only those)."""
    rid = pl.col(_num(vl.ROUTING_ID))
    groups = (
        checked.filter(pl.col("#duplicate"))
        .group_by(rid)
        .agg(pl.col("row").sort().head(6).cast(pl.String).str.join(", "), pl.len())
        .select(
            rid,
            pl.when(pl.col("len") > 6)
            .then(pl.concat_str(pl.col("row"), pl.lit(", ...")))
            .otherwise(pl.col("row"))
            .alias("#rows"),
        )
    )
    checked = checked.join(groups, on=_num(vl.ROUTING_ID), how="left")
    message = pl.concat_str(
        [pl.when(pl.col(flag)).then(_message(check)) for flag, check in _CHECKS.items()],
        separator=MESSAGE_SEPARATOR,
        ignore_nulls=True,
    )
    return checked.select("row", message.alias("error_message"))
