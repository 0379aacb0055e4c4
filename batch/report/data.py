"""What a report shows, read from the run's journal (and its results file, when written).

The journal (``<results>.journal``) holds the run's identity and settings (``meta``), one record
per row ever sent (``rows``) and the audit trail (``batch.journal.audit``: every request, segment
and event). Rows never sent (invalid, not_attempted, skipped) are only in the results file, so the
outcomes come from the results file when it exists and from the journal's rows otherwise (a run
still going, or one that died before writing it); :attr:`Facts.source` says which.

Everything is opened read-only: a report of a run still going never blocks or slows it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import polars as pl

from batch.engine.target import check_results_argument
from batch.errors import JournalError
from batch.journal import counts as runcounts
from batch.journal import rowrecords
from batch.journal.db import journal_path, log_path
from batch.journal.loglines import read_log
from batch.journal.view import JournalView
from batch.model import RESULT_COLUMNS, Outcome, RowResult
from batch.sheets.rownames import META_KEY, RowNames

# At most this many rows that did not succeed are embedded (the results file has them all).
MAX_FAILED_ROWS: Final = 1_000
# The order outcomes are listed in, and which rows the failure table shows first.
OUTCOME_ORDER: Final = (
    Outcome.SUCCEEDED,
    Outcome.FAILED,
    Outcome.UNKNOWN,
    Outcome.INVALID,
    Outcome.NOT_ATTEMPTED,
    Outcome.SKIPPED,
)
NOT_SUCCEEDED: Final = (Outcome.FAILED, Outcome.UNKNOWN, Outcome.INVALID, Outcome.NOT_ATTEMPTED)

FROM_RESULTS: Final = "results file"
FROM_JOURNAL: Final = (
    "journal (no results file yet: the run is still going, or ended before writing it)"
)

# The exit statuses of `run` and `retry` (contract), in words.

# What the charts need of every request (a quarter of a million for 200,000 rows: the fewer
# columns, the quicker); a row's full history is read only for the rows the page shows.
ATTEMPT_SCHEMA: Final = {
    "row": pl.Int64, "attempt": pl.Int64, "segment": pl.Int64, "sent_at": pl.Int64,
    "answered_at": pl.Int64, "http_status": pl.Int64,
}  # fmt: skip
_HISTORY: Final = (
    "row", "attempt", "segment", "sent_at", "answered_at", "http_status", "error_code",
    "waited_ms", "wait_cause", "retry_after",
)  # fmt: skip
# The journal's rows hold these as integers (times in microseconds since the epoch).
_INTEGER_COLUMNS: Final = frozenset(
    {"row", "http_status", "attempts", "started_at", "finished_at", "duration_ms"}
)


@dataclass(frozen=True)
class Facts:
    """Everything read from the journal and the results file, for the charts and the text."""

    results: Path
    journal: Path
    source: str  # FROM_RESULTS or FROM_JOURNAL
    meta: dict[str, str]
    record: dict[str, Any]  # the settings the run remembers (batch.journal.record.RunRecord)
    segments: list[dict[str, Any]]  # batch.journal.audit.segments
    events: list[dict[str, Any]]  # batch.journal.audit.events
    rows: pl.DataFrame  # one per row: RESULT_COLUMNS (times in microseconds since the epoch),
    # then the input's passthrough columns (from a results file)
    attempts: pl.DataFrame  # one per request: ATTEMPT_SCHEMA
    history: dict[int, list[dict[str, Any]]]  # every request of each row the page shows
    pauses: list[tuple[int, int]]  # when every request waited on a 429's Retry-After (merged)
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def outcome_counts(self) -> dict[str, int]:
        """Rows per outcome, every row of the results file: from the journal, the rows it
        holds no record of (never sent, invalid, skipped) counted as ``reroute status`` does."""
        counts = dict(self.rows.get_column("outcome").value_counts().iter_rows())
        found = {str(o): int(counts.get(str(o), 0)) for o in OUTCOME_ORDER}
        if self.source == FROM_JOURNAL:
            candidates = self.meta.get(runcounts.CANDIDATES_KEY)
            rows, _ = runcounts.rows_of(
                found,
                int(candidates) if candidates and candidates.isdigit() else None,
                runcounts.others_of(self.meta.get(runcounts.OTHERS_KEY)),
            )
            found = {name: rows[name] or 0 for name in found}
        return found

    @property
    def total(self) -> int:
        """Rows of the results file (as far as the journal knows them)."""
        return sum(self.outcome_counts().values())

    @property
    def requests(self) -> int:
        """Requests ever sent for these rows: the sum of the results file's ``attempts``."""
        return runcounts.requests(self.meta, self.attempts.height)

    @property
    def finished(self) -> bool:
        return bool(self.segments) and self.segments[-1]["finished_at"] is not None

    @property
    def row_names(self) -> RowNames:
        """How the input's rows are found in an editor or a spreadsheet, as the run kept it
        (batch.sheets.rownames): ``row 3 (line 4)``."""
        return RowNames.from_text(self.meta.get(META_KEY))

    @property
    def passthrough(self) -> list[str]:
        """The input's own columns the results file carries (a ticket, a DID), in its order."""
        return [name for name in self.rows.columns if name not in RESULT_COLUMNS]

    @property
    def settings(self) -> dict[str, Any]:
        """The settings the run went with: its last segment's (pace, target, window), over
        the record's; what the record keeps for the whole run (what is sent: the snapshot,
        the switches, how the input is read) stays the record's, a retry in place changes
        none of it."""
        found: dict[str, Any] = dict(self.record)
        if self.segments:
            found.update(self.segments[-1]["settings"])
        found.update({k: self.record[k] for k in _RUN_WIDE if k in self.record})
        return found

    def latest(self, name: str) -> Any:
        """The last value a segment recorded for ``name`` (None when none did): a retry's
        segment has no rollback file, the run's does."""
        for segment in reversed(self.segments):
            value = segment["settings"].get(name)
            if value not in (None, ""):
                return value
        return None


