"""Change windows: when a run may start sending, and when it must stop starting new rows.

A bound is either a moment (``2026-12-05T01:00:00+00:00``, a one-off change window) or a time of
day (``01:00:00+00:00``, a daily window for a nightly job, so the same job file works every
night). Each names where its clock is: a UTC offset, or an IANA time zone after it
(``01:00 Europe/London``, or ``01:00[Europe/London]`` as RFC 9557 writes it). A window that moves
with the machine's time zone is a window nobody agreed to; one agreed in London time follows
London's clocks, summer and winter. Daily bounds are turned into moments by :func:`resolve` at the
start of a run.

The nights the clocks change, a daily window in a named zone keeps its wall-clock times: a
01:00-05:00 window lasts 5 hours the night the clocks go back and 3 the night they go forward.
A time that does not exist that night (skipped by the clocks going forward) is read as if the
clocks had not changed yet, so it lands that much later; a time that happens twice (the clocks
going back) is its first occurrence. These are the rules of RFC 5545 and of JavaScript's
Temporal ("compatible").

Time is injected (``now``, ``sleep``) so waiting and closing are tested in virtual time.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio

from batch.settings import Rate

Bound = datetime | time
_YEAR = re.compile(r"^\d{4}-")
# "01:00 Europe/London", "01:00[Europe/London]", "2026-12-05T01:00+00:00[Europe/London]"
_ZONED = re.compile(r"^(?P<clock>.+?)(?:\s+(?P<name>[A-Za-z][\w+/-]*)|\[(?P<bracketed>[^\]]+)\])$")
_EXAMPLE = (
    "write e.g. 2026-12-05T01:00:00+00:00 (or 01:00:00+00:00 for every night), or name the "
    "time zone: 01:00 Europe/London"
)


@dataclass(frozen=True, slots=True)
class Window:
    """A change window in moments (aware datetimes); ``None`` leaves that side open.

    A moment in a named zone that the clocks pass twice is never ``==`` to a moment in another
    tzinfo (PEP 495): compare bounds with ``<``/``>`` or in UTC, as this module does."""

    not_before: datetime | None = None
    not_after: datetime | None = None
    daily: bool = False  # resolved from times of day: the same window opens again tomorrow

    def __post_init__(self) -> None:
        for bound in (self.not_before, self.not_after):
            if bound is not None and bound.utcoffset() is None:
                raise ValueError("window bounds must be aware datetimes (with a UTC offset)")
        if self.not_before and self.not_after and _utc(self.not_after) <= _utc(self.not_before):
            raise ValueError("not_after must be later than not_before")

    @property
    def zone(self) -> ZoneInfo | None:
        """The IANA time zone the window was agreed in, if it names one (for messages)."""
        for bound in (self.not_before, self.not_after):
            if bound is not None and isinstance(bound.tzinfo, ZoneInfo):
                return bound.tzinfo
        return None

    @property
    def is_set(self) -> bool:
        return self.not_before is not None or self.not_after is not None

    def describe(self) -> str:
        """``2026-12-05 01:00 UTC -> 2026-12-05 05:00 UTC`` (open sides say so)."""
        if self.zone is not None:  # the agreed times first, then the same span in UTC
            local = f"{_local(self.not_before, 'now')} -> {_local(self.not_after, 'no end')}"
            utc = f"{_in_utc(self.not_before, 'now')} -> {_in_utc(self.not_after, 'no end')}"
            return f"{local} ({self.zone.key}), {utc}"
        start = format_moment(self.not_before) if self.not_before else "now"
        end = format_moment(self.not_after) if self.not_after else "no end"
        return f"{start} -> {end}"


def parse_bound(text: str) -> Bound:
    """Parse an ISO-8601 moment or time of day; either carries a UTC offset or names a zone.

    Raises ValueError whose text says what to write instead (callers add file/flag and key).
    """
    text = text.strip()
    zoned = _ZONED.match(text)
    clock, zone = text, None
    if zoned:
        clock = zoned.group("clock")
        zone = time_zone(zoned.group("name") or zoned.group("bracketed"), text)
    value: Bound
    try:
        # A leading year means a moment; otherwise a time of day.
        value = datetime.fromisoformat(clock) if _YEAR.match(clock) else time.fromisoformat(clock)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 date-time or time: {_EXAMPLE}") from None
    if zone is not None:
        value = _in_zone(value, zone, text)
    return check_bound(value, text)


def time_zone(name: str, shown: str) -> ZoneInfo:
    """The IANA zone ``name`` (``Europe/London``); a ValueError names the bound it came in."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{shown!r} names the time zone {name!r}, which is not an IANA time zone: write one "
            "like Europe/London or America/New_York (or a UTC offset like +01:00)"
        ) from None


