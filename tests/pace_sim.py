"""A pacing simulation in trio's virtual time: reroute's limiter against a sandbox limiter.

N workers share one :class:`batch.send.limiter.Limiter`, as ``batch.run`` does. Each loops: take a
slot (``acquire``), travel to the server (a random arrival delay, seeded), meet the sandbox's
rate limiter of the chosen kind (``batch.sandbox.limits``, same clock), wait the server's
latency, then tell the limiter what ``batch.send.sender.Sender`` would: on a 429, ``pause`` for the
Retry-After and ``throttled``, and retry the same request after the Retry-After; else
``succeeded`` (with the answer's latency when ``pass_latency``).

Used by the tests (``tests/send/test_pace.py``) and the benchmark
(``tests/benchmarks/bench_pace.py``).
"""

from __future__ import annotations

import random
from bisect import bisect_left
from dataclasses import dataclass, field

import trio
from trio.testing import MockClock

from batch.sandbox.limits import RateLimitMode, rate_limiter, retry_after_seconds
from batch.send.limiter import Limiter
from batch.send.sharedlimiter import SharedLimiter
from batch.send.slots import MemorySlots
from batch.settings import Rate

KEY = "rg_test_sim"
SIXTY_PER_MINUTE = Rate(60, 60.0)
_MINUTE = 60.0
_SETTLED = 600.0  # a storm is followed once ten minutes in a row each admit 90% of the limit


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulated run. ``jitter`` and ``latency`` are shares of the limit's interval."""

    mode: RateLimitMode
    limit: Rate = SIXTY_PER_MINUTE  # the server's
    rate: Rate | None = None  # reroute's --rate; default: the limit
    jitter: float = 0.0  # arrival delay: uniform in [0, jitter * interval]
    latency: float = 0.2  # the server's answer time after arrival (constant)
    seconds: float = 3600.0  # simulated duration
    concurrency: int = 4
    seed: int = 1
    storm_at: float | None = None  # the server's limit halves at this time
    storm_restarts: bool = False  # ... by a restart that forgets its counts (else reconfigured)
    pass_latency: bool = True  # tell the limiter each answer's latency
    shared: bool = False  # the limiter of a run sharing its key (batch.send.sharedlimiter), alone


@dataclass(slots=True)
class Tally:
    """What happened: requests the server admitted and refused, and when."""

    seconds: float
    limit_per_second: float
    accepted: list[float] = field(default_factory=list)  # arrival times at the server
    refused: list[float] = field(default_factory=list)

    @property
    def share(self) -> float:
        """Admitted requests over what the limit allows in the run's time."""
        return len(self.accepted) / (self.limit_per_second * self.seconds)

    def share_between(self, start: float, end: float, per_second: float) -> float:
        admitted = sum(1 for at in self.accepted if start <= at < end)
        return admitted / (per_second * (end - start))

    @property
    def sent(self) -> int:
        return len(self.accepted) + len(self.refused)

    @property
    def refused_share(self) -> float:
        return len(self.refused) / max(1, self.sent)

    def storm(self, at: float, per_second: float) -> Storm:
        """How the run followed a limit that fell to ``per_second`` at ``at`` (:class:`Storm`)."""
        first = next((t for t in sorted(self.refused) if t >= at), None)
        if first is None:
            return Storm(at, None, None, 0)
        accepted = sorted(t for t in self.accepted if t >= first)
        refused = sorted(t for t in self.refused if t >= first)
        lowest = 0.90 * per_second * _MINUTE  # (no upper bound: no server admits more)

        def settled(t: float) -> bool:
            starts = (t + s for s in range(int(_SETTLED - _MINUTE) + 1))
            if any(
                bisect_left(accepted, s + _MINUTE) - bisect_left(accepted, s) < lowest
                for s in starts
            ):
                return False
            later = len(refused) - bisect_left(refused, t)
            return later <= 0.01 * (later + len(accepted) - bisect_left(accepted, t))

        t = first
        while t + _SETTLED <= self.seconds:
            if settled(t):
                end = t + _MINUTE  # the minute that shows it, its 429s counted
                return Storm(at, first, t, sum(1 for r in self.refused if at <= r < end))
            t += 1.0
        return Storm(at, first, None, sum(1 for r in self.refused if at <= r))


