"""The schedule of slots that runs sharing one API key share: when the last request left, the
slots booked and not yet used, kept where every run on the machine reads and moves them.

One small record (:class:`SlotState`): the slots booked (in the order the runs take their
turns), when the last request left and how soon the next may, a pause a 429 asked of everyone,
and how many answers were accepted, key-wide. A run reads and moves it only inside
:meth:`Slots.locked`, a critical section of a few microseconds. :class:`FileSlots` keeps it in a
file under the operating system's lock (``flock`` on Linux and macOS, ``LockFileEx`` on
Windows, through ``filelock``): a process killed inside it loses the lock with its life, and a
slot it had booked is dropped once neither its moment nor its run has shown up for ``STALE``
seconds (a run waiting past its slot says it is alive at least twice as often), so a killed run
holds nothing for long. :class:`MemorySlots` is its stand-in in one process (the simulations).

Times are the clock of the run that reads them; the file holds ``clock`` seconds
(``time.monotonic`` by default: one clock for every process of a machine, on Linux, macOS and
Windows alike), converted both ways.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final, Protocol

BOOKINGS: Final = 16  # slots booked at once, key-wide: one per run waiting (more wait their turn)
# A slot whose moment passed that long ago, its run silent as long, belongs to a run that died
# (or stalled) with it: it is dropped, and the runs behind it go on.
STALE: Final = 2.0

# magic, last sent, not before, paused until, accepted, bookings; BOOKINGS (ticket, slot, seen)
_FORMAT: Final = struct.Struct("<4sdddqB" + "qdd" * BOOKINGS)
_MAGIC: Final = b"rrs2"
# Byte 0 is Windows' lock byte, which no other process may read while it is held: the record
# starts at byte 1 (as the run lock's holder details do, batch.journal.lock).
_AT: Final = 1
# The lock is held for microseconds; a holder that is stopped (not killed) must not stall the
# run: after this long, the record is read without the lock and this change of it is dropped
# (at worst two runs take one slot once).
_PATIENCE: Final = 0.05


@dataclass(slots=True)
class SlotState:
    """The shared schedule, key-wide. Times in the reader's clock (seconds)."""

    last_sent: float = -math.inf  # when the last request left (counted at its slot)
    not_before: float = -math.inf  # no request leaves before (the arrival guard)
    paused_until: float = -math.inf  # a 429 paused every run until then
    accepted: int = 0  # answers that were not a 429, every run's
    # Slots booked and not yet used: {ticket: (slot, when its run last said it waits for it)}.
    booked: dict[int, tuple[float, float]] = field(default_factory=dict)

    def next_slot(self, now: float, interval: float, soonest: float) -> float:
        """The next slot for a run whose pace is one request per ``interval``: that long after
        the last one booked or sent (whichever run's), not before ``soonest`` nor ``now``."""
        last = max((slot for slot, _ in self.booked.values()), default=self.last_sent)
        return max(now, max(last, self.last_sent) + interval, soonest)

    def book(self, ticket: int, slot: float, now: float) -> bool:
        """Book ``slot`` under ``ticket`` (False: too many runs wait already; try later)."""
        if len(self.booked) >= BOOKINGS:
            return False
        self.booked[ticket] = (slot, now)
        return True

    def first(self, ticket: int) -> bool:
        """Whether ``ticket``'s slot is the earliest booked (the next to leave)."""
        return min(self.booked.items(), key=lambda item: item[1][0])[0] == ticket

    def drop_stale(self, now: float) -> None:
        """Forget the slots of runs that died waiting (see ``STALE``)."""
        stale = now - STALE
        if any(max(times) < stale for times in self.booked.values()):
            self.booked = {t: times for t, times in self.booked.items() if max(times) >= stale}


class Slots(Protocol):
    """Where the shared :class:`SlotState` lives."""

    def locked(self, now: float) -> contextlib.AbstractContextManager[SlotState]:
        """The state, read at ``now`` (the caller's clock) and written back when the block
        ends; no other run reads or moves it meanwhile."""
        ...

    def reset(self, now: float) -> None:
        """Forget the schedule (the first run on the key: what is there is a dead run's)."""
        ...


class MemorySlots:
    """:class:`Slots` in one process, for runs that share a clock (the simulations, tests)."""

    def __init__(self) -> None:
        self.state = SlotState()

    @contextlib.contextmanager
    def locked(self, now: float) -> Iterator[SlotState]:
        self.state.drop_stale(now)
        yield self.state

    def reset(self, now: float) -> None:
        self.state = SlotState()


class FileSlots:
    """:class:`Slots` in a file every run on the key opens (``fd``, open for reading and
    writing; the caller closes it)."""

    def __init__(self, fd: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._fd = fd
        self._clock = clock

    @contextlib.contextmanager
    def locked(self, now: float) -> Iterator[SlotState]:
        offset = self._clock() - now  # the file's clock, less the caller's
        locked = lock(self._fd)
        try:
            state = self._read(offset)
            state.drop_stale(now)
            yield state
            if locked:  # else read only: Windows' lock is mandatory, and a write would race
                self._write(state, offset)
        finally:
            if locked:
                unlock(self._fd)

    def reset(self, now: float) -> None:
        with self.locked(now) as state:
            fresh = SlotState()
            state.last_sent, state.not_before = fresh.last_sent, fresh.not_before
            state.paused_until, state.accepted = fresh.paused_until, fresh.accepted
            state.booked = {}

    def _read(self, offset: float) -> SlotState:
        os.lseek(self._fd, _AT, os.SEEK_SET)
        data = os.read(self._fd, _FORMAT.size)
        if len(data) == _FORMAT.size:
            magic, last, soonest, paused, accepted, count, *booked = _FORMAT.unpack(data)
            times = (last, soonest, paused, *booked[1::3], *booked[2::3])
            if magic == _MAGIC and count <= BOOKINGS and not any(map(math.isnan, times)):
                entries = [booked[3 * i : 3 * i + 3] for i in range(count)]
                return SlotState(last - offset, soonest - offset, paused - offset, accepted,
                                 {int(t): (slot - offset, seen - offset)
                                  for t, slot, seen in entries})  # fmt: skip
        # New, or not ours (a half-written record from a crash mid-write): an empty schedule.
        return SlotState()

    def _write(self, state: SlotState, offset: float) -> None:
        booked = list(state.booked.items())[:BOOKINGS]
        slots: list[float] = []
        for ticket, (slot, seen) in booked:
            slots += (ticket, slot + offset, seen + offset)
        slots += [0, 0.0, 0.0] * (BOOKINGS - len(booked))
        record = _FORMAT.pack(
            _MAGIC, state.last_sent + offset, state.not_before + offset,
            state.paused_until + offset, state.accepted, len(booked), *slots,
        )  # fmt: skip
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, b" " + record)


def lock(fd: int, patience: float = _PATIENCE) -> bool:
    """The operating system's exclusive lock on ``fd``, waited for up to ``patience`` seconds
    (False: not taken). The holder keeps it for microseconds, so the wait is a short spin."""
    from filelock import lock_descriptor  # imported by the runs that share a key only

    deadline = time.monotonic() + patience
    pause = 0.0001
    while not lock_descriptor(fd, blocking=False):
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(2 * pause, 0.002)
    return True


def unlock(fd: int) -> None:
    from filelock import unlock_descriptor

    unlock_descriptor(fd)
