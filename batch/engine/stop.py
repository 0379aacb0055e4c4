"""How a run stops, and who watches it: the stop token, its reasons, observers, signals.

A stop is soft (start nothing new; rows in flight finish within the grace period) or hard
(cancel rows in flight; they stay ``unknown`` and a resume sends them again). Whatever asks for
it (a signal, the change window, the error budget, the canary, a key the API refused, a server
asking the run to wait for longer than ``--max-retry-after``, a host unreachable for longer than
``--max-outage`` or one that can never answer) calls :meth:`StopToken.request`;
the row loop needs no change for a new reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import anyio
from anyio.abc import TaskStatus

from batch.engine import signals
from batch.model import Call, RowResult


class StopReason(StrEnum):
    """Why a run stopped early."""

    INTERRUPTED = "interrupted"
    KEY_REJECTED = "key_rejected"
    WINDOW_CLOSED = "window_closed"
    ERROR_BUDGET = "error_budget"
    CANARY_FAILED = "canary_failed"  # a canary row did not succeed
    CANARY_DECLINED = "canary_declined"  # the canary passed; the operator chose not to go on
    PAUSED_BY_SERVER = "paused_by_server"  # a 429 asked to wait beyond --max-retry-after
    HOST_UNREACHABLE = "host_unreachable"  # the host stayed down longer than --max-outage
    HOST_UNUSABLE = "host_unusable"  # it can never answer: no such name, untrusted certificate
    THROTTLED = "throttled"  # every answer a 429 for longer than --max-outage


@dataclass(frozen=True, slots=True)
class StopRequest:
    """One request to stop: the first one decides the reason the operator is told."""

    reason: str
    message: str  # one line for the operator
    hard: bool = False  # cancel in-flight requests instead of letting them finish


class StopToken:
    """Asks a running row loop to stop, soft or hard.

    Safe to call before the run starts (it then sends nothing) and from any task of the same
    event loop (a signal watcher, a window watcher).
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
    """Hooks the run calls as rows move (progress display, logs, the error budget). Every hook
    is a no-op here; override what you need. Hooks must be quick and must not raise."""

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

    def host_down(self, since: datetime, next_probe: datetime, cause: str) -> None:
        """The host stopped answering at ``since`` (UTC; ``cause``: the last failure): rows wait,
        and one request probes it at ``next_probe``. Told again after each failed probe."""

    def host_back(self, down_for: float, probes: int) -> None:
        """The host answers again after ``down_for`` seconds and ``probes`` probes."""


class Observers(Observer):
    """Several observers as one, called in order."""

    def __init__(self, *observers: Observer) -> None:
        self._observers = observers

    def run_started(self, total: int, done: int) -> None:
        for o in self._observers:
            o.run_started(total, done)

    def attempt(self, call: Call, n: int) -> None:
        for o in self._observers:
            o.attempt(call, n)

    def retrying(self, call: Call, n: int, code: str) -> None:
        for o in self._observers:
            o.retrying(call, n, code)

    def row_finished(self, result: RowResult) -> None:
        for o in self._observers:
            o.row_finished(result)

    def row_cancelled(self, call: Call, record: RowResult | None) -> None:
        for o in self._observers:
            o.row_cancelled(call, record)

    def stopping(self, stop: StopRequest) -> None:
        for o in self._observers:
            o.stopping(stop)

    def host_down(self, since: datetime, next_probe: datetime, cause: str) -> None:
        for o in self._observers:
            o.host_down(since, next_probe, cause)

    def host_back(self, down_for: float, probes: int) -> None:
        for o in self._observers:
            o.host_back(down_for, probes)


async def watch_signals(
    stop: StopToken,
    grace: float,
    *,
    receiver: bool = signals.RECEIVER,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """First Ctrl-C (Ctrl-Break on Windows) or SIGTERM: soft stop (in-flight requests get
    ``grace`` s). A second: hard stop (cancel in-flight; their rows stay ``unknown``). Start with
    ``task_group.start``; ``receiver``: see batch.engine.signals."""

    def on_signal(signum: int) -> None:
        name = signals.describe(signum)
        if not stop.requested:
            stop.request(
                StopReason.INTERRUPTED,
                f"interrupted ({name}): no new row starts; requests in flight get up to "
                f"{grace:g} s to finish (press Ctrl-C again to cancel them)",
            )
        else:
            stop.request(
                StopReason.INTERRUPTED,
                f"interrupted again ({name}): cancelling requests in flight; their rows "
                "are recorded as unknown and are resent on resume",
                hard=True,
            )

    await signals.deliver(on_signal, receiver=receiver, task_status=task_status)
