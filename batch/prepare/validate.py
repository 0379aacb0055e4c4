"""Judge every row of a loaded table in bulk: one verdict per row, every problem named.

The checks are polars expressions over whole columns (a million rows in well under a second),
never a Python loop over rows. The API's rules (modes, which target each mode needs, the path)
come from ``voicelink``; this module only turns them into per-row verdicts and messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import starmap
from typing import Final

import polars as pl

from batch import voicelink as vl
from batch.errors import UsageError
from batch.model import Call, Outcome, RowResult
from batch.prepare.rulemessages import EXAMPLE_UUID, MESSAGE_SEPARATOR, messages, where
from batch.prepare.rules import (
    CONNECTION_FIELDS,
    KNOWN_FIELDS,
    Code,
    duplicates,
    flags,
    flags_by_code,
    intlike,
    is_set,
    is_uuid,
    num,
    parsed,
    request_expr,
    text,
)
from batch.sheets.load import WHITESPACE, Table
from batch.sheets.rownames import RowNames

CODE_SEPARATOR: Final = ";"
_CHUNK = 10_000  # rows turned into Python values at a time (calls, results)


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
        """The requests of the valid rows, in input order, made a chunk at a time from the
        bodies built once (``verdicts``), for a single pass (the dry run, a job's check); a run
        holds them in its plan instead (``batch.prepare.plan``)."""
        valid = self.verdicts.filter(pl.col("error_code") == "").select("row", "id", "request")
        for offset in range(0, valid.height, _CHUNK):
            # starmap: a Call per row, no loop of ours.
            yield from starmap(Call, valid.slice(offset, _CHUNK).iter_rows())

    def preview_results(self) -> Iterator[RowResult]:
        """Every row as a result before anything is sent: ``invalid``, or ``not_attempted``."""
        verdicts = self.verdicts
        for offset in range(0, verdicts.height, _CHUNK):
            yield from (_result(*values) for values in _values(verdicts.slice(offset, _CHUNK)))

    def _with_requests(
        self, judged: pl.DataFrame, numbers: pl.DataFrame, connections: pl.DataFrame
    ) -> pl.DataFrame:
        """``judged`` with the ``request`` column (the three frames' rows aligned)."""
        new, old = CONNECTION_FIELDS
        connection = (
            pl.when(pl.col(is_set(new)))
            .then(pl.col(new))
            .when(pl.col(is_set(old)))
            .then(pl.col(old))
            .otherwise(pl.lit(self.default_connection_id, dtype=pl.String))
            .str.strip_chars(WHITESPACE)
        )
        sent = numbers.with_columns(connections.select(connection.alias(vl.CONNECTION_ID)))
        bodies = sent.select(request_expr().alias("request")).get_column("request")
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
        raise UsageError(f"--connection-id {value!r} is not a UUID: write it like {EXAMPLE_UUID}")
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
        .with_columns(duplicates(cells.get_column(num(vl.ROUTING_ID))))
        .with_columns(pl.any_horizontal(flags()).alias("#invalid"))
        .collect()
    )
    invalid = checked.get_column("#invalid")
    judged = _narrow(checked, "row", vl.ROUTING_ID, num(vl.ROUTING_ID), "#invalid").select(
        "row",
        pl.col(vl.ROUTING_ID).fill_null("").alias("routing_id"),
        pl.lit("").alias("error_code"),
        pl.lit("").alias("error_message"),
        pl.when(~pl.col("#invalid")).then(pl.col(num(vl.ROUTING_ID))).alias("id"),
    )
    if invalid.any():
        # Codes and messages are text work: do it for the invalid rows only.
        index = invalid.arg_true()
        bad = _explained(checked.filter(invalid).with_columns(flags()), table.row_names)
        judged = judged.with_columns(
            judged.get_column("error_code").scatter(index, bad.get_column("error_code")),
            judged.get_column("error_message").scatter(index, bad.get_column("error_message")),
        )
    numbers = pl.DataFrame(checked.get_column(num(name)).alias(name) for name in vl.INTEGER_FIELDS)
    # As read, with whether each is set: the one a row sends is picked when bodies are built.
    connections = _narrow(checked, *CONNECTION_FIELDS, *map(is_set, CONNECTION_FIELDS))
    v = Validation(
        table=table,
        judged=judged,
        numbers=numbers,
        connections=connections,
        default_connection_id=default,
    )
    return add_errors(v, extra_errors) if extra_errors is not None else v


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
    new, old = (pl.col(name) for name in CONNECTION_FIELDS)
    unsettled = [
        pl.col(name).is_not_null() & pl.col(num(name)).is_null() for name in vl.INTEGER_FIELDS
    ] + [pl.col(is_set(name)) & ~pl.col(is_uuid(name)) for name in CONNECTION_FIELDS]
    unsettled.append((new != old).fill_null(False))
    cells = (
        frame.lazy()
        .select(
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("row"),
            *[pl.col(name).cast(pl.String) for name in KNOWN_FIELDS],
        )
        .with_columns(
            *[pl.col(name).is_not_null().alias(is_set(name)) for name in KNOWN_FIELDS],
            *[
                pl.col(name).cast(pl.Int64, strict=False).alias(num(name))
                for name in vl.INTEGER_FIELDS
            ],
            *[
                pl.col(name).str.contains(vl.UUID_PATTERN).fill_null(False).alias(is_uuid(name))
                for name in CONNECTION_FIELDS
            ],
            pl.lit(False).alias("#conflict"),
        )
        .with_columns(
            pl.col(num(name)).is_not_null().alias(intlike(name)) for name in vl.INTEGER_FIELDS
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
        .select(text(name) for name in KNOWN_FIELDS)
        .select(
            *[pl.col(name).is_not_null().alias(is_set(name)) for name in KNOWN_FIELDS],
            *[expr for name in vl.INTEGER_FIELDS for expr in parsed(name)],
            *[
                pl.col(name).str.contains(vl.UUID_PATTERN).fill_null(False).alias(is_uuid(name))
                for name in CONNECTION_FIELDS
            ],
            (new.str.to_lowercase() != old.str.to_lowercase()).fill_null(False).alias("#conflict"),
        )
        .collect()
    )
    return cells.with_columns(
        cells.get_column(name).scatter(index, settled.get_column(name)) for name in settled.columns
    )


def _explained(bad: pl.DataFrame, names: RowNames) -> pl.DataFrame:
    """``error_code`` and ``error_message`` of the invalid rows (``bad`` holds only those).

    ``names``: messages name the row as an editor or a spreadsheet shows it too ("row 3
    (line 4)", "row 3 (sheet row 4)"), so the cell is found at once.
    """
    # One mention of each code per row, in the contract's order of codes.
    codes = pl.concat_str(
        [
            pl.when(pl.any_horizontal(flags)).then(pl.lit(code.value))
            for code, flags in flags_by_code().items()
        ],
        separator=CODE_SEPARATOR,
        ignore_nulls=True,
    )
    worded = messages(
        bad.with_columns(*[text(name) for name in KNOWN_FIELDS], where(names).alias("#where"))
    )
    return bad.select(codes.alias("error_code")).with_columns(worded.get_column("error_message"))
