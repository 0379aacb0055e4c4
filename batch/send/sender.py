"""Send one call to the API, paced and retried, and say what became of it.

One request goes through ``batch.send.request`` (one deadline, the answer read by
``batch.send.answers``; httpx objects and exceptions stop there); what each answer asks of the pace
is ``batch.send.answerpace``'s; this module decides when to send and whether to try again, and hands
the row loop a ``RowResult``. With a ``Breaker`` (``batch.send.outage``), what the host as a whole
is doing decides too: while it is down, rows wait and spend no attempts. Whatever happens on the
way is told to one sink (``batch.send.events``): every request with how long it waited and why
(``batch.journal.audit``), its answer, each retry, a wait, a long pause, the host's news.
"""

from __future__ import annotations

import random as _random
from collections.abc import Awaitable, Callable
from datetime import datetime

import anyio
import httpx
import tenacity
from anyio.abc import TaskStatus

from batch.errors import (
    TransportError,
)
from batch.journal import audit
from batch.model import Call, RowResult
from batch.send.answerpace import AnswerPace
from batch.send.answers import (
    row_result,
    waits_too_long,
)
from batch.send.client import SendPolicy
from batch.send.events import SendEvents
from batch.send.limiter import Limiter
from batch.send.outage import Breaker, host_failure, report
from batch.send.outagemode import OutageMode, outcome_code
from batch.send.request import Requester
from batch.send.retry import (
    Answer,
    AttemptOutcome,
    build_retrying,
    default_now,
    is_throttled,
    is_transient,
)
from batch.send.throttle import Throttle


