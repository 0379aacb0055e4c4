"""One pace for every run on the machine that uses the same API key (issue 29).

The server's limit belongs to the key, not to the run: two runs pacing themselves each at the
limit send twice what it allows, and the one that meets the 429s first starves. Runs that share
a key therefore share GCRA's schedule (:mod:`batch.send.slots`: the next free slot, a 429's
pause, the answers accepted), the way a rate-limiting proxy or a Redis-backed limiter serves a
fleet:

- a request takes the next free slot of the key's schedule, whoever took the one before, so
  two runs together stay at the pace and never above it; each run waits for one slot at a time
  (its workers queue in the run's own fair lock), so the slots alternate between the runs that
  are waiting: each gets an even share. When one ends, the next slot after its last is the
  other's, and so is the whole pace;
- a 429's pause holds every run: the limit is the key's, every run would meet it;
- the pace itself (``batch.send.pace``) stays each run's, learnt from its own 429s; the rate
  it measures at a 429 counts every run's accepted answers, the key's rate, not its own share.

A run killed in the middle holds nothing: a slot is a moment in the schedule, not a token.

Speed unit: a run alone on its key (``company`` says so, from the runs' folder) paces as a plain
:class:`Limiter` does, without the file's lock (~1.5 us a request against ~40 us through the
file, measured on a loaded 2-core machine: the overhead benchmark's whole margin). When another
run appears, its schedule moves into the key's (and back when it is alone again).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import anyio

from batch.send.limiter import Limiter
from batch.send.slots import STALE, Slots, SlotState
from batch.settings import Rate


class SharedLimiter(Limiter):
    """A :class:`Limiter` whose schedule of slots lives in ``slots``, shared with the other runs
    on the key. Its pace (CUBIC, careful periods) is its own."""

    def __init__(
        self,
        rate: Rate,
        slots: Slots,
        *,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        company: Callable[[float], bool] | None = None,
    ) -> None:
        """``company(now)``: whether other runs share the key now (cheap: asked per request);
        None: always (runs simulated together)."""
        super().__init__(rate, clock=clock, sleep=sleep)
        self._slots = slots
        self._company = company
        self._sharing = company is None
        self._unshared = 0  # answers accepted here and not yet added to the key's count
        self._shared_pause = -float("inf")  # the key's pause, as last read

    @property
    def paused_until(self) -> float:
        return max(self._paused_until, self._shared_pause)

    def _shared(self, now: float) -> bool:
        """Whether the schedule is the key's now; moves this run's own into it when another
        run has come, and takes it back when the others have gone."""
        if self._company is None:
            return True
        sharing = self._company(now)
        if sharing is not self._sharing:
            self._sharing = sharing
            with self._slots.locked(now) as state:
                self._share(state)
                if sharing:  # the others take turns from this run's last request on
                    state.last_sent = max(state.last_sent, self._last_grant)
                    state.not_before = max(state.not_before, self._tat - self._tolerance)
                    state.paused_until = max(state.paused_until, self._paused_until)
                else:  # alone again: its own schedule goes on from the key's
                    self._tat = max(self._tat, state.last_sent + self._interval, state.not_before)
                    self._paused_until = max(self._paused_until, state.paused_until)
        return sharing

    def try_acquire(self) -> bool:
        now = self._clock()
        if not self._shared(now):
            return super().try_acquire()
        if self._queued:
            return False
        if now < self._paused_until:
            return False
        with self._slots.locked(now) as state:
            self._share(state)
            if state.booked or state.next_slot(now, self._interval, self._soonest(state)) > now:
                return False
            self._sent(state, now)
        return True

    async def acquire(self) -> None:
        """Book the key's next slot (one interval of this run's pace after the last one booked,
        whichever run's) and wait for it; leave when it is the earliest booked and the guard
        and any pause allow. Each run books one slot at a time (its workers queue in its own
        fair lock), so the runs that wait take turns, in the order they booked. A pause that
        began meanwhile voids the slot: another is booked after it."""
        if not self._shared(self._clock()):
            await super().acquire()
            return
        if self.try_acquire():
            return
        self._queued += 1
        try:
            async with self._lock:
                while not await self._booked_slot():
                    pass
        finally:
            self._queued -= 1

    async def _booked_slot(self) -> bool:
        """Book a slot, wait for it and leave: True; False when it was voided (a pause, or it
        waited so long that it went stale) or could not be booked."""
        ticket = random.getrandbits(62)
        now = self._clock()
        with self._slots.locked(now) as state:
            self._share(state)
            slot = state.next_slot(now, self._interval, self._soonest(state))
            booked = state.book(ticket, slot, now)
        if not booked:  # more runs wait than the schedule holds: ask again a little later
            await self._sleep(self._interval)
            return False
        done = False
        try:
            waited = slot > now
            if waited:
                await self._sleep(slot - now)
            while True:
                now = self._clock()
                with self._slots.locked(now) as state:
                    self._share(state)
                    if ticket not in state.booked or self.paused_until > slot:
                        return False
                    start = max(slot, self._soonest(state))
                    first = state.first(ticket)
                    if now >= start and first:
                        del state.booked[ticket]
                        done = True
                        # Counted as sent at its moment, not when the event loop woke it (at
                        # most a quarter interval made up, as Limiter.acquire does).
                        self._sent(state, max(start, now - self.interval / 4) if waited else now)
                        return True
                    state.booked[ticket] = (slot, now)  # still waiting, and alive
                waited = True
                # Behind another run's booking, which leaves any moment: look again soon.
                nap = start - now if first else max(start - now, self._interval / 16)
                await self._sleep(min(nap, STALE / 2))
        finally:
            if not done:  # voided, or cancelled (a stop): the slot goes back
                with self._slots.locked(self._clock()) as state:
                    state.booked.pop(ticket, None)

    def pause(self, seconds: float) -> None:
        super().pause(seconds)
        if not self._sharing:
            return
        with self._slots.locked(self._clock()) as state:
            self._share(state)
            state.paused_until = max(state.paused_until, self._paused_until)

    def throttled(self, *, told: bool = True) -> None:
        if not self._sharing:
            super().throttled(told=told)
            return
        # The rate the pace measures at a 429 is the key's: every run's accepted answers.
        with self._slots.locked(self._clock()) as state:
            self._share(state)
            self._pace.accepted = state.accepted
        super().throttled(told=told)

    def succeeded(self, latency: float | None = None) -> None:
        self._unshared += 1
        super().succeeded(latency)

    def _soonest(self, state: SlotState) -> float:
        """When this run's next request may leave: an interval of its pace after the last of
        any run, not before the guard, not during a pause."""
        return max(state.last_sent + self._interval, state.not_before, state.paused_until,
                   self._paused_until)  # fmt: skip

    def _sent(self, state: SlotState, at: float) -> None:
        state.last_sent = max(state.last_sent, at)
        self._last_grant = at

    def _share(self, state: SlotState) -> None:
        """Add this run's accepted answers to the key's count; note the key's pause."""
        state.accepted += self._unshared
        self._unshared = 0
        self._shared_pause = state.paused_until

    def _space_from_last(self, now: float, gap: float) -> None:
        if not self._sharing:
            super()._space_from_last(now, gap)
            return
        with self._slots.locked(now) as state:
            self._share(state)
            state.not_before = max(state.not_before, state.last_sent + gap)

    def _guard(self, now: float, sent: float, next_at: float) -> None:
        if not self._sharing:
            super()._guard(now, sent, next_at)
            return
        with self._slots.locked(now) as state:
            self._share(state)
            if sent >= state.last_sent - self._interval / 2:
                state.not_before = max(state.not_before, next_at)
