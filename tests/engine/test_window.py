"""Change windows: bounds, daily windows, fitting the pace, waiting and closing (virtual time)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path

import anyio
import pytest
from trio.testing import MockClock

from batch.engine.rowloop import RunReport, execute, pending
from batch.engine.stop import StopToken
from batch.engine.window import (
    Window,
    close_at,
    enforce,
    fit_warning,
    fits,
    format_duration,
    is_closed,
    is_open,
    parse_bound,
    resolve,
    wait_for_open,
    waiting_message,
)
from batch.journal.journal import Journal, RunIdentity, journal_path
from batch.model import Call, Outcome, RowResult
from batch.settings import Rate

BASE = datetime(2026, 12, 5, 0, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    """Trio with a clock that jumps straight to the next deadline: exact, instant timing."""
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


def virtual_now() -> datetime:
    """Wall-clock time derived from the virtual clock, so waits are exact and instant."""
    return BASE + timedelta(seconds=anyio.current_time())


def at(hour: int, minute: int = 0, day: int = 5) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def test_parse_bound_moment_and_time_of_day() -> None:
    """A bound is a date-time or a time of day, each with its offset kept."""
    assert parse_bound("2026-12-05T01:00:00+00:00") == at(1)
    assert parse_bound("2026-12-05T02:00:00+01:00") == at(1)
    assert parse_bound("2026-12-05T01:00:00Z") == at(1)
    assert parse_bound(" 01:30+00:00 ") == time(1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-12-05T01:00:00", "no UTC offset"),
        ("01:00", "no UTC offset"),
        ("2026-12-05", "no UTC offset"),
        ("tonight", "not an ISO-8601"),
        ("2026-13-05T01:00:00+00:00", "not an ISO-8601"),
    ],
)
def test_parse_bound_refuses_with_an_example(text: str, says: str) -> None:
    """A bound without an offset or not a date-time is refused with an example to copy."""
    with pytest.raises(ValueError, match=says) as info:
        parse_bound(text)
    assert "2026-12-05T01:00:00+00:00" in str(info.value)


def test_resolve_one_off_window_and_order() -> None:
    """Moments pass through; an end at or before the start is refused."""
    assert resolve(at(1), at(5), BASE) == Window(at(1), at(5))
    assert resolve(None, at(5), BASE) == Window(None, at(5))
    with pytest.raises(ValueError, match="later than"):
        resolve(at(5), at(5), BASE)


def test_resolve_refuses_mixed_kinds() -> None:
    """A time of day on one side and a date-time on the other is refused."""
    with pytest.raises(ValueError, match="both be times of day"):
        resolve(time(1, tzinfo=UTC), at(5), BASE)


@pytest.mark.parametrize(
    ("now", "opens", "closes"),
    [
        (at(0, 30), at(1), at(5)),  # before tonight's window: wait for it
        (at(2), at(1), at(5)),  # inside: open now, close at 05:00
        (at(5), at(1, day=6), at(5, day=6)),  # at the close: the next night
        (at(23), at(1, day=6), at(5, day=6)),  # after: the next night
    ],
)
def test_daily_window_is_the_open_or_next_occurrence(
    now: datetime, opens: datetime, closes: datetime
) -> None:
    """Times of day name every night's window; the one open now, else the next one."""
    win = resolve(time(1, tzinfo=UTC), time(5, tzinfo=UTC), now)
    assert win == Window(opens, closes, daily=True)


def test_daily_window_across_midnight() -> None:
    """An end earlier than the start means the next morning, also when we are past midnight."""
    start, end = time(23, tzinfo=UTC), time(3, tzinfo=UTC)
    assert resolve(start, end, at(2)) == Window(at(23, day=4), at(3), daily=True)
    assert resolve(start, end, at(12)) == Window(at(23), at(3, day=6), daily=True)


def test_daily_window_in_another_offset() -> None:
    """A daily window written in UTC+01:00 opens at that local time."""
    plus_one = timezone(timedelta(hours=1))
    win = resolve(time(2, tzinfo=plus_one), time(6, tzinfo=plus_one), at(0))
    assert win == Window(at(1), at(5), daily=True)


def test_daily_window_must_not_be_empty() -> None:
    """The same start and end time is refused."""
    with pytest.raises(ValueError, match="empty or spans a whole day"):
        resolve(time(1, tzinfo=UTC), time(1, tzinfo=UTC), BASE)


