"""One request: a POST with one deadline for the whole exchange, read (at most ANSWER_CAP of
its answer: ``batch.send.bounded``) and classified.

httpx objects stop here: an answer comes back as an ``Answer``, and httpx exceptions are
translated once, at this boundary, into ``RequestTimeout``, ``ConnectionFailed``
(``NotConnected``, ``NameNotResolved``) and ``CertificateRejected``. Pacing and retries are the
sender's (``batch.send.sender``).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime

import anyio
import httpx
from anyio.abc import TaskStatus

from batch.errors import CertificateRejected, RequestTimeout
from batch.model import Call
from batch.send.answers import Reader, transport_error
from batch.send.bounded import ANSWER_CAP, fetch
from batch.send.retry import Answer


class Requester:
    """Sends one call's request at a time (from many tasks at once) through ``client``."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        timeout: float,
        *,
        now: Callable[[], datetime],
        via: str = "",
        issuer: Callable[[str, int], Awaitable[str | None]] | None = None,
    ) -> None:
        """``timeout``: seconds for a whole exchange. ``via``: how requests travel, for
        connection errors. ``issuer(host, port)``: the CA of what a host whose certificate did
        not verify presents (batch.send.issuer)."""
        self._client = client
        # Speed unit: each POST names its URL in full. httpx merges a relative path with the
        # client's base URL by parsing both (~35 us a request, ~2% of one against the sandbox;
        # docs/dev/benchmarks.md); the prefix is taken from that merge itself, once, so the URL is
        # the one it gives (tests/send/test_request_url.py).
        merged = str(client.build_request("POST", "x").url)
        self._prefix = merged[:-1] if merged.endswith("/x") else ""
        self._timeout = timeout
        self._via = f" {via}" if via else ""
        self._issuer: str | None = None  # the CA of a rejected certificate, once looked up
        self._look_up_issuer = issuer  # batch.send.issuer.presented_issuer in a real run
        # Requests in flight and when each is due (loop clock), for watch_deadlines.
        self._deadlines: dict[anyio.CancelScope, float] = {}
        self._watched = False  # watch_deadlines is running
        # The secret as it travels, to scrub from anything a server or library echoes back.
        auth = client.headers.get("authorization", "")
        token = auth.split(" ", 1)[1] if " " in auth else auth
        self._reader = Reader(tuple(s for s in (auth, token) if len(s) >= 4), now)
        self.scrub = self._reader.scrub

    async def watch_deadlines(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Enforce every request's deadline from this one task, until cancelled.

        Without it, each request's cancel scope carries its own timer, and an event loop timer
        per request is the costliest part of a request's deadline (asyncio keeps its timers in
        a heap ordered by Python comparisons: ~20k instructions a request, about 2 points of the
        overhead benchmark). While it runs, request scopes have no timer; every tick (a tenth
        of --timeout, at most a second) it cancels those that are due, so a request times out
        between --timeout and one tick later. Start it with ``task_group.start``.
        """
        tick = min(1.0, self._timeout / 10)
        self._watched = True
        task_status.started()
        try:
            while True:
                await anyio.sleep(tick)
                now = anyio.current_time()
                for scope, due in list(self._deadlines.items()):
                    if now >= due:
                        scope.cancel()
        finally:
            self._watched = False

    async def post(self, call: Call, now: float) -> Answer:
        """One POST, at most ANSWER_CAP of its answer read, classified; ``now`` (the loop's
        clock) places its deadline. Raises only our transport errors."""
        timeout = self._timeout
        try:
            # One deadline for the whole exchange: httpx's timeouts are per operation, so a
            # server dripping one byte at a time would otherwise never time out. A bare cancel
            # scope rather than anyio.fail_after (no generator-based context manager); and
            # while watch_deadlines runs, a scope without a timer of its own: the watchdog
            # cancels it once it is due.
            due = now + timeout
            with anyio.CancelScope(deadline=math.inf if self._watched else due) as deadline:
                self._deadlines[deadline] = due
                try:
                    path = call.path
                    url = self._prefix + path.lstrip("/") if self._prefix else path
                    request = self._client.build_request("POST", url, content=call.body.encode())
                    response, body = await fetch(self._client, request, ANSWER_CAP)
                finally:
                    del self._deadlines[deadline]
        except httpx.TimeoutException as exc:
            raise RequestTimeout(f"no answer within {timeout:g} s (--timeout)") from exc
        except httpx.HTTPError as exc:
            host = self._client.base_url.host
            error = transport_error(exc, host, self._via, self.scrub)
            if isinstance(error, CertificateRejected) and not self._via and self._look_up_issuer:
                error = await self._naming_the_issuer(error)
            raise error from exc
        if deadline.cancelled_caught:
            raise RequestTimeout(f"no answer within {timeout:g} s (--timeout)")
        return self._reader.read(response, body)

    async def _naming_the_issuer(self, error: CertificateRejected) -> CertificateRejected:
        """The rejection's message with the CA that issued what the server presents (looked up
        once per run: one more handshake, nothing sent). Not through a proxy: there the proxy,
        not the host, would present it."""
        if self._issuer is None and self._look_up_issuer is not None:
            url = self._client.base_url
            self._issuer = await self._look_up_issuer(url.host, url.port or 443) or ""
        if not self._issuer:
            return error
        return CertificateRejected(f"{error} (the certificate was issued by {self._issuer})")
