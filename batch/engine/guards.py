"""The guards around the row loop: the error budget, the canary, the change window, and the
stops a server or host calls for (a long pause asked by a 429, a host gone: ``batch.send.outage``).

Each one decides when the sending stops, and asks for it through the run's ``StopToken``; none
of them sends anything itself. The engine (``batch.engine.invocation``) puts them around the row
loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import islice

import anyio

from batch.engine import window as window_mod
from batch.engine.rowloop import RunReport
from batch.engine.stop import Observer, StopReason, StopToken
from batch.model import Call, Outcome, RowResult
from batch.send.outage import HostNews, HostState
from batch.settings import ErrorBudget, RunSettings

RunFn = Callable[[Iterable[Call]], Awaitable[RunReport]]


def canary_left(canary: int, decided: Mapping[Outcome, int]) -> int:
    """How many canary rows this invocation sends first, given what the journal has decided.

    A resumed run counts its earlier successes towards the canary; but once any row has
    failed, the canary starts again in full: a failed canary means "stop and look", and running
    the same command again must not send everything else unwatched.
    """
    if canary < 1:
        return 0
    if decided.get(Outcome.FAILED, 0):
        return canary
    return max(0, canary - decided.get(Outcome.SUCCEEDED, 0))


class BudgetWatch(Observer):
    """The error budget: asks for a soft stop (no new row; in-flight rows finish) once the
    failed rows exceed it. A share is measured over the last ``ErrorBudget.WINDOW`` finished
    rows of this invocation (all of them while fewer have finished); a count over all of them.
    ``budget=None`` only keeps the tally, for the summary's "error budget: off"."""

    def __init__(self, budget: ErrorBudget | None, stop: StopToken) -> None:
        self.budget = budget
        self._stop = stop
        self._recent: deque[bool] = deque(maxlen=ErrorBudget.WINDOW)
        self.failed = 0

    def row_finished(self, result: RowResult) -> None:
        failed = result.outcome is Outcome.FAILED
        self._recent.append(failed)
        self.failed += failed
        if failed and self.exceeded:
            self._stop.request(
                StopReason.ERROR_BUDGET,
                f"error budget exceeded: {self.used()}, over the budget of {self.budget}; no "
                "new row starts: look at the failures in the results file, then run the same "
                "command again to resume",
            )

    @property
    def share(self) -> float:
        """Percent of failed rows among the recent finished ones (0 when none finished)."""
        return 100.0 * sum(self._recent) / len(self._recent) if self._recent else 0.0

    @property
    def exceeded(self) -> bool:
        if self.budget is None:
            return False
        if self.budget.percent is not None:
            return self.share > self.budget.percent
        return self.budget.count is not None and self.failed > self.budget.count

    def used(self) -> str:
        """What the budget has used so far, in its own terms."""
        if self.budget is not None and self.budget.count is not None:
            return f"{self.failed} failed rows"
        return f"{self.share:.0f}% of the last {len(self._recent)} finished rows failed"

    def describe(self) -> str:
        """The summary's line: ``error budget: off`` / ``error budget: 5% of last 100: 2% used``."""
        if self.budget is None:
            return "error budget: off"
        if self.budget.percent is not None:
            return (
                f"error budget: {self.budget.percent:g}% of last {ErrorBudget.WINDOW}: "
                f"{self.share:.0f}% used"
            )
        return f"error budget: {self.budget.count} failed rows: {self.failed} used"

    def use(self) -> BudgetUse:
        """The budget and what it used, as values (the run's JSON document)."""
        budget = self.budget or ErrorBudget()
        return BudgetUse(budget.percent, budget.count, len(self._recent), self.failed,
                         round(self.share, 1), self.exceeded)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """The error budget at the end of an invocation: its limit (both None: off) and use."""

    percent: float | None  # a share of the last ErrorBudget.WINDOW finished rows
    rows: int | None  # a number of failed rows
    finished_rows: int  # the finished rows the share is measured over (at most WINDOW)
    failed_rows: int  # failed rows of this invocation
    failed_percent: float  # the share of failed among those finished rows
    exceeded: bool


async def with_canary(
    calls: Iterable[Call],
    run: RunFn,
    *,
    canary: int,
    stop: StopToken,
    proceed: Callable[[RunReport], Awaitable[bool]],
) -> RunReport:
    """The canary phase: send the first ``canary`` calls, then decide.

    If any of them did not succeed: stop (CANARY_FAILED), the rest not attempted. If all
    succeeded, ``proceed(report)`` decides (the CLI asks on a terminal, says yes elsewhere);
    a no stops (CANARY_DECLINED). Then the rest is sent by ``run`` as usual. ``canary`` is what
    is left of the canary (a resumed run counts the rows an earlier invocation decided): 0
    sends everything at once. Any other stop (window, budget, Ctrl-C) ends the canary as usual.
    """
    source = iter(calls)
    if canary < 1:
        return await run(source)
    first = await run(islice(source, canary))
    if first.stopped is not None:
        return first
    bad = first.started - first.outcomes.get(Outcome.SUCCEEDED, 0)
    if bad:
        stop.request(
            StopReason.CANARY_FAILED,
            f"canary: {bad} of the first {first.started} rows did not succeed, so the rest "
            "were not sent; look at them in the results file, fix the cause, then run the same "
            "command again to send the rest",
        )
        return replace(first, stopped=stop.first)
    if first.started and not await proceed(first):
        stop.request(
            StopReason.CANARY_DECLINED,
            f"canary: the first {first.started} rows succeeded and the rest were not sent (not "
            "confirmed); run the same command again to send the rest",
        )
        return replace(first, stopped=stop.first)
    return first.then(await run(source))


