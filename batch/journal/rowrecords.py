"""How the journal stores a row's result: the SQLite table, a record's values, a log line.

A record is the row's RowResult values in RESULT_COLUMNS order (batch.model, the one definition
of a result row), its times as integer microseconds since the epoch, its outcome as text.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

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
UNKNOWN: Final = str(Outcome.UNKNOWN)
WIDTH: Final = len(RESULT_COLUMNS)  # values in a record, a line of the log
# Where a record holds each value it is read for, by the column's name (never a bare index).
ROW, ROUTING_ID, OUTCOME, HTTP_STATUS, ATTEMPTS, ERROR_CODE, ERROR_MESSAGE = (
    RESULT_COLUMNS.index(name)
    for name in ("row", "routing_id", "outcome", "http_status", "attempts", "error_code",
                 "error_message")
)  # fmt: skip
STARTED_AT, FINISHED_AT = RESULT_COLUMNS.index("started_at"), RESULT_COLUMNS.index("finished_at")
TIMES: Final = frozenset({STARTED_AT, FINISHED_AT})
UPSERT: Final = f"INSERT OR REPLACE INTO rows ({COLUMNS}) VALUES ({', '.join('?' * WIDTH)})"


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_OUTCOMES: Final = {outcome.value: outcome for outcome in Outcome}  # cheaper than Outcome(text)
_MICROSECOND: Final = timedelta(microseconds=1)


def stamp(value: datetime | None) -> int | None:
    """Integer microseconds since the epoch, exact both ways (``when``): three per row, and an
    integer costs far less to write as text than a float (no shortest-repr search)."""
    return None if value is None else (value - _EPOCH) // _MICROSECOND


def when(stamp: int | None) -> datetime | None:
    return None if stamp is None else _EPOCH + timedelta(microseconds=stamp)


def to_result(record: tuple[Any, ...]) -> RowResult:
    """A journal record (a table row or a log line's values) as the RowResult it stands for."""
    values: list[Any] = [when(v) if i in TIMES else v for i, v in enumerate(record)]
    result = RowResult(*values)
    outcome = _OUTCOMES[record[2]]
    # In-flight marks leave the (always the same) message out of the log and the table.
    message = result.error_message or (IN_FLIGHT_MESSAGE if outcome is Outcome.UNKNOWN else "")
    return replace(result, outcome=outcome, error_message=message)


def values_of(result: RowResult) -> tuple[Any, ...]:
    """A RowResult as a record: its values in column order, times as microseconds."""
    return tuple(
        stamp(v) if i in TIMES else (str(v) if i == 2 else v)  # type: ignore[arg-type]
        for i, v in enumerate(result.values)
    )


def line(values: tuple[Any, ...]) -> bytes:
    """One record as a line of the log: the JSON array of its values, in UTF-8, ending in a
    line break (``json.loads`` reads it back). orjson writes it, at about a fifth of
    ``json.dumps``'s cost (twice per row); json writes what orjson refuses (a lone surrogate,
    an integer beyond 64 bits)."""
    try:
        return orjson.dumps(values, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return json.dumps(values).encode() + b"\n"
