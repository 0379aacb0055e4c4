"""Shared fixtures: live sandboxes on a free loopback port, and Ctrl-C's handler put back.

    def test_x(live_sandbox): ...                     # limits and faults off
    def test_y(start_sandbox):
        sandbox = start_sandbox(faults=Faults(drop_rate=1.0), seed=1)   # SandboxConfig fields
        sandbox.base_url, sandbox.api_key, sandbox.stats(), sandbox.record(17)

Every sandbox started in a test is shut down when the test ends. For tests without sockets use
``httpx.ASGITransport(app=create_app(config))`` directly.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from batch.sandbox import RunningSandbox, SandboxConfig, generate_api_key, serve_in_thread

StartSandbox = Callable[..., RunningSandbox]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the event loop reroute runs on (``anyio.run``'s default);
    the files that need trio's virtual clock pin trio with a fixture of their own."""
    return "asyncio"


@pytest.fixture
def start_sandbox() -> Iterator[StartSandbox]:
    """Start live sandboxes: ``start_sandbox(**SandboxConfig fields)`` or ``start_sandbox(config)``.

    Without arguments the key is fresh and the rate and concurrency limits are off (tests should
    not wait on the real 60/min); pass ``rate_limit=``/``max_concurrent=`` to test them.
    """
    with ExitStack() as stack:

        def start(config: SandboxConfig | None = None, **fields: Any) -> RunningSandbox:
            if config is None:
                fields.setdefault("api_key", generate_api_key())
                fields.setdefault("rate_limit", None)
                fields.setdefault("max_concurrent", None)
                config = SandboxConfig(**fields)
            return stack.enter_context(serve_in_thread(config))

        yield start


@pytest.fixture
def live_sandbox(start_sandbox: StartSandbox) -> RunningSandbox:
    """A live sandbox on 127.0.0.1 with a fresh key, limits and faults off."""
    return start_sandbox()


@pytest.fixture(autouse=True)
def own_pace_folder(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs started by a test (in process or not) share their key's pace in a folder of the
    test's own (batch.send.keyshare), never in the user's runtime folder."""
    monkeypatch.setenv("REROUTE_RUNTIME_DIR", str(tmp_path_factory.mktemp("pace")))


@pytest.fixture(autouse=True)
def sigint_handler_restored() -> Iterator[None]:
    """A run in process leaves Ctrl-C ignored once its sending is over (the process is about to
    end: batch.engine.signals.ignore_interrupts); put pytest's handler back after each test."""
    before = signal.getsignal(signal.SIGINT)
    yield
    if signal.getsignal(signal.SIGINT) is not before:
        signal.signal(signal.SIGINT, before)


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every name but loopback fails to resolve (simulated: EAI_NONAME, nothing is asked of any
    DNS)."""
    real = socket.getaddrinfo

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("127.0.0.1", "localhost", "::1"):
            return real(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)


@pytest.fixture(autouse=True)
def fast_lane_stays_fast(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast lane (`pytest -m "not slow"`) opens no listening socket and starts no process:
    a test that does is marked ``slow``, and this says so when one is not."""
    if request.node.get_closest_marker("slow") is not None:
        return
    name = request.node.nodeid

    def listen(self: socket.socket, *args: Any) -> None:
        raise AssertionError(f"{name} serves on a live socket: mark it @pytest.mark.slow")

    def popen(self: Any, *args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"{name} starts a process: mark it @pytest.mark.slow")

    monkeypatch.setattr(socket.socket, "listen", listen)
    monkeypatch.setattr(subprocess.Popen, "__init__", popen)