def window_closed_message(win: window_mod.Window) -> str:
    end = window_mod.format_moment(win.not_after) if win.not_after else "its end"
    then = (
        "run the same command in the next window to resume"
        if win.daily
        else "this one-off window has no next one: agree a new window and run the same command "
        "with it (--not-before/--not-after, or [window]) to resume"
    )
    closed = f"the change window closed at {end}: no new row starts and requests in flight finish"
    return f"{closed}; {then}"


async def within_window(
    win: window_mod.Window,
    body: Callable[[], Awaitable[RunReport]],
    *,
    stop: StopToken,
    now: Callable[[], datetime] = window_mod.utc_now,
    on_wait: Callable[[timedelta], None] | None = None,
    every: float = 60.0,
    sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
) -> RunReport:
    """Run ``body`` (the sending) inside the change window ``win``.

    Before the window opens: wait, calling ``on_wait(remaining)`` about every ``every`` s. A
    stop asked for while waiting (Ctrl-C) ends the wait, and ``body`` then sends nothing. At
    the close (or at once, when it has already closed) a soft stop WINDOW_CLOSED is asked for:
    no new row starts, in-flight rows finish. ``body`` always runs, so the caller always gets a
    report and writes the results.
    """
    with anyio.CancelScope() as waiting:
        unsubscribe = stop.subscribe(lambda _: waiting.cancel())
        try:
            if stop.requested:
                waiting.cancel()
            await window_mod.wait_for_open(win, now=now, sleep=sleep, on_wait=on_wait, every=every)
        finally:
            unsubscribe()
    if stop.requested:
        return await body()

    def closed() -> None:
        stop.request(StopReason.WINDOW_CLOSED, window_closed_message(win))

    async with window_mod.enforce(win, now=now, on_close=closed, sleep=sleep, every=every):
        return await body()


def paused_by_server(stop: StopToken, seconds: float, settings: RunSettings) -> None:
    """A 429 asked to wait longer than --max-retry-after: stop, saying when to come back."""
    until = window_mod.format_moment(window_mod.utc_now() + timedelta(seconds=seconds))
    stop.request(
        StopReason.PAUSED_BY_SERVER,
        f"the API asked to wait {seconds:g} s (until {until}), more than --max-retry-after "
        f"{settings.max_retry_after:g} s: no new row starts; run the same command again after "
        f"{until} (the rows it refused are sent again), or raise --max-retry-after",
    )


def throttled_out(stop: StopToken, seconds: float, limit_seconds: float) -> None:
    """Every answer a 429 for longer than ``limit_seconds`` (--max-outage): stop, the rows
    left to send."""
    limit = window_mod.format_duration(timedelta(seconds=limit_seconds))
    took = window_mod.format_duration(timedelta(seconds=round(seconds)))
    stop.request(
        StopReason.THROTTLED,
        f"the API answered only 429 (rate limited) for {took}, past --max-outage {limit}: no "
        "new row starts; the rows it refused are not_attempted (a 429 never fails a row). Run "
        "the same command again later, once other runs on this key are done (`reroute status` "
        "shows those on this machine), or raise --max-outage",
    )


def host_news(news: HostNews, stop: StopToken, observer: Observer, host: str) -> None:
    """The breaker's news: shown while the host is down or back; a stop when it is gone."""
    now = window_mod.utc_now()
    since = now - timedelta(seconds=news.now - news.since)
    if news.state is HostState.DOWN:
        observer.host_down(since, now + timedelta(seconds=news.next_probe - news.now), news.cause)
    elif news.state is HostState.UP:
        observer.host_back(news.now - news.since, news.probes)
    elif news.fatal:
        stop.request(
            StopReason.HOST_UNUSABLE,
            f"{host} cannot be reached, and retrying will not change that: {news.cause}. "
            "Nothing more was sent (rows not sent are not_attempted; a row that met this is "
            "sent again): fix it, then run the same command again",
        )
    else:
        limit = window_mod.format_duration(timedelta(seconds=news.limit))
        stop.request(
            StopReason.HOST_UNREACHABLE,
            f"{host} unreachable since {window_mod.format_moment(since)} ({news.cause}; "
            f"{news.probes} probes), longer than --max-outage {limit}: no new row starts; "
            "run the same command again once it answers (rows not sent are sent then)",
        )
