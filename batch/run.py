"""The orchestrator: send calls through one task group, record each outcome as it is known.

Stage ``run`` of the pipeline (style.md): calls in, row results out (to the journal, and through
``Observer`` hooks to whoever shows progress). Pacing and retries belong to the sender
(``batch.send``); this module decides *which* rows are sent, how many at once, and when the run
stops.

Back-pressure: ``--concurrency`` workers, each taking the next row from the input only when
it is free (aiometer's ``run_on_each`` spirit, without a task per row: this costs less per
row than a semaphore and a new task each time, and bounds the same way), so a million-row file
is a million loop iterations, never a million tasks or a million responses in memory.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import islice
from typing import Final

import anyio
import httpx

from batch import window as window_mod
from batch.journal import KEY_REJECTED_STATUSES, Journal
from batch.limiter import Limiter, loop_clock
from batch.model import Call, Outcome, RowResult
from batch.send import Sender, SendPolicy
from batch.settings import ErrorBudget, Rate

# A row's result, or None when nothing was sent because the run is stopping (not attempted).
SendFn = Callable[[Call], Awaitable[RowResult | None]]


class StopReason(StrEnum):
    """Why a run stopped early. Later stop conditions (change window, error budget, canary)
    add a member here and call :meth:`StopToken.request`; the orchestrator needs no change."""

    INTERRUPTED = "interrupted"
    KEY_REJECTED = "key_rejected"
    WINDOW_CLOSED = "window_closed"
    ERROR_BUDGET = "error_budget"
    CANARY_FAILED = "canary_failed"  # a canary row did not succeed
    CANARY_DECLINED = "canary_declined"  # the canary passed; the user chose not to go on


@dataclass(frozen=True, slots=True)
class StopRequest:
    """One request to stop: the first one decides the reason the user is told."""

    reason: str
    message: str  # one line for the user
    hard: bool = False  # cancel in-flight requests instead of letting them finish


class StopToken:
    """Asks a running :func:`execute` to stop: soft (start nothing new, let in-flight rows
    finish within the grace period) or hard (cancel in-flight rows; they become ``unknown``).

    Safe to call before the run starts (it then sends nothing) and from any task of the same
    event loop (a signal handler, a window watcher).
    """

    def __init__(self) -> None:
        self.first: StopRequest | None = None
        self.hard = False
        self._listeners: list[Callable[[StopRequest], None]] = []

    @property
    def requested(self) -> bool:
        return self.first is not None

    def request(self, reason: str, message: str, *, hard: bool = False) -> None:
        stop = StopRequest(reason, message, hard)
        if self.first is None:
            self.first = stop
        self.hard = self.hard or hard
        for listener in list(self._listeners):
            listener(stop)

    def subscribe(self, listener: Callable[[StopRequest], None]) -> Callable[[], None]:
        """Call ``listener`` on every request; returns the function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)


class Observer:
    """Hooks the run calls as rows move (progress display, logs). Every hook is a no-op here;
    override what you need. Hooks must be quick and must not raise."""

    def run_started(self, total: int, done: int) -> None:
        """``total`` rows to account for, ``done`` of them already decided (a resumed run)."""

    def attempt(self, call: Call, n: int) -> None:
        """Request ``n`` (1-based) for ``call`` starts."""

    def retrying(self, call: Call, n: int, code: str) -> None:
        """Attempt ``n`` failed with ``code``; the sender will try again."""

    def row_finished(self, result: RowResult) -> None:
        """A row's final result is known and recorded."""

    def row_cancelled(self, call: Call, record: RowResult | None) -> None:
        """A row was cancelled (hard stop); ``record`` is its ``unknown`` record, or None when
        no request was sent (the row stays ``not_attempted``)."""

    def stopping(self, stop: StopRequest) -> None:
        """The run was asked to stop."""


class Observers(Observer):
    """Several observers as one, called in order: the progress display, and later stop
    conditions that watch outcomes (an error budget, a canary) and call the StopToken."""

    def __init__(self, *observers: Observer) -> None:
        self._observers = observers
        # The per-request hooks call only the observers that override them (most leave
        # ``attempt`` alone): a no-op call per request per observer adds up. A hook only one
        # observer overrides is that observer's own, bound here (one call fewer per row).
        self._attempt = _overriding(observers, "attempt")
        self._row_finished = _overriding(observers, "row_finished")
        if len(self._attempt) == 1:
            self.attempt = self._attempt[0]  # type: ignore[method-assign]
        if len(self._row_finished) == 1:
            self.row_finished = self._row_finished[0]  # type: ignore[method-assign]

    def run_started(self, total: int, done: int) -> None:
        for o in self._observers:
            o.run_started(total, done)

    def attempt(self, call: Call, n: int) -> None:
        for hook in self._attempt:
            hook(call, n)

    def retrying(self, call: Call, n: int, code: str) -> None:
        for o in self._observers:
            o.retrying(call, n, code)

    def row_finished(self, result: RowResult) -> None:
        for hook in self._row_finished:
            hook(result)

    def row_cancelled(self, call: Call, record: RowResult | None) -> None:
        for o in self._observers:
            o.row_cancelled(call, record)

    def stopping(self, stop: StopRequest) -> None:
        for o in self._observers:
            o.stopping(stop)


