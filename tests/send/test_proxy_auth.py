"""A proxy that asks for credentials (407) stops the run at once, as a rejected key does: waiting
out --max-outage cannot bring the credentials (a real loopback proxy; nothing leaves the host)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import anyio.abc
import pytest

from batch.model import Call, Outcome
from batch.send.client import Network, SendPolicy, build_client
from batch.send.limiter import Limiter
from batch.send.outage import Breaker, HostNews, HostState
from batch.send.sender import Sender
from batch.settings import Rate

pytestmark = pytest.mark.slow

BODY = '{"for_inbound_call":1,"for_outbound_call":4,"status":1}'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_proxy_asking_for_credentials_stops_at_once_naming_it() -> None:
    """407 to the tunnel: the host is given up on at once (fatal), the row resendable
    (HOST_UNREACHABLE), the message naming the proxy auth and the fix, never its password."""
    tunnels: list[bytes] = []

    async def proxy(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            tunnels.append(await stream.receive())
            await stream.send(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                              b'Proxy-Authenticate: Basic realm="corp"\r\n'
                              b"Content-Length: 0\r\nConnection: close\r\n\r\n")  # fmt: skip

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    network = Network(https_proxy=f"http://user:secret@127.0.0.1:{port}")
    breaker = Breaker(max_outage=30)
    news: list[HostNews] = []
    breaker.subscribe(news.append)
    began = time.monotonic()
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, proxy)
        async with build_client("https://api.example.test/api/v2", "rg_live_k", timeout=5,
                                concurrency=1, network=network) as client:  # fmt: skip
            sender = Sender(client, Limiter(Rate(10, 1)), SendPolicy(max_attempts=5),
                            breaker=breaker, via=network.via(str(client.base_url)))  # fmt: skip
            result = await sender.send(Call(row=1, routing_id=5, body=BODY))
            later: Any = await sender.send(Call(row=2, routing_id=6, body=BODY))
        tasks.cancel_scope.cancel()
    assert time.monotonic() - began < 5  # not --max-outage's 30 s
    assert result is not None
    assert (result.outcome, result.error_code, result.attempts) == (
        Outcome.FAILED, "HOST_UNREACHABLE", 1,
    )  # fmt: skip
    assert not result.decided  # the same command sends it again, once the proxy is fixed
    assert later is None  # nothing more is sent
    assert len(tunnels) == 1
    assert tunnels[0].startswith(b"CONNECT api.example.test:443")
    assert breaker.state is HostState.GONE
    assert news[-1].fatal
    for text in (result.error_message, news[-1].cause):
        for words in ("407", "credentials", "HTTPS_PROXY", f"127.0.0.1:{port}"):
            assert words in text
        assert "secret" not in text
