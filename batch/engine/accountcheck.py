"""The run's account check (the preflight), inside the run's stop policy.

Before the confirmation and before any update, a run reads the account's bots and connections
(batch.send.account) and judges every candidate row against them (batch.prepare.preflight). That
reading is part of the run, so it stops the way the sending stops (batch.engine.stop): Ctrl-C or
SIGTERM, a host that can never answer (a name that does not resolve, a certificate not trusted), a
host down past ``--max-outage`` (batch.send.outage), a key the API refuses. Each ends the invocation
as a stopped run (exit 3, the results file written when that destroys nothing, the lock released),
never as "fix your input".

What a check reads is kept beside the journal only once the run goes on (the engine saves it
after the confirmation): a refused or declined invocation leaves nothing that a later one
reuses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

import anyio

from batch.engine import signals, window
from batch.engine.guards import host_news
from batch.engine.stop import Observer, StopReason, StopRequest, StopToken
from batch.errors import AccountUnreadable
from batch.send.client import Network, SendPolicy, build_client
from batch.send.outage import Breaker, HostNews, HostState

if TYPE_CHECKING:
    from collections.abc import Callable

    from batch.engine.target import Target
    from batch.prepare.batch import Batch
    from batch.send.account import Account
    from batch.send.limiter import Limiter
    from batch.settings import RunSettings


# Stops the breaker asks for: its message names the host, not the check.
_HOST_STOPS = frozenset({StopReason.HOST_UNUSABLE, StopReason.HOST_UNREACHABLE})


@dataclass(frozen=True)
class Checked:
    """What the check found: the batch with the rows it rejected made invalid, the lists it
    read (None: reused from the run's journal), and why nothing may be sent ("" to go on)."""

    batch: Batch
    account: Account | None = None
    refusal: str = ""


def check_account(
    batch: Batch,
    settings: RunSettings,
    target: Target,
    limiter: Limiter,
    note: Callable[[str], None],
    *,
    network: Network,
    kept: Account | None,
    watch_signals: bool,
    key_source: str,
) -> Checked | StopRequest:
    """Judge ``batch`` against the account: the lists ``kept`` for this run, else read now
    through the run's limiter. A StopRequest when the run must stop before it sends anything
    (the engine ends it as stopped); raises AccountUnreadable when a list's answer is wrong in
    a way no waiting fixes (a shape the docs do not describe)."""
    from batch.prepare import preflight

    account = kept
    if account is None:
        read = _read(settings, target, limiter, note, network=network, signals_=watch_signals,
                     key_source=key_source)  # fmt: skip
        if isinstance(read, StopRequest):
            return read
        account = read
    targets = preflight.targets_of_calls(batch.plan.calls)
    verdict = preflight.judge(targets, account, batch.row_names)
    for line in verdict.lines:
        note(line)
    fresh = None if account is kept else account
    if not verdict.rejected:
        return Checked(batch, fresh)
    for text in verdict.errors.get_column("error_message").head(10).to_list():
        note(f"  {text}")
    judged = preflight.reject(batch, verdict.errors)
    if settings.skip_invalid:
        note(f"--skip-invalid: the {verdict.rejected} rows the account check rejected are not "
             "sent (outcome invalid)")  # fmt: skip
        return Checked(judged, fresh)
    return Checked(judged, fresh, refusal=(
        f"the account check rejected {verdict.rejected} rows, so nothing was sent: fix them "
        "(see above), pass --skip-invalid to send the other rows, or --no-account-check to "
        "skip the check"
    ))  # fmt: skip


def _read(
    settings: RunSettings,
    target: Target,
    limiter: Limiter,
    note: Callable[[str], None],
    *,
    network: Network,
    signals_: bool,
    key_source: str,
) -> Account | StopRequest:
    """The lists, read in an event loop of their own under the run's stop policy."""
    from batch.send.account import fetch_account

    policy = SendPolicy.of(settings)
    stop = StopToken()
    told = False

    def news(item: HostNews) -> None:
        nonlocal told
        if item.state is HostState.DOWN and not told:  # said once; the stop says the rest
            told = True
            limit = window.format_duration(timedelta(seconds=item.limit))
            note(f"account check: {target.host} is not answering ({item.cause}); waiting for it "
                 f"(up to --max-outage {limit}) before any update is sent")  # fmt: skip
        host_news(item, stop, Observer(), target.host)

    async def read() -> Account | None:
        async with (
            build_client(target.base_url, target.key, timeout=policy.timeout, concurrency=1,
                         network=network) as client,
            anyio.create_task_group() as tasks,
        ):  # fmt: skip
            if signals_:
                await tasks.start(_on_signals, stop)
            with anyio.CancelScope() as reading:
                stop.subscribe(lambda _: reading.cancel())
                breaker = Breaker.of(settings)
                breaker.subscribe(news)
                try:
                    return await fetch_account(
                        client, limiter, policy, breaker=breaker, key_source=key_source
                    )
                except AccountUnreadable as exc:
                    if stop.requested:
                        pass  # the stop (a signal, the host given up on) says why
                    elif exc.stops:  # the key's or the server's fault, not the sheet's
                        stop.request(exc.stops, _stop_message(exc, target.host))
                    else:
                        raise
                finally:
                    tasks.cancel_scope.cancel()
        return None

    account = anyio.run(read)
    first = stop.first
    if first is not None:
        if first.reason in _HOST_STOPS:  # the breaker's words, said as the check's
            return replace(first, message=f"account check: {first.message}")
        return first
    assert account is not None
    return account


async def _on_signals(
    stop: StopToken, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Ctrl-C or SIGTERM while the lists are read: nothing is in flight that matters (no
    update has gone out), so the reading ends at once."""

    def on_signal(signum: int) -> None:
        stop.request(
            StopReason.INTERRUPTED,
            f"interrupted ({signals.describe(signum)}) during the account check: no update was "
            "sent; run the same command again to start",
            hard=True,
        )

    await signals.deliver(on_signal, task_status=task_status)


def _stop_message(exc: AccountUnreadable, host: str) -> str:
    if exc.stops == StopReason.KEY_REJECTED:
        return (
            f"account check: {exc}: the API rejected the key, so the run stopped before any "
            "update was sent; check the key and that the account is active and has credit, "
            "then run the same command again"
        )
    return (
        f"account check: {exc}; no update was sent: run the same command again once {host} answers"
    )
