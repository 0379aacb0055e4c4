"""Plain immutable values the stages hand each other (no DataFrames, no httpx objects)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from batch import voicelink


class Outcome(StrEnum):
    """What happened to one input row (the results file's ``outcome`` column)."""

    SUCCEEDED = "succeeded"  # a 2xx answer with ``success: true``
    FAILED = "failed"  # sent; the final answer was an error, or retries ran out
    INVALID = "invalid"  # failed validation, never sent
    NOT_ATTEMPTED = "not_attempted"  # valid but never sent (the run stopped early)
    UNKNOWN = "unknown"  # sent, and the run was interrupted before an answer arrived


# Outcomes that `reroute retry` sends again.
RETRYABLE_OUTCOMES = frozenset({Outcome.FAILED, Outcome.UNKNOWN, Outcome.NOT_ATTEMPTED})


@dataclass(frozen=True, slots=True)
class Call:
    """One request the run will send: the update of one routing record by one input row."""

    row: int  # 1-based data row of the input
    routing_id: int
    body: str  # compact JSON, exactly the bytes sent (voicelink.encode_body)

    @property
    def method(self) -> str:
        return voicelink.METHOD

    @property
    def path(self) -> str:
        return voicelink.update_path(self.routing_id)


@dataclass(frozen=True, slots=True)
class RowResult:
    """The final word on one input row: one record of the results file."""

    row: int
    routing_id: str  # as read: text kept as text when it was not a valid integer
    outcome: Outcome
    http_status: int | None = None
    attempts: int = 0
    error_code: str = ""
    error_message: str = ""
    request: str = ""  # JSON body sent (or that would have been sent); empty for invalid rows
    response: str = ""  # final answer's envelope as received (non-JSON: a short excerpt)
    started_at: datetime | None = None  # UTC, first send
    finished_at: datetime | None = None  # UTC, final answer
    duration_ms: int | None = None


def _builder(cls: type[Any]) -> Callable[..., Any]:
    """A function that builds a ``cls`` (a frozen dataclass with slots) from every field, in
    order: the same object as ``cls(*values)``, at about half the cost.

    A frozen dataclass's own ``__init__`` sets each field through ``object.__setattr__``
    (about 1,600 instructions a field); this sets them through their slots directly. For the
    records made once per row or more (a row's result, its journal record read back).
    """
    setters = tuple(cls.__dict__[field.name].__set__ for field in fields(cls))
    new = object.__new__

    def build(*values: Any) -> Any:
        if len(values) != len(setters):
            raise TypeError(f"{cls.__name__} takes {len(setters)} values, got {len(values)}")
        record = new(cls)
        for setter, value in zip(setters, values, strict=True):
            setter(record, value)
        return record

    return build


# A Call from its row, routing id and body (see _builder).
build_call: Callable[[int, int, str], Call] = _builder(Call)

# A RowResult from all its fields, in the order of RESULT_COLUMNS (see _builder).
build_row_result: Callable[
    [int, str, Outcome, int | None, int, str, str, str, str, datetime | None, datetime | None,
     int | None],
    RowResult,
] = _builder(RowResult)  # fmt: skip

# Results-file columns, in order, before the passthrough input columns.
RESULT_COLUMNS = (
    "row",
    "routing_id",
    "outcome",
    "http_status",
    "attempts",
    "error_code",
    "error_message",
    "request",
    "response",
    "started_at",
    "finished_at",
    "duration_ms",
)
