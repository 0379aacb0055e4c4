"""The sandbox: a local stand-in of the VoiceLink call-routing API (issue 3).

``create_app(config)`` is the ASGI app (for ``httpx.ASGITransport``); ``serve_in_thread(config)``
serves it on loopback for ``reroute run --sandbox`` and tests; ``reroute sandbox`` serves it in
the foreground. Test suites that drive the sandbox import from here (``Tls``, ``SandboxBot``, the
config), never from its inner modules.
"""

from __future__ import annotations

from batch.sandbox.app import API_PREFIX, create_app
from batch.sandbox.config import Faults, SandboxConfig, generate_api_key
from batch.sandbox.lists import SandboxBot
from batch.sandbox.server import RunningSandbox, Tls, serve_forever, serve_in_thread

__all__ = [
    "API_PREFIX",
    "Faults",
    "RunningSandbox",
    "SandboxBot",
    "SandboxConfig",
    "Tls",
    "create_app",
    "generate_api_key",
    "serve_forever",
    "serve_in_thread",
]
