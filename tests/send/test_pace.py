"""The pace against each kind of server limiter, an hour at 60/min in virtual time.

Goals (issue 18): a strict server (no burst) with arrival jitter up to 5% of the interval gets
at least 97% of its limit with at most 1% of requests answered 429; bucket and window servers
get at least 99% and no 429 in steady state. See ``tests/pace_sim.py`` for the simulation.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch.sandbox.limits import RateLimitMode
from batch.send.answerpace import AnswerPace
from batch.send.client import SendPolicy
from batch.send.pace import Pace
from batch.send.retry import Answer
from batch.settings import Rate
from tests.pace_sim import Scenario, run

HOUR = 3600.0


@pytest.mark.parametrize("jitter", [0.0, 0.05])
@pytest.mark.parametrize("mode", [RateLimitMode.BUCKET, RateLimitMode.WINDOW])
def test_forgiving_servers_get_their_whole_limit(mode: RateLimitMode, jitter: float) -> None:
    """Bucket and window servers: at least 99% of the limit, not one 429, jitter or not."""
    tally = run(Scenario(mode, jitter=jitter, seconds=HOUR))
    assert tally.share >= 0.99
    assert tally.refused == []


def test_strict_server_without_jitter_gets_it_all() -> None:
    """A strict server and requests arriving exactly as sent: 100% of the limit, no 429."""
    tally = run(Scenario(RateLimitMode.STRICT, seconds=HOUR))
    assert tally.share >= 0.999
    assert tally.refused == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_strict_server_with_jitter_meets_the_goal(seed: int) -> None:
    """Strict server, arrivals up to 5% of an interval late: >= 97% of the limit, <= 1% 429."""
    tally = run(Scenario(RateLimitMode.STRICT, jitter=0.05, seconds=HOUR, seed=seed))
    assert tally.share >= 0.97
    assert tally.refused_share <= 0.01


def test_strict_server_with_jitter_at_ten_per_second() -> None:
    """The issue's second case (10/s, 0-5 ms late): most of the limit, hardly a 429."""
    scenario = Scenario(RateLimitMode.STRICT, limit=Rate(10, 1.0), jitter=0.05, seconds=600)
    tally = run(scenario)
    assert tally.share >= 0.96  # over 10 minutes; each 429's 1 s pause costs 10 requests
    assert tally.refused_share <= 0.002


def test_careful_periods_grow_so_429s_thin_out() -> None:
    """A strict server's 429s come ever further apart: fewer in the second half hour."""
    tally = run(Scenario(RateLimitMode.STRICT, jitter=0.05, seconds=HOUR))
    first = sum(1 for at in tally.refused if at < HOUR / 2)
    assert len(tally.refused) - first < first


def test_without_latencies_the_pace_still_learns_a_margin() -> None:
    """Without answer latencies (no guard), a strict jittery server still gets most of its
    limit, with 429s under 1% (the old AIMD got 64% here, 7.6% answered 429)."""
    scenario = Scenario(RateLimitMode.STRICT, jitter=0.05, seconds=HOUR, pass_latency=False)
    tally = run(scenario)
    assert tally.share >= 0.85
    assert tally.refused_share <= 0.01


def test_a_storm_converges_within_a_minute() -> None:
    """The server halves its limit mid-run: a handful of 429s in the first minute, then at
    least 90% of the new limit with under 1% of requests answered 429."""
    storm = 1200.0
    tally = run(Scenario(RateLimitMode.STRICT, jitter=0.05, seconds=2400, storm_at=storm))
    in_the_minute = [at for at in tally.refused if storm <= at < storm + 60]
    later = [at for at in tally.refused if at >= storm + 60]
    assert len(in_the_minute) <= 8  # "a handful" (issue 18); 6 with this seed
    assert tally.share_between(storm + 60, 2400, 0.5) >= 0.9
    assert len(later) <= 0.01 * (2400 - storm - 60) * 0.5


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("jitter", [0.0, 0.05])
@pytest.mark.parametrize("mode", list(RateLimitMode))
def test_a_storm_is_followed_for_each_kind_of_server(
    mode: RateLimitMode, jitter: float, seed: int
) -> None:
    """The limit halves after 20 minutes at 60/min: from the server's first 429, every minute
    of the next ten admits 90% of the new limit within a minute, at most 1% 429s from then on,
    and a handful of 429s until a minute past it (``Tally.storm``). Measured: bucket 3-18 s, 5
    429s; strict 0-13 s, 4-5; window 23-57 s, one or two (a long pause says what the window
    admitted; seed 2's storm comes with the window's count already spent)."""
    tally = run(Scenario(mode, jitter=jitter, seconds=2400, storm_at=1200, seed=seed))
    storm = tally.storm(1200, 0.5)
    assert storm.seconds is not None
    assert storm.seconds <= 60
    assert storm.refused <= 8


