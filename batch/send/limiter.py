"""One pace for every request of a run, retries included.

The algorithm is GCRA, the Generic Cell Rate Algorithm in its "virtual scheduling" form (as in
aiometer's ``RateLimitMeter``): a theoretical arrival time (TAT) moves forward by one interval per
granted request, and a request may start once the clock reaches ``TAT - tolerance``. Requests are
therefore spaced evenly, and an idle spell never earns a burst beyond the tolerance (one request
by default), so a fixed or sliding window on the server side sees no spike at its edges.

The pace itself is :class:`batch.send.pace.Pace`'s (CUBIC with careful periods): a 429 slows it
(``throttled``), accepted answers move it back along its curve (``succeeded``), never above the
configured rate; an answer's latency, when given, lets a careful period space the next request
from the last one's estimated arrival. ``pause`` stops all sending until a moment the server
named (Retry-After).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from batch.send.pace import Pace
from batch.settings import Rate


class Limiter:
    """Paces every request of a run: GCRA spacing, a global pause, a pace learned from 429s.

    Share one instance between every task; each attempt awaits ``acquire()`` right before it
    sends. Waiters are served one at a time, in arrival order (a fair lock), so a row retried
    after a 429 queues behind nobody's burst; a caller whose slot is due while nobody waits
    is granted at once, without the lock.
    """

    def __init__(
        self,
        rate: Rate,
        *,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        burst: int = 1,
        decrease: float = 0.8,
        floor: float = 1 / 16,
        margin: float = 0.01,
        recovery: float = 16,
        careful: float = 128,
    ) -> None:
        """``rate``: the configured (and highest) pace.

        ``burst``: requests that may start back to back after an idle spell (GCRA tolerance;
        1 means strictly evenly spaced). ``decrease``: factor applied to the pace on a 429.
        ``floor``: the pace never drops below this share of the configured rate. ``margin``,
        ``recovery``, ``careful``: the pace's curve (:class:`batch.send.pace.Pace`).
        """
        if burst < 1:
            raise ValueError("burst must be at least 1")
        if not 0 < decrease < 1:
            raise ValueError("decrease must be between 0 and 1")
        self._pace = Pace(
            rate.per_second,
            beta=decrease,
            floor=floor,
            margin=margin,
            recovery=recovery,
            careful=careful,
        )
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._burst = burst
        self._per_second = rate.per_second
        self._interval = 1.0 / self._per_second  # kept in step with _per_second (_set_pace)
        self._tolerance = (burst - 1) * self._interval
        self._tat = -float("inf")  # theoretical arrival time of the next request
        self._last_grant = -float("inf")
        self._paused_until = -float("inf")
        self._hold_decrease_until = -float("inf")
        self._lock = anyio.Lock()  # FIFO for callers that must wait
        self._queued = 0  # callers waiting for the lock or holding it (fast path shut if any)

    @property
    def configured_rate(self) -> Rate:
        return self._rate

    @property
    def current_rate(self) -> Rate:
        """The pace right now (lower than configured after a 429), in the configured unit."""
        return Rate(self._per_second * self._rate.period, self._rate.period)

    @property
    def interval(self) -> float:
        """Seconds between two requests at the current pace."""
        return self._interval

    @property
    def paused_until(self) -> float:
        """Clock time before which nothing is sent (``-inf`` when never paused)."""
        return self._paused_until

    async def acquire(self) -> None:
        """Wait for this request's slot: after the pause, and one interval after the last.

        When nobody is queued and the slot is already due, the slot is granted at once,
        without taking the lock or yielding to the event loop: a lock round trip costs more
        CPU than a fast request itself (measured: 0.4-0.9 ms per request on a 2-core VM), and
        with no one waiting there is no order to keep. Everyone else queues on the lock, in
        arrival order; the fast path stays shut while anyone is queued, so it never jumps
        the queue.
        """
        if self.try_acquire():
            return
        self._queued += 1
        try:
            async with self._lock:
                waited = False
                while True:
                    now = self._clock()
                    start = self._start()
                    if now >= start:
                        break
                    # Loop rather than trust one sleep: a pause or a slower pace may have been
                    # set while we slept, and it must hold for us too.
                    waited = True
                    await self._sleep(start - now)
                # A caller that waited counts as sent at its slot, not when the event loop woke
                # it: oversleeping a millisecond per request would otherwise add up to a pace a
                # few percent under --rate. At most a quarter interval is made up, so a stalled
                # event loop never turns into a burst.
                self._grant(now, max(start, now - self.interval / 4) if waited else now)
        finally:
            self._queued -= 1

    def try_acquire(self) -> bool:
        """Take this request's slot if it is due and nobody is queued; never waits.

        True: the slot is granted (send now). False: nothing was taken; ``acquire()`` waits.
        """
        if self._queued:
            return False
        now = self._clock()
        # _start() and _grant() written out: this runs for nearly every request.
        if now < self._tat - self._tolerance or now < self._paused_until:
            return False
        # No await between the check and the grant: nothing can slip in between.
        self._last_grant = now
        self._tat = max(self._tat, now) + self._interval
        return True

    def _start(self) -> float:
        """The earliest clock time the next request may start (GCRA, then any pause)."""
        return max(self._tat - self._tolerance, self._paused_until)

    def _grant(self, now: float, at: float) -> None:
        """Give out the slot of a request counted as sent at ``at`` (granted ``now``)."""
        self._last_grant = now
        self._tat = max(self._tat, at) + self._interval

    def pause(self, seconds: float) -> None:
        """Stop all sending for ``seconds`` from now (a 429). Only ever extends a pause."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    def throttled(self, *, told: bool = True) -> None:
        """Multiplicative decrease of the pace after a 429 (by ``decrease``).

        Several requests in flight often get their 429 together; only the first one of a
        burst counts, so one episode slows the pace once rather than once per request.
        ``told``: the pause is the server's (its Retry-After), so its length says something
        about the server's limiter; False for a pause of our own (a backoff).
        """
        now = self._clock()
        if now < self._hold_decrease_until:
            return
        pause = max(0.0, self._paused_until - now)
        self._set_pace(self._pace.refused(now, pause, told=told))
        # The next request keeps the new, wider spacing from the last one granted.
        self._space_from_last(now, self.interval)
        self._hold_decrease_until = max(now + self.interval, self._paused_until)

    def succeeded(self, latency: float | None = None) -> None:
        """An answer that was not a 429: the pace moves along its curve, up to the configured
        rate.

        ``latency``: seconds from sending the request to reading its answer. During a careful
        period, when this request was the last one sent, the next leaves no sooner than one
        interval after its estimated arrival (the latency above the lowest seen is the delay it
        met on the way). Without it, only the curve moves.

        The curve does not move while a 429 episode lasts (its pause, and one interval after):
        answers to requests that were already in flight say nothing about the new pace.
        """
        pace = self._pace
        pace.accepted += 1
        excess = pace.excess(latency) if latency is not None else 0.0
        if pace.settled:
            return  # at the configured pace, not careful (the common case: no clock to read)
        now = self._clock()
        if latency is not None and pace.guarded(now):
            sent = now - latency
            self._guard(now, sent, sent + excess + pace.limit_interval + self._tolerance)
        if now < self._hold_decrease_until:
            return
        self._set_pace(pace.update(now))

    def _space_from_last(self, now: float, gap: float) -> None:
        """The next request leaves no sooner than ``gap`` after the last one granted."""
        self._tat = max(self._tat, self._last_grant + gap)

    def _guard(self, now: float, sent: float, next_at: float) -> None:
        """The arrival guard: when the request sent at ``sent`` was the last one granted (the
        grants before it are an interval apart), the next leaves no sooner than ``next_at``."""
        if sent >= self._last_grant - self._interval / 2:
            self._tat = max(self._tat, next_at)

    def _set_pace(self, per_second: float) -> None:
        self._per_second = per_second
        self._interval = 1.0 / per_second
        self._tolerance = (self._burst - 1) * self._interval
