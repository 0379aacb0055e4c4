"""Change windows agreed in a named time zone (issue 25): parsing, and every night of a year,
both clock changes included, resolved and enforced in virtual time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import anyio
import pytest
from trio.testing import MockClock

from batch.engine.window import (
    Window,
    enforce,
    format_moment,
    parse_bound,
    resolve,
    waiting_message,
)

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    "text", ["01:00 Europe/London", "01:00[Europe/London]", " 01:00:00  Europe/London "]
)
def test_a_time_of_day_may_name_its_zone(text: str) -> None:
    assert parse_bound(text) == time(1, tzinfo=LONDON)
    assert parse_bound(text).tzinfo is LONDON


def test_a_moment_may_name_its_zone_and_its_offset_must_agree() -> None:
    summer = parse_bound("2027-07-01T01:00 Europe/London")
    assert summer == utc(2027, 7, 1, 0, 0)  # BST is UTC+1
    assert parse_bound("2027-07-01T01:00+01:00[Europe/London]") == summer
    with pytest.raises(ValueError, match="is not Europe/London time"):
        parse_bound("2027-07-01T01:00+00:00[Europe/London]")


def test_an_unknown_zone_is_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match=r"'Europe/Londn'.*not an IANA time zone.*Europe/London"):
        parse_bound("01:00 Europe/Londn")
    with pytest.raises(ValueError, match="not an ISO-8601"):
        parse_bound("one Europe/London")


def _nights(zone: ZoneInfo, year: int) -> dict[date, Window]:
    """Each night's 01:00-05:00 window of ``year``, resolved at noon UTC the day before."""
    start, end = time(1, tzinfo=zone), time(5, tzinfo=zone)
    nights = {}
    day = date(year, 1, 1)
    while day.year == year:
        noon_before = datetime.combine(day - timedelta(days=1), time(12), tzinfo=UTC)
        nights[day] = resolve(start, end, noon_before)
        day += timedelta(days=1)
    return nights


@pytest.mark.parametrize(
    ("zone", "forward", "back"),
    [
        (LONDON, date(2027, 3, 28), date(2027, 10, 31)),
        (NEW_YORK, date(2027, 3, 14), date(2027, 11, 7)),
    ],
)
def test_every_night_of_a_year_keeps_its_wall_clock_and_the_length_follows_the_clocks(
    zone: ZoneInfo, forward: date, back: date
) -> None:
    """01:00-05:00 lasts 4 hours every night but two: 3 when the clocks go forward, 5 when
    they go back. Every window opens and closes at 01:00 and 05:00 on that night's clock."""
    lengths: dict[timedelta, list[date]] = {}
    for night, win in _nights(zone, 2027).items():
        assert win.daily
        assert win.not_before is not None
        assert win.not_after is not None
        assert win.not_before.astimezone(zone).date() == night
        assert win.not_after.astimezone(zone).time() == time(5)
        length = win.not_after.astimezone(UTC) - win.not_before.astimezone(UTC)
        lengths.setdefault(length, []).append(night)
    assert lengths[timedelta(hours=3)] == [forward]
    assert lengths[timedelta(hours=5)] == [back]
    assert len(lengths[timedelta(hours=4)]) == 363


def test_a_start_that_does_not_exist_or_happens_twice_is_resolved_the_documented_way() -> None:
    """London: 01:30 does not exist on 2027-03-28 (01:00 GMT jumps to 02:00 BST): it is read
    as if the clocks had not changed yet, 01:30 GMT. It happens twice on 2027-10-31: the first
    time, 01:30 BST."""
    start, end = time(1, 30, tzinfo=LONDON), time(5, tzinfo=LONDON)
    gap = resolve(start, end, utc(2027, 3, 27, 12))
    assert gap.not_before is not None
    assert gap.not_after is not None
    assert gap.not_before.astimezone(UTC) == utc(2027, 3, 28, 1, 30)
    assert gap.not_before.time() == time(2, 30)  # shown as the clocks will show it: BST
    assert gap.not_after.astimezone(UTC) == utc(2027, 3, 28, 4, 0)
    twice = resolve(start, end, utc(2027, 10, 30, 12))
    assert twice.not_before is not None
    assert twice.not_after is not None
    assert twice.not_before.astimezone(UTC) == utc(2027, 10, 31, 0, 30)
    assert twice.not_after.astimezone(UTC) == utc(2027, 10, 31, 5, 0)