def test_a_window_server_restarted_mid_window_is_followed_in_two_windows() -> None:
    """A window server restarted at half its limit forgets what this window admitted: the first
    429's estimate runs high, the next window's measures it. 69-77 s after the first 429 (seeds
    1 and 3), two 429s."""
    scenario = Scenario(
        RateLimitMode.WINDOW, jitter=0.05, seconds=2400, storm_at=1200, storm_restarts=True
    )
    storm = run(scenario).storm(1200, 0.5)
    assert storm.seconds is not None
    assert storm.seconds <= 90
    assert storm.refused <= 3


@pytest.mark.parametrize("mode", list(RateLimitMode))
def test_a_storm_at_ten_per_second(mode: RateLimitMode) -> None:
    """At 10/s (5% jitter) the limit halving is followed within seconds, in a handful of 429s
    though each pauses a whole second (Retry-After rounds up), ten intervals: measured 4-5."""
    tally = run(Scenario(mode, limit=Rate(10, 1.0), jitter=0.05, seconds=900, storm_at=240))
    storm = tally.storm(240, 5)
    assert storm.seconds is not None
    assert storm.seconds <= 60
    assert storm.refused <= 6


def test_the_climb_back_starts_when_sending_does() -> None:
    """The pace does not climb during a 429's pause: nothing is sent to show it is safe."""
    pace = Pace(10.0)
    assert pace.refused(0.0, pause=1.0) == 8.0
    assert pace.update(0.9) == 8.0  # still paused
    assert 8.0 < pace.update(1.5) < 9.9


def test_a_window_servers_first_429_is_measured_over_its_window() -> None:
    """A first 429 with a 30 s pause, the pace held at 1/s: the window (a minute) admitted 30
    before the pause, so the limit is 0.5/s, and the pace goes there at once (no drain)."""
    pace = Pace(1.0)
    assert pace.refused(100.0, pause=30.0) == pytest.approx(0.5 * 0.99)
    assert pace.limit_interval == pytest.approx(1 / (0.5 * 0.99))


def test_a_burst_let_by_on_two_climbs_in_a_row_measures_the_limit() -> None:
    """A bucket: many answers accepted before each 429 while climbing back. The first such 429
    steps down 5%; the second trusts what was accepted between the pauses (a fall as deep as
    beta). A strict server, refused at once after each pause, only ever steps 5%."""
    bucket = Pace(10.0)
    bucket.refused(0.0, pause=1.0)  # pace 8, climbing back from t=1
    bucket.accepted += 10
    bucket.refused(2.0, pause=1.0)  # 10 accepted since the pause: a first burst, a 5% step
    assert bucket.update(12.0) == pytest.approx(8 * 0.95 * 0.99)  # the plateau: r_max - 1%
    bucket = Pace(10.0)
    bucket.refused(0.0, pause=1.0)
    bucket.accepted += 10
    bucket.refused(2.0, pause=1.0)
    at = bucket.update(6.0)  # climbing back (until 7)
    bucket.accepted += 10
    bucket.refused(6.0, pause=1.0)  # again: r_max falls to beta of the pace (not 95%)
    assert bucket.update(20.0) == pytest.approx(at * 0.8 * 0.99)

    strict = Pace(10.0)
    strict.refused(0.0, pause=1.0)
    strict.accepted += 1
    strict.refused(1.1, pause=1.0)
    assert strict.update(10.0) == pytest.approx(8 * 0.95 * 0.99)
    at = strict.update(6.0)
    strict.accepted += 1
    strict.refused(6.0, pause=1.0)
    assert strict.update(20.0) == pytest.approx(at * 0.95 * 0.99)