def test_open_and_closed() -> None:
    """Before the start is neither open nor closed; from not_after on it is closed."""
    win = Window(at(1), at(5))
    assert not is_open(win, at(0))
    assert not is_closed(win, at(0))
    assert is_open(win, at(1))
    assert is_open(win, at(4, 59))
    assert is_closed(win, at(5))
    assert not is_open(win, at(5))
    assert not is_closed(Window(), at(23))


def test_fits_counts_from_the_opening() -> None:
    """ETA = opening (or now) + (rows - 1) intervals; it fits only if that is before the close."""
    win = Window(at(1), at(2))
    ok, eta = fits(win, at(0), 3600, Rate(60, 60.0))
    assert (ok, eta) == (True, at(1) + timedelta(seconds=3599))
    ok, eta = fits(win, at(1, 30), 3600, Rate(60, 60.0))
    assert not ok
    assert eta == at(1, 30) + timedelta(seconds=3599)
    assert fits(Window(), at(0), 10**6, Rate(1, 3600.0))[0]


def test_fit_warning_says_rows_eta_and_window_end() -> None:
    """When the rows cannot finish in time the warning names rows, pace, ETA and the close."""
    win = Window(None, at(1))
    text = fit_warning(win, at(0), 7200, Rate(60, 60.0))
    assert text is not None
    assert "7200 rows at 60/min" in text
    assert "1h 59m 59s" in text
    assert "2026-12-05 01:59:59 UTC" in text
    assert "closes at 2026-12-05 01:00:00 UTC" in text
    assert fit_warning(win, at(0), 60, Rate(60, 60.0)) is None


def test_format_duration() -> None:
    """Durations read like a countdown and round up."""
    assert format_duration(timedelta(seconds=3723)) == "1h 02m 03s"
    assert format_duration(timedelta(seconds=245)) == "4m 05s"
    assert format_duration(timedelta(seconds=6.2)) == "7s"


async def test_wait_for_open_waits_exactly_with_a_countdown() -> None:
    """Before the window opens it sleeps until not_before, reporting the time left each step."""
    seen: list[timedelta] = []
    win = Window(BASE + timedelta(seconds=150), None)
    await wait_for_open(win, now=virtual_now, on_wait=seen.append, every=60)
    assert virtual_now() == BASE + timedelta(seconds=150)
    assert seen == [timedelta(seconds=s) for s in (150, 90, 30)]


async def test_wait_for_open_returns_at_once_when_open() -> None:
    """An open window (or none) does not wait or count down."""
    seen: list[timedelta] = []
    await wait_for_open(
        Window(BASE - timedelta(hours=1), None), now=virtual_now, on_wait=seen.append
    )
    await wait_for_open(Window(), now=virtual_now, on_wait=seen.append)
    assert anyio.current_time() == 0
    assert seen == []


async def test_wait_for_open_rereads_the_clock() -> None:
    """If the wall clock jumps ahead during a nap, the wait ends at the real opening, not later."""
    jump = timedelta(0)

    def now() -> datetime:
        return virtual_now() + jump

    async def sleep(seconds: float) -> None:
        nonlocal jump
        jump = timedelta(seconds=100)  # e.g. NTP stepped the clock while we slept
        await anyio.sleep(seconds)

    await wait_for_open(Window(BASE + timedelta(seconds=120), None), now=now, sleep=sleep)
    assert anyio.current_time() == 60  # one 60 s nap, then 20 s of wall clock were already due


async def test_close_at_stops_a_run_at_the_close_and_in_flight_work_finishes() -> None:
    """At not_after no new row starts; a row already in flight finishes; the rest wait."""
    # Closing between two paced starts: at the same instant the order of wake-ups is unspecified.
    win = Window(None, BASE + timedelta(seconds=9.5))
    closed = anyio.Event()
    started: list[int] = []
    finished: list[int] = []

    async def row(n: int) -> None:
        started.append(n)
        await anyio.sleep(3)  # a slow request, still in flight at the close
        finished.append(n)

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: close_at(win, now=virtual_now, on_close=closed.set))
        async with anyio.create_task_group() as rows:
            for n in range(100):
                if closed.is_set():
                    break
                rows.start_soon(row, n)
                await anyio.sleep(1)  # pacing: one row a second
        tg.cancel_scope.cancel()
    assert started == list(range(10))  # rows at t=0..9 started; none after the close
    assert finished == started  # the in-flight ones were let finish
    assert anyio.current_time() == 12  # the last row started at 9 and took 3 s


