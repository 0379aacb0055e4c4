"""The shared limiter in trio's virtual time: exact GCRA spacing, pauses, the pace's curve."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from batch.send.limiter import Limiter
from batch.settings import Rate


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


async def starts(limiter: Limiter, n: int, *, tasks: int = 1) -> list[float]:
    """Acquire ``n`` slots from ``tasks`` concurrent tasks; the sorted grant times."""
    times: list[float] = []
    per_task = [n // tasks + (1 if i < n % tasks else 0) for i in range(tasks)]

    async def worker(count: int) -> None:
        for _ in range(count):
            await limiter.acquire()
            times.append(anyio.current_time())

    async with anyio.create_task_group() as tg:
        for count in per_task:
            tg.start_soon(worker, count)
    return sorted(times)


async def test_even_spacing() -> None:
    """10 requests at 2/s start at exactly t = 0, 0.5, ..., 4.5."""
    assert await starts(Limiter(Rate.parse("2/s")), 10) == [i * 0.5 for i in range(10)]


async def test_even_spacing_across_tasks() -> None:
    """Spacing holds when many tasks share the limiter (concurrency never means bursts)."""
    assert await starts(Limiter(Rate.parse("4/s")), 12, tasks=5) == [i / 4 for i in range(12)]


async def test_per_minute_rate() -> None:
    """60/min spaces requests one second apart."""
    assert await starts(Limiter(Rate.parse("60/min")), 4) == [0, 1, 2, 3]


async def test_no_burst_after_idle() -> None:
    """After a long idle spell, requests are spaced again at once: idle earns no burst."""
    limiter = Limiter(Rate.parse("1/s"))
    assert await starts(limiter, 2) == [0, 1]
    await anyio.sleep(100)
    assert await starts(limiter, 3) == [101, 102, 103]


async def test_burst_tolerance_is_the_only_allowance() -> None:
    """With burst=3, an idle limiter lets exactly 3 go at once, then spaces the rest."""
    limiter = Limiter(Rate.parse("1/s"), burst=3)
    await anyio.sleep(50)
    assert await starts(limiter, 5) == [50, 50, 50, 51, 52]


async def test_pause_blocks_all_callers() -> None:
    """A pause holds every waiter until it ends, then spacing resumes from there."""
    limiter = Limiter(Rate.parse("10/s"))
    await limiter.acquire()
    limiter.pause(5)
    assert limiter.paused_until == 5
    assert await starts(limiter, 3, tasks=3) == pytest.approx([5, 5.1, 5.2])


async def test_pause_set_while_waiting_is_honoured() -> None:
    """A pause that starts while a caller already waits for its slot holds that caller too."""
    limiter = Limiter(Rate.parse("1/s"))
    await limiter.acquire()
    granted: list[float] = []

    async def waiter() -> None:
        await limiter.acquire()
        granted.append(anyio.current_time())

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.5)
        limiter.pause(10)  # until t = 10.5, later than the waiter's slot at t = 1
    assert granted == [10.5]


async def test_pause_only_extends() -> None:
    """A shorter pause never cuts a longer one short."""
    limiter = Limiter(Rate.parse("1/s"))
    limiter.pause(30)
    limiter.pause(2)
    assert limiter.paused_until == 30


async def test_throttled_slows_the_pace_once_per_episode() -> None:
    """429s arriving together slow the pace once (by ``decrease``); a later episode again."""
    limiter = Limiter(Rate.parse("8/s"), decrease=0.5)
    limiter.throttled()
    limiter.throttled()
    limiter.throttled()
    assert limiter.current_rate.per_second == 4
    await anyio.sleep(1)
    limiter.throttled()
    assert limiter.current_rate.per_second == 2


async def test_an_isolated_429_costs_a_fifth_not_half() -> None:
    """By default a 429 keeps 80% of the pace: less than half is given up."""
    limiter = Limiter(Rate.parse("10/s"))
    limiter.throttled()
    assert limiter.current_rate.per_second == pytest.approx(8)


async def test_throttled_widens_spacing() -> None:
    """After a 429 the next requests are spaced at the lower pace."""
    limiter = Limiter(Rate.parse("2/s"), decrease=0.5)
    await limiter.acquire()  # t = 0
    limiter.throttled()  # now 1/s
    assert await starts(limiter, 3) == [1, 2, 3]


async def test_throttled_has_a_floor() -> None:
    """Repeated 429 episodes never slow the pace below the floor share of the rate."""
    limiter = Limiter(Rate.parse("16/s"), floor=1 / 16, decrease=0.5)
    for _ in range(20):
        limiter.throttled()
        await anyio.sleep(0.1)
    assert limiter.current_rate.per_second == 1


async def test_succeeded_climbs_back_along_the_curve_never_above_the_rate() -> None:
    """Answers move the pace back up: fast at first, to just below the rate, then to the rate
    itself once the careful period is over, never above it."""
    limiter = Limiter(Rate.parse("10/s"), recovery=16, careful=128)  # 1.6 s, 12.8 s
    limiter.throttled()
    paces = []
    for at in (0.4, 0.8, 1.6, 10.0, 15.2, 16.0, 30.0):
        await anyio.sleep(at - anyio.current_time())
        limiter.succeeded()
        paces.append(limiter.current_rate.per_second)
    assert paces[0] < paces[1] < paces[2]
    assert paces[1] - paces[0] > paces[2] - paces[1]  # concave: the first steps are largest
    assert paces[2:4] == pytest.approx([9.9, 9.9])  # the plateau: 1% below the rate
    assert 9.9 < paces[4] < paces[5] <= 10  # the probe, gently
    assert paces[6] == 10


def test_current_rate_keeps_the_configured_unit() -> None:
    """The current rate prints in the unit the user wrote (60/min -> 48/min after a 429)."""
    limiter = Limiter(Rate.parse("60/min"), clock=lambda: 0.0)
    limiter.throttled()
    assert str(limiter.current_rate) == "48/min"
    assert limiter.configured_rate == Rate.parse("60/min")


@pytest.mark.parametrize(
    "kwargs", [{"burst": 0}, {"decrease": 1.0}, {"floor": 2.0}, {"margin": 1.0}, {"recovery": 0}]
)
def test_rejects_nonsense_knobs(kwargs: dict[str, Any]) -> None:
    """Knobs outside their range are refused at construction."""
    with pytest.raises(ValueError, match="must be"):
        Limiter(Rate.parse("1/s"), clock=lambda: 0.0, **kwargs)


async def test_cancelled_waiter_does_not_block_others() -> None:
    """A caller cancelled while waiting leaves the limiter usable for the next one."""
    limiter = Limiter(Rate.parse("1/s"))
    await limiter.acquire()
    with anyio.move_on_after(0.3):
        await limiter.acquire()
    # The cancelled waiter took no slot: the next one still starts at t = 1.
    assert await starts(limiter, 1) == [1]


async def test_no_increase_during_the_429_episode() -> None:
    """Answers arriving during a 429's pause do not speed the pace back up."""
    limiter = Limiter(Rate.parse("10/s"))
    limiter.pause(5)
    limiter.throttled()
    limiter.succeeded()
    limiter.succeeded(0.1)
    assert limiter.current_rate.per_second == 8
    await anyio.sleep(5.2)  # past the pause and one interval at the new pace
    limiter.succeeded()
    assert limiter.current_rate.per_second > 8


