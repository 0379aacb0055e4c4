"""The sender over real loopback sockets: drops, garbage, refusals and timeouts, on both backends.

What MockTransport cannot show: httpx's real exceptions for a peer that hangs up, talks nonsense
or never answers, translated once into our transport codes. A tiny scripted HTTP server (stdlib
``socketserver`` in a thread, 127.0.0.1, free port) plays the misbehaving peer.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from batch.limiter import Limiter
from batch.model import Call, Outcome, RowResult
from batch.send import Sender, SendPolicy, build_client
from batch.settings import Rate

pytestmark = pytest.mark.slow

KEY = "rg_live_LiveSocketKeyNeverShown77"
CALL = Call(row=1, routing_id=5, body='{"for_inbound_call":1,"for_outbound_call":4,"status":1}')
OK = b'{"success":true,"data":{"id":5}}'

Behaviour = Callable[[socket.socket, "Peer"], None]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def answer(status: int, body: bytes, reason: str = "OK", extra: str = "") -> Behaviour:
    def behave(conn: socket.socket, peer: Peer) -> None:
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n{extra}"
        conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)

    return behave


def drop(conn: socket.socket, peer: Peer) -> None:
    """Hang up without a word (a crashed worker, a load balancer's idle reset)."""


def garbage(conn: socket.socket, peer: Peer) -> None:
    conn.sendall(b"this is not HTTP at all\r\n\r\n")


def half_answer(conn: socket.socket, peer: Peer) -> None:
    """Promise 100 bytes, send 10, hang up."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")


def hang(conn: socket.socket, peer: Peer) -> None:
    """Never answer (until the test ends)."""
    peer.released.wait(30)


class Peer:
    """A scripted HTTP/1.1 server: the n-th request gets the n-th behaviour."""

    def __init__(self, behaviours: list[Behaviour]) -> None:
        self.behaviours = iter(behaviours)
        self.bodies: list[bytes] = []
        self.auth: list[str] = []
        self.released = threading.Event()
        self.lock = threading.Lock()

    def handle(self, conn: socket.socket) -> None:
        # One request per connection, then close: every attempt is a fresh connection, which
        # is what the misbehaviours need (httpx reconnects transparently).
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        headers = dict(
            line.decode().split(": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line
        )
        length = int({k.lower(): v for k, v in headers.items()}.get("content-length", "0"))
        while len(body) < length:
            body += conn.recv(65536)
        with self.lock:
            self.bodies.append(body)
            self.auth.append({k.lower(): v for k, v in headers.items()}.get("authorization", ""))
            behave = next(self.behaviours)
        behave(conn, self)


@pytest.fixture
def serve() -> Iterator[Callable[[list[Behaviour]], tuple[str, Peer]]]:
    servers: list[tuple[socketserver.ThreadingTCPServer, Peer]] = []

    def start(behaviours: list[Behaviour]) -> tuple[str, Peer]:
        peer = Peer(behaviours)

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                peer.handle(self.request)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        # A short poll keeps shutdown() (teardown) quick.
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        servers.append((server, peer))
        return f"http://127.0.0.1:{server.server_address[1]}/api/v2", peer

    yield start
    for server, peer in servers:
        peer.released.set()
        server.shutdown()
        server.server_close()


async def send(base_url: str, **policy: Any) -> RowResult:
    policy = {"backoff_initial": 0.0, **policy}
    async with build_client(base_url, KEY, timeout=5, concurrency=2) as client:
        sender = Sender(client, Limiter(Rate.parse("1000/s")), SendPolicy(**policy))
        return await sender.send(CALL)


def no_key(result: RowResult) -> bool:
    return all(KEY not in str(getattr(result, f)) for f in result.__slots__)


async def test_success_over_a_real_socket(serve: Any) -> None:
    """A real HTTP exchange: body and bearer header arrive as sent, the envelope is kept."""
    url, peer = serve([answer(200, OK)])
    result = await send(url)
    assert (result.outcome, result.attempts, result.http_status) == (Outcome.SUCCEEDED, 1, 200)
    assert json.loads(result.response) == json.loads(OK)
    assert peer.bodies == [CALL.body.encode()]
    assert peer.auth == [f"Bearer {KEY}"]


@pytest.mark.parametrize("misbehave", [drop, garbage, half_answer])
async def test_dropped_or_garbled_answers_are_retried(serve: Any, misbehave: Behaviour) -> None:
    """A hang-up, a non-HTTP reply or a cut answer is CONNECTION_ERROR, retried to success."""
    url, peer = serve([misbehave, answer(200, OK)])
    result = await send(url)
    assert (result.outcome, result.attempts) == (Outcome.SUCCEEDED, 2)
    assert len(peer.bodies) == 2


@pytest.mark.parametrize("misbehave", [drop, garbage, half_answer])
async def test_lasting_transport_failure_fails_the_row(serve: Any, misbehave: Behaviour) -> None:
    """When every attempt fails in transport, the row is failed CONNECTION_ERROR, no status."""
    url, _ = serve([misbehave] * 3)
    result = await send(url, max_attempts=3)
    assert (result.outcome, result.error_code, result.attempts) == (
        Outcome.FAILED,
        "CONNECTION_ERROR",
        3,
    )
    assert result.http_status is None
    assert "\n" not in result.error_message
    assert no_key(result)


async def test_refused_connection(serve: Any) -> None:
    """Nobody listening: CONNECTION_ERROR after every attempt, no traceback, no key."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await send(f"http://127.0.0.1:{port}/api/v2", max_attempts=2)
    assert (result.outcome, result.error_code, result.attempts) == (
        Outcome.FAILED,
        "CONNECTION_ERROR",
        2,
    )
    assert no_key(result)


async def test_no_answer_is_a_timeout(serve: Any) -> None:
    """A peer that never answers: TIMEOUT per attempt, retried, then failed."""
    url, peer = serve([hang, hang])
    result = await send(url, max_attempts=2, timeout=0.2)
    assert (result.outcome, result.error_code, result.attempts) == (Outcome.FAILED, "TIMEOUT", 2)
    assert "0.2 s" in result.error_message
    assert len(peer.bodies) == 2


async def test_timeout_then_success(serve: Any) -> None:
    """A timed-out update is sent again (safe: it replaces the record) and can succeed."""
    url, peer = serve([hang, answer(200, OK)])
    result = await send(url, timeout=0.2)
    assert (result.outcome, result.attempts) == (Outcome.SUCCEEDED, 2)
    assert peer.bodies == [CALL.body.encode()] * 2


async def test_html_gateway_page_over_the_wire(serve: Any) -> None:
    """A proxy's HTML 502 page is retried; a final one is kept as a one-line excerpt."""
    page = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n</html>"
    url, _ = serve([answer(502, page, "Bad Gateway")] * 2)
    result = await send(url, max_attempts=2)
    assert (result.error_code, result.attempts, result.http_status) == ("HTTP_502", 2, 502)
    assert result.response == "<html> <head><title>502 Bad Gateway</title></head> </html>"
