"""Per-key limits of the sandbox: requests per period and requests in flight.

The API's docs do not say which kind of rate limiter it runs, so the sandbox models three
(``RateLimitMode``), for rehearsals and for tests of reroute's pacing against each:

- ``bucket``: GCRA with a tolerance of the rate's count (a bucket of ``count`` requests refilled
  evenly over the period): forgiving, an even pace is never refused, a burst beyond it is.
- ``strict``: GCRA with zero tolerance, as nginx's ``limit_req`` without ``burst``: a request
  arriving less than one interval after the last admitted one is refused, a millisecond early
  included.
- ``window``: fixed windows of the rate's period, at most ``count`` requests counted in each.

The clock is injected (``anyio.current_time`` by default), so tests under trio's ``MockClock``
get exact, instant answers about when the limit opens again.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from batch.settings import Rate


class RateLimitMode(StrEnum):
    """Which kind of rate limiter the sandbox runs (``--rate-limit-mode``)."""

    BUCKET = "bucket"
    STRICT = "strict"
    WINDOW = "window"


class KeyLimiter(Protocol):
    def acquire(self, key: str) -> float | None:
        """Admit one request (None), or refuse it: the seconds until one would be admitted."""
        ...

    def retune(self, rate: Rate) -> None:
        """Reconfigure the rate, keeping what was admitted so far."""
        ...


class RateLimiter:
    """GCRA ("generic cell rate algorithm", virtual scheduling), one schedule per key.

    With ``burst`` b, equivalent to a bucket of b requests refilled evenly over the period: a
    client that paces evenly at the rate is never refused, a burst of more than b is (default:
    the rate's count, the bucket mode). ``burst=1`` is the strict mode: zero tolerance. O(1) per
    request; a refused request changes nothing.
    """

    def __init__(self, rate: Rate, clock: Callable[[], float], *, burst: int | None = None) -> None:
        self._clock = clock
        self._interval = rate.interval
        burst = max(1, math.floor(rate.count)) if burst is None else burst
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self._tolerance = (burst - 1) * self._interval
        self._tat: dict[str, float] = {}  # key -> theoretical arrival time of its next request

    def acquire(self, key: str) -> float | None:
        """Admit one request (None), or refuse it and return the seconds until one would be
        admitted."""
        now = self._clock()
        tat = max(self._tat.get(key, now), now)
        allowed_at = tat - self._tolerance
        if now < allowed_at:
            return allowed_at - now
        self._tat[key] = tat + self._interval
        return None

    def retune(self, rate: Rate) -> None:
        """Change the rate (and the bucket with it), keeping each key's schedule: a server whose
        limit is reconfigured, not restarted."""
        burst = round(self._tolerance / self._interval) + 1
        self._interval = rate.interval
        burst = max(1, math.floor(rate.count)) if burst > 1 else 1
        self._tolerance = (burst - 1) * self._interval


class WindowLimiter:
    """Fixed windows of the rate's period (aligned to the clock's zero), at most ``count``
    requests admitted in each, per key. Refused requests are not counted."""

    def __init__(self, rate: Rate, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._period = rate.period
        self._limit = max(1, math.floor(rate.count))
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window number, admitted in it)

    def acquire(self, key: str) -> float | None:
        """Admit one request (None), or refuse it: the seconds until the window ends."""
        now = self._clock()
        window = math.floor(now / self._period)
        current, admitted = self._windows.get(key, (window, 0))
        if current != window:
            admitted = 0
        if admitted >= self._limit:
            return (window + 1) * self._period - now
        self._windows[key] = (window, admitted + 1)
        return None

    def retune(self, rate: Rate) -> None:
        """Change the count per window, keeping what each key was admitted in this one: a server
        whose limit is reconfigured, not restarted. (Same period.)"""
        self._limit = max(1, math.floor(rate.count))


def rate_limiter(rate: Rate, clock: Callable[[], float], mode: RateLimitMode) -> KeyLimiter:
    """The sandbox's per-key rate limiter of kind ``mode``."""
    if mode is RateLimitMode.WINDOW:
        return WindowLimiter(rate, clock)
    return RateLimiter(rate, clock, burst=1 if mode is RateLimitMode.STRICT else None)


class ArrivalJitter:
    """How late each request reaches the limiter, as over the internet: uniform in
    ``[0, seconds]``, drawn from ``seed`` when given (reproducible in sequence)."""

    def __init__(self, seconds: float, seed: int | None) -> None:
        self._seconds = seconds
        self._rng = random.Random(None if seed is None else f"{seed}:arrival")

    def delay(self) -> float:
        return self._rng.uniform(0.0, self._seconds) if self._seconds else 0.0


def retry_after_seconds(wait: float) -> int:
    """The Retry-After header value for a wait: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait - 1e-9))


class ConcurrencyLimiter:
    """At most ``limit`` requests in flight per key; the one beyond is refused, not queued (the
    API answers 429 rather than making a client wait)."""

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._in_flight: Counter[str] = Counter()

    def enter(self, key: str) -> bool:
        if self._limit is not None and self._in_flight[key] >= self._limit:
            return False
        self._in_flight[key] += 1
        return True

    def leave(self, key: str) -> None:
        self._in_flight[key] -= 1