def test_messages_show_the_zone_and_utc() -> None:
    win = resolve(time(1, tzinfo=LONDON), time(5, tzinfo=LONDON), utc(2027, 10, 30, 12))
    assert win.zone is LONDON
    assert format_moment(win.not_before) == (  # type: ignore[arg-type]
        "2027-10-31 01:00:00 BST (Europe/London) = 2027-10-31 00:00:00 UTC"
    )
    assert win.describe() == (
        "2027-10-31 01:00:00 BST -> 2027-10-31 05:00:00 GMT (Europe/London), "
        "2027-10-31 00:00:00 UTC -> 2027-10-31 05:00:00 UTC"
    )
    line = waiting_message(win, timedelta(hours=12))
    assert "opens at 2027-10-31 01:00:00 BST (Europe/London) = 2027-10-31 00:00:00 UTC" in line
    # Fixed offsets are shown in UTC alone, as before.
    assert format_moment(utc(2027, 1, 1, 1)) == "2027-01-01 01:00:00 UTC"


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    """Trio with a clock that jumps straight to the next deadline: exact, instant timing."""
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("night_before", "hours"),
    [(utc(2027, 10, 30, 12), 5.0), (utc(2027, 3, 27, 12), 3.0), (utc(2027, 6, 1, 12), 4.0)],
)
async def test_the_run_sends_for_as_long_as_the_clocks_say(
    night_before: datetime, hours: float
) -> None:
    """In virtual time: the window opens at 01:00 London time and closes at 05:00 London
    time; what lies between is 5, 3 or 4 real hours depending on the night."""
    begin = anyio.current_time()

    def now() -> datetime:
        return night_before + timedelta(seconds=anyio.current_time() - begin)

    win = resolve(time(1, tzinfo=LONDON), time(5, tzinfo=LONDON), now())
    seen: dict[str, datetime] = {}

    def close() -> None:
        seen["closed"] = now()

    async with enforce(win, now=now, on_close=close, every=600):
        seen["opened"] = now()
        await anyio.sleep(24 * 3600)  # the body would send far longer than the window
    opened, closed = seen["opened"], seen["closed"]
    # 01:00 does not exist the night the clocks go forward: the window opens at the jump.
    assert opened.astimezone(LONDON).time() == (time(2) if hours == 3 else time(1))
    assert closed.astimezone(LONDON).time() == time(5)
    assert (closed - opened) == timedelta(hours=hours)


def test_only_a_one_off_window_ends_and_only_a_daily_one_promises_a_next() -> None:
    from batch.engine.guards import window_closed_message
    from batch.engine.window import ended

    now = utc(2027, 1, 2, 12)
    one_off = Window(None, utc(2027, 1, 2, 5))
    nightly = resolve(time(1, tzinfo=LONDON), time(5, tzinfo=LONDON), utc(2027, 1, 2, 4))
    over = ended(one_off, now)
    assert over is not None
    assert "ended at 2027-01-02 05:00:00 UTC (a one-off window; it is now 2027-01-02 12:00" in over
    assert ended(nightly, now) is None  # tonight's opens again
    assert ended(Window(None, utc(2027, 1, 2, 13)), now) is None  # not over yet
    assert "no next one" in window_closed_message(one_off)
    assert "next window" not in window_closed_message(one_off)
    assert "run the same command in the next window" in window_closed_message(nightly)