async def test_guard_spaces_from_the_estimated_arrival() -> None:
    """After a 429, an answer whose latency is 30 ms above the lowest seen delays the next
    request by those 30 ms: it left one interval after the last one's estimated arrival."""
    limiter = Limiter(Rate.parse("1/s"))
    for _ in range(300):  # the latency floor, well seen: 0.2 s
        await limiter.acquire()
        await anyio.sleep(0.2)
        limiter.succeeded(0.2)
    limiter.throttled()  # a careful period begins
    await anyio.sleep(20)
    limiter.succeeded()  # climbed back to the plateau, 1% below the rate: 1.0101 s apart
    await limiter.acquire()
    sent = anyio.current_time()
    await anyio.sleep(0.23)
    limiter.succeeded(0.23)
    await limiter.acquire()
    assert anyio.current_time() - sent == pytest.approx(1.03, abs=1e-3)


async def test_no_guard_without_a_429() -> None:
    """Latencies alone never slow a limiter that has not been refused: exact spacing."""
    limiter = Limiter(Rate.parse("1/s"))
    times = []
    for latency in (0.2, 0.25, 0.21, 0.3):
        await limiter.acquire()
        times.append(anyio.current_time())
        await anyio.sleep(latency)
        limiter.succeeded(latency)
    assert times == [0, 1, 2, 3]


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), min_size=1, max_size=25),
    per_second=st.sampled_from([0.5, 1.0, 2.0, 7.0]),
)
def test_grants_are_exactly_gcra(gaps: list[float], per_second: float) -> None:
    """For any arrivals, the n-th grant is at max(n-th arrival, previous grant + interval):
    never early (no burst), never later than needed (no wasted capacity)."""
    limiter_rate = Rate(per_second, 1.0)
    arrivals = list(itertools.accumulate(gaps))
    grants: dict[int, float] = {}

    async def main() -> None:
        limiter = Limiter(limiter_rate)

        async def caller(i: int, at: float) -> None:
            await trio.sleep_until(at)
            await limiter.acquire()
            grants[i] = trio.current_time()

        async with trio.open_nursery() as nursery:
            for i, at in enumerate(arrivals):
                nursery.start_soon(caller, i, at)

    # trio directly, with a clock whose epoch is 0, so arrival times are absolute.
    trio.run(main, clock=MockClock(autojump_threshold=0))
    expected: list[float] = []
    for at in arrivals:
        expected.append(at if not expected else max(at, expected[-1] + 1 / per_second))
    # Callers arriving at the same instant may be served in either order: compare the times.
    assert sorted(grants.values()) == pytest.approx(expected)