def _in_zone(value: Bound, zone: ZoneInfo, shown: str) -> Bound:
    """A bound read in ``zone``: a wall-clock time gets the zone; a moment that also carries an
    offset must be that zone's offset then (``...+01:00[Europe/London]`` in summer)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=zone)
    if isinstance(value, datetime):
        local = value.astimezone(zone)
        if local.utcoffset() != value.utcoffset():
            raise ValueError(
                f"{shown!r}: {value.isoformat()} is not {zone.key} time (it is "
                f"{local.isoformat()} there): drop the offset or the zone"
            )
        return local
    raise ValueError(f"{shown!r}: give a UTC offset or a time zone, not both: {_EXAMPLE}")


def check_bound(value: object, shown: str | None = None) -> Bound:
    """Accept an aware datetime or time (TOML gives these natively); say what is wrong otherwise."""
    shown = shown if shown is not None else str(value)
    if isinstance(value, time) and isinstance(value.tzinfo, ZoneInfo):
        return value  # a time of day in a named zone: its offset depends on the night
    if isinstance(value, datetime | time):
        if value.utcoffset() is None:
            raise ValueError(f"{shown!r} has no UTC offset: {_EXAMPLE}")
        return value
    if isinstance(value, date):
        raise ValueError(f"{shown!r} is a date without a time: {_EXAMPLE}")
    raise ValueError(f"{shown!r} is not a date-time: {_EXAMPLE}")


def resolve(not_before: Bound | None, not_after: Bound | None, now: datetime) -> Window:
    """Turn bounds into a Window of moments, as seen at ``now``.

    Times of day name a daily window: the occurrence still open at ``now``, else the next one.
    Raises ValueError (the caller names the file or flag) for a mix of kinds or an empty window.
    """
    # datetime is not a subclass of time, so isinstance(b, time) means "a time of day".
    if isinstance(not_before, time) and isinstance(not_after, time):
        return _daily(not_before, not_after, now)
    if isinstance(not_before, time) or isinstance(not_after, time):
        raise ValueError(
            "not_before and not_after must both be times of day (a daily window) or both be "
            "date-times (one window); write both the same way"
        )
    if not_before and not_after and _utc(not_after) <= _utc(not_before):
        raise ValueError(
            f"not_after ({not_after.isoformat()}) must be later than not_before "
            f"({not_before.isoformat()})"
        )
    return Window(not_before, not_after)


def _daily(start: time, end: time, now: datetime) -> Window:
    """The occurrence of a daily window that is open at ``now``, or else the next one.

    In a named zone the wall-clock times are kept each night (fold 0: a skipped time lands
    later, a repeated one is its first occurrence); the length follows the clocks."""
    tz = start.tzinfo
    today = now.astimezone(tz).date()
    for offset in (-1, 0, 1):
        day = today + timedelta(days=offset)
        opens = datetime.combine(day, start.replace(tzinfo=None), tzinfo=tz)
        closes = datetime.combine(day, end.replace(tzinfo=None), tzinfo=end.tzinfo)
        if closes.replace(tzinfo=None) <= opens.replace(tzinfo=None):
            closes += timedelta(days=1)  # an end before the start means the next morning
        if _utc(closes) <= _utc(opens) or _utc(closes) - _utc(opens) >= timedelta(days=1):
            raise ValueError(
                f"daily window {_clock(start)} -> {_clock(end)} is empty or spans a "
                "whole day; give different times"
            )
        if _utc(closes) > now:
            # Through UTC and back: a skipped time becomes the real one (01:30 GMT that night
            # is 02:30 BST), so the window shows the times the clocks will show.
            return Window(_real(opens), _real(closes), daily=True)
    raise AssertionError("unreachable: one of three consecutive days holds the next window")


def ended(window: Window, now: datetime) -> str | None:
    """Why a one-off window that is already over sends nothing (None while it is not): a new
    run is refused with it; a daily window is never over, it opens again tomorrow."""
    if window.daily or window.not_after is None or not is_closed(window, now):
        return None
    return (
        f"the change window ended at {format_moment(window.not_after)} (a one-off window; it is "
        f"now {format_moment(now)}), so nothing would be sent: give the next agreed window "
        "(--not-before/--not-after, or [window] in a job file), or times of day for a window "
        "that opens every night"
    )


def is_open(window: Window, now: datetime) -> bool:
    return not too_early(window, now) and not is_closed(window, now)


def too_early(window: Window, now: datetime) -> bool:
    return window.not_before is not None and now < window.not_before


def is_closed(window: Window, now: datetime) -> bool:
    """True once ``not_after`` has come: start no new row."""
    return window.not_after is not None and now >= window.not_after


def eta(now: datetime, rows: int, rate: Rate) -> datetime:
    """When ``rows`` requests paced at ``rate`` are done (first one sent at once), ignoring retries.

    A lower bound: retries and slow answers only make it later, which is why a window that
    barely fits is reported as not fitting.
    """
    return now + timedelta(seconds=max(rows - 1, 0) * rate.interval)


def fits(window: Window, now: datetime, rows: int, rate: Rate) -> tuple[bool, datetime]:
    """Whether ``rows`` can finish before the window closes at ``rate``, and the estimated end.

    Counting starts when the window opens if it has not yet. Called at the start of a run to
    "say so plainly"; the run goes on anyway and stops at the close.
    """
    start = max(now, window.not_before) if window.not_before else now
    finish = eta(start, rows, rate)
    return (window.not_after is None or finish < window.not_after), finish


def fit_warning(window: Window, now: datetime, rows: int, rate: Rate) -> str | None:
    """One plain sentence when the rows cannot finish inside the window, else None."""
    ok, finish = fits(window, now, rows, rate)
    if ok or window.not_after is None:
        return None
    start = max(now, window.not_before) if window.not_before else now
    return (
        f"{rows} rows at {rate} need about {format_duration(finish - start)} and would finish "
        f"around {format_moment(finish)}, after the window closes at "
        f"{format_moment(window.not_after)}: the run will stop starting rows at the close, and "
        + (
            "the same command in the next window resumes"
            if window.daily
            else "the rest needs a new window (a one-off window has no next one)"
        )
    )


async def wait_for_open(
    window: Window,
    *,
    now: Callable[[], datetime],
    sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    on_wait: Callable[[timedelta], None] | None = None,
    every: float = 60.0,
) -> None:
    """Sleep until ``not_before``, calling ``on_wait(remaining)`` first and about every ``every`` s.

    Returns at once when there is no ``not_before`` or it has passed. It does not check the
    close: a caller that waited checks :func:`is_closed` next. The clock is read again after
    every nap, so a suspended laptop or a clock step does not make it oversleep.
    """
    if window.not_before is None:
        return
    while True:
        remaining = window.not_before - now()
        if remaining <= timedelta(0):
            return
        if on_wait is not None:
            on_wait(remaining)
        await sleep(min(remaining.total_seconds(), every))


async def close_at(
    window: Window,
    *,
    now: Callable[[], datetime],
    on_close: Callable[[], None],
    sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    every: float = 60.0,
) -> None:
    """Call ``on_close()`` once when ``not_after`` comes (at once if past); never if open-ended.

    Meant to run in the run's task group beside the workers and be cancelled when the run ends;
    ``on_close`` typically asks the run to stop (start no new row, let in-flight ones finish).
    """
    if window.not_after is None:
        await anyio.sleep_forever()
        return
    while (remaining := (window.not_after - now()).total_seconds()) > 0:
        await sleep(min(remaining, every))
    on_close()


@asynccontextmanager
async def enforce(
    window: Window,
    *,
    now: Callable[[], datetime],
    on_close: Callable[[], None],
    on_wait: Callable[[timedelta], None] | None = None,
    sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    every: float = 60.0,
) -> AsyncIterator[None]:
    """Wait for the window to open, then run the body while watching for the close.

    ``on_close`` is called once: before the body starts if the window has already closed (so
    the run starts no row at all), else when ``not_after`` comes. It should ask the run to stop
    gracefully; the body decides what stopping means. Use it around the sending::

        async with window.enforce(win, now=utc_now, on_close=lambda: stop.request(...)):
            report = await execute(...)
    """
    await wait_for_open(window, now=now, sleep=sleep, on_wait=on_wait, every=every)
    if is_closed(window, now()):
        on_close()  # synchronously, so not even the first row can slip in
        yield
        return
    async with anyio.create_task_group() as watcher:
        watcher.start_soon(partial(close_at, window, now=now, on_close=on_close, sleep=sleep))
        try:
            yield
        finally:
            watcher.cancel_scope.cancel()


def waiting_message(window: Window, remaining: timedelta) -> str:
    """The countdown line shown (or logged) while a run waits for its window to open."""
    opens = format_moment(window.not_before) if window.not_before else "now"
    return f"waiting for the change window: opens at {opens}, in {format_duration(remaining)}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    """The moment in UTC: aware datetimes that share a tzinfo compare and subtract as wall
    clocks, which is wrong across a clock change; in UTC they never do."""
    return moment.astimezone(UTC)


def _real(moment: datetime) -> datetime:
    return _utc(moment).astimezone(moment.tzinfo)


def _clock(bound: time) -> str:
    zone = bound.tzinfo
    if isinstance(zone, ZoneInfo):
        return f"{bound.replace(tzinfo=None).isoformat()} {zone.key}"
    return bound.isoformat()


def _local(moment: datetime | None, open_side: str) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z") if moment else open_side


def _in_utc(moment: datetime | None, open_side: str) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else open_side


def format_moment(moment: datetime) -> str:
    """``2026-12-05 01:00:00 UTC``: a moment as people read it in logs, in UTC. A moment of a
    window agreed in a named zone is shown in that zone too:
    ``2026-10-25 01:00:00 BST (Europe/London) = 2026-10-25 00:00:00 UTC``."""
    if isinstance(moment.tzinfo, ZoneInfo):
        return f"{_local(moment, '')} ({moment.tzinfo.key}) = {_in_utc(moment, '')}"
    return _in_utc(moment, "")


def format_duration(span: timedelta) -> str:
    """``1h 02m 03s`` / ``4m 05s`` / ``7s``, rounded up to whole seconds."""
    total = max(math.ceil(span.total_seconds()), 0)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {seconds:02d}s"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"