def test_never_faster_than_the_configured_rate() -> None:
    """A server allowing twice --rate gets exactly --rate: the ceiling is never exceeded."""
    scenario = Scenario(
        RateLimitMode.STRICT, limit=Rate(120, 60.0), rate=Rate(60, 60.0), jitter=0.05
    )
    tally = run(scenario)
    assert len(tally.accepted) <= 3600 + 1
    assert tally.share >= 0.499


def test_a_429_after_nothing_was_accepted_keeps_the_floor() -> None:
    """Two long pauses with no answer accepted between them measure a rate of 0: the pace and
    the limit remembered keep the floor (1/16 of the ceiling), the guard's spacing stays finite,
    and a later probe still finds the limit again."""
    pace = Pace(16.0)
    pace.refused(0.0, pause=30.0)
    pace.update(40.0)
    pace.refused(50.0, pause=30.0)  # a window's long pause, nothing accepted since the last
    assert pace.per_second == 1.0
    assert pace.limit_interval == 1.0
    assert pace.update(1e6) == 16.0  # the probe, long after, climbs to the ceiling


def test_a_long_pause_of_our_own_says_nothing_of_windows() -> None:
    """A 30 s backoff (a 429 without Retry-After) is ours, not a window's end: an isolated
    429's slowdown (to beta), where the server's own 30 s would measure its window (0.495)."""
    ours = Pace(1.0)
    assert ours.refused(100.0, pause=30.0, told=False) == pytest.approx(0.8)
    theirs = Pace(1.0)
    assert theirs.refused(100.0, pause=30.0) == pytest.approx(0.495)


@pytest.mark.parametrize(
    ("retry_after", "told"),
    [(30.0, True), (None, False), (900.0, False)],  # said; unsaid: backoff; over the cap
)
def test_the_limiter_is_told_whose_pause_it_is(retry_after: float | None, told: bool) -> None:
    """A 429's Retry-After within --max-retry-after is the server's pause; a backoff taken for
    a 429 without one (or with one above the cap) is ours, and the limiter is told which."""
    calls: list[bool] = []

    class Limiter:
        def pause(self, seconds: float) -> None:
            pass

        def throttled(self, *, told: bool = True) -> None:
            calls.append(told)

    answer = Answer(429, False, "RATE_LIMITED", "slow down", "{}", True, retry_after)
    pace = AnswerPace(Limiter(), SendPolicy(max_retry_after=300.0), lambda: 0.5)  # type: ignore[arg-type]
    pace.heed(answer, 1, 0.1)
    assert calls == [told]


_EVENT = st.tuples(
    st.floats(min_value=0.0, max_value=120.0),  # seconds since the last event
    st.sampled_from(["refused", "update", "accepted"]),
    st.floats(min_value=0.0, max_value=4000.0),  # a pause (refused) or answers (accepted)
    st.booleans(),  # told (refused)
)


@settings(max_examples=300, deadline=None)
@given(ceiling=st.sampled_from([0.5, 1.0, 10.0, 100.0]), events=st.lists(_EVENT, max_size=60))
def test_the_pace_stays_between_floor_and_ceiling(
    ceiling: float, events: list[tuple[float, str, float, bool]]
) -> None:
    """Whatever the 429s, pauses (the server's or ours) and answers, in any order: the pace
    stays within [floor, ceiling], and the guard's spacing is a finite positive interval."""
    pace = Pace(ceiling)
    now = 0.0
    for gap, kind, amount, told in events:
        now += gap
        if kind == "refused":
            pace.refused(now, pause=amount, told=told)
        elif kind == "accepted":
            pace.accepted += int(amount)
        else:
            pace.update(now)
        assert ceiling / 16 - 1e-9 <= pace.per_second <= ceiling + 1e-9
        assert 0 < pace.limit_interval <= 16 / ceiling + 1e-9
