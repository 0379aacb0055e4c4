"""Several runs on one key, in trio's virtual time: each run its own limiter (and workers), one
server limit for them all (issue 29).

``shared=False``: runs on different machines, nothing shared; each finds its share from its own
429s (``batch.send.pace``). ``shared=True``: runs on one machine, their limiters sharing one
schedule of slots (``batch.send.sharedlimiter``, over :class:`batch.send.slots.MemorySlots`
here, the file's stand-in). Each run sends ``rows`` requests (a 429 is sent again after its
Retry-After, as the sender does) and ends when the server has accepted them all; a run that
starts later joins the others.

Used by ``tests/send/test_pace_runs.py`` and ``tests/benchmarks/bench_pace_runs.py``.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from trio.testing import MockClock

from batch.sandbox.limits import RateLimitMode, rate_limiter, retry_after_seconds
from batch.send.limiter import Limiter
from batch.send.sharedlimiter import SharedLimiter
from batch.send.slots import MemorySlots
from batch.settings import Rate
from tests.pace_sim import KEY, SIXTY_PER_MINUTE

_MINUTE = 60.0
_HORIZON = 10  # windows a state must hold for to count as reached (tests/pace_sim.py: ten minutes)


@dataclass(frozen=True, slots=True)
class Run:
    """One run on the key: when it starts (seconds into the simulation), and when it ends: once
    the server accepted its ``rows``, or at ``stop`` (None: either, or the simulation's end)."""

    start: float = 0.0
    rows: int | None = None
    stop: float | None = None
    concurrency: int = 4
    rate: Rate | None = None  # its --rate; default: the server's limit


@dataclass(frozen=True, slots=True)
class Runs:
    """The runs, and the one server limit they share."""

    runs: tuple[Run, ...]
    mode: RateLimitMode = RateLimitMode.STRICT
    limit: Rate = SIXTY_PER_MINUTE
    shared: bool = False  # one machine (a shared schedule) or several (nothing shared)
    jitter: float = 0.0  # arrival delay: uniform in [0, jitter * interval]
    latency: float = 0.2  # the server's answer time after arrival, a share of the interval
    seconds: float = 3600.0  # simulated duration, at most
    seed: int = 1


@dataclass(slots=True)
class Traffic:
    """What the server saw of one run: arrival times (seconds since the simulation's start)."""

    accepted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    finished: float | None = None  # when the server accepted its last row

    def admitted(self, start: float, end: float) -> int:
        return bisect_left(self.accepted, end) - bisect_left(self.accepted, start)


@dataclass(slots=True)
class Outcome:
    """Every run's traffic, in the order of ``Runs.runs``."""

    runs: list[Traffic]
    limit_per_second: float
    seconds: float  # simulated

    @property
    def refused(self) -> int:
        return sum(len(t.refused) for t in self.runs)

    @property
    def sent(self) -> int:
        return sum(len(t.accepted) + len(t.refused) for t in self.runs)

    def fair_from(
        self,
        start: float,
        end: float,
        *,
        within: float = 0.2,
        least: float = 0.5,
        window: float = _MINUTE,
    ) -> float | None:
        """Seconds from ``start`` until a moment from which every run's share of what the
        server admitted, over each ``window`` of the next ten (sliding by a hundredth of one,
        not past ``end``), stays within ``within`` of an even split (each of two runs gets
        40-60%) while together they get at least ``least`` of the limit. None: never before
        ``end``."""
        n = len(self.runs)

        def fair(s: float) -> bool:
            counts = [run.admitted(s, s + window) for run in self.runs]
            total = sum(counts)
            if total == 0 or total < least * self.limit_per_second * window:
                return False
            return all(abs(c / total - 1 / n) <= within / n for c in counts)

        return _settled(start, end, window, fair)

    def share_between(self, start: float, end: float) -> float:
        """What the runs got together, as a share of the limit over that time."""
        admitted = sum(run.admitted(start, end) for run in self.runs)
        return admitted / (self.limit_per_second * (end - start))

    def alone_from(self, run: int, start: float, *, window: float = _MINUTE) -> float | None:
        """Seconds from ``start`` (the other runs have ended) until a moment from which run
        ``run`` gets at least 90% of the limit in each ``window`` of the next ten (sliding by a
        hundredth of one, while it sends: ``Tally.storm``'s convergence). None: never."""
        traffic = self.runs[run]
        end = traffic.finished if traffic.finished is not None else self.seconds
        lowest = 0.9 * self.limit_per_second * window
        return _settled(start, end, window, lambda s: traffic.admitted(s, s + window) >= lowest)

    def refused_between(self, start: float, end: float) -> int:
        return sum(1 for run in self.runs for at in run.refused if start <= at < end)


def _settled(
    start: float, end: float, window: float, holds: Callable[[float], bool]
) -> float | None:
    """Seconds from ``start`` to the first moment (in steps of a hundredth of ``window``) from
    which ``holds`` is true of every window starting within the next nine windows' time (or
    until ``end``, when that comes first); None: no such moment a window before ``end``."""
    step = window / 100
    t = start
    while t + window <= end:
        last = min(t + _HORIZON * window, end) - window
        if all(holds(t + i * step) for i in range(int((last - t) / step) + 1)):
            return t - start
        t += step
    return None


async def simulate(runs: Runs) -> Outcome:
    """Run ``runs`` under the current trio run (its clock must be a MockClock)."""
    limit = runs.limit
    await trio.sleep(random.Random(runs.seed).uniform(0, limit.period))
    origin = trio.current_time()
    clock = trio.current_time
    server = rate_limiter(limit, clock, runs.mode)
    slots = MemorySlots()
    interval = limit.interval
    end = origin + runs.seconds
    outcome = Outcome([Traffic() for _ in runs.runs], limit.per_second, runs.seconds)

    async def one_run(n: int, run: Run, done: trio.Event) -> None:
        await trio.sleep_until(origin + run.start)
        rate = run.rate or limit
        limiter: Limiter = (
            SharedLimiter(rate, slots, clock=clock) if runs.shared else Limiter(rate, clock=clock)
        )
        traffic = outcome.runs[n]
        stop = end if run.stop is None else min(end, origin + run.stop)
        left = run.rows if run.rows is not None else -1  # rows not yet taken by a worker
        pending = run.rows if run.rows is not None else -1  # rows not yet accepted

        async def worker(w: int) -> None:
            nonlocal left, pending
            rng = random.Random(f"{runs.seed}:{n}:{w}")
            while left != 0:
                left -= 1
                await limiter.acquire()
                sent = trio.current_time()
                if sent >= stop:
                    return
                while True:
                    await trio.sleep(rng.uniform(0, runs.jitter * interval))
                    arrived = trio.current_time()
                    wait = server.acquire(KEY)
                    await trio.sleep(runs.latency * interval)
                    latency = trio.current_time() - sent
                    if wait is None:
                        traffic.accepted.append(arrived - origin)
                        limiter.succeeded(latency)
                        break
                    traffic.refused.append(arrived - origin)
                    retry_after = retry_after_seconds(wait)
                    limiter.pause(retry_after)
                    limiter.throttled()
                    await trio.sleep(retry_after)
                    await limiter.acquire()
                    sent = trio.current_time()
                pending -= 1
                if pending == 0:
                    traffic.finished = trio.current_time() - origin

        try:
            async with trio.open_nursery() as workers:
                for w in range(run.concurrency):
                    workers.start_soon(worker, w)
        finally:
            done.set()

    async with trio.open_nursery() as nursery:
        events = [trio.Event() for _ in runs.runs]
        for n, run in enumerate(runs.runs):
            nursery.start_soon(one_run, n, run, events[n])
        with trio.move_on_at(end + 10 * interval):
            for event in events:
                await event.wait()
        nursery.cancel_scope.cancel()
    return outcome


def simulate_runs(runs: Runs) -> Outcome:
    """Run ``runs`` in a fresh trio run on a MockClock that jumps at once (no real wait),
    trio's scheduling order seeded (see ``tests.pace_sim.run``)."""
    trio._core._run._r.seed(runs.seed)
    return trio.run(simulate, runs, clock=MockClock(autojump_threshold=0))
