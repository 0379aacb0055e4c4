"""Stop signals per platform: the receiver on POSIX, noted-and-polled on Windows (run here)."""

from __future__ import annotations

import signal
from functools import partial

import anyio

from batch.engine import signals
from batch.engine.stop import StopRequest, StopToken, watch_signals


async def _raise_and_wait(stop: StopToken, signum: int) -> StopRequest:
    """Raise ``signum`` in this process and return the stop request it caused."""
    heard: list[StopRequest] = []
    event = anyio.Event()

    def listener(request: StopRequest) -> None:
        heard.append(request)
        event.set()

    unsubscribe = stop.subscribe(listener)
    try:
        signal.raise_signal(signum)
        with anyio.fail_after(5):
            await event.wait()
    finally:
        unsubscribe()
    return heard[0]


async def test_windows_way_turns_two_ctrl_c_into_soft_then_hard_stop() -> None:
    """Without a signal receiver, Ctrl-C still stops softly, and a second one hard."""
    stop = StopToken()
    before = signal.getsignal(signal.SIGINT)
    async with anyio.create_task_group() as tasks:
        await tasks.start(partial(watch_signals, stop, 7.0, receiver=False))
        first = await _raise_and_wait(stop, signal.SIGINT)
        assert "interrupted (Ctrl-C)" in first.message
        assert "up to 7 s" in first.message
        assert not first.hard
        second = await _raise_and_wait(stop, signal.SIGINT)
        assert second.hard
        tasks.cancel_scope.cancel()
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back


async def test_windows_way_also_hears_sigterm_where_it_exists() -> None:
    """SIGTERM is one of the stop signals wherever Python names it."""
    assert signal.SIGTERM in signals.STOP_SIGNALS
    stop = StopToken()
    async with anyio.create_task_group() as tasks:
        await tasks.start(partial(watch_signals, stop, 1.0, receiver=False))
        request = await _raise_and_wait(stop, signal.SIGTERM)
        tasks.cancel_scope.cancel()
    assert "interrupted (SIGTERM)" in request.message


def test_signal_names_are_the_ones_operators_know() -> None:
    """Ctrl-C for SIGINT, the signal's own name otherwise (Ctrl-Break where SIGBREAK exists)."""
    assert signals.describe(signal.SIGINT) == "Ctrl-C"
    assert signals.describe(signal.SIGTERM) == "SIGTERM"
    if hasattr(signal, "SIGBREAK"):
        assert signals.describe(signal.SIGBREAK) == "Ctrl-Break"
