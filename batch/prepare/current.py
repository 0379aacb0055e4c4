"""The records as they are now (a snapshot file), and what each input row would change.

The API replaces the whole record on update and documents no call to read one, so users
export the current records to a file of input columns (the snapshot). Each valid input row is
compared, field by field over the request body, with its record there, and judged:

- ``change``: the record would change (the differences are listed: ``status: 0 -> 1``);
- ``no_change``: the row would send the record exactly as it is;
- ``wipes``: the row leaves empty a field the current record has (in practice a connection id
  left out of the sheet): the update would erase it. A bot or trunk id that the row's new modes
  do not use is *dropped* by a mode change, which is a ``change``: the API rejects unused ids,
  so carrying it over cannot be right;
- ``unknown_record``: the routing id is not in the snapshot.

Invalid rows get no verdict. All of it is polars over whole columns; Python values are made
only for the rows a summary shows or a plan file writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Final

import polars as pl

from batch import voicelink as vl
from batch.errors import InputFileError
from batch.model import Call, Outcome, RowResult
from batch.prepare.rulemessages import where
from batch.prepare.rules import Code
from batch.prepare.validate import Validation, add_errors, validate
from batch.sheets.load import WHITESPACE, load_table
from batch.sheets.rownames import BY_NUMBER, RowNames


class Verdict(StrEnum):
    """What a valid row would do to its current record."""

    CHANGE = "change"
    NO_CHANGE = "no_change"
    WIPES = "wipes"
    UNKNOWN_RECORD = "unknown_record"


# How an empty value and a target id dropped by a mode change are written in a difference.
EMPTY: Final = "(empty)"
DROPPED: Final = "(dropped)"
_CURRENT_SUFFIX: Final = "#current"
_STRING_FIELDS: Final = frozenset({vl.CONNECTION_ID})


def current_name(field: str) -> str:
    """The ``Diff.frame`` column holding ``field``'s current value."""
    return f"{field}{_CURRENT_SUFFIX}"


@dataclass(frozen=True)
class Current:
    """The current records of a snapshot file, one per routing id.

    ``frame``: ``routing_id`` (Int64, unique), then ``voicelink.BODY_FIELDS``: integers as
    Int64 and ``connection_id`` as String (whichever spelling the snapshot used), null where
    the record has no value.
    """

    path: Path
    frame: pl.DataFrame

    def __len__(self) -> int:
        return self.frame.height

    def record(self, routing_id: int) -> dict[str, int | str] | None:
        """One record's set fields (no ``routing_id``), or None when it is not in the snapshot."""
        found = self.frame.filter(pl.col(vl.ROUTING_ID) == routing_id)
        if not found.height:
            return None
        values = found.select(vl.BODY_FIELDS).row(0, named=True)
        return {name: value for name, value in values.items() if value is not None}


def load_current(path: Path | str) -> Current:
    """Read and check a snapshot; raise InputFileError naming the first bad row and field.

    The snapshot is validated like an input file (every row a valid record, each routing id
    once): a plan judged against a wrong snapshot would be wrong in every line.
    """
    path = Path(path)
    table = load_table(path)
    v = validate(table)
    if v.invalid:
        first = v.invalid_results(1)[0]
        more = f" (and {v.invalid - 1} more invalid rows)" if v.invalid > 1 else ""
        raise InputFileError(
            path,
            f"is not a usable snapshot of the current records: {first.error_message}{more}; "
            "fix the snapshot or export the current records again",
        )
    frame = v.numbers.select(
        vl.ROUTING_ID, *[field for field in vl.BODY_FIELDS if field != vl.CONNECTION_ID]
    ).with_columns(v.connections.select(sent_connection(None)))
    return Current(path=path, frame=frame.select(vl.ROUTING_ID, *vl.BODY_FIELDS))


def sent_connection(default: str | None) -> pl.Expr:
    """The connection id a row sends, over ``Validation.connections``: its own, else the old
    spelling, else ``default`` (trimmed; null when none). Mirrors ``Validation`` bodies."""
    own, old = (_trimmed(name) for name in (vl.CONNECTION_ID, vl.CONNECTION_ID_OLD))
    return pl.coalesce(own, old, pl.lit(default, dtype=pl.String)).alias(vl.CONNECTION_ID)


