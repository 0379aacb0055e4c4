"""Plain immutable values the stages hand each other (no DataFrames, no httpx objects).

``RowResult`` is the one definition of a results-file row: its fields, in order, are the
results file's first columns (``RESULT_COLUMNS``), the journal's ``rows`` table and a line of
its log (``batch.journal.rowrecords`` encodes it), and what the retry reads back. It is defined
here, not in the journal, because every stage hands it on: prepare makes the invalid rows' and
a retry's, the sender the sent rows', the journal keeps them, merge and the results writer read
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Final, NamedTuple

from batch import voicelink


class Exit(IntEnum):
    """The contract's exit statuses, the one table: the command line exits with them, the
    engine's endings map to them, the report and `jobs check` word them."""

    OK = 0  # every row succeeded (validate: every row valid; jobs check: every job fine)
    SOME_FAILED = 1  # finished, some rows did not succeed (validate, jobs check: some invalid)
    NOTHING_SENT = 2  # bad usage, unreadable input, invalid rows without --skip-invalid
    STOPPED = 3  # stopped early with rows left; the results file is written, the same command
    # resumes
    RESULTS_NOT_WRITTEN = 4  # rows were sent, the results file could not be written: the
    # journal keeps every outcome, and the same command writes it

    @property
    def meaning(self) -> str:
        """What the status says of a run, in the report's words."""
        return _EXIT_MEANING[self]


_EXIT_MEANING: Final = {
    Exit.OK: "every row succeeded",
    Exit.SOME_FAILED: "finished; some rows did not succeed",
    Exit.NOTHING_SENT: "nothing was sent",
    Exit.STOPPED: "stopped early with rows left to send; the same command resumes",
    Exit.RESULTS_NOT_WRITTEN: "rows were sent, but the results file could not be written",
}


class Outcome(StrEnum):
    """What happened to one input row (the results file's ``outcome`` column)."""

    SUCCEEDED = "succeeded"  # a 2xx answer with ``success: true``
    FAILED = "failed"  # sent; the final answer was an error, or retries ran out
    INVALID = "invalid"  # failed validation, never sent
    # Valid but not applied: never sent, or only ever answered 429 (a 429 is a pacing signal,
    # never a row's failure), when the run stopped early.
    NOT_ATTEMPTED = "not_attempted"
    UNKNOWN = "unknown"  # sent, and the run was interrupted before an answer arrived
    SKIPPED = "skipped"  # left out on purpose (--skip-unchanged): never sent, not retried


# Outcomes that `reroute retry` sends again.
RETRYABLE_OUTCOMES: Final = frozenset({Outcome.FAILED, Outcome.UNKNOWN, Outcome.NOT_ATTEMPTED})
# A row that failed with one of these was not judged by the server on its own merits: the key
# or account was refused (401/403), or the server asked the whole run to wait longer than
# --max-retry-after (429). A resumed run sends it again instead of treating it as decided.
RESEND_STATUSES: Final = frozenset({401, 403, 429})
# Likewise a row whose request got no answer because the run gave up on the host (an outage
# longer than --max-outage, a name that does not resolve, a certificate that does not verify):
# no HTTP status, so the error code says it (batch.errors.HostUnreachable).
RESEND_CODES: Final = frozenset({"HOST_UNREACHABLE"})


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


class RowResult(NamedTuple):
    """The final word on one input row: one record of the results file.

    A named tuple: read by name, and still a plain tuple where one is cheapest (the results
    writer turns a chunk of them into columns with one ``zip``, the journal's encoding walks
    its values).
    """

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

    @property
    def decided(self) -> bool:
        """True when the row must never be sent again by a resumed run: it succeeded, was left
        out on purpose, or failed on its own merits (not for the key, not for a long pause, not
        for a host the run gave up on)."""
        if self.outcome is Outcome.FAILED:
            return self.http_status not in RESEND_STATUSES and self.error_code not in RESEND_CODES
        return self.outcome in (Outcome.SUCCEEDED, Outcome.SKIPPED)


# Results-file columns, in order, before the passthrough input columns: RowResult's fields.
RESULT_COLUMNS: Final = RowResult._fields
