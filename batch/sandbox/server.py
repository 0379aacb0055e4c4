"""Serving the sandbox over real HTTP on loopback: in a background thread, or in the foreground.

uvicorn runs its own event loop (in its own thread for :func:`serve_in_thread`), so nothing in
``batch/`` imports asyncio, and the caller's loop, whatever it is, stays its own.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from batch.errors import UsageError
from batch.sandbox.app import API_PREFIX, SandboxApp, create_app
from batch.sandbox.config import SandboxConfig
from batch.sandbox.state import SandboxState


@dataclass(frozen=True, slots=True)
class Tls:
    """A certificate (PEM, its chain) and its private key: the sandbox then speaks HTTPS, to
    rehearse a private CA or a certificate that does not verify."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class RunningSandbox:
    """A sandbox accepting connections. ``base_url`` ends in ``/api/v2`` like the real one."""

    base_url: str  # "http://127.0.0.1:PORT/api/v2" (https:// with a certificate)
    api_key: str
    host: str
    port: int
    config: SandboxConfig
    state: SandboxState  # live: records and counts, readable from any thread

    @property
    def root_url(self) -> str:
        """``http://host:port``, where ``/sandbox/stats`` lives."""
        return self.base_url.removesuffix(API_PREFIX)

    @property
    def connection_ids(self) -> tuple[str, ...]:
        """Connection ids the sandbox accepts (matters with ``connections`` > 1)."""
        return self.config.known_connection_ids()

    def stats(self) -> dict[str, Any]:
        """Same as ``GET /sandbox/stats``, without a request."""
        return self.state.stats()

    def record(self, routing_id: int) -> dict[str, Any] | None:
        """The stored record of a routing id, or None."""
        return self.state.get(routing_id)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one. UsageError when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets whose proto says
    # TCP, and without it every kept-alive answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): choose another --port "
            "or --host"
        ) from exc
    return sock


def _url_host(host: str) -> str:
    host = host.strip("[]")
    return f"[{host}]" if ":" in host else host


def _running(
    config: SandboxConfig, app: Starlette, sock: socket.socket, tls: Tls | None
) -> RunningSandbox:
    host, port = sock.getsockname()[:2]
    assert isinstance(app, SandboxApp)
    scheme = "https" if tls is not None else "http"
    return RunningSandbox(
        base_url=f"{scheme}://{_url_host(host)}:{port}{API_PREFIX}",
        api_key=config.api_key,
        host=host,
        port=port,
        config=config,
        state=app.sandbox.state,
    )


def _server(app: Starlette, *, access_log: bool, grace: int, tls: Tls | None = None) -> Any:
    config = uvicorn.Config(
        app,
        ssl_certfile=str(tls.cert) if tls is not None else None,
        ssl_keyfile=str(tls.key) if tls is not None else None,
        log_config=None,  # leave the host program's logging alone
        log_level="info" if access_log else "warning",
        access_log=access_log,
        lifespan="off",
        proxy_headers=False,
        timeout_graceful_shutdown=grace,
    )
    return uvicorn.Server(config)


@contextmanager
def serve_in_thread(
    config: SandboxConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Callable[[], float] | None = None,
    startup_timeout: float = 10.0,
    tls: Tls | None = None,
) -> Iterator[RunningSandbox]:
    """Serve the sandbox from a daemon thread until the block ends.

    Returns once the socket accepts connections; on exit asks uvicorn to stop, lets requests
    in flight finish (at most 2 s) and joins the thread. Port 0 picks a free port.
    """
    app = create_app(config, clock=clock)  # first: a bad state file must not leak a socket
    sock = listen(host, port)
    server = _server(app, access_log=False, grace=2, tls=tls)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="reroute-sandbox", daemon=True
    )
    try:
        thread.start()
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.002)
        yield _running(config, app, sock, tls)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():  # pragma: no cover - only when a request ignores cancellation
            server.force_exit = True
            thread.join(timeout=5)
        sock.close()


def serve_forever(
    config: SandboxConfig,
    host: str,
    port: int,
    *,
    on_ready: Callable[[RunningSandbox], None],
    access_log: bool = False,
    tls: Tls | None = None,
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM, then shut down cleanly.

    ``on_ready`` runs once the socket is listening (connections wait in its backlog). uvicorn
    re-raises the signal after its graceful shutdown, so Ctrl-C ends in KeyboardInterrupt.
    """
    app = create_app(config)
    sock = listen(host, port)
    try:
        on_ready(_running(config, app, sock, tls))
        _server(app, access_log=access_log, grace=5, tls=tls).run(sockets=[sock])
    finally:
        sock.close()
