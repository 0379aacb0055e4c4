"""Outage mode: whether the host answers at all, shared by every row of a run (a circuit breaker).

A refused connection, a reset, a timeout, a DNS failure or a 502/503/504 says something about the
host, not about the row that happened to be in flight. After ``threshold`` of them in a row
(across requests, with no other answer between), the host is *down*: no row starts, the rows in
flight wait without spending their attempts, and one request at a time probes at a growing,
capped, jittered interval. Any other answer means the host is *up* again. As resilience4j's and
Polly's circuit breakers (closed, open, half-open), but the unit of work is a row whose outcome
must stay truthful: a row that waited out an outage is sent again, not failed. So is a row whose
last attempt was one of the failures that showed the host down: ``answers`` and ``news`` let it
wait for the verdict (batch.send.sender), since the failure was the host's, not the row's.

```
up   --threshold host failures in a row-->  down  --probe due: one request goes-->  probing
down <--the probe fails (next one later)--  probing  --the probe gets an answer-->  up
down/probing  --past max_outage since it went down-->  gone (the run stops: exit 3, resumable)
any  --a host that can never answer (name, certificate, refused before any answer)-->  gone
```

Pure of HTTP: the sender says what each request met; time and randomness are injected, so
tests run it in trio's virtual time.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final

import anyio

from batch.errors import (
    CertificateRejected,
    ConnectionFailed,
    NameNotResolved,
    NotConnected,
    ProxyAuthRequired,
    RequestTimeout,
    TransportError,
)
from batch.send.retry import Answer

if TYPE_CHECKING:
    from batch.settings import RunSettings


class HostState(StrEnum):
    UP = "up"  # closed: requests go as the limiter allows
    DOWN = "down"  # open (half-open while the one probe is out)
    GONE = "gone"  # the run gave up on the host: nothing more is sent


class Turn(StrEnum):
    """What ``Breaker.admit`` grants."""

    GO = "go"  # the host is up: send
    PROBE = "probe"  # the host is down and this request is the probe: send, then report it
    GONE = "gone"  # the run gave up on the host: send nothing


@dataclass(frozen=True, slots=True)
class HostNews:
    """A change of the host's state, for listeners (the sender, the engine, the progress)."""

    state: HostState
    since: float  # breaker clock: when the host went down (up: when it had gone down)
    now: float  # breaker clock, at this news
    next_probe: float  # breaker clock; math.inf when none is planned
    cause: str  # the last failure, one line ("" when up)
    probes: int  # probes sent during this outage
    fatal: bool = False  # gone because the host can never answer (not an outage that lasted)
    limit: float = math.inf  # seconds the host may stay down before the run gives up on it


def outage_limit(settings: RunSettings) -> float:
    """Seconds the API may take none of the run's requests (the host gone, or every answer a
    429) before the run stops, resumable: --max-outage, read here alone."""
    return settings.max_outage