def _trimmed(name: str) -> pl.Expr:
    text = pl.col(name).cast(pl.String).str.strip_chars(WHITESPACE)
    return pl.when(text == "").then(None).otherwise(text)


@dataclass(frozen=True, slots=True)
class RowDiff:
    """One row's verdict and differences, for people (summaries) and plan files."""

    row: int
    routing_id: str
    verdict: Verdict
    changes: tuple[str, ...]  # "field: old -> new", in body order
    wipes: tuple[str, ...]  # fields the update would erase

    def describe(self, names: RowNames = BY_NUMBER) -> str:
        """One line: ``row 3 (line 4, routing_id 4103) change: status: 0 -> 1``."""
        head = f"{names.name(self.row, f'routing_id {self.routing_id}')} {self.verdict}"
        if self.verdict is Verdict.UNKNOWN_RECORD:
            return f"{head}: not in the snapshot"
        if self.verdict is Verdict.WIPES:
            head = f"{head} (erases {', '.join(self.wipes)})"
        return f"{head}: {', '.join(self.changes)}" if self.changes else head


@dataclass(frozen=True)
class Diff:
    """Every row's verdict against the snapshot.

    ``frame``, one row per input row in input order: ``row``, ``routing_id`` (as read),
    ``id`` (Int64, valid rows only), ``verdict`` (String; null for invalid rows), ``changes``
    and ``wipes`` (List[String]), and each body field's current value under
    ``current_name(field)`` (null when the record lacks it or is unknown).
    """

    snapshot: Path
    frame: pl.DataFrame
    names: RowNames = BY_NUMBER  # the input's rows as an editor shows them (batch.sheets.rownames)

    def counts(self) -> dict[Verdict, int]:
        """Valid rows per verdict, every verdict listed (0 when none)."""
        found = self.frame.get_column("verdict").drop_nulls().value_counts()
        seen = dict(zip(found["verdict"].to_list(), found["count"].to_list(), strict=True))
        return {verdict: int(seen.get(verdict.value, 0)) for verdict in Verdict}

    def mask(self, *verdicts: Verdict) -> pl.Series:
        """True for each row judged one of ``verdicts``, in input order."""
        wanted = [verdict.value for verdict in verdicts]
        return self.frame.get_column("verdict").is_in(wanted).fill_null(False)

    def rows(
        self, limit: int | None = None, *, verdicts: tuple[Verdict, ...] = ()
    ) -> list[RowDiff]:
        """The judged rows (only ``verdicts`` if given) as values, first ``limit`` of them."""
        frame = self.frame.filter(
            self.mask(*verdicts) if verdicts else pl.col("verdict").is_not_null()
        )
        if limit is not None:
            frame = frame.head(limit)
        return [_row_diff(*values) for values in _diff_values(frame)]

    def judged_rows(self) -> Iterator[RowDiff]:
        """Every valid row's verdict, in input order, a chunk at a time (for plan files)."""
        judged = self.frame.filter(pl.col("verdict").is_not_null())
        for offset in range(0, judged.height, _CHUNK):
            yield from (_row_diff(*values) for values in _diff_values(judged.slice(offset, _CHUNK)))

    def summary_lines(self, limit: int = 10) -> list[str]:
        """What ``plan --current`` prints: counts per verdict, then the first rows that are not
        ``no_change`` (wipes and unknown records first: they need a decision)."""
        counts = self.counts()
        lines = [
            f"against {self.snapshot}: "
            + ", ".join(f"{verdict} {count}" for verdict, count in counts.items())
        ]
        order = (Verdict.WIPES, Verdict.UNKNOWN_RECORD, Verdict.CHANGE)
        total = sum(counts[verdict] for verdict in order)
        shown: list[RowDiff] = []
        for verdict in order:
            if len(shown) < limit:
                shown += self.rows(limit - len(shown), verdicts=(verdict,))
        for diff in shown:
            lines.append(f"  {diff.describe(self.names)}")
        if total > len(shown):
            lines.append(f"  ... and {total - len(shown)} more (write them all with --out PLAN)")
        return lines


_CHUNK = 10_000


def _diff_values(frame: pl.DataFrame) -> Iterator[tuple[int, str, str, list[str], list[str]]]:
    return frame.select("row", "routing_id", "verdict", "changes", "wipes").iter_rows()


