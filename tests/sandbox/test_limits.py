"""The sandbox's three kinds of rate limiter, and its arrival jitter, on a hand-moved clock."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from trio.testing import MockClock
from typer.testing import CliRunner

from batch.cli import app
from batch.errors import UsageError
from batch.sandbox import SandboxConfig, create_app
from batch.sandbox.limits import ArrivalJitter, RateLimitMode, rate_limiter
from batch.settings import Rate

KEY = "rg_test_limits"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def admitted(mode: RateLimitMode, rate: str, arrivals: list[float]) -> list[float | None]:
    """What the limiter says to requests arriving at ``arrivals`` (None: admitted)."""
    clock = Clock()
    limiter = rate_limiter(Rate.parse(rate), clock, mode)
    answers: list[float | None] = []
    for at in arrivals:
        clock.now = at
        answers.append(limiter.acquire(KEY))
    return answers


def test_bucket_allows_a_burst_of_the_count() -> None:
    """bucket: 3/s admits three at once, refuses the fourth until a third of a second on."""
    assert admitted(RateLimitMode.BUCKET, "3/s", [0, 0, 0, 0]) == [
        None,
        None,
        None,
        pytest.approx(1 / 3),
    ]


def test_strict_refuses_a_millisecond_early() -> None:
    """strict: one interval after the last admitted request, not a millisecond less."""
    assert admitted(RateLimitMode.STRICT, "1/s", [0, 0.999, 1.0, 1.999, 2.5]) == [
        None,
        pytest.approx(0.001),
        None,
        pytest.approx(0.001),
        None,
    ]


def test_strict_is_not_fooled_by_a_refused_request() -> None:
    """strict: a refused request does not move the schedule (nginx limit_req's behaviour)."""
    assert admitted(RateLimitMode.STRICT, "10/s", [0, 0.05, 0.1]) == [
        None,
        pytest.approx(0.05),
        None,
    ]


def test_window_counts_per_fixed_window() -> None:
    """window: 2/min admits two in [0, 60), refuses the third until 60, then counts afresh."""
    assert admitted(RateLimitMode.WINDOW, "2/min", [0, 59, 59.5, 60, 60.1, 60.2]) == [
        None,
        None,
        pytest.approx(0.5),
        None,
        None,
        pytest.approx(59.8),
    ]


def test_window_allows_a_burst_at_its_edges() -> None:
    """window: the end of one window and the start of the next make a double burst."""
    arrivals = [59.9, 59.9, 60.0, 60.0]
    assert admitted(RateLimitMode.WINDOW, "2/min", arrivals) == [None] * 4


def test_arrival_jitter_stays_in_its_band_and_follows_the_seed() -> None:
    """Arrival delays lie in [0, seconds], vary, and repeat with the seed."""
    jitter, again = ArrivalJitter(0.05, 7), ArrivalJitter(0.05, 7)
    delays = [jitter.delay() for _ in range(50)]
    assert all(0 <= d <= 0.05 for d in delays)
    assert len(set(delays)) > 40
    assert [again.delay() for _ in range(50)] == delays
    assert ArrivalJitter(0.0, 7).delay() == 0.0


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


@pytest.mark.anyio
async def test_app_runs_the_mode_after_the_arrival_delay() -> None:
    """The app delays each request by its arrival jitter, then applies the strict limit."""
    config = SandboxConfig(
        api_key=KEY,
        rate_limit=Rate.parse("1/s"),
        rate_limit_mode=RateLimitMode.STRICT,
        arrival_jitter=0.2,
        seed=3,
    )
    body = {"for_inbound_call": 1, "for_outbound_call": 4, "status": 1}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(config)),
        base_url="http://sandbox/api/v2",
        headers={"Authorization": f"Bearer {KEY}"},
    ) as client:
        took = []
        for routing_id in (1, 2):
            start = anyio.current_time()
            answer = await client.post(f"/voicelink/call-routing/{routing_id}", json=body)
            took.append((answer.status_code, anyio.current_time() - start))
    assert all(0 < seconds <= 0.2 for _, seconds in took)
    # The second left as soon as the first came back: well within one interval of it.
    assert [status for status, _ in took] == [200, 429]


def test_config_refuses_a_negative_arrival_jitter() -> None:
    """arrival_jitter is a duration: a negative one is refused, saying so."""
    with pytest.raises(UsageError, match="arrival-jitter"):
        SandboxConfig(api_key=KEY, arrival_jitter=-1.0)


def test_cli_refuses_an_unknown_mode() -> None:
    """--rate-limit-mode names the kinds it accepts, in one line, exit 2."""
    result = CliRunner().invoke(app, ["sandbox", "--port", "0", "--rate-limit-mode", "leaky"])
    assert result.exit_code == 2
    assert "give one of bucket, strict, window" in result.stderr


def test_window_retuned_mid_window_counts_what_it_admitted() -> None:
    """window: 4/s retuned to 2/s after three requests in this window refuses the next one
    until the window ends (a reconfigured server keeps its counts), then admits two."""
    clock = Clock()
    limiter = rate_limiter(Rate.parse("4/s"), clock, RateLimitMode.WINDOW)
    for at in (0.1, 0.2, 0.3):
        clock.now = at
        assert limiter.acquire(KEY) is None
    limiter.retune(Rate.parse("2/s"))
    clock.now = 0.4
    assert limiter.acquire(KEY) == pytest.approx(0.6)
    clock.now = 1.0
    assert [limiter.acquire(KEY), limiter.acquire(KEY)] == [None, None]
    assert limiter.acquire(KEY) == pytest.approx(1.0)


@pytest.mark.parametrize(("mode", "burst"), [(RateLimitMode.BUCKET, 2), (RateLimitMode.STRICT, 1)])
def test_gcra_retuned_keeps_its_schedule_and_kind(mode: RateLimitMode, burst: int) -> None:
    """bucket and strict: retuned from 4/s to 2/s, the interval doubles from the next request
    on, the burst becomes the new count (bucket) or stays one (strict)."""
    clock = Clock()
    limiter = rate_limiter(Rate.parse("4/s"), clock, mode)
    assert limiter.acquire(KEY) is None  # at 0: the schedule's next slot is 0.25
    limiter.retune(Rate.parse("2/s"))
    clock.now = 10.0  # long idle: the bucket is full
    answers = [limiter.acquire(KEY) for _ in range(burst + 1)]
    assert answers[:burst] == [None] * burst
    assert answers[burst] == pytest.approx(0.5)
