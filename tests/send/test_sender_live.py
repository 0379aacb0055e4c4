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

import anyio
import httpx
import pytest
from trio.testing import MockClock

from batch.model import Call, Outcome, RowResult
from batch.sandbox import serve_in_thread
from batch.sandbox.app import create_app
from batch.sandbox.config import Faults, SandboxConfig
from batch.send.client import SendPolicy, build_client
from batch.send.limiter import Limiter
from batch.send.retry import STOP_RUN_STATUSES
from batch.send.sender import Sender
from batch.settings import Rate

pytestmark = pytest.mark.slow

KEY = "rg_live_LiveSocketKeyNeverShown77"
CALL = Call(row=1, routing_id=5, body='{"for_inbound_call":1,"for_outbound_call":4,"status":1}')
OK = b'{"success":true,"data":{"id":5}}'
SANDBOX_KEY = "rg_test_SandboxKeyForSenderTests0001"

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
    result = await send(url, timeout=1.0)  # roomy: the second answer must beat it on a busy machine
    assert (result.outcome, result.attempts) == (Outcome.SUCCEEDED, 2)
    assert peer.bodies == [CALL.body.encode()] * 2


async def test_html_gateway_page_over_the_wire(serve: Any) -> None:
    """A proxy's HTML 502 page is retried; a final one is kept as a one-line excerpt."""
    page = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n</html>"
    url, _ = serve([answer(502, page, "Bad Gateway")] * 2)
    result = await send(url, max_attempts=2)
    assert (result.error_code, result.attempts, result.http_status) == ("HTTP_502", 2, 502)
    assert result.response == "<html> <head><title>502 Bad Gateway</title></head> </html>"


# -- against the sandbox (H2's stand-in API): in-process over ASGI, and over a real socket ------


def sandbox_call(routing_id: int, row: int | None = None) -> Call:
    return Call(row=row or routing_id, routing_id=routing_id, body=CALL.body)


async def send_all(sender: Sender, calls: list[Call], concurrency: int) -> list[RowResult]:
    """Send ``calls`` with at most ``concurrency`` in flight (a minimal orchestrator)."""
    results: list[RowResult] = []
    slots = anyio.Semaphore(concurrency)

    async def one(call: Call) -> None:
        try:
            results.append(await sender.send(call))
        finally:
            slots.release()

    async with anyio.create_task_group() as tg:
        for call in calls:
            await slots.acquire()
            tg.start_soon(one, call)
    return sorted(results, key=lambda r: r.row)


def asgi_sender(config: SandboxConfig, *, key: str | None = None, rate: str = "100/s",
                **policy: Any) -> tuple[Sender, Any]:  # fmt: skip
    app = create_app(config)
    client = build_client(
        "http://sandbox.test/api/v2",
        key or config.api_key,
        timeout=5,
        concurrency=4,
        transport=httpx.ASGITransport(app=app),
    )
    policy = {"backoff_initial": 0.1, **policy}
    return Sender(client, Limiter(Rate.parse(rate)), SendPolicy(**policy)), app.sandbox.state