class Sender(OutageMode):
    """Sends calls one by one (call ``send`` from many tasks at once), paced by one Limiter.

    Every attempt first awaits ``limiter.acquire()``. A 429 pauses all sending for the
    server's Retry-After (or a backoff) and slows the pace; other transient failures back off
    exponentially with jitter. Retrying a timed-out update is safe: the update replaces the
    whole record with the body we send, so a second identical request changes nothing more
    (idempotent).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        limiter: Limiter,
        policy: SendPolicy,
        *,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] = anyio.current_time,
        now: Callable[[], datetime] = default_now,
        random: Callable[[], float] = _random.random,
        events: SendEvents | None = None,
        breaker: Breaker | None = None,
        via: str = "",
        issuer: Callable[[str, int], Awaitable[str | None]] | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        """``sleep``/``clock``/``now``/``random`` are injected so tests run in virtual time.

        ``events``: told what happens, in order (``batch.send.events``); None: nobody listens,
        and the sender keeps no account of the waits.
        ``breaker``: the host's state (outage mode); None: every request counts for its row.
        ``via``: how requests travel, for connection errors ("through the proxy http://...").
        ``issuer(host, port)``: the CA of what a host whose certificate did not verify presents
        (batch.send.issuer; an extra handshake, so only a real run passes it).
        ``throttle``: how long the run has been throttled (its 429s cost rows no attempt);
        default: one of its own, bounded by ``policy.max_throttled``.
        """
        self._client = client
        self._limiter = limiter
        self._policy = policy
        self._sleep = sleep
        self._clock = clock
        self._now = now
        self._events = events
        self._breaker = breaker
        self.throttle = throttle or Throttle(policy.max_throttled, clock=clock)
        self.throttle.subscribe(self._throttled_out)
        self._pace = AnswerPace(limiter, policy, random, self.throttle)
        self._heed = self._pace.heed
        self._requests = Requester(client, policy.timeout, now=now, via=via, issuer=issuer)
        self._scrub = self._requests.scrub
        # Per row in flight: since when (loop clock) it has been ready to send, and what it
        # waits for then (batch.journal.audit: pace, backoff, retry_after, host_down).
        self._ready: dict[int, tuple[float, str]] = {}
        if breaker is not None:
            breaker.subscribe(self._host_news)
        self._stopping = False
        self._waiting: set[anyio.CancelScope] = set()  # rows between attempts, to wake on stop
        self._held = False
        self._first_waits: set[anyio.CancelScope] = set()  # rows waiting for their first slot

    @property
    def policy(self) -> SendPolicy:
        return self._policy

    def hold_back(self) -> None:
        """The run is stopping gently: start nothing new.

        A row that has not sent its first request yet (waiting for its slot, or not started)
        sends nothing: ``send`` returns None for it (the row stays not attempted). Rows already
        sent go on, retries included, within the grace the orchestrator gives them (a row cut
        off there is ``unknown``, and the same command sends it again).
        Call it from the run's event loop (a stop token's listener, a signal watcher task).
        """
        self._held = True
        for scope in self._first_waits:
            scope.cancel()

    async def watch_deadlines(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Enforce every request's deadline from one task (batch.send.request); start it with
        ``task_group.start`` and cancel it when the run ends."""
        await self._requests.watch_deadlines(task_status=task_status)

    def stop_retrying(self) -> None:
        """Try nothing again: for a stop that must not wait for retries.

        Rows waiting for a retry (a backoff, a 429 pause) end now with the answer they have,
        as ``failed``, instead of sending again or being cancelled into ``unknown``; requests in
        flight finish and are not retried. Implies :meth:`hold_back`.
        Call it from the run's event loop (a stop token's listener, a signal watcher task).
        """
        self.hold_back()
        self._stopping = True
        for scope in self._waiting:
            scope.cancel()

    async def _between_attempts(self, wait: Callable[[], Awaitable[None]]) -> bool:
        """Await ``wait()`` between two attempts; False when ``stop_retrying`` cut it short."""
        if self._stopping:
            return False
        with anyio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                await wait()
            finally:
                self._waiting.discard(scope)
        return not scope.cancel_called

    async def _retry_sleep(self, seconds: float) -> None:
        # A stop cuts the sleep short; the attempt that follows then sees it and sends nothing.
        await self._between_attempts(lambda: self._sleep(seconds))

    async def send(self, call: Call) -> RowResult | None:
        """Send ``call`` until it succeeds, fails for good, or runs out of attempts.

        Never raises for the row's own problem: every answer and transport error becomes the
        row's result. None: nothing was sent, because ``hold_back`` came first (the row stays
        not attempted). Cancellation propagates (the row loop records the row as unknown).
        """
        breaker = self._breaker
        if breaker is None:
            return await self._send(call)
        breaker.row_started()  # a row that may tell others whether the host is down
        try:
            return await self._send(call)
        finally:
            breaker.row_ended()

    async def _send(self, call: Call) -> RowResult | None:
        if not await self._first_slot(call.row):
            return None
        started_at = self._now()
        started_clock = self._clock()
        breaker = self._breaker
        first: AttemptOutcome | None
        if breaker is None or breaker.up:  # the common case, without _try's layer
            first, attempts = await self._attempt(call, 1, started_clock), 1
            if breaker is not None and report(breaker, first, probe=False):
                first, attempts = await self._try(call, 1, resume=True)
        else:
            first, attempts = await self._try(call, 0)
        if first is None:
            return None  # the run gave up on the host before this row's first request
        final = first
        if (self._policy.max_attempts > 1 or is_throttled(final)) and self._should_retry(final):
            final, attempts = await self._retry(call, final, attempts)
        if breaker is not None and host_failure(final) and not self._stopping:
            final, attempts = await self._unless_the_outage(call, final, attempts)
        finished_at = self._now()
        duration_ms = round((self._clock() - started_clock) * 1000)
        if self._ready:  # what the row waited for (a row cancelled leaves one: the run ends)
            self._ready.pop(call.row, None)
        if self._events is not None and isinstance(final, Answer) and self._waits_too_long(final):
            self._events.long_pause(final.retry_after or 0.0)
        return row_result(
            call, final, attempts, started_at, finished_at, duration_ms,
            policy=self._policy, stopping=self._stopping, scrub=self._scrub,
        )  # fmt: skip

    async def _first_slot(self, row: int) -> bool:
        """Wait for the row's first slot: at once when it is due (no await, no cancel scope:
        the common case of a fast run costs nothing here), else a wait a gentle stop can cut
        short. False: the run is stopping, send nothing."""
        if self._held:
            return False
        if self._breaker is not None and not self._breaker.up:
            return True  # the host is down: the row waits for it in _try, then for a slot
        if self._limiter.try_acquire():
            return True  # no wait (and no clock to read for the trail)
        if self._events is not None:
            self._ready[row] = (self._clock(), audit.PACE)
        with anyio.CancelScope() as waiting:
            self._first_waits.add(waiting)
            try:
                await self._limiter.acquire()
            finally:
                self._first_waits.discard(waiting)
        return not waiting.cancel_called

    async def _retry(
        self, call: Call, first: AttemptOutcome, sent: int
    ) -> tuple[AttemptOutcome, int]:
        """The tenacity loop for a row whose first attempt needs another: the final outcome and
        the attempts made.

        Speed unit: only rows that need a retry pay for tenacity's loop (~38 us a row, about a
        tenth of a fast request; docs/dev/benchmarks.md). It replays the first outcome as its
        attempt 1, so attempt numbers, waits and events are exactly those of a loop from the
        start.
        """
        attempts = sent  # requests sent (a request while the host was down counts only here)
        last = first
        replay: list[AttemptOutcome] = [first]

        async def attempt() -> AttemptOutcome:
            nonlocal attempts, last
            if replay:
                return replay.pop()
            if self.throttle.gone and is_throttled(last):
                return last  # the run gave up on the throttle: the row stays to send
            # A retry waits for its own slot, unless the run is stopping: no retry then, the
            # row keeps the answer it has.
            if not await self._between_attempts(self._limiter.acquire):
                return self._gone() if self._host_gone else last
            outcome, attempts = await self._try(call, attempts)
            last = outcome or self._gone()
            return last

        # Not tenacity's wait_exception (our outcomes are values, not exceptions: a bad row is
        # a value) nor wait_exponential_jitter (its random is global; ours is injected).
        def wait(state: tenacity.RetryCallState) -> float:
            assert state.outcome is not None
            outcome: AttemptOutcome = state.outcome.result()
            if isinstance(outcome, Answer) and outcome.wait is not None:
                return outcome.wait  # the same wait the limiter's pause got, drawn once
            return self._pace.backoff(state.attempt_number)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if self._events is not None and state.outcome is not None:
                outcome: AttemptOutcome = state.outcome.result()
                self._events.retrying(call, state.attempt_number, outcome_code(outcome))

        retrying = build_retrying(
            max_attempts=self._policy.max_attempts,
            should_retry=self._should_retry,
            wait=wait,
            sleep=self._retry_sleep,
            before_sleep=before_sleep,
        )
        final: AttemptOutcome = await retrying(attempt)
        return final, attempts

    # -- one attempt -------------------------------------------------------------------------

    async def _attempt(self, call: Call, n: int, granted: float | None = None) -> AttemptOutcome:
        """Attempt ``n`` of ``call``, its slot already taken (``granted``: when, on the loop's
        clock, if the caller just read it): the answer, or the transport error, with what it
        means for the pace applied."""
        if granted is None:
            granted = self._clock()  # latency is measured from the slot
        events = self._events
        if events is not None:
            self._sent(events, call, n, granted)
        try:
            answer = await self._requests.post(call, granted)
        except TransportError as exc:
            if events is not None:
                events.answered(call, None, exc.code, None)
                self._ready[call.row] = (self._clock(), audit.BACKOFF)
            return exc
        answered = self._clock()
        answer = self._heed(answer, n, answered - granted)
        if events is not None:
            success = answer.success
            events.answered(call, answer.status, answer.error_code, answer.retry_after,
                            final=success)  # fmt: skip
            if not success:  # another attempt may follow: it waits from now
                cause = audit.BACKOFF if answer.wait is None else audit.RETRY_AFTER
                self._ready[call.row] = (answered, cause)
        return answer

    def _sent(self, events: SendEvents, call: Call, n: int, granted: float) -> None:
        """Tell attempt ``n`` going out: how long the row waited for it, and why."""
        ready, cause = self._ready.get(call.row, (granted, ""))
        waited = granted - ready
        if waited < 0.0005:
            waited, cause = 0.0, ""
        elif cause == audit.PACE and self._limiter.paused_until > ready:
            cause = audit.PAUSE  # a 429 paused every request while it waited
        events.attempt(call, n, waited_ms=round(waited * 1000), cause=cause)

    # -- pacing and retry decisions ------------------------------------------------------------

    def _should_retry(self, outcome: AttemptOutcome) -> bool:
        if self._stopping:
            return False
        if isinstance(outcome, Answer) and (
            self._waits_too_long(outcome) or (self.throttle.gone and outcome.status == 429)
        ):
            return False
        return is_transient(outcome)

    def _throttled_out(self, seconds: float) -> None:
        """The run gave up on the throttle: no row starts, and rows waiting to send again
        after a 429 end now (``not_attempted``, sent by the next run)."""
        self.hold_back()
        for scope in self._waiting:
            scope.cancel()

    def _waits_too_long(self, answer: Answer) -> bool:
        return waits_too_long(answer, self._policy)