def _row_diff(
    row: int, routing_id: str, verdict: str, changes: list[str], wipes: list[str]
) -> RowDiff:
    return RowDiff(
        row=row,
        routing_id=routing_id,
        verdict=Verdict(verdict),
        changes=tuple(changes),
        wipes=tuple(wipes),
    )


def diff_rows(v: Validation, current: Current) -> Diff:
    """Judge every valid row of ``v`` against ``current`` (see the module docstring)."""
    sent = v.numbers.select(
        *[field for field in vl.BODY_FIELDS if field != vl.CONNECTION_ID]
    ).with_columns(v.connections.select(sent_connection(v.default_connection_id)))
    rows = v.judged.select("row", "routing_id", "id", valid=pl.col("error_code") == "")
    return replace(diff_sent(rows.hstack(sent), current), names=v.table.row_names)


def diff_sent(rows: pl.DataFrame, current: Current) -> Diff:
    """Judge ``rows`` against ``current``: ``row``, ``routing_id`` (as read), ``id`` (Int64),
    ``valid`` (Boolean; the others get no verdict), then each body field as sent (integers
    Int64, ``connection_id`` String; null when not sent). ``diff_rows`` judges an input's
    rows so; a run's report judges the bodies it sent (batch.report.changes)."""
    old = current.frame.select(
        pl.col(vl.ROUTING_ID).alias("id"),
        *[pl.col(field).alias(current_name(field)) for field in vl.BODY_FIELDS],
        pl.lit(True).alias("#found"),
    )
    joined = rows.join(old, on="id", how="left", maintain_order="left")
    judged = pl.col("valid") & pl.col("#found").fill_null(False)
    # Yes/no per row first (cheap); the text of the differences is made only for the rows
    # that have some, so a million unchanged rows never format a million strings.
    frame = joined.with_columns(
        (judged & pl.any_horizontal(_differs(field) for field in vl.BODY_FIELDS)).alias("#diff"),
        (judged & pl.any_horizontal(_erased(field) for field in vl.BODY_FIELDS)).alias("#wipe"),
    )
    texts = frame.filter(pl.col("#diff")).select(
        "row",
        pl.concat_list([_change(field) for field in vl.BODY_FIELDS])
        .list.drop_nulls()
        .alias("changes"),
        pl.concat_list([_wiped(field) for field in vl.BODY_FIELDS])
        .list.drop_nulls()
        .alias("wipes"),
    )
    empty = pl.lit([], dtype=pl.List(pl.String))
    frame = (
        frame.join(texts, on="row", how="left", maintain_order="left")
        .with_columns(pl.col("changes").fill_null(empty), pl.col("wipes").fill_null(empty))
        .with_columns(
            pl.when(~pl.col("valid"))
            .then(pl.lit(None, dtype=pl.String))
            .when(~pl.col("#found").fill_null(False))
            .then(pl.lit(Verdict.UNKNOWN_RECORD.value))
            .when(pl.col("#wipe"))
            .then(pl.lit(Verdict.WIPES.value))
            .when(pl.col("#diff"))
            .then(pl.lit(Verdict.CHANGE.value))
            .otherwise(pl.lit(Verdict.NO_CHANGE.value))
            .alias("verdict")
        )
    )
    columns = ["row", "routing_id", "id", "verdict", "changes", "wipes"]
    return Diff(
        snapshot=current.path,
        frame=frame.select(*columns, *[current_name(field) for field in vl.BODY_FIELDS]),
    )


def _uses(field: str) -> pl.Expr:
    """The row's (new) modes use this target id field."""
    mode_field, mode_value = vl.MODE_FOR_TARGET[field]
    return (pl.col(mode_field) == mode_value).fill_null(False)


def _differs(field: str) -> pl.Expr:
    new, old = pl.col(field), pl.col(current_name(field))
    if field in _STRING_FIELDS:
        # A UUID in another case is the same connection.
        new, old = new.str.to_lowercase(), old.str.to_lowercase()
    return new.ne_missing(old)


def _erased(field: str) -> pl.Expr:
    """The row sends nothing for a value the record has, and no mode change explains it."""
    erased = pl.col(field).is_null() & pl.col(current_name(field)).is_not_null()
    return erased & _uses(field) if field in vl.TARGET_FIELDS else erased