def _overriding(observers: Iterable[Observer], hook: str) -> list[Callable[..., None]]:
    """The bound ``hook`` of each observer whose class overrides Observer's no-op."""
    return [
        getattr(o, hook) for o in observers if getattr(type(o), hook) is not getattr(Observer, hook)
    ]


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one invocation of :func:`execute` did (the whole picture is in the journal)."""

    started: int  # rows handed to the sender
    outcomes: dict[Outcome, int]  # outcomes of those rows (cancelled ones: unknown/not sent)
    stopped: StopRequest | None  # None: every call was sent and answered
    elapsed: float  # seconds


KEY_REJECTED_MESSAGE: Final = (
    "the API rejected the key (HTTP {status} {code}): every other row would fail the same way, "
    "so the run stopped; check VOCOBASE_API_KEY (or --api-key-file) and that the account is "
    "active and has credit, then run the same command again"
)


async def execute(
    calls: Iterable[Call],
    *,
    send: SendFn,
    journal: Journal,
    concurrency: int,
    stop: StopToken | None = None,
    observer: Observer | None = None,
    grace: float = 30.0,
    commits_before_waiting: bool = False,
) -> RunReport:
    """Send every call with at most ``concurrency`` in flight, journaling each result.

    Stops early when ``stop`` is requested: no new row starts; on a soft stop in-flight rows
    get ``grace`` seconds (the per-request timeout) to finish, then are cancelled. A 401 or
    403 answer stops the run at once (hard). Rows cancelled mid-request stay ``unknown`` in the
    journal; rows never started have no record (``not_attempted``), nor do rows for which
    ``send`` returned None (it held them back: a sender told of a soft stop sends no new row).

    ``commits_before_waiting``: ``send`` promises to call ``journal.commit()`` before it awaits
    anything ahead of its row's first in-flight mark (the Sender's ``before_wait``), so a final
    record may wait for the same worker's next mark and go out in the same write. A task never
    yields with a final record unwritten.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    stop = stop or StopToken()
    observer = observer or Observer()
    outcomes: Counter[Outcome] = Counter()
    started = 0
    begun = anyio.current_time()
    source = iter(calls)

    def abandoned(call: Call) -> None:
        record = journal.abandon(call)
        outcomes[record.outcome if record else Outcome.NOT_ATTEMPTED] += 1
        observer.row_cancelled(call, record)

    async def worker() -> None:
        # A row is taken from the input only when this worker is free for it: that is the
        # back-pressure (no task, no result is held for a row before its turn). The shared
        # iterator is advanced without awaiting, so two workers never run it at once.
        nonlocal started
        try:
            while not stop.requested:
                call = next(source, None)
                if call is None:
                    return
                journal.begin(call)
                started += 1
                try:
                    result = await send(call)
                except anyio.get_cancelled_exc_class():
                    # Journal writes are synchronous, so this one cannot itself be cancelled.
                    abandoned(call)
                    raise
                if result is None:  # held back by a soft stop before its first request
                    abandoned(call)
                    continue
                result = journal.finish(result, commit=not commits_before_waiting)
                outcomes[result.outcome] += 1
                observer.row_finished(result)
                if result.http_status in KEY_REJECTED_STATUSES:
                    stop.request(
                        StopReason.KEY_REJECTED,
                        KEY_REJECTED_MESSAGE.format(
                            status=result.http_status, code=result.error_code
                        ),
                        hard=True,
                    )
        finally:
            journal.commit()  # this worker's last final record, if it was left for later

    with ExitStack() as cleanup:
        async with anyio.create_task_group() as workers:

            def on_stop(request: StopRequest) -> None:
                observer.stopping(request)
                if request.hard:
                    workers.cancel_scope.cancel()
                else:
                    # In-flight rows may finish, but not forever: --timeout from now at most.
                    deadline = anyio.current_time() + grace
                    workers.cancel_scope.deadline = min(workers.cancel_scope.deadline, deadline)

            cleanup.callback(stop.subscribe(on_stop))
            if stop.first is not None:
                on_stop(stop.first)
            for _ in range(concurrency):
                workers.start_soon(worker)

    return RunReport(
        started=started,
        outcomes=dict(outcomes),
        stopped=stop.first,
        elapsed=anyio.current_time() - begun,
    )


