"""The run engine: one invocation of `run` or `retry`, from a prepared batch to what happened.

```
Invocation (batch + settings + key + record)
  -> lock, identity + journal (resume), remembered settings, confirmation, --fresh
  -> window, canary, error budget, stop policy (signals, key rejected, long server pause,
     a host down past --max-outage or that can never answer: batch.send.outage)
       -> row loop (batch.engine.rowloop) -> one sender (limiter, retries, breaker, client) per run
  -> merge by row number (batch.engine.merge), write the results file, tally
<- Result: a Status, the summary's values, why it stopped
```

The command line builds the :class:`Invocation` (flags, environment, key) and shows the
:class:`Result`; it answers questions through the :class:`Operator` it passes in. Control goes
down and values come back up. Promises kept on every path: a decided row is never sent again
and never turns into anything else; attempts accumulate; nothing is destroyed before the
operator said yes (``--fresh`` discards the journal only after the confirmation); a failed
final write keeps the journal and says so (``Status.RESULTS_NOT_WRITTEN``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio

from batch.engine import runjournal, runtrail, signals, window
from batch.engine.accountcheck import check_account
from batch.engine.ending import Result, Status, finish, stopped_before_sending
from batch.engine.guards import (
    BudgetWatch,
    canary_left,
    host_news,
    paused_by_server,
    throttled_out,
    with_canary,
    within_window,
)
from batch.engine.merge import Summary
from batch.engine.rowloop import RunReport, run_calls
from batch.engine.stop import Observer, Observers, StopRequest, StopToken, watch_signals
from batch.engine.target import SANDBOX_IDENTITY, Target, check_results_path
from batch.engine.target import target as target_of
from batch.errors import RerouteError, RunStopped
from batch.journal import audit
from batch.journal import journal as journal_mod
from batch.journal.journal import Journal
from batch.journal.lock import RunLock
from batch.journal.record import RunIdentity, RunRecord
from batch.model import Call
from batch.prepare.batch import Batch
from batch.send import keyshare
from batch.send.client import Network, SendPolicy, build_client
from batch.send.issuer import presented_issuer
from batch.send.limiter import Limiter
from batch.send.outage import Breaker
from batch.send.sender import Sender
from batch.send.sharedlimiter import SharedLimiter
from batch.settings import Rate, RunSettings

if TYPE_CHECKING:
    from batch.send.account import Account


class Operator(Protocol):
    """The person (or script) behind the invocation: the engine tells and asks through this."""

    observer: Observer  # progress: sees every row move
    wait_every: float  # seconds between two ``waiting`` calls before the window opens

    def note(self, text: str) -> None:
        """One line worth telling (resuming, taking over a lock, a window that will not fit)."""

    def confirm(
        self, rows: int, host: str, rate: Rate, concurrency: int, *, applied: int = 0
    ) -> bool:
        """Ask before sending ``rows`` to a real host (only when the invocation may ask);
        ``applied`` rows are left out, already applied by an earlier run."""

    async def go_on(self, succeeded: int) -> bool:
        """The canary's ``succeeded`` rows all succeeded: send the rest? (cancellable)"""

    def waiting(self, text: str) -> None:
        """The change window has not opened yet: ``text`` says when it does."""

    def tick(self) -> None:
        """About once a second while rows are sent."""


@dataclass(frozen=True)
class Invocation:
    """Everything one invocation needs, as values."""

    batch: Batch
    settings: RunSettings
    record: RunRecord  # what the journal remembers of this invocation (never the key)
    key: str | None = None  # None: no Authorization header (the embedded sandbox)
    sandbox: bool = False
    fresh: bool = False
    recheck_account: bool = False  # read the account's lists again, not those kept for the run
    abandon_previous: bool = False  # a changed input may start while the previous run is unfinished
    ask: bool = False  # questions may be asked (a terminal, and no --yes)
    signals: bool = True  # Ctrl-C and SIGTERM stop the run (off where no main thread)
    network: Network = field(default_factory=Network)  # proxies, extra CAs: from the CLI
    # Where runs on this machine share their key's pace (batch.send.keyshare); None: not shared.
    pace_dir: Path | None = None