def oversleeping(extra: float) -> Callable[[float], Awaitable[None]]:
    """A sleep that wakes ``extra`` seconds late, like a busy event loop."""

    async def sleep(seconds: float) -> None:
        await anyio.sleep(seconds + extra)

    return sleep


async def test_late_wake_ups_do_not_slow_the_pace() -> None:
    """Waking 10 ms late every time still gives exactly the configured rate on average."""
    limiter = Limiter(Rate.parse("1/s"), sleep=oversleeping(0.01))
    times = await starts(limiter, 10)
    assert times == pytest.approx([0] + [n + 0.01 for n in range(1, 10)])


async def test_a_stalled_loop_never_makes_a_burst() -> None:
    """Waking far too late is made up for by at most a quarter interval: no back-to-back."""
    limiter = Limiter(Rate.parse("1/s"), sleep=oversleeping(0.6))
    times = await starts(limiter, 6, tasks=3)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.75 - 1e-9


async def test_uncontended_due_acquire_is_granted_without_yielding() -> None:
    """With nobody waiting and the slot due, acquire grants at once: no checkpoint, no sleep."""
    limiter = Limiter(Rate.parse("10/s"))
    with trio.testing.assert_no_checkpoints():
        await limiter.acquire()
    await anyio.sleep(0.1)
    with trio.testing.assert_no_checkpoints():
        await limiter.acquire()
    assert anyio.current_time() == pytest.approx(0.1)
    # The fast path still spaces: the next slot is 0.1 s on, so this one waits for it.
    with trio.testing.assert_checkpoints():
        await limiter.acquire()
    assert anyio.current_time() == pytest.approx(0.2)


async def test_fast_path_never_jumps_the_queue() -> None:
    """A caller arriving when the slot is due but another caller still waits queues behind it."""
    # The waiter's sleep wakes 0.5 s late (a busy loop): from t = 1 to 1.5 its slot is due
    # while it has not run yet, which is when a newcomer could otherwise slip in first.
    limiter = Limiter(Rate.parse("1/s"), sleep=oversleeping(0.5))
    await limiter.acquire()  # t = 0
    order: list[tuple[str, float]] = []

    async def caller(name: str, arrive: float) -> None:
        await anyio.sleep(arrive)
        await limiter.acquire()
        order.append((name, anyio.current_time()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller, "waiter", 0.0)
        tg.start_soon(caller, "newcomer", 1.2)
    assert [name for name, _ in order] == ["waiter", "newcomer"]
    assert order[0][1] == pytest.approx(1.5)
    # Counted as sent at 1.25 (a quarter interval made up), so the newcomer's slot is 2.25.
    assert order[1][1] == pytest.approx(2.75)


async def test_contended_callers_are_served_in_arrival_order() -> None:
    """Callers that must wait are granted one interval apart, first come first served."""
    limiter = Limiter(Rate.parse("2/s"))
    await limiter.acquire()  # t = 0: the next slot is t = 0.5, so everyone below waits
    order: list[tuple[int, float]] = []

    async def caller(i: int) -> None:
        await anyio.sleep(i * 0.01)  # arrive in the order 0, 1, 2, ...
        await limiter.acquire()
        order.append((i, anyio.current_time()))

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(caller, i)
    assert [i for i, _ in order] == list(range(6))
    assert [at for _, at in order] == pytest.approx([0.5 * (i + 1) for i in range(6)])
