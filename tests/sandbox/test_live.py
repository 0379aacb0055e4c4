"""The sandbox over a real loopback server: drops, slow answers, the rate limit, keep-alive."""

from __future__ import annotations

import logging

import httpx
import pytest

from batch.sandbox import Faults, RunningSandbox, SandboxConfig, generate_api_key, serve_in_thread
from batch.settings import Rate
from tests.conftest import StartSandbox

BODY = {"for_inbound_call": 1, "for_outbound_call": 4, "status": 1}

pytestmark = pytest.mark.slow


def client(sandbox: RunningSandbox, timeout: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=sandbox.base_url,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=timeout,
    )


async def test_serves_on_a_free_loopback_port_and_stops(live_sandbox: RunningSandbox) -> None:
    """serve_in_thread answers on 127.0.0.1 at base_url (ending /api/v2) and reads back state."""
    assert live_sandbox.base_url == f"http://127.0.0.1:{live_sandbox.port}/api/v2"
    async with client(live_sandbox) as c:
        answer = await c.post("/voicelink/call-routing/12", json=BODY)
        assert answer.json() == {"success": True, "data": {"id": 12, **BODY}}
        stats = (await c.get(live_sandbox.root_url + "/sandbox/stats")).json()
    assert stats["by_routing_id"] == {"12": 1}
    assert live_sandbox.record(12) == BODY
    assert live_sandbox.stats() == stats


async def test_stopped_sandbox_refuses_connections() -> None:
    """After the block, the port no longer accepts connections (a clean shutdown)."""
    with serve_in_thread(SandboxConfig(api_key=generate_api_key())) as sandbox:
        url = sandbox.base_url
    async with httpx.AsyncClient() as c:
        with pytest.raises(httpx.ConnectError):
            await c.get(url)


async def test_dropped_connection_has_no_answer_but_the_update_stands(
    start_sandbox: StartSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A drop closes the socket without an answer; the record was stored; nothing is logged."""
    sandbox = start_sandbox(script={4: ("drop",)})
    async with client(sandbox) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post("/voicelink/call-routing/4", json=BODY)
        again = await c.post("/voicelink/call-routing/4", json=BODY)  # a fresh connection
        assert again.status_code == 200
    assert sandbox.record(4) == BODY
    assert sandbox.stats()["by_status"] == {"dropped": 1, "200": 1}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_drop_rate_over_the_network_follows_the_seed(start_sandbox: StartSandbox) -> None:
    """drop_rate with a seed drops the same requests over a real socket as in-process."""
    sandbox = start_sandbox(faults=Faults(drop_rate=0.5), seed=11)
    dropped = []
    async with client(sandbox) as c:
        for routing_id in range(1, 21):
            try:
                await c.post(f"/voicelink/call-routing/{routing_id}", json=BODY)
            except httpx.RemoteProtocolError:
                dropped.append(routing_id)
    assert 3 <= len(dropped) <= 17
    assert sandbox.stats()["by_status"]["dropped"] == len(dropped)
    again = start_sandbox(faults=Faults(drop_rate=0.5), seed=11)
    redone = []
    async with client(again) as c:
        for routing_id in range(1, 21):
            try:
                await c.post(f"/voicelink/call-routing/{routing_id}", json=BODY)
            except httpx.RemoteProtocolError:
                redone.append(routing_id)
    assert redone == dropped


async def test_slow_answer_outlasts_a_client_timeout(start_sandbox: StartSandbox) -> None:
    """A slow answer makes a client with a shorter timeout give up; the update was stored.

    The server stores before it starts the delay; the client gives up at half the delay (not
    sooner: on a loaded machine a 0.1 s timeout once fired before the server had read the
    request, so nothing was stored yet)."""
    sandbox = start_sandbox(faults=Faults(slow_rate=1.0, slow_seconds=2.0))
    async with client(sandbox, timeout=1.0) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.post("/voicelink/call-routing/9", json=BODY)
    assert sandbox.record(9) == BODY


async def test_rate_limit_over_the_network(start_sandbox: StartSandbox) -> None:
    """Beyond the per-key rate, a real 429 with the envelope and a Retry-After in seconds."""
    sandbox = start_sandbox(rate_limit=Rate(2, 60.0))
    async with client(sandbox) as c:
        codes = [
            (await c.post(f"/voicelink/call-routing/{i}", json=BODY)).status_code for i in (1, 2)
        ]
        refused = await c.post("/voicelink/call-routing/3", json=BODY)
    assert codes == [200, 200]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(refused.headers["Retry-After"]) <= 30


async def test_keep_alive_reuses_one_connection(live_sandbox: RunningSandbox) -> None:
    """Sequential requests from one client travel over one kept-alive connection."""
    async with client(live_sandbox) as c:
        for routing_id in range(1, 31):
            assert (await c.post(f"/voicelink/call-routing/{routing_id}", json=BODY)).is_success
    async with client(live_sandbox) as other:
        await other.post("/voicelink/call-routing/1", json=BODY)
    assert live_sandbox.stats()["total"] == 31
    assert live_sandbox.stats()["connections"] == 2
