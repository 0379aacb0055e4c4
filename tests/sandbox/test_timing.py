"""Delays and the concurrency limit, in exact virtual time (trio's MockClock)."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from trio.testing import MockClock

from batch.sandbox import Faults, SandboxConfig, create_app

KEY = "rg_test_timing"
BODY = {"for_inbound_call": 1, "for_outbound_call": 4, "status": 1}


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


def client(config: SandboxConfig) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(config)),
        base_url="http://sandbox/api/v2",
        headers={"Authorization": f"Bearer {KEY}"},
    )


async def timed_post(c: httpx.AsyncClient, routing_id: int) -> tuple[int, float]:
    start = anyio.current_time()
    answer = await c.post(f"/voicelink/call-routing/{routing_id}", json=BODY)
    return answer.status_code, anyio.current_time() - start


async def test_latency_is_added_to_every_answer() -> None:
    """latency delays successes and refusals alike, by exactly that much."""
    config = SandboxConfig(api_key=KEY, rate_limit=None, faults=Faults(latency=0.25))
    async with client(config) as c:
        assert await timed_post(c, 1) == (200, 0.25)
        refused = await c.post(
            "/voicelink/call-routing/1", json=BODY, headers={"Authorization": ""}
        )
        assert refused.status_code == 401
        assert anyio.current_time() == pytest.approx(0.5)


async def test_jitter_stays_within_its_band_and_follows_the_seed() -> None:
    """With jitter, each delay lies in latency +- jitter, and the seed repeats the sequence."""

    async def delays(seed: int) -> list[float]:
        faults = Faults(latency=1.0, jitter=0.5)
        config = SandboxConfig(api_key=KEY, rate_limit=None, faults=faults, seed=seed)
        async with client(config) as c:
            return [(await timed_post(c, i))[1] for i in range(1, 21)]

    first = await delays(3)
    assert all(0.5 <= d <= 1.5 for d in first)
    assert len(set(first)) > 10
    assert await delays(3) == pytest.approx(first)


async def test_slow_answers_take_slow_seconds_after_storing() -> None:
    """A slow fault holds the answer back slow_seconds, the record already stored."""
    faults = Faults(slow_rate=1.0, slow_seconds=30.0)
    config = SandboxConfig(api_key=KEY, rate_limit=None, faults=faults)
    app = create_app(config)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox/api/v2",
        headers={"Authorization": f"Bearer {KEY}"},
    ) as c:
        async with anyio.create_task_group() as tg:
            tg.start_soon(timed_post, c, 6)
            await anyio.sleep(1)
            assert app.sandbox.state.get(6) == BODY  # type: ignore[attr-defined]
            assert app.sandbox.state.stats()["in_flight"] == 1  # type: ignore[attr-defined]
        assert anyio.current_time() == pytest.approx(30.0)


async def test_concurrency_limit_refuses_the_one_beyond() -> None:
    """With max_concurrent=2 and slow answers, a third request in flight gets 429 at once."""
    config = SandboxConfig(
        api_key=KEY, rate_limit=None, max_concurrent=2, faults=Faults(latency=1.0)
    )
    results: dict[int, tuple[int, float]] = {}

    async def send(c: httpx.AsyncClient, routing_id: int, at: float) -> None:
        await anyio.sleep(at)
        results[routing_id] = await timed_post(c, routing_id)

    async with client(config) as c, anyio.create_task_group() as tg:
        tg.start_soon(send, c, 1, 0.0)
        tg.start_soon(send, c, 2, 0.1)
        tg.start_soon(send, c, 3, 0.2)  # two in flight: refused (after the latency)
        tg.start_soon(send, c, 4, 1.05)  # the first has finished: admitted
    assert {k: status for k, (status, _) in results.items()} == {1: 200, 2: 200, 3: 429, 4: 200}
    assert [took for _, took in results.values()] == pytest.approx([1.0] * 4)
