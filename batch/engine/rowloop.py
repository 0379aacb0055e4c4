"""The row loop: send calls through one task group, record each outcome as it is known.

Calls in, row results out (to the journal, and through ``Observer`` hooks to whoever shows
progress). Pacing and retries belong to the sender (``batch.send.sender``); this module decides
*which* rows are sent, how many at once, and when the loop stops.

Back-pressure: ``concurrency`` workers, each taking the next row from the input only when it is
free (aiometer's ``run_on_each`` spirit, without a task per row), so a million-row file is a
million loop iterations, never a million tasks or a million responses in memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Final

import anyio

from batch.engine.stop import Observer, StopReason, StopRequest, StopToken
from batch.journal.journal import Journal
from batch.model import Call, Outcome, RowResult
from batch.send.retry import STOP_RUN_STATUSES
from batch.send.sender import Sender
from batch.settings import DEFAULT_API_KEY_ENV

# A row's result, or None when nothing was sent because the run is stopping (not attempted).
SendFn = Callable[[Call], Awaitable[RowResult | None]]

KEY_REJECTED_MESSAGE: Final = (
    "the API rejected the key (HTTP {status} {code}): every other row would fail the same way, "
    "so the run stopped; check the key in {source} and that the account is active and has "
    "credit, then run the same command again"
)


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one pass of the row loop did (the whole picture is in the journal)."""

    started: int  # rows handed to the sender
    outcomes: dict[Outcome, int]  # outcomes of those rows (cancelled ones: unknown/not sent)
    stopped: StopRequest | None  # None: every call was sent and answered
    elapsed: float  # seconds

    def then(self, later: RunReport) -> RunReport:
        """One report for two passes of the same invocation (the canary, then the rest)."""
        outcomes = Counter(self.outcomes)
        outcomes.update(later.outcomes)
        return RunReport(
            self.started + later.started,
            dict(outcomes),
            later.stopped,
            self.elapsed + later.elapsed,
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
    key_source: str = DEFAULT_API_KEY_ENV,
) -> RunReport:
    """Send every call with at most ``concurrency`` in flight, journaling each result.

    Stops early when ``stop`` is requested: no new row starts; on a soft stop in-flight rows
    get ``grace`` seconds (the per-request timeout) to finish, then are cancelled. A 401 or
    403 answer stops the run at once (hard). Rows cancelled mid-request stay ``unknown`` in the
    journal; rows never started have no record (``not_attempted``), nor do rows for which
    ``send`` returned None (it held them back: a sender told of a soft stop sends no new row).
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
        # back-pressure. The shared iterator is advanced without awaiting, so two workers
        # never run it at once.
        nonlocal started
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
            result = journal.finish(result)
            outcomes[result.outcome] += 1
            observer.row_finished(result)
            if result.http_status in STOP_RUN_STATUSES:
                message = KEY_REJECTED_MESSAGE.format(
                    status=result.http_status, code=result.error_code, source=key_source
                )
                stop.request(StopReason.KEY_REJECTED, message, hard=True)

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

    return RunReport(started, dict(outcomes), stop.first, anyio.current_time() - begun)


async def run_calls(
    calls: Iterable[Call],
    *,
    sender: Sender,
    journal: Journal,
    concurrency: int,
    observer: Observer | None = None,
    stop: StopToken | None = None,
    key_source: str = DEFAULT_API_KEY_ENV,
) -> RunReport:
    """Send ``calls`` through ``sender`` (one per run: its limiter is shared by every request
    of every pass, retries included). A soft stop reaches the sender too: rows still waiting
    for their first slot send nothing. The per-request timeout is also the grace period
    in-flight requests (and their retries) get."""
    stop = stop or StopToken()
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
                    grace=sender.policy.timeout,
                    key_source=key_source,
                )
            finally:
                watchdog.cancel_scope.cancel()
    return report


def pending(calls: tuple[Call, ...], journal: Journal) -> tuple[Call, ...]:
    """The calls a (resumed) run still has to send: not decided in the journal."""
    if not journal.resumed:
        return calls  # a new journal decides nothing: no lookup per row
    return tuple(call for call in calls if not journal.is_final(call.row))