class _Requests(Observer):
    def __init__(self) -> None:
        self.count = 0

    def attempt(self, call: Call, n: int) -> None:
        self.count += 1


def run_invocation(inv: Invocation, operator: Operator) -> Result:
    """Run ``inv`` to its end: every row of the batch accounted for in the results file.

    A refused or declined invocation leaves no run behind: a journal that does not exist yet
    is created only once the run goes on (the account check passed, the operator said yes),
    and so are the account lists the check read; until then it is only read."""
    settings, batch = inv.settings, inv.batch
    check_results_path(settings.results)
    identity_url = SANDBOX_IDENTITY if inv.sandbox else settings.base_url
    path = journal_mod.journal_path(settings.results)
    with ExitStack() as stack:
        lock = stack.enter_context(RunLock(settings.results))
        if lock.took_over is not None:
            operator.note(
                f"took over the lock of a run that died ({lock.took_over.describe()}); "
                "resuming what its journal recorded"
            )
        # --fresh: the earlier journal is read by nobody and kept until the operator said yes;
        # so is a finished run's, when a new input starts a new run at this results path.
        keep = inv.fresh and path.exists()
        # Read only: a journal this invocation makes waits for the run to go on (below).
        opened = not keep and path.exists()
        journal, new_run = _open(inv, path, identity_url) if opened else (None, None)
        if journal is not None:
            stack.callback(journal.close)
            if new_run is not None and journal.meta("finished") != "1":
                unsent = runjournal.unfinished(journal, journal.metadata())
                operator.note(
                    f"--abandon-previous: the previous run at {settings.results} leaves "
                    f"{unsent} rows unsent (its results are archived in "
                    f"{settings.results.stem}.runs/)"
                )
        target = stack.enter_context(
            target_of(settings, inv.key, sandbox=inv.sandbox, note=operator.note)
        )
        if via := inv.network.via(target.base_url):
            operator.note(f"requests to {target.host} go {via}")
        limiter = _limiter(inv, target, stack, operator)
        check = settings.account_check
        if check is None:  # by default, a real host only (not the sandbox, not loopback)
            check = target.needs_confirmation
        account = None
        if check:
            # A run continued (its own journal) judges against the lists it read at its start.
            this_run = journal is not None and new_run is None
            checked = check_account(
                batch, settings, target, limiter, operator.note, network=inv.network,
                kept=_kept_account(inv, operator) if this_run else None,
                watch_signals=inv.signals, key_source=inv.record.key_source,
            )  # fmt: skip
            if isinstance(checked, StopRequest):
                return stopped_before_sending(
                    settings, batch, journal if this_run else None, checked, target.host,
                    previous=(journal is not None and not this_run) or keep,
                )  # fmt: skip
            inv = replace(inv, batch=checked.batch)
            batch, account = inv.batch, checked.account
            if checked.refusal:
                return Result(Status.REFUSED, Summary(), None, 0, settings.results, target.host,
                              message=checked.refusal)  # fmt: skip
        left, applied = runjournal.count(batch, journal, resumed=new_run is None)
        if journal is not None and new_run is None and batch.candidates - left - applied:
            operator.note(
                f"resuming: {batch.candidates - left - applied} of {batch.candidates} rows "
                f"already decided in {path.name} are not sent again (--fresh starts over)"
            )
        if applied:
            operator.note(
                f"{applied} rows were already applied by an earlier run of {settings.results} "
                "(same routing id, same body, same target): not sent again"
            )
        if inv.ask and target.needs_confirmation:
            rate, concurrency = settings.rate, settings.concurrency
            if not operator.confirm(left, target.host, rate, concurrency, applied=applied):
                message = "nothing sent (not confirmed); pass --yes to skip this question"
                if keep or new_run is not None:
                    message += f"; the earlier run's journal {path.name} is kept as it was"
                return Result(Status.NOT_CONFIRMED, Summary(), None, 0, settings.results,
                              target.host, message=message)  # fmt: skip
        if journal is None:  # the run goes on: now its journal is made
            if keep:  # --fresh, confirmed: now the earlier run may go
                runjournal.archive_previous(settings)
                journal_mod.discard(path)
            journal = stack.enter_context(_open(inv, path, identity_url)[0])
        elif new_run is not None:  # a new input over a finished (or abandoned) run
            runjournal.archive_previous(settings, journal)
            journal.start_run(new_run)
            journal.set_meta("started_at", runjournal.now_text())
        if account is not None:  # read for this run: kept with it (after any archiving)
            from batch.send.accountfile import account_path, save_account

            save_account(account_path(settings.results), account)
        # A resume: this run's journal already holds rows (a retry in place counts as a retry).
        resumed = new_run is None and journal.resumed
        if applied:
            runjournal.mark_applied(batch, journal)
        todo = runjournal.todo(batch, journal)
        runjournal.remember(journal, inv.record, batch)
        journal.carry(batch.carried)
        for text in batch.notes:
            operator.note(text)
        kind = "retry" if batch.kind == "retry" else ("resume" if resumed else "run")
        if left or applied:  # a segment (who, when) per invocation that sends or finds applied
            journal.begin_segment(runtrail.segment_start(
                kind=kind, settings=settings, record=inv.record,
                input_sha256=journal.meta("input_sha256") or "", calls=batch.calls(),
                host=target.host, sandbox=inv.sandbox,
            ))  # fmt: skip
        try:
            report, requests, budget = _send(inv, operator, target, journal, todo(), left, limiter)
            return finish(inv.settings, inv.batch, journal, report, requests, budget, target.host,
                          operator.note)  # fmt: skip
        except BaseException as exc:
            _ended_badly(journal, exc)
            raise
    raise AssertionError("unreachable")  # pragma: no cover (ExitStack does not swallow)