@dataclass(frozen=True, slots=True)
class Storm:
    """A limit that fell at ``at``. ``first_refused``: the server's first 429 from then on (a
    bucket server refuses only once its burst is spent: the client cannot know before).
    ``converged``: the first moment from which every minute of the next ten (sliding by a
    second) admits at least 90% of the new limit (no server admits much more) and from which at
    most 1% of requests are answered 429 (the issue's goal for a strict server: a probe above the
    limit now and then). None: not within the run. ``refused``: the 429s from ``at`` to a
    minute after ``converged`` (the minute that shows it)."""

    at: float
    first_refused: float | None
    converged: float | None
    refused: int

    @property
    def seconds(self) -> float | None:
        """From the first 429 to convergence."""
        if self.converged is None or self.first_refused is None:
            return None
        return max(0.0, self.converged - self.first_refused)


async def simulate(scenario: Scenario) -> Tally:
    """Run ``scenario`` under the current trio run (its clock must be a MockClock)."""
    limit = scenario.limit
    # The run starts at a random point of the server's windows, as a real one does.
    await trio.sleep(random.Random(scenario.seed).uniform(0, limit.period))
    start = trio.current_time()
    clock = trio.current_time
    server = rate_limiter(limit, clock, scenario.mode)
    rate = scenario.rate or limit
    limiter = (
        SharedLimiter(rate, MemorySlots(), clock=clock)
        if scenario.shared
        else Limiter(rate, clock=clock)
    )
    interval = limit.interval
    end = start + scenario.seconds
    tally = Tally(scenario.seconds, limit.per_second)

    async def storm() -> None:
        nonlocal server
        assert scenario.storm_at is not None
        await trio.sleep_until(start + scenario.storm_at)
        halved = Rate(limit.count / 2, limit.period)
        if scenario.storm_restarts:
            server = rate_limiter(halved, clock, scenario.mode)
        else:
            server.retune(halved)

    async def worker(n: int) -> None:
        rng = random.Random(f"{scenario.seed}:{n}")
        while True:
            await limiter.acquire()
            sent = trio.current_time()
            if sent >= end:
                return
            while True:
                await trio.sleep(rng.uniform(0, scenario.jitter * interval))
                arrived = trio.current_time()
                wait = server.acquire(KEY)
                await trio.sleep(scenario.latency * interval)
                latency = trio.current_time() - sent
                if wait is None:
                    if arrived < end:
                        tally.accepted.append(arrived - start)
                    if scenario.pass_latency:
                        limiter.succeeded(latency)
                    else:
                        limiter.succeeded()
                    break
                tally.refused.append(arrived - start)
                retry_after = retry_after_seconds(wait)
                limiter.pause(retry_after)
                limiter.throttled()
                await trio.sleep(retry_after)
                await limiter.acquire()
                sent = trio.current_time()

    async with trio.open_nursery() as nursery:
        if scenario.storm_at is not None:
            nursery.start_soon(storm)
        for n in range(scenario.concurrency):
            nursery.start_soon(worker, n)
        await trio.sleep_until(end + 10 * interval)
        nursery.cancel_scope.cancel()
    return tally


def run(scenario: Scenario) -> Tally:
    """Run ``scenario`` in a fresh trio run on a MockClock that jumps at once (no real wait).

    trio shuffles the tasks that are ready at the same moment with a random of its own (to
    shake out ordering bugs); seeded here, a simulated hour comes out the same every run, so
    the tests' thresholds are not a coin toss. (Private to trio; this is a test helper.)
    """
    trio._core._run._r.seed(scenario.seed)
    return trio.run(simulate, scenario, clock=MockClock(autojump_threshold=0))