def _wiped(field: str) -> pl.Expr:
    """The field's name where ``_erased``."""
    return pl.when(_erased(field)).then(pl.lit(field))


def _change(field: str) -> pl.Expr:
    """``field: old -> new`` where they differ."""
    new, old = pl.col(field).cast(pl.String), pl.col(current_name(field)).cast(pl.String)
    new_text = new.fill_null(EMPTY)
    if field in vl.TARGET_FIELDS:
        new_text = pl.when(new.is_null() & ~_uses(field)).then(pl.lit(DROPPED)).otherwise(new_text)
    text = pl.format(f"{field}: {{}} -> {{}}", old.fill_null(EMPTY), new_text)
    return pl.when(_differs(field)).then(text)


# --- what the runner does with the verdicts (issue 6, part 2) ---


@dataclass(frozen=True)
class Gate:
    """Which rows ``run --current`` sends, refuses and skips.

    ``validation``: the input's validation, with rows judged ``wipes`` made invalid (code
    ``WIPES``) unless ``--allow-wipe``. ``skipped``: True for each valid row left out by
    ``--skip-unchanged`` (judged ``no_change``); ``calls()`` leaves those out and
    ``skipped_results()`` gives them their ``skipped`` results with a note.
    """

    validation: Validation
    diff: Diff
    skipped: pl.Series
    note: str

    def send_mask(self) -> pl.Series:
        """True for each row that will be sent."""
        return self.validation.valid_mask() & ~self.skipped

    def calls(self) -> Iterator[Call]:
        """The requests to send, in input order (valid rows not skipped)."""
        skipped = set(self.skipped_rows())
        return (call for call in self.validation.calls() if call.row not in skipped)

    def skipped_rows(self) -> list[int]:
        """Row numbers left out as ``no_change``."""
        return self.diff.frame.filter(self.skipped).get_column("row").to_list()

    def skipped_results(self) -> list[RowResult]:
        """The skipped rows as results: ``skipped``, the request they would have sent,
        and ``error_message`` saying why they were not sent."""
        # routing_id as read (the results file keeps "093" as written).
        read = dict(self.diff.frame.filter(self.skipped).select("row", "routing_id").iter_rows())
        return [
            RowResult(
                row=call.row,
                routing_id=read[call.row],
                outcome=Outcome.SKIPPED,
                error_message=self.note,
                request=call.body,
            )
            for call in self.validation.calls()
            if call.row in read
        ]


def gate(
    v: Validation, current: Current, *, allow_wipe: bool = False, skip_unchanged: bool = False
) -> Gate:
    """Decide per row: send, refuse as ``wipes`` (invalid unless ``allow_wipe``), or skip as
    ``no_change`` (when ``skip_unchanged``). ``v`` is the input's validation (already filled
    from ``current`` when ``--fill-from-current`` was given: then nothing is judged wipes)."""
    diff = diff_rows(v, current)
    if not allow_wipe:
        v = add_errors(v, wipe_errors(diff))
    if skip_unchanged:
        skipped = diff.mask(Verdict.NO_CHANGE) & v.valid_mask()
    else:
        skipped = pl.Series("skipped", [False] * v.total, dtype=pl.Boolean)
    note = (
        f"not sent (--skip-unchanged): the row would send the record exactly as it is in "
        f"{current.path}"
    )
    return Gate(validation=v, diff=diff, skipped=skipped.alias("skipped"), note=note)


def wipe_errors(diff: Diff) -> pl.DataFrame:
    """``row, error_code, error_message`` of the rows judged ``wipes`` (for ``add_errors``)."""
    wiped = diff.frame.filter(diff.mask(Verdict.WIPES))
    return wiped.select(
        "row",
        pl.lit(Code.WIPES.value).alias("error_code"),
        pl.format(
            "row {}, field {}: the cell is empty but the current record has a value (in {}), "
            "and the update replaces the whole record, so it would be erased; write the value, "
            "use --fill-from-current, or pass --allow-wipe if erasing it is intended",
            where(diff.names),
            pl.col("wipes").list.join(", "),
            pl.lit(str(diff.snapshot)),
        ).alias("error_message"),
    )