# What the record keeps for the whole run, whatever a later segment (a retry) says.
_RUN_WIDE: Final = (
    "kind", "input", "job", "current", "connection_id", "fill_from_current", "allow_wipe",
    "skip_unchanged", "sheet", "separator", "encoding",
)  # fmt: skip


def read(results: Path) -> Facts:
    """Read what the report of ``results`` needs. Raises JournalError (no journal, not one, or
    one of an older reroute without the audit trail) or InputFileError (a results file that
    cannot be read), each one line that says what to do."""
    results = Path(results)
    check_results_argument(results)
    journal = journal_path(results)
    if not journal.is_file():
        where = "no such results file, and no" if not results.exists() else "no"
        raise JournalError(
            f"{results}: {where} run journal beside it ({journal.name}): the report is made "
            "from the journal `reroute run` and `reroute retry` keep beside their results file"
        )
    try:
        with JournalView(journal) as view:
            return _read(view, results, journal)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        # A value of the wrong type in a column (SQLite keeps what it is given): one line.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise JournalError(f"{journal}: holds a value reroute cannot read ({first})") from exc


def _read(view: JournalView, results: Path, journal: Path) -> Facts:
    if not {"meta", "rows"} <= view.tables():
        raise JournalError(f"{journal}: not a run journal (no meta or rows table)")
    if not view.has_trail():
        raise JournalError(
            f"{journal}: written by an older reroute, without the audit trail (requests, "
            "segments, events) the report is made from; the results file still says how each "
            "row ended. A run started with this version has one"
        )
    meta = view.meta()
    try:
        record = json.loads(meta.get("settings", "{}"))
    except ValueError:
        record = {}
    pending = _Pending.of(journal)
    if results.is_file():
        # A run judged against a snapshot: its report compares the bodies sent with it
        # (batch.report.changes), read here in the same pass.
        bodies = bool(meta.get("snapshot"))
        rows, source = _rows_from_results(results, bodies=bodies), FROM_RESULTS
    else:
        rows, source = pending.rows(view.rows(_ROW_SCHEMA)), FROM_JOURNAL
    shown = not_succeeded(rows).head(MAX_FAILED_ROWS).get_column("row").to_list()
    if source == FROM_RESULTS:
        rows = _with_bodies(rows, view.bodies(shown), pending, shown)
    return Facts(
        results=results,
        journal=journal,
        source=source,
        meta=meta,
        record=record if isinstance(record, dict) else {},
        segments=view.segments(),
        events=view.events(),
        rows=rows,
        attempts=pending.attempts(view.attempts(ATTEMPT_SCHEMA)),
        history=pending.history(view.history(shown, _HISTORY)),
        pauses=view.pauses(),
    )