async def test_close_at_fires_at_once_when_already_closed() -> None:
    """A window that closed before the run starts stops it before any row."""
    calls: list[float] = []
    win = Window(None, BASE - timedelta(seconds=1))
    await close_at(win, now=virtual_now, on_close=lambda: calls.append(anyio.current_time()))
    assert calls == [0]


async def test_a_stopped_run_resumes_in_the_next_nights_window() -> None:
    """Resolved again the next night, a daily window waits for its opening and then stays open."""
    daily = (time(1, tzinfo=UTC), time(5, tzinfo=UTC))
    tonight = resolve(*daily, virtual_now())
    await wait_for_open(tonight, now=virtual_now)
    assert virtual_now() == at(1)
    await close_at(tonight, now=virtual_now, on_close=lambda: None)
    assert virtual_now() == at(5)
    assert is_closed(tonight, virtual_now())
    next_night = resolve(*daily, virtual_now())
    await wait_for_open(next_night, now=virtual_now)
    assert virtual_now() == at(1, day=6)
    assert is_open(next_night, virtual_now())


def test_waiting_message_names_the_opening_and_time_left() -> None:
    """The countdown line says when the window opens and how long is left."""
    text = waiting_message(Window(at(1), at(5)), timedelta(minutes=62, seconds=3))
    assert text == (
        "waiting for the change window: opens at 2026-12-05 01:00:00 UTC, in 1h 02m 03s"
    )


async def test_the_orchestrator_stops_at_the_close_and_resumes_in_the_next_window(
    tmp_path: Path,
) -> None:
    """With the real orchestrator and journal: the close stops new rows, in-flight ones finish,
    and the same run in the next window sends only the rest, none twice."""
    calls = tuple(Call(row=n, routing_id=n, body="{}") for n in range(1, 21))
    (tmp_path / "in.csv").write_text("routing_id\n")
    results = tmp_path / "in.results.csv"
    identity = RunIdentity.of(tmp_path / "in.csv", "http://127.0.0.1:1/api/v2", results)
    sent: list[int] = []

    async def send(call: Call) -> RowResult:
        sent.append(call.row)
        await anyio.sleep(3)  # every request takes 3 s: two in flight at a time
        return RowResult(call.row, str(call.routing_id), Outcome.SUCCEEDED, 200, 1, request="{}")

    async def one_window(win: Window) -> RunReport:
        stop = StopToken()

        def closing() -> None:
            stop.request("window_closed", "the change window closed")

        with Journal.open(journal_path(results), identity) as journal:
            async with enforce(win, now=virtual_now, on_close=closing):
                return await execute(
                    pending(calls, journal), send=send, journal=journal, concurrency=2, stop=stop
                )

    first = await one_window(Window(None, BASE + timedelta(seconds=10)))
    assert first.stopped is not None
    assert first.stopped.reason == "window_closed"
    assert sent == list(range(1, 9))  # started at 0, 0, 3, 3, 6, 6, 9, 9; none after 10 s
    assert first.outcomes == {Outcome.SUCCEEDED: 8}  # the two in flight at the close finished
    assert anyio.current_time() == 12
    second = await one_window(Window(BASE + timedelta(days=1), BASE + timedelta(days=1, hours=4)))
    assert second.stopped is None
    assert sorted(sent) == list(range(1, 21))  # the rest, and no row sent twice
    assert virtual_now() == BASE + timedelta(days=1, seconds=18)


async def test_enforce_stops_before_the_first_row_when_already_closed() -> None:
    """A run started after its window closed asks to stop once, before its body runs."""
    calls: list[float] = []
    win = Window(None, BASE - timedelta(minutes=1))
    async with enforce(win, now=virtual_now, on_close=lambda: calls.append(anyio.current_time())):
        assert calls == [0]
        await anyio.sleep(3600)
    assert calls == [0]  # not a second time from a watcher


async def test_enforce_waits_then_closes_once_during_the_body() -> None:
    """enforce waits for the opening, calls on_close at not_after during the body, and once."""
    closes: list[float] = []
    waits: list[timedelta] = []
    win = Window(BASE + timedelta(seconds=30), BASE + timedelta(seconds=90))
    async with enforce(
        win,
        now=virtual_now,
        on_close=lambda: closes.append(anyio.current_time()),
        on_wait=waits.append,
        every=10,
    ):
        assert anyio.current_time() == 30
        await anyio.sleep(120)
    assert closes == [90]
    assert waits[0] == timedelta(seconds=30)
    assert len(waits) == 3
