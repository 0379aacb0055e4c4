"""Per-key limits of the sandbox: requests per period and requests in flight.

The clock is injected (``anyio.current_time`` by default), so tests under trio's
``MockClock`` get exact, instant answers about when the limit opens again.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from batch.settings import Rate


class RateLimiter:
    """GCRA ("generic cell rate algorithm", virtual scheduling), one schedule per key.

    Equivalent to a bucket of ``count`` requests refilled evenly over ``period``: a client that
    paces evenly at the rate is never refused, a burst of more than ``count`` is. The API's docs
    do not say whether their window is fixed or sliding; this is the shape that rewards the
    pacing reroute does and punishes bursts, in O(1) per request.
    """

    def __init__(self, rate: Rate, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._interval = rate.interval
        burst = max(1, math.floor(rate.count))
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