def _limiter(inv: Invocation, target: Target, stack: ExitStack, operator: Operator) -> Limiter:
    """One per run, for the preflight's GETs and the updates alike; shared with the other runs
    on this machine that use the same key (batch.send.sharedlimiter), when it has one."""
    rate = inv.settings.rate
    if inv.pace_dir is None or target.key is None:
        return Limiter(rate)
    me = keyshare.Member.me(inv.settings.results, str(rate))
    share = keyshare.join(inv.pace_dir, target.key, target.base_url, me)
    if share is None:
        operator.note(f"pacing alone: {inv.pace_dir} cannot be written, so other runs with "
                      "this key on this machine cannot share the pace")  # fmt: skip
        return Limiter(rate)
    stack.callback(share.close)
    if others := share.others():
        runs = "; ".join(f"pid {m.pid} writing {m.results}" for m in others)
        plural = "s" if len(others) > 1 else ""
        operator.note(f"this API key's limit is shared with {len(others)} other run{plural} "
                      f"on this machine, in turns: {runs}")  # fmt: skip
    return SharedLimiter(rate, share.slots, company=share.company)


def _kept_account(inv: Invocation, operator: Operator) -> Account | None:
    """The lists read at this run's start, to judge a resume by (None: read them now)."""
    from batch.send.accountfile import account_path, load_account

    if inv.fresh or inv.recheck_account:
        return None
    kept = account_path(inv.settings.results)
    account = load_account(kept)
    if account is not None:
        operator.note(
            f"account check: the lists read {account.read_at:%Y-%m-%d %H:%M:%S} UTC for this "
            f"run are reused ({kept.name}; --recheck-account reads them again)"
        )
    return account


def _open(inv: Invocation, path: Path, identity_url: str) -> tuple[Journal, RunIdentity | None]:
    return runjournal.open_journal(
        inv.batch, inv.settings, inv.record, path, identity_url,
        abandon_previous=inv.abandon_previous,
    )  # fmt: skip


