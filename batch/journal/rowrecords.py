"""How the journal stores a row's result (batch.model.RowResult): its SQLite table and encoding.

A RowResult is stored as its values in field order (RESULT_COLUMNS): the ``rows`` table's
columns, a line of the log (``batch.journal.loglines``). Two of them change on the way: the times
are integer microseconds since the epoch, and the outcome comes back as text. :func:`encode` and
:func:`decode` are the only code that knows it; everything else reads a RowResult by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from batch.model import RESULT_COLUMNS, Outcome, RowResult

IN_FLIGHT_MESSAGE: Final = (
    "sent, but the run stopped before an answer arrived; running the same command again "
    "resends it (safe: the update replaces the whole record)"
)

# SQLite types of the columns that are not text (and may be empty, but for attempts).
_SQL: Final = {
    "row": "INTEGER PRIMARY KEY",
    "http_status": "INTEGER",
    "attempts": "INTEGER NOT NULL",
    "started_at": "INTEGER",
    "finished_at": "INTEGER",
    "duration_ms": "INTEGER",
}
SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS rows ("
    + ", ".join(f"{name} {_SQL.get(name, 'TEXT NOT NULL')}" for name in RESULT_COLUMNS)
    + ");\n"
)
COLUMNS: Final = ", ".join(RESULT_COLUMNS)
WIDTH: Final = len(RESULT_COLUMNS)  # values of a stored record
UPSERT: Final = f"INSERT OR REPLACE INTO rows ({COLUMNS}) VALUES ({', '.join('?' * WIDTH)})"


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def stamp(value: datetime | None) -> int | None:
    """Integer microseconds since the epoch, exact both ways (``when``): three per row, and an
    integer costs far less to write as text than a float (no shortest-repr search)."""
    return None if value is None else (value - _EPOCH) // _MICROSECOND


def when(stamp: int | None) -> datetime | None:
    return None if stamp is None else _EPOCH + timedelta(microseconds=stamp)


_OUTCOMES: Final = {outcome.value: outcome for outcome in Outcome}  # cheaper than Outcome(text)
# What changes on the way in and out, by field (the others are stored as they are; the outcome,
# a str, is stored as its text by sqlite3 and orjson alike).
_STORED_AS: Final[dict[str, Callable[[Any], Any]]] = {"started_at": stamp, "finished_at": stamp}
_READ_AS: Final[dict[str, Callable[[Any], Any]]] = {
    "outcome": _OUTCOMES.__getitem__, "started_at": when, "finished_at": when,
}  # fmt: skip
_ENCODERS: Final = tuple(_STORED_AS.get(name) for name in RESULT_COLUMNS)
_DECODERS: Final = tuple(_READ_AS.get(name) for name in RESULT_COLUMNS)


def encode(result: RowResult) -> tuple[Any, ...]:
    """A RowResult as the journal stores it: a table row, a log line's values."""
    # A list comprehension: a third cheaper than a generator here (once a row).
    return tuple([v if f is None else f(v) for f, v in zip(_ENCODERS, result, strict=True)])


def in_flight(
    row: int, routing_id: str, attempts: int, request: str, started: int
) -> tuple[Any, ...]:
    """The stored record of a row in flight, first sent at ``started`` (microseconds): what
    ``encode`` makes of its ``unknown`` RowResult, made at once. It runs per request, and a
    datetime made only to be turned back, then ``encode``, cost ~17k instructions a row, more
    than the rest of the journal's new named records together (callgrind)."""
    # The RowResult holds the stored time (an int) only on its way into the tuple.
    mark = RowResult(row, routing_id, Outcome.UNKNOWN, attempts=attempts, request=request,
                     started_at=started)  # type: ignore[arg-type]  # fmt: skip
    return tuple(mark)


def decode(values: Sequence[Any]) -> RowResult:
    """A stored record (a table row, a log line's values) as the RowResult it stands for,
    exactly: ``encode(decode(values)) == values``."""
    return RowResult._make(
        [v if f is None else f(v) for f, v in zip(_DECODERS, values, strict=True)]
    )


def to_result(values: Sequence[Any]) -> RowResult:
    """A stored record as the journal's readers get it: an in-flight mark (``unknown``) says why
    (the message, always the same, is left out of the log and the table)."""
    result = decode(values)
    if result.outcome is Outcome.UNKNOWN and not result.error_message:
        return result._replace(error_message=IN_FLIGHT_MESSAGE)
    return result
