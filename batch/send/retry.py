"""What is worth retrying, how long to wait, and the tenacity loop that does it.

One named predicate, ``is_transient``, decides; nothing retries on a bare ``Exception`` (stamina
calls that an attractive nuisance). Retrying is safe here even after a timeout, when the first
request may well have been applied: the update replaces the whole routing record with the body
we send, so sending the same body twice leaves the record in the same state (idempotent).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final, NamedTuple

import httpx
import tenacity

from batch.errors import ConnectionFailed, RequestTimeout, TransportError

# Statuses worth another try: rate limited, and the server or a gateway failing for now.
TRANSIENT_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
# Statuses whose Retry-After we honour (429: everyone pauses; 503: this row waits).
RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
# Statuses that mean every other row would fail the same way: the run stops on them.
STOP_RUN_STATUSES: Final = frozenset({401, 403})
# A reset header above this is an epoch timestamp rather than a number of seconds.
_EPOCH_THRESHOLD: Final = 1_000_000_000


class Answer(NamedTuple):
    """One HTTP answer to one attempt, read and classified (no httpx objects past here).

    An immutable named tuple rather than a frozen dataclass: one is built per request, and a
    frozen dataclass's generated ``__init__`` (``object.__setattr__`` per field) costs about
    three times as much (measured: 12.8k against 5k instructions).
    """

    status: int
    success: bool  # 2xx with the success envelope
    error_code: str  # "" on success; else the API's code or a transport code (contract)
    error_message: str  # one line
    response: str  # the envelope as received (compact JSON) or a one-line excerpt
    is_json: bool
    retry_after: float | None = None  # seconds the server asked us to wait, if it said
    # Seconds to wait before the next attempt when this answer decides it (a 429, or a 503 with
    # Retry-After); None: the usual exponential backoff. Set by the sender, once per answer.
    wait: float | None = None


def is_transient(outcome: Answer | BaseException) -> bool:
    """True when trying the same request again may well succeed.

    Timeouts and dropped or refused connections; 429, 500, 502, 503 and 504; and error pages
    that are not JSON with a 5xx status (a proxy or gateway talking, not the API). Everything
    else is final: 400, 401, 403, 404, 409, 422, other statuses, a 2xx that is not the envelope,
    and any exception that is not one of our transport errors (a bug must not loop).
    """
    if isinstance(outcome, BaseException):
        return isinstance(outcome, RequestTimeout | ConnectionFailed)
    if outcome.success:
        return False
    if outcome.status in TRANSIENT_STATUSES:
        return True
    return not outcome.is_json and outcome.status >= 500


def is_throttled(outcome: Answer | BaseException) -> bool:
    """True for a 429: the server asks us to slow down, and says nothing about the row. A
    throttled attempt does not count toward --max-attempts (the row waits its turn; the run's
    time throttled is bounded instead: batch.send.throttle)."""
    return isinstance(outcome, Answer) and outcome.status == 429


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP date.

    A date in the past means 0. Anything unreadable (or negative, or not finite) is None: the
    caller then backs off by itself, as for a 429 without the header.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means "-0000"
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def retry_after_from_headers(headers: httpx.Headers, now: datetime) -> float | None:
    """The wait a 429 asks for: ``Retry-After``, else a ``RateLimit-Reset`` style header.

    The API documents none of these; we honour them when present (voicelink-api.md). The reset
    headers hold seconds, or (``X-RateLimit-Reset`` on some servers) an epoch timestamp.
    """
    seconds = parse_retry_after(headers.get("retry-after"), now)
    if seconds is not None:
        return seconds
    for name in ("ratelimit-reset", "x-ratelimit-reset"):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            number = float(raw.strip())
        except ValueError:
            continue
        if not math.isfinite(number) or number < 0:
            continue
        if number >= _EPOCH_THRESHOLD:
            return max(0.0, number - now.timestamp())
        return number
    return None


def backoff(attempt: int, *, initial: float, maximum: float, jitter: float, rnd: float) -> float:
    """Exponential backoff after failed attempt number ``attempt`` (1-based), with jitter.

    ``initial * 2**(attempt-1)`` capped at ``maximum``, then up to ``jitter`` of it taken off at
    random (``rnd`` in [0, 1)), so rows that failed together do not all come back together.
    """
    try:
        delay = min(maximum, initial * 2.0 ** (attempt - 1))
    except OverflowError:
        delay = maximum
    return delay * (1.0 - jitter * rnd)


# What an attempt hands tenacity: an answer, or the transport error, as a value. Exceptions that
# escape an attempt (cancellation above all) are never retried and propagate as they are.
AttemptOutcome = Answer | TransportError


def build_retrying(
    *,
    max_attempts: int,
    should_retry: Callable[[AttemptOutcome], bool],
    wait: Callable[[tenacity.RetryCallState], float],
    sleep: Callable[[float], Awaitable[None]],
    before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
) -> tenacity.AsyncRetrying:
    """The tenacity loop for one row: up to ``max_attempts`` attempts that are not throttled
    (``is_throttled``: a 429 is free), retrying what ``should_retry`` says.

    When the attempts run out, the last outcome is returned as a value (not a RetryError), so
    the sender turns it into the row's result like any final answer.
    """
    throttled = 0  # attempts answered 429 so far: they do not count

    def retry_condition(state: tenacity.RetryCallState) -> bool:
        nonlocal throttled
        outcome = state.outcome
        if outcome is None or outcome.failed:
            return False  # an exception escaped the attempt: never retried, re-raised as is
        value: AttemptOutcome = outcome.result()
        throttled += is_throttled(value)
        return should_retry(value)

    def spent(state: tenacity.RetryCallState) -> bool:
        return state.attempt_number - throttled >= max_attempts

    def last_outcome(state: tenacity.RetryCallState) -> AttemptOutcome:
        assert state.outcome is not None  # tenacity calls this only after an attempt
        value: AttemptOutcome = state.outcome.result()
        return value

    return tenacity.AsyncRetrying(
        sleep=sleep,
        stop=spent,
        wait=wait,
        retry=retry_condition,
        before_sleep=before_sleep,
        retry_error_callback=last_outcome,
    )


def default_now() -> datetime:
    """Wall-clock time in UTC (timestamps in results, HTTP-date Retry-After)."""
    return datetime.now(UTC)