def _send(
    inv: Invocation,
    operator: Operator,
    target: Target,
    journal: Journal,
    calls: Iterator[Call],
    left: int,
    limiter: Limiter,
) -> tuple[RunReport, int, BudgetWatch]:
    """The sending: inside the change window, canary first, one sender for every pass."""
    settings = inv.settings
    win = window.Window(settings.not_before, settings.not_after)
    now = window.utc_now()
    # Already closed: the stop message says so; a "would not fit" estimate would only confuse.
    if not window.is_closed(win, now) and (
        warning := window.fit_warning(win, now, left, settings.rate)
    ):
        operator.note(warning)
    if inv.batch.before_sending is not None:
        operator.note(inv.batch.before_sending())  # the rollback file, before any request
    stop = StopToken()
    stop.subscribe(runtrail.on_stop(journal))
    budget = BudgetWatch(settings.error_budget, stop)
    requests = _Requests()
    observer = Observers(operator.observer, budget, requests)
    canary = canary_left(settings.canary or 0, journal.counts())
    done = inv.batch.candidates - left
    policy = SendPolicy.of(settings)

    def waiting(text: str) -> None:
        if not waited:
            journal.event(audit.WINDOW_WAIT, text)
            waited.append(text)
        operator.waiting(text)

    waited: list[str] = []

    async def drive() -> RunReport:
        # The client is built outside the task group: a key it refuses (bad characters) is then
        # a plain UsageError (exit 2, nothing sent), not an error in an exception group.
        async with (
            build_client(target.base_url, target.key, timeout=settings.timeout,
                         concurrency=settings.concurrency, network=inv.network) as client,
            anyio.create_task_group() as tasks,
        ):  # fmt: skip
            if inv.signals:  # first: Ctrl-C while waiting for the window ends the wait
                await tasks.start(watch_signals, stop, settings.timeout)
            breaker = Breaker(max_outage=settings.max_outage)
            breaker.subscribe(lambda news: host_news(news, stop, observer, target.host, settings))
            breaker.subscribe(runtrail.on_host_news(journal))
            sender = Sender(
                client, limiter, policy, trail=journal, on_attempt=observer.attempt,
                on_retry=observer.retrying, before_wait=journal.commit,
                on_long_pause=lambda seconds: paused_by_server(stop, seconds, settings),
                breaker=breaker, via=inv.network.via(target.base_url), issuer=presented_issuer,
            )  # fmt: skip
            sender.throttle.subscribe(lambda seconds: throttled_out(stop, seconds, settings))

            async def run(part: Iterable[Call]) -> RunReport:
                return await run_calls(
                    part, sender=sender, journal=journal, stop=stop,
                    concurrency=settings.concurrency, observer=observer,
                    key_source=inv.record.key_source,
                )  # fmt: skip

            async def proceed(first: RunReport) -> bool:
                journal.event(audit.CANARY_PASSED, f"the first {first.started} rows succeeded")
                if not inv.ask:
                    operator.note(f"canary: the first {first.started} rows succeeded; "
                                  "sending the rest")  # fmt: skip
                    return True
                return await _ask_cancellably(operator, first.started, stop)

            async def send() -> RunReport:
                if win.not_before is not None or win.not_after is not None:
                    journal.event(
                        audit.WINDOW_OPEN,
                        f"window {_moment(win.not_before)} to {_moment(win.not_after)}",
                    )
                observer.run_started(inv.batch.candidates, done)
                tasks.start_soon(_tick, operator)
                return await with_canary(calls, run, canary=canary, stop=stop, proceed=proceed)

            report = await within_window(
                win, send, stop=stop, every=operator.wait_every,
                on_wait=lambda remaining: waiting(window.waiting_message(win, remaining)),
            )  # fmt: skip
            tasks.cancel_scope.cancel()
        return report

    try:
        report = anyio.run(drive)
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
    return report, requests.count, budget


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


def _ended_badly(journal: Journal, exc: BaseException) -> None:
    """The segment ends with what ended it (an error the command line reports), if the journal
    can still say so."""
    with suppress(Exception):  # the error being raised is the one to report
        journal.end_segment(f"error: {type(exc).__name__}: {exc}"[:500], None)


def _first_reroute_error(group: BaseExceptionGroup[BaseException]) -> RerouteError | None:
    for exc in group.exceptions:
        if isinstance(exc, RerouteError):
            return exc
        if isinstance(exc, BaseExceptionGroup) and (found := _first_reroute_error(exc)):
            return found
    return None