@dataclass(frozen=True)
class _Pending:
    """What the run wrote to the journal's log and has not copied into SQLite yet: at most a
    few hundred records while it runs, everything since the last copy for a run killed."""

    row_records: list[RowResult]
    attempt_records: list[dict[str, Any]]

    @classmethod
    def of(cls, journal: Path) -> _Pending:
        log = log_path(journal)
        try:
            logged = read_log(log)
        except (OSError, JournalError):  # a log being rewritten: the report does without it
            return cls([], [])
        return cls(logged.rows, [request._asdict() for request in logged.attempts])

    def rows(self, rows: pl.DataFrame) -> pl.DataFrame:
        if not self.row_records:
            return rows
        stored = [rowrecords.encode(r) for r in self.row_records]  # times as in the journal
        later = pl.DataFrame(stored, schema=rows.schema, orient="row")
        return pl.concat([rows, later]).unique("row", keep="last").sort("row")

    def attempts(self, attempts: pl.DataFrame) -> pl.DataFrame:
        if not self.attempt_records:
            return attempts
        later = pl.DataFrame(
            [{k: a[k] for k in ATTEMPT_SCHEMA} for a in self.attempt_records],
            schema=ATTEMPT_SCHEMA,
            orient="row",
        )
        return pl.concat([attempts, later]).unique(["row", "attempt"], keep="last")

    def history(self, found: dict[int, list[dict[str, Any]]]) -> dict[int, list[dict[str, Any]]]:
        for record in self.attempt_records:
            if record["row"] in found:
                known = {a["attempt"]: a for a in found[record["row"]]}
                known[record["attempt"]] = {k: record[k] for k in _HISTORY}
                found[record["row"]] = [known[n] for n in sorted(known)]
        return found


def _with_bodies(
    rows: pl.DataFrame,
    bodies: dict[int, tuple[str | None, str | None]],
    pending: _Pending,
    shown: list[int],
) -> pl.DataFrame:
    """``rows`` with the request and response of the ``shown`` rows, as the journal holds them
    (the same the results file was written from; a row never sent has neither)."""
    wanted = set(shown)
    for record in pending.row_records:  # the log's, newer than SQLite's
        if record.row in wanted:
            bodies[record.row] = (record.request, record.response)
    if not bodies:
        return rows
    found = pl.DataFrame(
        [(row, request, response) for row, (request, response) in bodies.items()],
        schema={"row": pl.Int64, "_request": pl.String, "_response": pl.String},
        orient="row",
    )
    return (
        rows.join(found, on="row", how="left", maintain_order="left")
        .with_columns(
            pl.coalesce("_request", "request").alias("request"),
            pl.coalesce("_response", "response").alias("response"),
        )
        .drop("_request", "_response")
    )


_ROW_SCHEMA: Final = {
    name: (pl.Int64 if name in _INTEGER_COLUMNS else pl.String) for name in RESULT_COLUMNS
}


# What the report reads of every row of a results file: not the responses (the rows it shows
# get theirs from the journal, _with_bodies), nor the requests unless a snapshot is to be
# compared with them. Memory then follows the small columns and the passthrough ones (the
# operator's ids), not the size of the file.
_LIGHT: Final = tuple(name for name in RESULT_COLUMNS if name not in ("request", "response"))


def _rows_from_results(results: Path, *, bodies: bool) -> pl.DataFrame:
    from batch.sheets.results import read_results

    wanted = (*_LIGHT, "request") if bodies else _LIGHT
    missing = [name for name in ("request", "response") if name not in wanted]
    frame = (
        read_results(results, only=wanted, passthrough=True)
        .with_columns(pl.lit(None, pl.String).alias(name) for name in missing)
        .select(*RESULT_COLUMNS, pl.exclude(RESULT_COLUMNS))
    )
    return frame.with_columns(
        pl.col("started_at").dt.epoch("us"), pl.col("finished_at").dt.epoch("us")
    ).sort("row")


def not_succeeded(rows: pl.DataFrame) -> pl.DataFrame:
    """Rows that did not succeed (skipped ones were left out on purpose), failed first."""
    rank = {str(o): i for i, o in enumerate(NOT_SUCCEEDED)}
    return (
        rows.filter(pl.col("outcome").is_in(list(rank)))
        .with_columns(pl.col("outcome").replace_strict(rank, return_dtype=pl.Int64).alias("_rank"))
        .sort("_rank", "row")
        .drop("_rank")
    )
