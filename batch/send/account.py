"""Read the account's WebSocket bots and VoiceLink connections: the preflight's facts.

Every GET goes through the run's own client, waits for its slot on the run's own
:class:`~batch.send.limiter.Limiter` (the lists count against the same 60/min as the updates: a page
of 1,000 bots is one request) and is retried by the same rule as an update
(``batch.send.retry.is_transient``: timeouts, dropped connections, 429, 5xx). A list that cannot be
read whole (401, 5xx after the retries, a shape the docs do not describe, more pages than any
account has) raises :class:`~batch.errors.AccountUnreadable`: the preflight never judges rows
against half a list. What comes back is plain frozen values, kept beside the run's journal
(``batch.send.accountfile``) so a resumed run does not read them again.
"""

from __future__ import annotations

import json
import random as _random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import anyio
import httpx
import tenacity

from batch import voicelink as vl
from batch.errors import AccountUnreadable, NameNotResolved, RequestTimeout, TransportError
from batch.send.answers import Reader, transport_error
from batch.send.bounded import LIST_CAP, cap_text, fetch
from batch.send.client import Network, SendPolicy, build_client
from batch.send.limiter import Limiter
from batch.send.outage import Breaker, Turn, report
from batch.send.retry import (
    RETRY_AFTER_STATUSES,
    STOP_RUN_STATUSES,
    Answer,
    AttemptOutcome,
    backoff,
    build_retrying,
    default_now,
    is_transient,
)
from batch.settings import DEFAULT_API_KEY_ENV, Rate

# Pages of bots read before giving up: 1,000 pages of 1,000 is far beyond any account, and a
# server that never sends a short page must not keep a run reading for ever.
MAX_PAGES: Final = 1000


@dataclass(frozen=True, slots=True)
class Bot:
    """One WebSocket bot of the account (``GET /voicelink/bots``)."""

    id: int
    name: str
    status: int  # 1 active, 0 inactive

    @property
    def active(self) -> bool:
        return self.status == vl.BOT_ACTIVE


@dataclass(frozen=True, slots=True)
class Connection:
    """One VoiceLink connection of the account (``GET /telephony/connections``)."""

    connection_id: str  # canonical lower-case UUID
    name: str
    status: str  # "ACTIVE" when in use
    is_default: bool = False

    @property
    def active(self) -> bool:
        return self.status.upper() == vl.CONNECTION_ACTIVE


@dataclass(frozen=True)
class Account:
    """What the account has, as read at ``read_at`` (UTC) from ``host``."""

    bots: tuple[Bot, ...]
    connections: tuple[Connection, ...]
    read_at: datetime
    host: str = ""
    requests: int = field(default=0, compare=False)  # GETs this read took (0: from a file)

    @property
    def active_connections(self) -> tuple[Connection, ...]:
        return tuple(c for c in self.connections if c.active)


async def fetch_account(
    client: httpx.AsyncClient,
    limiter: Limiter,
    policy: SendPolicy,
    *,
    per_page: int = vl.BOTS_MAX_PER_PAGE,
    max_pages: int = MAX_PAGES,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    random: Callable[[], float] = _random.random,
    now: Callable[[], datetime] = default_now,
    breaker: Breaker | None = None,
    key_source: str = DEFAULT_API_KEY_ENV,
) -> Account:
    """Read the connections, then every page of bots (per active connection when there are
    several: the bots list takes ``connection_id`` then). Raises AccountUnreadable.

    ``breaker``: the run's host state (batch.send.outage), so the preflight meets an outage as the
    sending does: while the host is down its GETs wait for it without spending their attempts,
    and a host that can never answer (or stays down past --max-outage) ends the reading, which
    the breaker's listener turns into the run's stop. ``key_source``: where the key came from,
    named when the key is refused."""
    reader = _Lister(client, limiter, policy, sleep=sleep, random=random, now=now,
                     breaker=breaker, key_source=key_source)  # fmt: skip
    payload = await reader.get(vl.CONNECTIONS_PATH, dict(vl.CONNECTIONS_QUERY), "connections")
    connections = _connections(payload)
    active = [c.connection_id for c in connections if c.active]
    bots: dict[int, Bot] = {}
    for scope in active if len(active) > 1 else [None]:
        for page in range(1, max_pages + 1):
            params: dict[str, str | int] = {"per_page": per_page, "page": page}
            if scope is not None:
                params["connection_id"] = scope
            records = _records(await reader.get(vl.BOTS_PATH, params, "bots"), "bots", page)
            for bot in map(_bot, records):
                bots.setdefault(bot.id, bot)
            if len(records) < per_page:
                break
        else:
            raise AccountUnreadable(
                f"the bots list still had full pages after {max_pages} pages of {per_page}: "
                "stopped reading; nothing was sent (pass --no-account-check to skip the check)"
            )
    return Account(
        bots=tuple(sorted(bots.values(), key=lambda b: b.id)),
        connections=tuple(connections),
        read_at=now(),
        host=client.base_url.host,
        requests=reader.requests,
    )