class Breaker:
    """The host's state for one run. ``admit`` before each request; then ``answered`` or
    ``failed`` (or ``unusable``) with what the request met; ``probe_abandoned`` when a probe
    ends without either (cancelled)."""

    def __init__(
        self,
        *,
        max_outage: float,
        threshold: int = 3,
        first_probe: float = 1.0,
        max_probe: float = 30.0,
        jitter: float = 0.5,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        """``max_outage``: seconds the host may stay down before the run gives up on it
        (--max-outage). ``threshold``: host failures in a row that mean it is down. Probes
        come ``first_probe`` s after it went down, then twice as far apart each time, at most
        ``max_probe``, each with up to ``jitter`` of it taken off at random."""
        if threshold < 1 or not (max_outage > 0 and first_probe > 0 and max_probe > 0):
            raise ValueError("threshold, max_outage and the probe intervals must be positive")
        self.max_outage = max_outage
        self._threshold = threshold
        self._first_probe = first_probe
        self._max_probe = max_probe
        self._jitter = jitter
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self.state = HostState.UP
        self.answered_once = False  # some request of this run got an answer
        self.answers = 0  # requests answered so far: one answered since a failure says "up"
        self._rows = 0  # rows being sent: those whose requests may tell the host's state
        self._doubting = 0  # rows waiting for the verdict on their last request (verdict)
        self.cause = ""
        self._failures = 0  # host failures in a row while up
        self._since = 0.0
        self._deadline = math.inf
        self._interval = first_probe
        self._next_probe = math.inf
        self._probes = 0
        self._probing = False  # half-open: the probe is out
        self._timer = False  # a waiter sleeps until the next probe (the others wait for news)
        self._changed: anyio.Event | None = None
        self._listeners: list[Callable[[HostNews], None]] = []

    @classmethod
    def of(cls, settings: RunSettings) -> Breaker:
        """The breaker a run's settings ask for (--max-outage)."""
        return cls(max_outage=outage_limit(settings))

    def subscribe(self, listener: Callable[[HostNews], None]) -> None:
        """Call ``listener`` on every change (down, each failed probe, up, gone)."""
        self._listeners.append(listener)

    @property
    def up(self) -> bool:
        return self.state is HostState.UP

    # -- what requests met ---------------------------------------------------------------------

    def answered(self) -> None:
        """A request got an answer about its row (anything but 502/503/504): the host is up."""
        self.answered_once = True
        self.answers += 1
        self._failures = 0
        self._wake()  # a row waiting for the verdict on its failure (news)
        if self.state is HostState.DOWN:
            self.state = HostState.UP
            self._probing = False
            self.cause = ""
            self._tell(math.inf)
            self._wake()

    def failed(self, cause: str, *, probe: bool = False) -> bool:
        """A request met a host failure (``cause``, one line). True when the host is down (or
        gone) after it: the request does not count against its row's attempts."""
        if self.state is HostState.GONE:
            return True
        self.cause = cause
        if self.state is HostState.UP:
            self._failures += 1
            if self._failures < self._threshold:
                self._wake()  # a row waiting for the verdict on its failure (news)
                return False
            self._go_down()
            return True
        if probe:  # the probe failed: the next one later, unless the outage lasted too long
            self._probing = False
            if self._clock() >= self._deadline:
                self._give_up(fatal=False)
            else:
                self._plan_probe(grow=True)
                self._wake()
        return True

    def unusable(self, cause: str) -> None:
        """A request met what no retry can fix (a name that does not resolve, a certificate
        that does not verify): the run gives up on the host at once."""
        if self.state is not HostState.GONE:
            self.cause = cause
            if self.state is HostState.UP:
                self._since = self._clock()
            self._give_up(fatal=True)

    def probe_abandoned(self) -> None:
        """The probe ended without a word (cancelled): another request may probe now."""
        if self._probing:
            self._probing = False
            self._wake()

    # -- waiting for a turn ----------------------------------------------------------------------

    async def admit(self) -> Turn:
        """Wait for this request's turn: at once while the host is up; while it is down, until
        it is back or this request is the probe; GONE once the run gave up on the host."""
        while True:
            if self.state is HostState.UP:
                return Turn.GO
            if self.state is HostState.GONE:
                return Turn.GONE
            if self._probing or self._timer:
                await self._news()
                continue
            now = self._clock()
            if now >= self._deadline:
                self._give_up(fatal=False)
                continue
            if now >= self._next_probe:
                self._probing = True
                self._probes += 1
                return Turn.PROBE
            self._timer = True
            try:
                await self._sleep(min(self._next_probe, self._deadline) - now)
            finally:
                self._timer = False
                self._wake()  # cancelled or not, another waiter may take the timer now

    def row_started(self) -> None:
        """A row is being sent: its requests may tell waiting rows the verdict."""
        self._rows += 1

    def row_ended(self) -> None:
        self._rows -= 1
        if self._doubting:  # one row fewer that may tell them
            self._wake()

    async def verdict(self, answers: int) -> bool | None:
        """For a row (counted by ``row_started``) whose last attempt met a host failure while
        the host was up, ``answers`` read right after it: wait until the run knows whether
        it was the host's. True: the host went down (or gone) since; False: a request was
        answered since (the failure was the row's own); None: every other row being sent is
        waiting for its verdict too, so none can tell (the row's next request will)."""
        self._doubting += 1
        try:
            while self.state is HostState.UP and self.answers == answers:
                if self._rows <= self._doubting:
                    return None
                await self._news()
        finally:
            self._doubting -= 1
        return self.state is not HostState.UP

    async def _news(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # -- transitions ---------------------------------------------------------------------------

    def _go_down(self) -> None:
        self.state = HostState.DOWN
        self._since = self._clock()
        self._deadline = self._since + self.max_outage
        self._probes = 0
        self._interval = self._first_probe
        self._plan_probe(grow=False)

    def _plan_probe(self, *, grow: bool) -> None:
        if grow:
            self._interval = min(self._max_probe, self._interval * 2)
        wait = self._interval * (1.0 - self._jitter * self._random())
        self._next_probe = self._clock() + wait
        self._tell(self._next_probe)

    def _give_up(self, *, fatal: bool) -> None:
        self.state = HostState.GONE
        self._probing = False
        self._tell(math.inf, fatal=fatal)
        self._wake()

    def _tell(self, next_probe: float, *, fatal: bool = False) -> None:
        news = HostNews(self.state, self._since, self._clock(), next_probe, self.cause,
                        self._probes, fatal, self.max_outage)  # fmt: skip
        for listener in list(self._listeners):
            listener(news)


# Answers that speak for the host rather than the row: a gateway with nothing behind it, an API
# saying it is unavailable.
HOST_DOWN_STATUSES: Final = frozenset({502, 503, 504})


def host_failure(outcome: Answer | TransportError) -> bool:
    """Whether ``outcome`` is what ``report`` counts as the host failing (while it answered
    before): a timeout, a refused or dropped connection, a 502/503/504."""
    if isinstance(outcome, Answer):
        return outcome.status in HOST_DOWN_STATUSES
    return isinstance(outcome, RequestTimeout | ConnectionFailed)


def report(breaker: Breaker, outcome: Answer | TransportError, *, probe: bool) -> bool:
    """Tell ``breaker`` what one request met. True when the host is down (or gone) after it:
    the request does not count against its row's --max-attempts.

    Can never answer, and the run stops at once: a proxy asking for credentials (407); a
    certificate that does not verify; a name
    that does not resolve or a connection that cannot be made before any request of the run
    got an answer (a typo in the base URL, a wrong port). Later, the same errors are an
    outage like a timeout or a reset: the host answered before, it may again.
    """
    if isinstance(outcome, Answer):
        if outcome.status in HOST_DOWN_STATUSES:
            return breaker.failed(f"HTTP {outcome.status} answers ({outcome.error_code})",
                                  probe=probe)  # fmt: skip
        breaker.answered()
        return False
    if isinstance(outcome, ProxyAuthRequired):  # waiting cannot bring the credentials
        breaker.unusable(str(outcome))
        return True
    if isinstance(outcome, CertificateRejected | NameNotResolved) and not (
        isinstance(outcome, NameNotResolved) and breaker.answered_once
    ):
        breaker.unusable(str(outcome))
        return True
    if isinstance(outcome, NotConnected) and not breaker.answered_once:
        breaker.unusable(
            f"{outcome}, and no request of this run has been answered: check the base URL's "
            "host and port, that the API is up there, and any proxy or firewall on the way"
        )
        return True
    if isinstance(outcome, RequestTimeout | ConnectionFailed):
        return breaker.failed(str(outcome), probe=probe)
    return False
