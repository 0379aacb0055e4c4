"""The retry predicate, Retry-After parsing and backoff: what is retried and for how long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch.errors import (
    CertificateRejected,
    ConnectionFailed,
    JournalError,
    RequestTimeout,
    TransportError,
)
from batch.send.retry import (
    Answer,
    backoff,
    build_retrying,
    is_transient,
    parse_retry_after,
    retry_after_from_headers,
)

NOW = datetime(2026, 11, 30, 1, 0, 0, tzinfo=UTC)


def answer(status: int, *, is_json: bool = True, success: bool = False) -> Answer:
    return Answer(status, success, "X", "m", "{}", is_json)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
@pytest.mark.parametrize("is_json", [True, False])
def test_transient_statuses(status: int, is_json: bool) -> None:
    """429 and 500/502/503/504 are retried, JSON envelope or not."""
    assert is_transient(answer(status, is_json=is_json)) is True


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 405, 408, 410, 501, 505])
def test_final_statuses_with_envelope(status: int) -> None:
    """400, 401, 403, 404, 409, 422 and every other status with a JSON answer are final."""
    assert is_transient(answer(status)) is False


@pytest.mark.parametrize("status", [500, 501, 520, 522, 599])
def test_non_json_server_error_pages_are_transient(status: int) -> None:
    """A 5xx page that is not JSON (a proxy or CDN talking) is retried."""
    assert is_transient(answer(status, is_json=False)) is True


@pytest.mark.parametrize("status", [200, 201, 301, 400, 401, 403, 404])
def test_non_json_below_500_is_final(status: int) -> None:
    """A non-JSON answer below 500 (a captive portal, a WAF's 403) is final."""
    assert is_transient(answer(status, is_json=False)) is False


def test_success_is_never_transient() -> None:
    """A success is not retried (even with a status that would be, in theory)."""
    assert is_transient(answer(200, success=True)) is False


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (RequestTimeout("t"), True),
        (ConnectionFailed("c"), True),
        (TransportError("other"), False),
        (CertificateRejected("tls"), False),
        (JournalError("j"), False),
        (ValueError("bug"), False),
        (KeyboardInterrupt(), False),
    ],
)
def test_exceptions(exc: BaseException, expected: bool) -> None:
    """Only our timeout and connection errors are transient; never a bare exception."""
    assert is_transient(exc) is expected


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("Mon, 30 Nov 2026 01:01:00 GMT", 60.0),
        ("Monday, 30-Nov-26 01:00:10 GMT", 10.0),  # obsolete RFC 850 form
        (None, None),
        ("", None),
        ("-5", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    """Retry-After as seconds or an HTTP date; a date in the past is 0; junk is None."""
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "3", "RateLimit-Reset": "9"}, 3.0),
        ({"RateLimit-Reset": "9"}, 9.0),
        ({"X-RateLimit-Reset": "4"}, 4.0),
        ({"X-RateLimit-Reset": str(int(NOW.timestamp()) + 25)}, 25.0),
        ({"X-RateLimit-Reset": "later"}, None),
        ({}, None),
    ],
)
def test_retry_after_from_headers(headers: dict[str, str], seconds: float | None) -> None:
    """Retry-After first, then RateLimit-Reset / X-RateLimit-Reset (seconds or epoch)."""
    assert retry_after_from_headers(httpx.Headers(headers), NOW) == seconds


def test_backoff_doubles_up_to_the_cap() -> None:
    """Without jitter the waits double from the initial one and stop at the maximum."""
    waits = [backoff(n, initial=1, maximum=10, jitter=0.5, rnd=0.0) for n in range(1, 7)]
    assert waits == [1, 2, 4, 8, 10, 10]


def test_backoff_jitter_takes_off_at_most_its_share() -> None:
    """Jitter shortens a wait by up to its share, never lengthens it."""
    assert backoff(3, initial=1, maximum=60, jitter=0.5, rnd=0.999) == pytest.approx(2.002)
    assert backoff(3, initial=1, maximum=60, jitter=0.5, rnd=0.5) == 3


def test_backoff_huge_attempt_does_not_overflow() -> None:
    """A very late attempt waits the maximum instead of raising OverflowError."""
    assert backoff(5000, initial=1, maximum=60, jitter=0.0, rnd=0.0) == 60


@given(st.text())
def test_parse_retry_after_never_raises(value: str) -> None:
    """Any header text gives a wait of 0 or more seconds, or None: never an exception."""
    seconds = parse_retry_after(value, NOW)
    assert seconds is None or seconds >= 0


async def no_sleep(seconds: float) -> None:
    """Tenacity's sleep, injected: these tests are about decisions, not time."""


async def test_exception_escaping_an_attempt_is_never_retried() -> None:
    """A bug (any exception that is not an outcome) propagates after one call, as it is."""
    calls = 0

    async def boom() -> Answer:
        nonlocal calls
        calls += 1
        raise ValueError("bug")

    retrying = build_retrying(
        max_attempts=5, should_retry=lambda o: True, wait=lambda s: 0.0, sleep=no_sleep
    )
    with pytest.raises(ValueError, match="bug"):
        await retrying(boom)
    assert calls == 1


async def test_attempts_running_out_return_the_last_outcome() -> None:
    """When max_attempts is reached the last outcome comes back as a value, not a RetryError."""
    outcomes = iter([RequestTimeout("1"), ConnectionFailed("2"), answer(503)])

    async def attempt() -> Answer | TransportError:
        return next(outcomes)

    retrying = build_retrying(
        max_attempts=3, should_retry=is_transient, wait=lambda s: 0.0, sleep=no_sleep
    )
    last = await retrying(attempt)
    assert isinstance(last, Answer)
    assert last.status == 503
