"""Plain immutable values the stages hand each other (no DataFrames, no httpx objects)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

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
