"""The run engine: one invocation of `run` or `retry`, from a prepared batch to what happened.

```
Invocation (batch + settings + key + record)
  -> lock, identity + journal (resume), remembered settings, confirmation, --fresh
  -> window, canary, error budget, stop policy (signals, key rejected, long server pause,
     a host down past --max-outage or that can never answer: batch.send.outage)
       -> the sending (batch.engine.sending): one sender (limiter, retries, breaker, client)
          per run, its events journaled then shown -> the row loop (batch.engine.rowloop)
  -> merge by row number (batch.engine.merge), write the results file, tally
<- Result: a Status, the summary's values, why it stopped
```

The command line builds the :class:`Invocation` (flags, environment, key, and the batch: its
plan, every request built once) and shows the :class:`Result`; it answers questions through the
:class:`Operator` it passes in. Control goes down and values come back up. Promises kept on
every path: a decided row is never sent again and never turns into anything else; attempts
accumulate; nothing is destroyed before the operator said yes (``--fresh`` discards the journal
only after the confirmation); a failed final write keeps the journal and says so
(``Status.RESULTS_NOT_WRITTEN``).
"""

from __future__ import annotations

from contextlib import ExitStack, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from batch.engine import replacing, runjournal, runtrail, window
from batch.engine.accountcheck import check_account
from batch.engine.ending import Result, Status, finish, stopped_before_sending
from batch.engine.merge import Summary
from batch.engine.sending import Sending
from batch.engine.stop import Observer, StopRequest
from batch.engine.target import SANDBOX_IDENTITY, Target, check_results_path
from batch.engine.target import target as target_of
from batch.errors import UsageError
from batch.invoked import INSTALLED
from batch.journal import journal as journal_mod
from batch.journal.journal import Journal
from batch.journal.lock import RunLock
from batch.journal.record import RunIdentity, RunRecord
from batch.prepare import approval
from batch.prepare.batch import Batch
from batch.send import keyshare
from batch.send.client import Network
from batch.send.limiter import Limiter
from batch.send.sharedlimiter import SharedLimiter
from batch.settings import RunSettings

if TYPE_CHECKING:
    from batch.engine.replacing import Confirmation
    from batch.send.account import Account


class Operator(Protocol):
    """The person (or script) behind the invocation: the engine tells and asks through this."""

    observer: Observer  # progress: sees every row move
    wait_every: float  # seconds between two ``waiting`` calls before the window opens

    def note(self, text: str) -> None:
        """One line worth telling (resuming, taking over a lock, a window that will not fit)."""

    def confirm(self, sending: Confirmation) -> bool:
        """Ask before sending to a real host (only when the invocation may ask); ``sending``
        says what will happen (a run that may not ask notes ``sending.describe()`` instead)."""

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
    started: tuple[str, ...] = INSTALLED  # how reroute was started: the commands it names
    # Where runs on this machine share their key's pace (batch.send.keyshare); None: not shared.
    pace_dir: Path | None = None


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
        if not (journal is not None and new_run is None):  # a new run: refused, nothing made
            win = window.Window(settings.not_before, settings.not_after, settings.window_daily)
            if over := window.ended(win, window.utc_now()):
                raise UsageError(over)
        target = stack.enter_context(
            target_of(settings, inv.key, sandbox=inv.sandbox, note=operator.note)
        )
        if via := inv.network.via(target.base_url):
            operator.note(f"requests to {target.host} go {via}")
        this_run = journal is not None and new_run is None  # continued: its journal is its own
        # Against a real host, the replace semantics said once per run (or nothing is sent).
        inv = replace(inv, record=replacing.chosen(inv.record, journal if this_run else None,
                                                   target, inv.started))  # fmt: skip
        limiter = _limiter(inv, target, stack, operator)
        check = settings.account_check
        if check is None:  # by default, a real host only (not the sandbox, not loopback)
            check = target.needs_confirmation
        account = None
        if check:
            # A run continued (its own journal) judges against the lists it read at its start.
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
        if settings.approved_plan is not None:  # what is sent, judged: a refusal makes nothing
            approval.check(batch.plan.calls, settings.approved_plan, retry=batch.kind == "retry",
                           folders=approval.folders_of(settings))  # fmt: skip
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
        if target.needs_confirmation:
            question = replacing.confirmation(inv, target, journal, resumed=new_run is None,
                                              left=left, applied=applied)  # fmt: skip
            if not inv.ask and left:  # --yes, or no terminal: the question's words, logged
                operator.note(question.describe())
            elif inv.ask and not operator.confirm(question):
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
        calls = runjournal.todo(batch, journal)  # the plan's calls less what is decided
        runjournal.remember(journal, inv.record, batch)
        journal.carry(batch.carried)
        for text in batch.notes:
            operator.note(text)
        kind = "retry" if batch.kind == "retry" else ("resume" if resumed else "run")
        if left or applied:  # a segment (who, when) per invocation that sends or finds applied
            journal.begin_segment(runtrail.segment_start(
                kind=kind, settings=settings, record=inv.record,
                input_sha256=journal.meta("input_sha256") or "", calls=batch.plan.calls,
                host=target.host, sandbox=inv.sandbox,
            ))  # fmt: skip
        try:
            sending = Sending(inv, operator, target, journal, limiter)
            report = sending.run(calls)
            return finish(inv.settings, inv.batch, journal, report, sending.requests.count,
                          sending.budget, target.host, operator.note)  # fmt: skip
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


def _ended_badly(journal: Journal, exc: BaseException) -> None:
    """The segment ends with what ended it (an error the command line reports), if the journal
    can still say so."""
    with suppress(Exception):  # the error being raised is the one to report
        journal.end_segment(f"error: {type(exc).__name__}: {exc}"[:500], None)
