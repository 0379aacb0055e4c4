"""The stand-in VoiceLink API as an ASGI app (starlette), for uvicorn or ``httpx.ASGITransport``.

Order of checks for an update, and why:
  arrival jitter (the way in) -> key (401) -> forced denial (401/403) -> concurrency (429)
  -> rate (429) -> routing id (400)
  -> fault draw (5xx/HTML: before the record is touched) -> body (400) -> connection (400)
  -> record exists (404) -> store -> drop/slow (after storing) -> latency -> answer.
Limits come after the key because they are per key; faults come after the limits so a 429 does
not use up a routing id's scripted answers.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from typing import Any, Final

import anyio
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from batch.sandbox.config import SandboxConfig
from batch.sandbox.faults import Dice, Draw, Fate
from batch.sandbox.limits import (
    ArrivalJitter,
    ConcurrencyLimiter,
    rate_limiter,
    retry_after_seconds,
)
from batch.sandbox.lists import (
    BOTS_ROUTE,
    CONNECTIONS_ROUTE,
    bots_for_state,
    bots_page,
    connection_records,
    load_bots,
)
from batch.sandbox.schema import UpdateBody, check_body
from batch.sandbox.state import SandboxState, load_state

API_PREFIX: Final = "/api/v2"
UPDATE_ROUTE: Final = API_PREFIX + "/voicelink/call-routing/{routing_id}"
STATS_ROUTE: Final = "/sandbox/stats"
_CYCLE: Final = "reroute.sandbox.cycle"  # scope key: the server's request cycle, when there is one

_CODES: Final = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
}
_HTML_502: Final = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The API's error envelope."""
    code = _CODES.get(status, f"HTTP_{status}")
    body = {"success": False, "error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def success(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"success": True, "data": data})


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _canonical_uuid(text: str) -> str | None:
    """Lower-case hyphenated form, so any spelling of the same UUID compares equal."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def _routing_id(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) >= 1 else None


_COUNTED: Final = "reroute.sandbox.counted"


class _Dropped(Exception):
    """Internal: the connection was closed on purpose; there is no answer to count."""


class Sandbox:
    """The endpoints and everything they share (state, limits, dice)."""

    def __init__(self, config: SandboxConfig, clock: Callable[[], float]) -> None:
        self.config = config
        records = load_state(config.state) if config.state is not None else None
        self.state = SandboxState(records)
        named = (*config.known_connection_ids(), *self.state.connection_ids())
        self.connections = frozenset(filter(None, map(_canonical_uuid, named)))
        self.rate = (
            rate_limiter(config.rate_limit, clock, config.rate_limit_mode)
            if config.rate_limit
            else None
        )
        self.arrival = ArrivalJitter(config.arrival_jitter, config.seed)
        self.concurrency = ConcurrencyLimiter(config.max_concurrent)
        self.dice = Dice(config.faults, config.seed, config.script)
        self._key = config.api_key.encode()
        if config.bots is not None:
            self.bots = config.bots
        elif config.bots_file is not None:
            self.bots = load_bots(config.bots_file)
        else:
            self.bots = bots_for_state((records or {}).values())
        self.bot_ids = frozenset(bot.id for bot in self.bots)

    def _authorised(self, request: Request) -> Response | None:
        """None when the key is right (and not denied), else the 401/403 answer."""
        key = _bearer(request)
        # compare_digest: the sandbox is a model of a real key check, timing included.
        if key is None or not hmac.compare_digest(key.encode(), self._key):
            return error(401, "missing or invalid API key: send Authorization: Bearer <key>")
        if self.config.deny_status == 403:
            return error(403, "this key is not allowed to change call routing (sandbox: denied)")
        if self.config.deny_status == 401:
            return error(401, "this key has been revoked (sandbox: denied)")
        return None

    async def update(self, request: Request) -> Response:
        """``POST /api/v2/voicelink/call-routing/{routing_id}`` (through starlette's router)."""
        return await self.handle_update(request, request.path_params["routing_id"])

    async def handle_update(self, request: Request, raw_id: str) -> Response:
        """The update, for a routing id as written in the path."""
        client = request.client
        self.state.arrived(raw_id, f"{client.host}:{client.port}" if client else "")
        try:
            response = await self._update(request, raw_id)
        except _Dropped:
            # Counted by _serve before the socket closed; nothing reaches the client (uvicorn
            # ignores sends after the disconnect).
            return Response(status_code=204)
        except BaseException:
            if not request.scope.get(_COUNTED):
                self.state.answered(500)
            raise
        self.state.answered(response.status_code)
        return response

    async def _update(self, request: Request, raw_id: str) -> Response:
        arrival = self.arrival.delay()
        if arrival > 0:
            await anyio.sleep(arrival)  # the way in, before the server sees the request
        refused = self._authorised(request)
        if refused is not None:
            await self._latency()
            return refused
        key = self.config.api_key
        if not self.concurrency.enter(key):
            await self._latency()
            return self._too_many(
                f"more than {self.config.max_concurrent} requests in flight for this key", 1.0
            )
        try:
            wait = self.rate.acquire(key) if self.rate is not None else None
            if wait is not None:
                response = self._too_many(f"rate limit of {self.config.rate_limit} exceeded", wait)
            else:
                response = await self._serve(request, raw_id)
            await self._latency()
            return response
        finally:
            self.concurrency.leave(key)

    def _too_many(self, why: str, wait: float) -> Response:
        seconds = retry_after_seconds(wait)
        headers = {"Retry-After": str(seconds)} if self.config.retry_after else None
        return error(429, f"{why}; back off and retry after the window resets", headers)

    async def _latency(self) -> None:
        delay = self.dice.delay()
        if delay > 0:
            await anyio.sleep(delay)

    async def _serve(self, request: Request, raw_id: str) -> Response:
        raw = await request.body()
        routing_id = _routing_id(raw_id)
        if routing_id is None:
            return error(400, f"routing_id: must be an integer >= 1 (got {raw_id!r})")
        draw = self.dice.fate(routing_id, self.state.served(routing_id))
        if draw.fate is Fate.ERROR:
            return self._error_fault(draw)
        if draw.fate is Fate.HTML:
            return HTMLResponse(_HTML_502, status_code=502)
        body = check_body(raw)
        if isinstance(body, str):
            return error(400, body)
        problem = self._connection_problem(body) or self._bot_problem(body)
        if problem is not None:
            return error(400, problem)
        if routing_id in self.config.not_found_ids or (
            self.state.seeded and not self.state.exists(routing_id)
        ):
            return error(404, f"call routing {routing_id} not found")
        record = body.record()
        self.state.put(routing_id, record)
        if draw.fate is Fate.DROP:
            # Count the drop before the socket closes: a client that sees the hang-up and then
            # reads /sandbox/stats must find it there.
            self.state.answered(None)
            request.scope[_COUNTED] = True
            await _drop(request)
        if draw.fate is Fate.SLOW:
            await anyio.sleep(self.config.faults.slow_seconds)
        return success({"id": routing_id, **record})

    def _error_fault(self, draw: Draw) -> Response:
        status = draw.status or 500
        if status == 429:
            return self._too_many("rate limit exceeded (sandbox: scripted)", 1.0)
        return error(status, f"sandbox: injected {status} answer")

    def _connection_problem(self, body: UpdateBody) -> str | None:
        connection = body.connection
        if connection is None:
            if self.config.connections > 1:
                return (
                    f"connection_id: required: this account has {len(self.connections)} active "
                    "VoiceLink connections; say which one"
                )
            return None
        if self.config.connections > 1 and _canonical_uuid(connection) not in self.connections:
            return f"connection_id: {connection} is not a VoiceLink connection of this account"
        return None

    def _bot_problem(self, body: UpdateBody) -> str | None:
        if not self.config.reject_unknown_bots:
            return None
        for name in ("inbound_websocket_bot_id", "outbound_websocket_bot_id"):
            bot = getattr(body, name)
            if bot is not None and bot not in self.bot_ids:
                return f"{name}: bot {bot} not found on this account"
        return None

    async def _list(self, request: Request, name: str, serve: Callable[[], Response]) -> Response:
        """A list GET: key, rate (the same per-key limit as updates), scripted answers."""
        refused = self._authorised(request)
        if refused is not None:
            return refused
        key = self.config.api_key
        wait = self.rate.acquire(key) if self.rate is not None else None
        if wait is not None:
            return self._too_many(f"rate limit of {self.config.rate_limit} exceeded", wait)
        served = self.state.listed(name)
        script = self.config.list_script
        answer = script[served - 1] if served <= len(script) else "ok"
        await self._latency()
        if answer == "html":
            return HTMLResponse(_HTML_502, status_code=502)
        if answer == "shape":
            return JSONResponse({"success": True, "data": {"bots": []}})
        if answer != "ok":
            status = int(answer)
            if status == 429:
                return self._too_many("rate limit exceeded (sandbox: scripted)", 1.0)
            return error(status, f"sandbox: injected {status} answer")
        return serve()

    async def list_bots(self, request: Request) -> Response:
        """``GET /api/v2/voicelink/bots``: paged (per_page 1..1000), nested under data.data."""

        def serve() -> Response:
            page = bots_page(self.bots, dict(request.query_params))
            if isinstance(page, str):
                return error(400, page)
            return success({"data": page})

        return await self._list(request, "bots", serve)

    async def list_connections(self, request: Request) -> Response:
        """``GET /api/v2/telephony/connections?provider=voicelink``: data is the list itself
        (the docs do not show this envelope; the client accepts both shapes)."""

        def serve() -> Response:
            provider = request.query_params.get("provider")
            if provider is not None and provider.lower() != "voicelink":
                return JSONResponse({"success": True, "data": []})
            records = connection_records(
                self.listed_connections, self.config.inactive_connection_ids
            )
            return JSONResponse({"success": True, "data": records})

        return await self._list(request, "connections", serve)

    @property
    def listed_connections(self) -> tuple[str, ...]:
        """The active connections the list shows: explicit ids, else those the seeded records
        name, else the made-up ones of ``--connections N``."""
        config = self.config
        named = sorted(self.state.connection_ids()) if config.connections == 1 else []
        return config.connection_ids or tuple(named) or config.known_connection_ids()

    async def read(self, request: Request) -> Response:
        """Sandbox-only: ``GET .../call-routing/{routing_id}`` returns the stored record."""
        refused = self._authorised(request)
        if refused is not None:
            return refused
        routing_id = _routing_id(request.path_params["routing_id"])
        record = self.state.get(routing_id) if routing_id is not None else None
        if routing_id is None or record is None:
            return error(404, f"call routing {request.path_params['routing_id']} not found")
        return success({"id": routing_id, **record})

    async def stats(self, request: Request) -> Response:
        """Sandbox-only: ``GET /sandbox/stats``: request counts (no key needed: no secrets)."""
        return JSONResponse(self.state.stats())


async def _drop(request: Request) -> None:
    """Close the connection without an answer.

    Under uvicorn the ASGI ``send`` is a bound method of the request cycle, which holds the
    socket's transport: closing it is exactly what a crashed backend or a proxy timeout looks
    like to the client. Under ``httpx.ASGITransport`` there is no socket; raising what httpx
    raises when a real server hangs up gives the client the same experience.
    """
    cycle = request.scope.get(_CYCLE)
    transport = getattr(cycle, "transport", None)
    if cycle is None or transport is None:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
    transport.close()
    # Wait for uvicorn to notice (connection_lost), so it neither writes nor logs a missing
    # response; the answer we then return goes nowhere.
    with anyio.move_on_after(5):
        while (await cycle.receive())["type"] != "http.disconnect":
            pass
    raise _Dropped


_UPDATE_PREFIX: Final = UPDATE_ROUTE.removesuffix("{routing_id}")


class SandboxApp(Starlette):
    """Starlette, plus two things done before its middleware and router run.

    The server's request cycle is kept in the scope, for dropped connections (middleware wraps
    ``send``, so the handler could no longer reach the cycle through it). And updates, the hot
    path, go straight to their handler: starlette's router and middleware layers cost about as
    much as the update itself, and the sandbox must outrun the runner in benchmarks.
    """

    sandbox: Sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[_CYCLE] = getattr(send, "__self__", None)
            path: str = scope["path"]
            if scope["method"] == "POST" and path.startswith(_UPDATE_PREFIX):
                raw_id = path[len(_UPDATE_PREFIX) :]
                if raw_id and "/" not in raw_id:
                    scope["app"] = self
                    request = Request(scope, receive)
                    response = await self.sandbox.handle_update(request, raw_id)
                    await response(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return error(status, f"no such endpoint: {request.method} {request.url.path}")


def create_app(config: SandboxConfig, *, clock: Callable[[], float] | None = None) -> Starlette:
    """The sandbox as an ASGI app. ``clock`` (default ``anyio.current_time``) drives the rate
    limit; the stored state and counts are at ``app.sandbox.state``.

    Raises InputFileError when ``config.state`` cannot be read.
    """
    sandbox = Sandbox(config, clock or anyio.current_time)
    app = SandboxApp(
        routes=[
            Route(UPDATE_ROUTE, sandbox.update, methods=["POST"]),
            Route(UPDATE_ROUTE, sandbox.read, methods=["GET"]),
            Route(STATS_ROUTE, sandbox.stats, methods=["GET"]),
            Route(BOTS_ROUTE, sandbox.list_bots, methods=["GET"]),
            Route(CONNECTIONS_ROUTE, sandbox.list_connections, methods=["GET"]),
        ],
        exception_handlers={404: _http_error, 405: _http_error},
    )
    app.sandbox = sandbox
    return app
