"""The lines of the journal's log: what each holds, written and read back.

Each line is a JSON array, in UTF-8, ending in a line break (``json.loads`` reads it back):

- a row's record: the values of ``rowrecords.encode`` (``rowrecords.WIDTH`` of them);
- an in-flight mark: a row's record, then its request's segment, sent time, wait and its cause
  (one line for both, written as the request goes out: ``Journal.attempt``);
- a request's answer: ``"a"``, then the values of its Attempt.

A success's answer has no line of its own (a line less per row): the row's final record, which
follows at once, says when and how it was answered (:func:`success_of`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from batch.journal import rowrecords
from batch.journal.audit import Attempt
from batch.journal.maplog import read_records
from batch.model import Outcome, RowResult

ATTEMPT_MARK: Final = "a"
_ATTEMPT_WIDTH: Final = len(Attempt._fields) + 1  # the mark, then the values
_IN_FLIGHT_WIDTH: Final = rowrecords.WIDTH + 4  # the record, then what its request adds


def line(values: tuple[Any, ...]) -> bytes:
    """One line of the log. orjson writes it, at about a fifth of ``json.dumps``'s cost (twice
    per row); json writes what orjson refuses (a lone surrogate, an integer beyond 64 bits)."""
    try:
        return orjson.dumps(values, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return json.dumps(values).encode() + b"\n"


def in_flight(record: tuple[Any, ...], request: Attempt) -> bytes:
    """An in-flight mark's line: the row's stored record (``rowrecords.encode``), then its
    request, sent and not yet answered."""
    return line((*record, request.segment, request.sent_at, request.waited_ms, request.wait_cause))


def answer(request: Attempt) -> bytes:
    """A request's line once its answer (or transport error) is known."""
    return line((ATTEMPT_MARK, *request))


def success_of(result: RowResult) -> tuple[int, int] | None:
    """(row, attempt) of the request that succeeded, for a succeeded row's record: answered
    when the row finished, with its status."""
    if result.outcome is Outcome.SUCCEEDED and result.finished_at is not None and result.attempts:
        return result.row, result.attempts
    return None


@dataclass(frozen=True, slots=True)
class Logged:
    """What a journal's log holds: each row's latest record, each request's latest record, and
    the bytes they take."""

    rows: list[RowResult]
    attempts: list[Attempt]
    used: int


def read_log(log: Path) -> Logged:
    """The records of a journal's log, as the journal will copy them in (also for readers that
    must not wait for it: ``reroute status`` and ``reroute report``). Raises JournalError for
    a line that is not a journal record (a reader may be looking while it is rewritten)."""
    lines, used = read_records(log, rowrecords.WIDTH, _ATTEMPT_WIDTH, _IN_FLIGHT_WIDTH)
    rows: dict[int, RowResult] = {}
    attempts: dict[tuple[int, int], Attempt] = {}
    for values in lines:
        mark, *rest = values
        if mark == ATTEMPT_MARK:
            request = Attempt._make(rest)
            attempts[(request.row, request.attempt)] = request
            continue
        if len(values) == _IN_FLIGHT_WIDTH:
            *stored, segment, sent_at, waited_ms, wait_cause = values
            result = rowrecords.decode(stored)
            request = Attempt(
                row=result.row, routing_id=result.routing_id, attempt=result.attempts,
                segment=segment, sent_at=sent_at, waited_ms=waited_ms, wait_cause=wait_cause,
            )  # fmt: skip
            attempts[(request.row, request.attempt)] = request
        else:
            result = rowrecords.decode(values)
        rows[result.row] = result
        key = success_of(result)
        found = attempts.get(key) if key is not None else None
        if found is not None and found.answered_at is None:
            attempts[found.row, found.attempt] = found._replace(
                answered_at=rowrecords.stamp(result.finished_at),
                http_status=result.http_status,
                error_code="",
            )
    return Logged(list(rows.values()), list(attempts.values()), used)
