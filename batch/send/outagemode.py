"""The sender's outage mode: how a row waits out a host that is down (batch.send.outage).

A mixin of :class:`batch.send.sender.Sender`, apart so that each module reads in one sitting:
while the breaker says the host is down, a row's request waits for the host (or is the one
probe), spends no attempt, and is recorded as waiting for the host; a row whose last attempt
met a host failure waits for the breaker's verdict before it fails. What it needs of the
sender is declared below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from batch.errors import HostUnreachable, NotConnected
from batch.journal import audit
from batch.model import Call
from batch.send.answers import one_line
from batch.send.events import SendEvents
from batch.send.limiter import Limiter
from batch.send.outage import Breaker, HostNews, HostState, Turn, host_failure, report
from batch.send.retry import Answer, AttemptOutcome


class OutageMode:
    """The outage half of the sender (its state is the sender's, set in its ``__init__``)."""

    _breaker: Breaker | None
    _limiter: Limiter
    _events: SendEvents | None
    _ready: dict[int, tuple[float, str]]
    _clock: Callable[[], float]
    _held: bool
    _stopping: bool
    _first_waits: set[anyio.CancelScope]
    _waiting: set[anyio.CancelScope]
    _scrub: Callable[[str], str]

    async def _attempt(
        self, call: Call, n: int, granted: float | None = None
    ) -> AttemptOutcome:  # pragma: no cover (the sender's)
        raise NotImplementedError

    async def _between_attempts(
        self, wait: Callable[[], Awaitable[None]]
    ) -> bool:  # pragma: no cover (the sender's)
        raise NotImplementedError

    async def _try(
        self, call: Call, sent: int, *, resume: bool = False
    ) -> tuple[AttemptOutcome | None, int]:
        """One attempt that counts against --max-attempts, its slot taken, and the requests
        sent for the row so far: one request, or, while the host is down, as many as it takes
        to get an answer about the row (waiting for the host between them, a probe at a time).
        None: the row sent nothing and the host is gone (or a gentle stop came first).
        ``resume``: the row's last request met the host down already (reported)."""
        breaker = self._breaker
        if breaker is None:
            return await self._attempt(call, sent + 1), sent + 1
        if not resume and breaker.up:
            outcome = await self._attempt(call, sent + 1)
            if not report(breaker, outcome, probe=False):
                return outcome, sent + 1
            sent += 1
        while True:
            turn = Turn.GO
            if not breaker.up:
                if self._events is not None:
                    self._ready[call.row] = (self._clock(), audit.HOST_DOWN)
                turn = await self._wait_for_host(first=sent == 0)
                if turn is Turn.GONE:
                    return (self._gone() if sent else None), sent
                if not await self._between_attempts(self._limiter.acquire) or (
                    self._held and not sent
                ):
                    return (self._gone() if sent else None), sent
            sent += 1
            probe = turn is Turn.PROBE
            try:
                outcome = await self._attempt(call, sent)
            finally:
                if probe:
                    breaker.probe_abandoned()  # a no-op once the probe was reported
            if not report(breaker, outcome, probe=probe):
                return outcome, sent

    async def _unless_the_outage(
        self, call: Call, final: AttemptOutcome, sent: int
    ) -> tuple[AttemptOutcome, int]:
        """The row's attempts ran out on a host failure while the host still counted as up:
        the failure is the row's if the host answered another request since. If the host went
        down instead, the request met the outage: the row is sent again once the host is back
        (as the rows that met it later), its attempts counting every request. With no other
        row left to tell, a request that never reached the server (refused) is the host's
        business, not the row's: the row's next request tells; any other failure, which may be
        the row's own (a reset after the body went out), stands.
        Called with no await since that failure was reported (its ``answers`` stand)."""
        assert self._breaker is not None
        while host_failure(final):
            verdict = await self._verdict(self._breaker.answers)
            if verdict is False or (verdict is None and not isinstance(final, NotConnected)):
                break  # the row's own failure (or a stop): it keeps it
            if not await self._between_attempts(self._limiter.acquire):
                break
            if self._events is not None:
                self._events.retrying(call, sent, outcome_code(final))
            outcome, sent = await self._try(call, sent)
            final = outcome or self._gone()
        return final, sent

    async def _verdict(self, answers: int) -> bool | None:
        """``Breaker.verdict``, cut short by a stop (False: the row keeps its failure) or the
        host given up on (True: the row ends as the rows that waited for it)."""
        breaker = self._breaker
        assert breaker is not None
        verdict: list[bool | None] = [False]

        async def wait() -> None:
            verdict[0] = await breaker.verdict(answers)

        if not await self._between_attempts(wait):
            return not breaker.up
        return verdict[0]

    async def _wait_for_host(self, *, first: bool) -> Turn:
        """Wait until the host is back or this row's request is the probe. GONE: the host is
        gone, or the run is stopping (a gentle stop ends a row's wait for its first request,
        ``stop_retrying`` any wait)."""
        assert self._breaker is not None
        if (self._held and first) or self._stopping:
            return Turn.GONE
        turn = Turn.GONE
        with anyio.CancelScope() as waiting:
            scopes = self._first_waits if first else self._waiting
            scopes.add(waiting)
            try:
                turn = await self._breaker.admit()
            finally:
                scopes.discard(waiting)
        return Turn.GONE if waiting.cancel_called else turn

    def _host_news(self, news: HostNews) -> None:
        if self._events is not None:  # told first: the run's stop comes before the wake-ups
            self._events.host_news(news)
        if news.state is HostState.UP:
            self._limiter.throttled()  # back from an outage: start gently, as after a 429
        elif news.state is HostState.GONE:
            for scope in self._waiting:  # rows backing off end now, to be sent on resume
                scope.cancel()

    @property
    def _host_gone(self) -> bool:
        return self._breaker is not None and self._breaker.state is HostState.GONE

    def _gone(self) -> HostUnreachable:
        """The outcome of a row the run stopped sending because of the host (resent on resume)."""
        cause = self._breaker.cause if self._breaker is not None else ""
        return HostUnreachable(
            self._scrub(one_line(f"not sent again: the run stopped sending to the host ({cause})"
                                 "; running the same command again sends this row"))
        )  # fmt: skip


def outcome_code(outcome: AttemptOutcome) -> str:
    """The results file's error code of one attempt's outcome."""
    return outcome.error_code if isinstance(outcome, Answer) else outcome.code
