"""Which signals stop a run on this platform, and how they reach the event loop.

Linux and macOS: Ctrl-C (SIGINT) and SIGTERM (``kill``, ``systemctl stop``), through anyio's
signal receiver. Windows: Ctrl-C (SIGINT) and Ctrl-Break (SIGBREAK); asyncio's event loop there
cannot receive signals (anyio raises NotImplementedError), so a plain handler only notes each
one and the watcher looks every ``POLL`` seconds. (A handler that did more could interrupt the
event loop's own bookkeeping; appending to a list cannot.) SIGTERM is listed wherever Python
names it, though Windows never sends it to another process.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Final

import anyio
from anyio.abc import TaskStatus

STOP_SIGNALS: Final = tuple(
    s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGBREAK", None)) if s is not None
)
# asyncio on Windows has no signal receiver; the platform is the guard, not a try (style.md).
RECEIVER: Final = sys.platform != "win32"
POLL: Final = 0.2  # seconds between looks where signals are only noted (Windows)


def ignore_interrupts() -> None:
    """From here on Ctrl-C changes nothing: the sending is over (or never began), so nothing is
    left to stop, and what follows (the results, the summary, the exit status) must say what
    happened; people press Ctrl-C again and again. Ignored (SIG_IGN), not handled in Python:
    while the interpreter shuts down, Python puts back the default action for a signal with a
    Python handler, and a press then killed the process (exit -2). SIGTERM keeps its default
    (a service manager ending a stuck process). Not restored: the process is about to end. The
    main thread only: signal handlers live there."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def describe(signum: int) -> str:
    """The name an operator knows a stop signal by."""
    if signum == signal.SIGINT:
        return "Ctrl-C"
    if signum == getattr(signal, "SIGBREAK", None):
        return "Ctrl-Break"
    return signal.Signals(signum).name


async def deliver(
    on_signal: Callable[[int], None],
    *,
    receiver: bool = RECEIVER,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``on_signal(signum)`` in the event loop for each stop signal, until cancelled.
    ``receiver=False`` takes the Windows way (tested here too)."""
    if receiver:
        with anyio.open_signal_receiver(*STOP_SIGNALS) as received:
            task_status.started()
            async for signum in received:
                on_signal(signum)
        return
    noted: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        noted.append(signum)

    before = {s: signal.signal(s, note) for s in STOP_SIGNALS}
    try:
        task_status.started()
        while True:
            await anyio.sleep(POLL)
            while noted:
                on_signal(noted.pop(0))
    finally:
        for s, handler in before.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