class TestAgainstSandboxApp:
    """The sender's reading of every answer the stand-in API gives, over httpx.ASGITransport."""

    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, Any]]:
        return ("trio", {"clock": MockClock(autojump_threshold=0)})

    async def test_success_stores_the_record(self) -> None:
        """A valid body succeeds and the sandbox stores exactly what was sent."""
        sender, state = asgi_sender(SandboxConfig(api_key=SANDBOX_KEY, rate_limit=None))
        result = await sender.send(sandbox_call(42))
        assert (result.outcome, result.http_status, result.attempts) == (Outcome.SUCCEEDED, 200, 1)
        assert state.get(42) == json.loads(CALL.body)
        assert json.loads(result.response)["data"]["id"] == 42

    async def test_wrong_key_is_final_401(self) -> None:
        """A key the API does not accept: one attempt, UNAUTHORIZED, and the run must stop."""
        config = SandboxConfig(api_key=SANDBOX_KEY, rate_limit=None)
        sender, state = asgi_sender(config, key="rg_test_not_the_right_one")
        result = await sender.send(sandbox_call(1))
        assert (result.outcome, result.http_status, result.error_code) == (
            Outcome.FAILED,
            401,
            "UNAUTHORIZED",
        )
        assert result.attempts == 1
        assert result.http_status in STOP_RUN_STATUSES
        assert state.stats()["total"] == 1

    @pytest.mark.parametrize(("deny", "code"), [(401, "UNAUTHORIZED"), (403, "FORBIDDEN")])
    async def test_denied_account_is_final(self, deny: int, code: str) -> None:
        """A revoked key or a blocked account is answered once and never retried."""
        config = SandboxConfig(api_key=SANDBOX_KEY, rate_limit=None, deny_status=deny)
        sender, _ = asgi_sender(config)
        result = await sender.send(sandbox_call(1))
        assert (result.http_status, result.error_code, result.attempts) == (deny, code, 1)

    async def test_not_found_and_validation_are_final(self) -> None:
        """404 NOT_FOUND and 400 VALIDATION_ERROR fail the row at once with the API's code."""
        config = SandboxConfig(api_key=SANDBOX_KEY, rate_limit=None, not_found_ids=frozenset({9}))
        sender, _ = asgi_sender(config)
        missing = await sender.send(sandbox_call(9))
        assert (missing.http_status, missing.error_code, missing.attempts) == (404, "NOT_FOUND", 1)
        bad = await sender.send(Call(row=2, routing_id=3, body='{"for_inbound_call":7}'))
        assert (bad.http_status, bad.error_code, bad.attempts) == (400, "VALIDATION_ERROR", 1)
        assert bad.error_message
        assert "\n" not in bad.error_message

    async def test_scripted_faults_are_retried_to_success(self) -> None:
        """503, an HTML 502, a 429 and a dropped connection in a row: retried, then succeeded."""
        config = SandboxConfig(
            api_key=SANDBOX_KEY, rate_limit=None, script={5: ("503", "html", "429", "drop")}
        )
        sender, state = asgi_sender(config, max_attempts=5)
        result = await sender.send(sandbox_call(5))
        assert (result.outcome, result.attempts) == (Outcome.SUCCEEDED, 5)
        assert state.stats()["by_routing_id"]["5"] == 5

    async def test_rate_limited_run_settles_without_losing_rows(self) -> None:
        """Sending at 10/s to a sandbox limited to 2/s: 429s pause and slow us, every row lands."""
        config = SandboxConfig(api_key=SANDBOX_KEY, rate_limit=Rate.parse("2/s"))
        sender, state = asgi_sender(config, rate="10/s", max_attempts=10)
        results = await send_all(sender, [sandbox_call(i) for i in range(1, 21)], concurrency=4)
        assert [r.outcome for r in results] == [Outcome.SUCCEEDED] * 20
        stats = state.stats()
        assert stats["by_status"].get("429", 0) > 0
        for result in results:
            assert stats["by_routing_id"][str(result.routing_id)] == result.attempts


async def test_real_sandbox_with_faults_every_row_succeeds() -> None:
    """Over a loopback sandbox with 5xx, HTML pages, drops and slow answers, retries suffice and
    the sandbox saw no row more often than its attempts say."""
    faults = Faults(error_rate=0.15, html_rate=0.1, drop_rate=0.1, slow_rate=0.05, slow_seconds=1)
    config = SandboxConfig(
        api_key=SANDBOX_KEY, rate_limit=None, max_concurrent=None, faults=faults, seed=7
    )
    with serve_in_thread(config) as sandbox:
        async with build_client(sandbox.base_url, sandbox.api_key, timeout=0.5,
                                concurrency=4) as client:  # fmt: skip
            policy = SendPolicy(max_attempts=10, timeout=0.5, backoff_initial=0.01)
            sender = Sender(client, Limiter(Rate.parse("500/s")), policy)
            results = await send_all(sender, [sandbox_call(i) for i in range(1, 41)], 4)
        stats = sandbox.stats()
    assert [r.outcome for r in results] == [Outcome.SUCCEEDED] * 40
    assert sum(r.attempts for r in results) > 40  # the faults really happened
    for result in results:
        assert 1 <= stats["by_routing_id"][str(result.routing_id)] <= result.attempts
        assert sandbox.record(int(result.routing_id)) == json.loads(CALL.body)


async def test_cancelled_during_a_retry_propagates() -> None:
    """Cancelling attempt 2 (inside tenacity's loop) raises out of send on either backend."""
    second = anyio.Event()
    count = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        if count == 1:
            return httpx.Response(503, json={"success": False})
        second.set()
        await anyio.sleep_forever()
        raise AssertionError

    client = build_client("https://x.test", None, timeout=60, concurrency=1,
                          transport=httpx.MockTransport(handler))  # fmt: skip
    policy = SendPolicy(backoff_initial=0.0)
    sender = Sender(client, Limiter(Rate.parse("1000/s")), policy)
    done: list[RowResult] = []

    async def run() -> None:
        done.append(await sender.send(CALL))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await second.wait()
        tg.cancel_scope.cancel()
    assert done == []
    assert count == 2
