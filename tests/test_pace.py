"""The pace against each kind of server limiter, an hour at 60/min in virtual time.

Goals (issue 18): a strict server (no burst) with arrival jitter up to 5% of the interval gets
at least 97% of its limit with at most 1% of requests answered 429; bucket and window servers
get at least 99% and no 429 in steady state. See ``tests/pace_sim.py`` for the simulation.
"""

from __future__ import annotations

import pytest

from batch.pace import Pace
from batch.sandbox.limits import RateLimitMode
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


@pytest.mark.parametrize("jitter", [0.0, 0.05])
@pytest.mark.parametrize(
    ("mode", "within", "most_429s"),
    [
        # A bucket refuses only once the new limit's burst is spent (a minute at 60/min): the
        # minute counts from that first 429. Measured: 27-29 s, 7 429s.
        (RateLimitMode.BUCKET, 60, 8),
        (RateLimitMode.STRICT, 60, 8),  # 6-17 s, 4-6 429s
        # A window server's first 429 says its count is spent, not what it is: the next window's
        # end tells it. 71-86 s after the first 429 (seeds 1-3), in two 429s.
        (RateLimitMode.WINDOW, 90, 3),
    ],
)
def test_a_storm_is_followed_for_each_kind_of_server(
    mode: RateLimitMode, within: float, most_429s: int, jitter: float
) -> None:
    """The limit halves after 20 minutes at 60/min: from the server's first 429, every minute
    of the next ten admits 90% of the new limit within ``within`` seconds, at most 1% 429s from
    then on, and few 429s until a minute past it (``Tally.storm``)."""
    tally = run(Scenario(mode, jitter=jitter, seconds=2400, storm_at=1200))
    storm = tally.storm(1200, 0.5)
    assert storm.seconds is not None
    assert storm.seconds <= within
    assert storm.refused <= most_429s


@pytest.mark.parametrize("mode", list(RateLimitMode))
def test_a_storm_at_ten_per_second(mode: RateLimitMode) -> None:
    """At 10/s (5% jitter) the limit halving is followed within seconds; the 429s it costs are
    a handful for a strict server, about ten for bucket and window servers (each 429 pauses a
    whole second, rounded up, a window of its own at 10/s)."""
    tally = run(Scenario(mode, limit=Rate(10, 1.0), jitter=0.05, seconds=900, storm_at=240))
    storm = tally.storm(240, 5)
    assert storm.seconds is not None
    assert storm.seconds <= 60
    assert storm.refused <= (8 if mode is RateLimitMode.STRICT else 12)


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