async def run_calls(
    calls: Iterable[Call],
    *,
    client: httpx.AsyncClient,
    rate: Rate,
    policy: SendPolicy,
    concurrency: int,
    journal: Journal,
    observer: Observer | None = None,
    stop: StopToken | None = None,
) -> RunReport:
    """Send ``calls`` over ``client``: one limiter shared by every request, retries included,
    the journal told of each attempt before it is sent. A soft stop reaches the sender too: rows
    still waiting for their first slot send nothing. The per-request timeout is also the grace
    period in-flight requests (and their retries) get."""
    observer = observer or Observer()
    stop = stop or StopToken()
    on_attempt, on_retry = sender_hooks(journal, observer)
    clock = loop_clock()
    sender = Sender(
        client,
        Limiter(rate, clock=clock),
        policy,
        clock=clock,
        on_attempt=on_attempt,
        on_retry=on_retry,
        before_wait=journal.commit,
    )
    with ExitStack() as cleanup:
        cleanup.callback(stop.subscribe(lambda _: sender.hold_back()))
        if stop.requested:
            sender.hold_back()
        async with anyio.create_task_group() as watchdog:
            await watchdog.start(sender.watch_deadlines)  # one task for every deadline
            try:
                report = await execute(
                    calls,
                    send=sender.send,
                    journal=journal,
                    concurrency=concurrency,
                    stop=stop,
                    observer=observer,
                    grace=policy.timeout,
                    commits_before_waiting=True,
                )
            finally:
                watchdog.cancel_scope.cancel()
    return report


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


RunFn = Callable[[Iterable[Call]], Awaitable[RunReport]]


def combine(first: RunReport, second: RunReport) -> RunReport:
    """One report for two phases of the same invocation (the canary, then the rest)."""
    outcomes = Counter(first.outcomes)
    outcomes.update(second.outcomes)
    return RunReport(
        started=first.started + second.started,
        outcomes=dict(outcomes),
        stopped=second.stopped,
        elapsed=first.elapsed + second.elapsed,
    )


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
    return combine(first, await run(source))


def window_closed_message(win: window_mod.Window) -> str:
    end = window_mod.format_moment(win.not_after) if win.not_after else "its end"
    return (
        f"the change window closed at {end}: no new row starts and requests in flight finish; "
        "run the same command in the next window to resume"
    )


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


def pending(calls: Iterable[Call], journal: Journal) -> Iterator[Call]:
    """The calls a (resumed) run still has to send: not decided in the journal."""
    if not journal.resumed:
        return iter(calls)  # a new journal decides nothing: no lookup, no layer per row
    return (call for call in calls if not journal.is_final(call.row))


def sender_hooks(
    journal: Journal, observer: Observer
) -> tuple[Callable[[Call, int], None], Callable[[Call, int, str], None]]:
    """``on_attempt`` and ``on_retry`` for the sender: journal first (durability), then show."""

    def on_retry(call: Call, n: int, code: str) -> None:
        observer.retrying(call, n, code)

    if type(observer).attempt is Observer.attempt:  # nothing to show: the journal alone
        return journal.attempt, on_retry

    def on_attempt(call: Call, n: int) -> None:
        journal.attempt(call, n)
        observer.attempt(call, n)

    return on_attempt, on_retry


def merge_results(
    base: Iterable[RowResult], journal: Journal, *, carry_attempts: bool = False
) -> Iterator[RowResult]:
    """One result per row of ``base`` (every input row, in order): the journal's record when
    there is one, else ``base``'s row unchanged (``invalid`` or ``not_attempted``, or for a
    retry the row as the earlier results file had it). Streams: both sides are read in row order.
    ``carry_attempts`` (retry): add the base row's attempts, so ``attempts`` keeps counting
    every request ever sent for the row.
    """
    # A merge join: both sides are in row order, so one pass over each, nothing held.
    records = journal.results()
    record = next(records, None)
    for row in base:
        while record is not None and record.row < row.row:
            record = next(records, None)  # a journal row the base does not have: ignore
        if record is None or record.row != row.row or row.outcome is Outcome.INVALID:
            yield row
            continue
        # routing_id as the user wrote it (the journal has the parsed integer).
        attempts = record.attempts + (row.attempts if carry_attempts else 0)
        yield replace(record, routing_id=row.routing_id, attempts=attempts)


@dataclass
class Summary:
    """Counts per outcome and the top error codes, tallied while the results are written."""

    counts: Counter[Outcome] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    examples: dict[str, RowResult] = field(default_factory=dict)

    def tally(self, results: Iterable[RowResult]) -> Iterator[RowResult]:
        """Pass ``results`` through unchanged, counting them."""
        for result in results:
            self.counts[result.outcome] += 1
            if result.outcome is not Outcome.SUCCEEDED and result.error_code:
                for code in result.error_code.split(";"):
                    self.codes[code] += 1
                    self.examples.setdefault(code, result)
            yield result

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def all_succeeded(self) -> bool:
        return self.counts[Outcome.SUCCEEDED] == self.total

    @property
    def retryable(self) -> int:
        return sum(self.counts[o] for o in (Outcome.FAILED, Outcome.UNKNOWN, Outcome.NOT_ATTEMPTED))

    def top_codes(self, n: int = 5) -> list[tuple[str, int, RowResult]]:
        return [(code, k, self.examples[code]) for code, k in self.codes.most_common(n)]


__all__ = [
    "KEY_REJECTED_MESSAGE",
    "BudgetWatch",
    "Observer",
    "Observers",
    "RunFn",
    "RunReport",
    "SendFn",
    "StopReason",
    "StopRequest",
    "StopToken",
    "Summary",
    "combine",
    "execute",
    "merge_results",
    "pending",
    "run_calls",
    "sender_hooks",
    "window_closed_message",
    "with_canary",
    "within_window",
]
