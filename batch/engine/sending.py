"""One invocation's sending: inside the change window, canary first, one sender for every pass.

```
Sending.run(calls)                  the plan's calls still to send, a tuple
  -> one event loop: the client, the signal watcher, one Sender (limiter, retries, breaker)
  -> within_window -> with_canary -> run_calls (the row loop), once per pass
<- a RunReport, the requests sent, the error budget's tally
```

What the sender tells goes to one sink, :class:`RunEvents`: every request is journaled before
anything shows it; a server's long pause and a host gone become stops. The stop token, the
error budget and the observers are the invocation's, made here and read by the engine after.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from batch.engine import runtrail, signals, window
from batch.engine.guards import (
    BudgetWatch,
    canary_left,
    host_news,
    paused_by_server,
    throttled_out,
    with_canary,
    within_window,
)
from batch.engine.rowloop import RunReport, run_calls
from batch.engine.stop import Observer, Observers, StopToken, watch_signals
from batch.errors import RerouteError, RunStopped
from batch.journal import audit
from batch.journal.journal import Journal
from batch.model import Call
from batch.send.client import SendPolicy, build_client
from batch.send.events import SendEvents
from batch.send.issuer import presented_issuer
from batch.send.limiter import Limiter
from batch.send.outage import Breaker, HostNews
from batch.send.sender import Sender
from batch.settings import RunSettings

if TYPE_CHECKING:
    from batch.engine.invocation import Invocation, Operator
    from batch.engine.target import Target


class RunEvents(SendEvents):
    """The run's sink for what its sender tells: the journal first (a request is recorded
    before anything shows it), then the observers; a long pause asked by a 429 and a host given
    up on ask the run to stop."""

    def __init__(
        self, journal: Journal, observer: Observer, stop: StopToken, settings: RunSettings,
        host: str,
    ) -> None:  # fmt: skip
        self._journal = journal
        self._observer = observer
        self._stop = stop
        self._settings = settings
        self._host = host

    def attempt(self, call: Call, n: int, *, waited_ms: int = 0, cause: str = "") -> None:
        self._journal.attempt(call, n, waited_ms=waited_ms, cause=cause)
        self._observer.attempt(call, n)

    def answered(
        self, call: Call, status: int | None, code: str, retry_after: float | None, *,
        final: bool = False,
    ) -> None:  # fmt: skip
        self._journal.answered(call, status, code, retry_after, final=final)

    def retrying(self, call: Call, n: int, code: str) -> None:
        self._observer.retrying(call, n, code)

    def long_pause(self, seconds: float) -> None:
        paused_by_server(self._stop, seconds, self._settings)

    def host_news(self, news: HostNews) -> None:
        host_news(news, self._stop, self._observer, self._host)
        runtrail.host_event(self._journal, news)


class _Requests(Observer):
    """Counts the requests this invocation sends."""

    def __init__(self) -> None:
        self.count = 0

    def attempt(self, call: Call, n: int) -> None:
        self.count += 1


class Sending:
    """The sending of one invocation (``run`` once): ``stop``, ``budget`` and ``requests`` say
    afterwards how it went."""

    def __init__(
        self, inv: Invocation, operator: Operator, target: Target, journal: Journal,
        limiter: Limiter,
    ) -> None:  # fmt: skip
        settings = inv.settings
        self._inv, self._operator, self._target = inv, operator, target
        self._journal, self._limiter = journal, limiter
        self._window = window.Window(settings.not_before, settings.not_after, settings.window_daily)
        self._waited = False  # the first wait for the window is journaled, not every one
        self.stop = StopToken()
        self.stop.subscribe(runtrail.on_stop(journal))
        self.budget = BudgetWatch(settings.error_budget, self.stop)
        self.requests = _Requests()
        self.observer = Observers(operator.observer, self.budget, self.requests)

    def run(self, calls: tuple[Call, ...]) -> RunReport:
        """Send ``calls`` (the invocation's plan, less what its journal decided)."""
        inv, operator = self._inv, self._operator
        now = window.utc_now()
        # Already closed: the stop message says so; a "would not fit" estimate would only confuse.
        if not window.is_closed(self._window, now) and (
            warning := window.fit_warning(self._window, now, len(calls), inv.settings.rate)
        ):
            operator.note(warning)
        if inv.batch.before_sending is not None:
            operator.note(inv.batch.before_sending())  # the rollback file, before any request
        if inv.settings.current is not None:  # the records as they were, for the report
            runtrail.keep_snapshot(inv.settings.results, inv.settings.current, operator.note)
        canary = canary_left(inv.settings.canary or 0, self._journal.counts())
        try:
            report = anyio.run(self._drive, calls, canary)
            if inv.signals:  # the sending is over: the results are written whatever is pressed
                signals.ignore_interrupts()
        except BaseExceptionGroup as group:
            # Our own errors (a journal that cannot be written) deserve one clear line.
            error = _first_reroute_error(group)
            if error is None:
                raise
            raise RunStopped(
                f"{error}; the run stopped: fix that, then run the same command again"
            ) from group
        return report

    async def _drive(self, calls: tuple[Call, ...], canary: int) -> RunReport:
        inv, settings, target = self._inv, self._inv.settings, self._target
        # The client is built outside the task group: a key it refuses (bad characters) is then
        # a plain UsageError (exit 2, nothing sent), not an error in an exception group.
        async with (
            build_client(target.base_url, target.key, timeout=settings.timeout,
                         concurrency=settings.concurrency, network=inv.network) as client,
            anyio.create_task_group() as tasks,
        ):  # fmt: skip
            if inv.signals:  # first: Ctrl-C while waiting for the window ends the wait
                await tasks.start(watch_signals, self.stop, settings.timeout)
            events = RunEvents(self._journal, self.observer, self.stop, settings, target.host)
            sender = Sender(
                client, self._limiter, SendPolicy.of(settings), events=events,
                breaker=Breaker.of(settings),
                via=inv.network.via(target.base_url), issuer=presented_issuer,
            )  # fmt: skip
            sender.throttle.subscribe(
                lambda seconds: throttled_out(self.stop, seconds, sender.throttle.max_seconds)
            )
            report = await within_window(
                self._window, partial(self._send, calls, canary, sender, tasks), stop=self.stop,
                every=self._operator.wait_every, on_wait=self._waiting,
            )  # fmt: skip
            tasks.cancel_scope.cancel()
        return report

    async def _send(
        self, calls: tuple[Call, ...], canary: int, sender: Sender, tasks: TaskGroup
    ) -> RunReport:
        """The window is open (or the run stops): the canary's ``canary`` rows, then the rest."""
        win, batch = self._window, self._inv.batch
        if win.is_set:
            self._journal.event(
                audit.WINDOW_OPEN, f"window {_moment(win.not_before)} to {_moment(win.not_after)}"
            )
        self.observer.run_started(batch.candidates, batch.candidates - len(calls))
        tasks.start_soon(_tick, self._operator)
        return await with_canary(
            calls, partial(self._pass, sender), canary=canary, stop=self.stop,
            proceed=self._proceed,
        )  # fmt: skip

    async def _pass(self, sender: Sender, part: Iterable[Call]) -> RunReport:
        """One pass of the row loop (the canary, or the rest), through the run's one sender."""
        return await run_calls(
            part, sender=sender, journal=self._journal, stop=self.stop,
            concurrency=self._inv.settings.concurrency, observer=self.observer,
            key_source=self._inv.record.key_source,
        )  # fmt: skip

    async def _proceed(self, first: RunReport) -> bool:
        """The canary's rows all succeeded: go on? (asked on a terminal, else yes)"""
        self._journal.event(audit.CANARY_PASSED, f"the first {first.started} rows succeeded")
        if not self._inv.ask:
            self._operator.note(
                f"canary: the first {first.started} rows succeeded; sending the rest"
            )
            return True
        return await _ask_cancellably(self._operator, first.started, self.stop)

    def _waiting(self, remaining: timedelta) -> None:
        """The window has not opened yet: told every time, journaled the first."""
        text = window.waiting_message(self._window, remaining)
        if not self._waited:
            self._journal.event(audit.WINDOW_WAIT, text)
            self._waited = True
        self._operator.waiting(text)


async def _ask_cancellably(operator: Operator, started: int, stop: StopToken) -> bool:
    """The canary question; a stop asked for while it waits (Ctrl-C) is a no."""
    answer = False
    with anyio.CancelScope() as asking:
        unsubscribe = stop.subscribe(lambda _: asking.cancel())
        try:
            if not stop.requested:
                answer = await operator.go_on(started)
        finally:
            unsubscribe()
    return answer and not stop.requested


async def _tick(operator: Operator) -> None:
    while True:
        await anyio.sleep(1.0)
        operator.tick()


def _moment(value: datetime | None) -> str:
    return "(open)" if value is None else value.isoformat()


def _first_reroute_error(group: BaseExceptionGroup[BaseException]) -> RerouteError | None:
    for exc in group.exceptions:
        if isinstance(exc, RerouteError):
            return exc
        if isinstance(exc, BaseExceptionGroup) and (found := _first_reroute_error(exc)):
            return found
    return None