def read_account(
    base_url: str,
    key: str | None,
    *,
    rate: Rate,
    policy: SendPolicy,
    network: Network,
    limiter: Limiter | None = None,
    key_source: str = DEFAULT_API_KEY_ENV,
) -> Account:
    """The lists, read in a small event loop of its own, before the run's. ``limiter``: the
    run's (its GETs and the updates share one pace); None (``validate``/``plan --account``,
    no run): a limiter of its own at ``rate``."""
    pace = limiter or Limiter(rate)

    async def read() -> Account:
        async with build_client(base_url, key, timeout=policy.timeout, concurrency=1,
                                network=network) as client:  # fmt: skip
            return await fetch_account(client, pace, policy, key_source=key_source)

    return anyio.run(read)


class _Lister:
    """GETs of one preflight: paced, retried, classified like an update's attempts."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        limiter: Limiter,
        policy: SendPolicy,
        *,
        sleep: Callable[[float], Awaitable[None]],
        random: Callable[[], float],
        now: Callable[[], datetime],
        key_source: str,
        breaker: Breaker | None = None,
    ) -> None:
        self._client, self._limiter, self._policy = client, limiter, policy
        self._breaker = breaker
        self._key_source = key_source
        self._sleep, self._random = sleep, random
        auth = client.headers.get("authorization", "")
        token = auth.split(" ", 1)[1] if " " in auth else auth
        self._reader = Reader(tuple(s for s in (auth, token) if len(s) >= 4), now)
        self.requests = 0

    async def get(self, path: str, params: dict[str, Any], what: str) -> Any:
        """The decoded JSON of a 2xx success answer; AccountUnreadable for anything else."""
        bodies: dict[int, Any] = {}

        async def attempt() -> AttemptOutcome:
            while True:  # more than one request only while the host is down (outage mode)
                turn = Turn.GO if self._breaker is None else await self._breaker.admit()
                if turn is Turn.GONE:  # the run gave up on the host: its stop says why
                    raise AccountUnreadable(
                        f"the account's {what} list was not read: "
                        f"{self._breaker.cause if self._breaker else ''}"
                    )
                await self._limiter.acquire()
                self.requests += 1
                outcome: AttemptOutcome
                try:
                    outcome, bodies[self.requests] = await self._request(path, params)
                except TransportError as exc:
                    outcome = exc
                finally:
                    if turn is Turn.PROBE and self._breaker is not None:
                        self._breaker.probe_abandoned()  # a no-op once the probe was reported
                if self._breaker is None or not report(
                    self._breaker, outcome, probe=turn is Turn.PROBE
                ):
                    return outcome

        def wait(state: tenacity.RetryCallState) -> float:
            assert state.outcome is not None
            outcome: AttemptOutcome = state.outcome.result()
            if isinstance(outcome, Answer) and outcome.wait is not None:
                return outcome.wait
            return backoff(
                state.attempt_number, initial=self._policy.backoff_initial,
                maximum=self._policy.backoff_max, jitter=self._policy.jitter, rnd=self._random(),
            )  # fmt: skip

        retrying = build_retrying(
            max_attempts=self._policy.max_attempts,
            should_retry=_worth_retrying,
            wait=wait,
            sleep=self._sleep,
        )
        final: AttemptOutcome = await retrying(attempt)
        if isinstance(final, Answer) and final.success:
            return bodies[self.requests]
        stops = _stops(final)
        text = _unreadable(what, path, final, self._policy.max_attempts, self._key_source)
        raise AccountUnreadable(text if stops else f"{text}; {_NOTHING_SENT}", stops=stops)

    async def _request(self, path: str, params: dict[str, Any]) -> tuple[Answer, Any]:
        granted = anyio.current_time()
        timeout = self._policy.timeout
        try:
            with anyio.fail_after(timeout):
                request = self._client.build_request("GET", path, params=params)
                response, read = await fetch(self._client, request, LIST_CAP)
        except TimeoutError as exc:
            raise RequestTimeout(f"no answer within {timeout:g} s (--timeout)") from exc
        except httpx.TimeoutException as exc:
            raise RequestTimeout(f"no answer within {timeout:g} s (--timeout)") from exc
        except httpx.HTTPError as exc:
            raise transport_error(exc, self._client.base_url.host, "", self._reader.scrub) from exc
        answer = self._reader.read(response, read)
        if read.cut and answer.success:  # "success": true, and records no one may read whole
            answer = answer._replace(
                success=False, error_code="BAD_RESPONSE",
                error_message=f"the page is {read.size_text()}, more than the "
                f"{cap_text(LIST_CAP)} a page of the list may take: not read further",
            )  # fmt: skip
        if answer.status == 429:
            seconds = answer.retry_after
            if seconds is None or seconds > self._policy.max_retry_after:
                seconds = backoff(1, initial=self._policy.backoff_initial,
                                  maximum=self._policy.backoff_max, jitter=0, rnd=0)  # fmt: skip
            answer = answer._replace(wait=seconds)
            self._limiter.pause(seconds)  # everyone waits: the limit is per key
            self._limiter.throttled()
        else:
            self._limiter.succeeded(anyio.current_time() - granted)
            if answer.status in RETRY_AFTER_STATUSES and answer.retry_after is not None:
                answer = answer._replace(wait=min(answer.retry_after, self._policy.max_retry_after))
        body: Any = None
        if answer.success:
            try:
                body = json.loads(read.content)
            except ValueError:  # Reader said JSON: only an exotic encoding gets here
                body = None
        return answer, body


def _worth_retrying(outcome: AttemptOutcome) -> bool:
    """``is_transient``, except a host name that does not resolve: asking again cannot help."""
    return is_transient(outcome) and not isinstance(outcome, NameNotResolved)


def _stops(final: AttemptOutcome) -> str:
    """The stop reason when a list could not be read for a cause that is not the sheet's: the
    key refused (as the sending stops on it), or a transient failure after every retry (the
    server may answer later: the same command then starts). "" for the rest (refused, exit 2)."""
    if isinstance(final, Answer) and final.status in STOP_RUN_STATUSES:
        return "key_rejected"
    if _worth_retrying(final):
        return "host_unreachable"
    return ""


def _unreadable(what: str, path: str, final: AttemptOutcome, attempts: int, key_source: str) -> str:
    if isinstance(final, Answer):
        cause = final.error_message
        if not final.error_code.startswith("HTTP_"):  # else the message says the status
            cause = f"HTTP {final.status} {final.error_code}: {cause}"
        if final.status == 401:
            cause += f" (check the key in {key_source})"
    else:
        cause = f"{final.code}: {final}"
    tries = f" after {attempts} attempts" if _worth_retrying(final) else ""
    return f"the account's {what} list (GET {path}) could not be read{tries}: {cause}"


_NOTHING_SENT: Final = (
    "nothing was sent (fix that and run again, or pass --no-account-check to skip the check)"
)


def _records(payload: Any, what: str, page: int | None = None) -> list[Any]:
    flat = what == "connections"  # its envelope is not shown in the docs: both shapes
    records = vl.list_records(payload, flat_allowed=flat)
    if records is None:
        where = f" (page {page})" if page is not None else ""
        shape = "data[...] or data.data[...]" if flat else "data.data[...]"
        raise AccountUnreadable(
            f"the account's {what} list{where} answered a shape the docs do not describe (not "
            f"success: true with {shape}): nothing was sent; pass --no-account-check to skip"
        )
    return records


def _bot(record: Any) -> Bot:
    ident = record.get("id") if isinstance(record, dict) else None
    status = record.get("status") if isinstance(record, dict) else None
    if not (isinstance(ident, int) and _is_int(ident) and ident >= 1) or not (
        isinstance(status, int) and _is_int(status) and status in (0, 1)
    ):
        raise AccountUnreadable(
            f"the account's bots list holds a record without an id >= 1 and a status 0/1 "
            f"({json.dumps(record)[:80]}): nothing was sent; pass --no-account-check to skip"
        )
    name = record.get("bot_name")
    return Bot(ident, name if isinstance(name, str) else "", status)


def _connections(payload: Any) -> list[Connection]:
    found: list[Connection] = []
    for record in _records(payload, "connections"):
        raw = record.get("connection_id") if isinstance(record, dict) else None
        try:
            ident = str(uuid.UUID(raw)) if isinstance(raw, str) else None
        except ValueError:
            ident = None
        status = record.get("status") if isinstance(record, dict) else None
        if ident is None or not isinstance(status, str):
            raise AccountUnreadable(
                "the account's connections list holds a record without a UUID connection_id "
                f"and a status ({json.dumps(record)[:80]}): nothing was sent; pass "
                "--no-account-check to skip"
            )
        provider = record.get("provider")
        if isinstance(provider, str) and provider.lower() != "voicelink":
            continue  # asked for provider=voicelink; anything else is not ours to judge
        name = record.get("name")
        found.append(
            Connection(
                ident,
                name if isinstance(name, str) else "",
                status,
                record.get("is_default") is True,
            )
        )
    return found


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
