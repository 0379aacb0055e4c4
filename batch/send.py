"""Send one call to the API, paced and retried, and say what became of it.

The only module that speaks HTTP. httpx objects stop here: the orchestrator gets a ``RowResult``,
and httpx exceptions are translated once, at this boundary, into ``RequestTimeout``,
``ConnectionFailed`` and ``CertificateRejected``.
"""

from __future__ import annotations

import json
import math
import random as _random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import anyio
import httpx
import orjson
import tenacity
from anyio.abc import TaskStatus

from batch import __version__, voicelink
from batch.errors import (
    CertificateRejected,
    ConnectionFailed,
    RequestTimeout,
    TransportError,
    UsageError,
)
from batch.limiter import Limiter, reads_loop_clock
from batch.model import Call, Outcome, RowResult, build_row_result
from batch.retry import (
    RETRY_AFTER_STATUSES,
    Answer,
    AttemptOutcome,
    backoff,
    build_retrying,
    default_now,
    is_transient,
    retry_after_from_headers,
)

USER_AGENT: Final = f"reroute/{__version__}"
EXCERPT_CHARS: Final = 200
REDACTED: Final = "[redacted]"
_BOM: Final = "\ufeff"  # a UTF-8 byte-order mark, decoded
_SUCCEEDED: Final = Outcome.SUCCEEDED  # read once: an Enum class attribute costs a lookup


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """How hard to try one row. Flows down from the run settings."""

    max_attempts: int = 5  # requests per row, first one included (--max-attempts)
    timeout: float = 30.0  # seconds for one whole request, connect to last byte (--timeout)
    max_retry_after: float = 300.0  # a 429 asking for longer fails the row (--max-retry-after)
    backoff_initial: float = 1.0  # wait after the first failed attempt, before jitter
    backoff_max: float = 60.0  # the exponential backoff never waits longer than this
    jitter: float = 0.5  # up to this share of each backoff is taken off at random

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise UsageError(f"max attempts is {self.max_attempts}: use 1 or more")
        for name in ("timeout", "max_retry_after", "backoff_initial", "backoff_max"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "timeout" and value == 0):
                raise UsageError(f"{name.replace('_', ' ')} is {value}: use a positive number")
        if not 0 <= self.jitter <= 1:
            raise UsageError(f"jitter is {self.jitter}: use a share between 0 and 1")


def build_client(
    base_url: str,
    api_key: str | None,
    *,
    timeout: float,
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The HTTP client of a run: the only place the key goes into a header.

    TLS verification is always on; the pool holds as many connections as requests in flight;
    redirects are not followed (a redirected POST is an answer to report, not to chase).
    ``api_key=None`` sends no Authorization header (the embedded sandbox needs none).
    """
    if concurrency < 1:
        raise UsageError(f"concurrency is {concurrency}: use 1 or more requests in flight")
    if not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"timeout is {timeout}: use a positive number of seconds")
    # Content-Type here, not per request: httpx merges per-request headers at a cost that
    # showed in the overhead benchmark, and every request this client sends is JSON.
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    if api_key is not None:
        key = api_key.strip()
        # Checked here, without echoing it: httpx's own error for a bad header value would
        # print the value, and with it the key.
        if not key or not key.isascii() or not key.isprintable() or " " in key:
            raise UsageError(
                "the API key is empty or holds spaces, control or non-ASCII characters: "
                "check VOCOBASE_API_KEY or the --api-key-file contents"
            )
        headers["Authorization"] = f"Bearer {key}"
    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        verify=True,
        follow_redirects=False,
        transport=transport,
    )


class Sender:
    """Sends calls one by one (call ``send`` from many tasks at once), paced by one Limiter.

    Every attempt first awaits ``limiter.acquire()``. A 429 pauses all sending for the
    server's Retry-After (or a backoff) and slows the pace; other transient failures back off
    exponentially with jitter. Retrying a timed-out update is safe: the update replaces the
    whole record with the body we send, so a second identical request changes nothing more
    (idempotent).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        limiter: Limiter,
        policy: SendPolicy,
        *,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] = anyio.current_time,
        now: Callable[[], datetime] = default_now,
        random: Callable[[], float] = _random.random,
        on_attempt: Callable[[Call, int], None] | None = None,
        on_retry: Callable[[Call, int, str], None] | None = None,
        before_wait: Callable[[], None] | None = None,
    ) -> None:
        """``sleep``/``clock``/``now``/``random`` are injected so tests run in virtual time.

        ``on_attempt(call, n)``: attempt n (1-based) is about to be sent.
        ``on_retry(call, n, code)``: attempt n failed with ``code`` and another will follow.
        ``before_wait()``: a row is about to wait for its first slot, before its first
        ``on_attempt`` (the journal commits what it holds back for that moment).
        """
        self._client = client
        self._limiter = limiter
        self._policy = policy
        self._sleep = sleep
        self._clock = clock
        # The clock is the event loop's: a reading of it can also place a request's deadline.
        self._loop_clock = reads_loop_clock(clock)
        self._deadline_clock = clock if self._loop_clock else anyio.current_time
        self._now = now
        self._random = random
        self._on_attempt = on_attempt
        self._on_retry = on_retry
        self._before_wait = before_wait
        self._stopping = False
        self._waiting: set[anyio.CancelScope] = set()  # rows between attempts, to wake on stop
        self._held = False
        self._first_waits: set[anyio.CancelScope] = set()  # rows waiting for their first slot
        # Requests in flight and when each is due (loop clock), for watch_deadlines.
        self._deadlines: dict[anyio.CancelScope, float] = {}
        self._watched = False  # watch_deadlines is running
        # The secret as it travels, to scrub from anything a server or library echoes back.
        auth = client.headers.get("authorization", "")
        token = auth.split(" ", 1)[1] if " " in auth else auth
        self._secrets = tuple(s for s in (auth, token) if len(s) >= 4)

    @property
    def policy(self) -> SendPolicy:
        return self._policy

    def hold_back(self) -> None:
        """The run is stopping gently: start nothing new.

        A row that has not sent its first request yet (waiting for its slot, or not started)
        sends nothing: ``send`` returns None for it (the row stays not attempted). Rows already
        sent go on, retries included, within the grace the orchestrator gives them (a row cut
        off there is ``unknown``, and the same command sends it again).
        Call it from the run's event loop (a stop token's listener, a signal watcher task).
        """
        self._held = True
        for scope in self._first_waits:
            scope.cancel()

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
        tick = min(1.0, self._policy.timeout / 10)
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

    def stop_retrying(self) -> None:
        """Try nothing again: for a stop that must not wait for retries.

        Rows waiting for a retry (a backoff, a 429 pause) end now with the answer they have,
        as ``failed``, instead of sending again or being cancelled into ``unknown``; requests in
        flight finish and are not retried. Implies :meth:`hold_back`.
        Call it from the run's event loop (a stop token's listener, a signal watcher task).
        """
        self.hold_back()
        self._stopping = True
        for scope in self._waiting:
            scope.cancel()

    async def _between_attempts(self, wait: Callable[[], Awaitable[None]]) -> bool:
        """Await ``wait()`` between two attempts; False when ``stop_retrying`` cut it short."""
        if self._stopping:
            return False
        with anyio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                await wait()
            finally:
                self._waiting.discard(scope)
        return not scope.cancel_called

    async def _retry_sleep(self, seconds: float) -> None:
        # A stop cuts the sleep short; the attempt that follows then sees it and sends nothing.
        await self._between_attempts(lambda: self._sleep(seconds))

    async def send(self, call: Call) -> RowResult | None:
        """Send ``call`` until it succeeds, fails for good, or runs out of attempts.

        Never raises for the row's own problem: every answer and transport error becomes the
        row's result. None: nothing was sent, because ``hold_back`` came first (the row stays
        not attempted). Cancellation propagates (the orchestrator records the row as unknown).
        """
        # The first slot: at once when it is due (no await, no cancel scope: the common case
        # of a fast run costs nothing here), else a wait a gentle stop can cut short.
        if self._held:
            return None
        if not self._limiter.try_acquire():
            if self._before_wait is not None:
                self._before_wait()
            with anyio.CancelScope() as waiting:
                self._first_waits.add(waiting)
                try:
                    await self._limiter.acquire()
                finally:
                    self._first_waits.discard(waiting)
            if waiting.cancel_called:
                return None
        # The first attempt (its slot was taken above): most rows end here. The steps of
        # _attempt, written out: one coroutine fewer for every resumption of the request.
        started_at = self._now()
        started_clock = self._clock()
        attempts = 1
        if self._on_attempt is not None:
            self._on_attempt(call, 1)
        final: AttemptOutcome
        try:
            answer = await self._request(call, started_clock if self._loop_clock else None)
        except TransportError as exc:
            final = exc
        else:
            final = self._paced(answer, 1)
        retry = self._policy.max_attempts > 1 and not (isinstance(final, Answer) and final.success)
        if retry and self._should_retry(final):
            last = final

            async def attempt() -> AttemptOutcome:
                nonlocal attempts, last
                # A retry waits for its own slot, unless the run is stopping: no retry then,
                # the row keeps the answer it has.
                if not await self._between_attempts(self._limiter.acquire):
                    return last
                attempts += 1
                last = await self._attempt(call, attempts)
                return last

            # Not tenacity's wait_exception (our outcomes are values, not exceptions: a bad row
            # is a value) nor wait_exponential_jitter (its random is global; ours is injected).
            def wait(state: tenacity.RetryCallState) -> float:
                assert state.outcome is not None
                outcome: AttemptOutcome = state.outcome.result()
                if isinstance(outcome, Answer) and outcome.wait is not None:
                    return outcome.wait  # the same wait the limiter's pause got, drawn once
                return self._backoff(state.attempt_number)

            def before_sleep(state: tenacity.RetryCallState) -> None:
                if self._on_retry is not None and state.outcome is not None:
                    outcome: AttemptOutcome = state.outcome.result()
                    self._on_retry(call, state.attempt_number, _code(outcome))

            # Only rows that need a retry pay for tenacity's loop (tens of microseconds a row,
            # a sizeable share of a fast request). It replays the first outcome as its attempt
            # 1, so attempt numbers, waits and hooks are exactly those of a loop from the start.
            replay: list[AttemptOutcome] = [final]

            async def first_then_more() -> AttemptOutcome:
                return replay.pop() if replay else await attempt()

            retrying = build_retrying(
                max_attempts=self._policy.max_attempts,
                should_retry=self._should_retry,
                wait=wait,
                sleep=self._retry_sleep,
                before_sleep=before_sleep,
            )
            final = await retrying(first_then_more)
        finished_at = self._now()
        duration_ms = round((self._clock() - started_clock) * 1000)
        return self._result(call, final, attempts, started_at, finished_at, duration_ms)

    # -- one attempt -------------------------------------------------------------------------

    async def _attempt(self, call: Call, n: int) -> AttemptOutcome:
        """Attempt ``n`` of ``call``, its slot already taken: the answer, or the transport
        error, with what it means for the pace applied."""
        if self._on_attempt is not None:
            self._on_attempt(call, n)
        try:
            answer = await self._request(call)
        except TransportError as exc:
            return exc
        return self._paced(answer, n)

    def _paced(self, answer: Answer, n: int) -> Answer:
        """Attempt ``n``'s answer, with what it means for the pace applied."""
        if answer.success:  # the common case: nothing to wait for, the pace may climb
            self._limiter.succeeded()
            return answer
        answer = self._decide_wait(answer, n)
        self._adjust_pace(answer)
        return answer

    async def _request(self, call: Call, now: float | None = None) -> Answer:
        """One POST, read whole and classified. Raises only our transport errors."""
        timeout = self._policy.timeout
        if now is None:
            now = self._deadline_clock()
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
                    response = await self._client.post(call.path, content=call.body.encode())
                finally:
                    del self._deadlines[deadline]
        except httpx.TimeoutException as exc:
            raise RequestTimeout(f"no answer within {timeout:g} s (--timeout)") from exc
        except httpx.HTTPError as exc:
            rejected = _certificate_error(exc)
            if rejected is not None:
                raise CertificateRejected(
                    _one_line(
                        f"the server's TLS certificate did not verify ({rejected}): check the "
                        "base URL; reroute always verifies TLS"
                    )
                ) from exc
            # Connect refused or reset, dropped mid-answer, protocol garbage from the peer.
            raise ConnectionFailed(self._scrub(_one_line(_describe(exc)))) from exc
        if deadline.cancelled_caught:
            raise RequestTimeout(f"no answer within {timeout:g} s (--timeout)")
        return self._classify(response)

    def _classify(self, response: httpx.Response) -> Answer:
        status = response.status_code
        body = response.content
        try:
            text = body.decode()
        except UnicodeDecodeError:
            text = ""  # json may still read the bytes (UTF-16 or UTF-32)
        plain = text != "" and text[0] != _BOM
        if plain and "\\" not in text and "\n" not in text and "\r" not in text:
            # Plain UTF-8 on one line, no escape: kept as received if it parses (the scrubbing
            # then sees every character of it as it is, with no escape to hide one).
            try:
                payload = _parse(text)
            except (ValueError, RecursionError):
                # Not JSON, or nested deeper than Python parses: all the same to us.
                return self._non_json(response)
            envelope = text
        else:
            # Parsed from the text when it is plain UTF-8, else from the bytes, which json
            # reads as UTF-16/32 or behind a byte-order mark too.
            try:
                payload = json.loads(text if plain else body)
            except (ValueError, RecursionError):
                return self._non_json(response)
            if b"\\u" in body:
                # An escape can spell a lone surrogate ("\\ud800"): valid JSON, but no UTF-8
                # file (journal, results) can hold it. Replaced ("?"), the rest of the answer
                # kept.
                payload = json.loads(
                    json.dumps(payload, ensure_ascii=False).encode(errors="replace")
                )
            envelope = _envelope(payload)
        text = self._scrub(envelope)
        ok, error = voicelink.parse_envelope(payload)
        if ok and 200 <= status < 300:  # most answers: nothing more to read
            return Answer(status, True, "", "", text, True)
        retry_after = self._retry_after(response)
        if 200 <= status < 300:
            # Even an error envelope: the contract calls any 2xx without success: true a bad
            # response (the server contradicts itself); what it said goes into the message.
            message = f"HTTP {status} answer is not the API's success envelope"
            if error is not None:
                message += f" (it says {error.code or 'error'}: {error.message})"
            return Answer(
                status, False, "BAD_RESPONSE", self._scrub(_one_line(message)), text, True
            )
        if status == 429:
            detail = f": {error.message}" if error and error.message else ""
            message = f"rate limited (HTTP 429){detail}"
            return Answer(status, False, "RATE_LIMITED", message, text, True, retry_after)
        if error is not None and error.code:
            message = self._scrub(_one_line(error.message or f"HTTP {status} {error.code}"))
            return Answer(status, False, error.code, message, text, True, retry_after)
        message = f"HTTP {status} {_reason(response)} without the API's error envelope"
        return Answer(status, False, f"HTTP_{status}", message, text, True, retry_after)

    def _non_json(self, response: httpx.Response) -> Answer:
        """An answer whose body is not JSON: a gateway page, a captive portal, an empty body."""
        status = response.status_code
        excerpt = _excerpt(response, self._scrub)
        what = f"HTTP {status} {_reason(response)} with a body that is not JSON"
        if 200 <= status < 300:
            return Answer(status, False, "BAD_RESPONSE", what, excerpt, False)
        retry_after = self._retry_after(response)
        if status == 429:
            message = "rate limited (HTTP 429)"
            return Answer(status, False, "RATE_LIMITED", message, excerpt, False, retry_after)
        what += " (a proxy or gateway page?)"
        return Answer(status, False, f"HTTP_{status}", what, excerpt, False, retry_after)

    def _retry_after(self, response: httpx.Response) -> float | None:
        if response.status_code not in RETRY_AFTER_STATUSES:
            return None
        return retry_after_from_headers(response.headers, self._now())

    # -- pacing and retry decisions ------------------------------------------------------------

    def _decide_wait(self, answer: Answer, attempt: int) -> Answer:
        """Fix, once, how long a 429 (or a 503 that says) keeps us from the next attempt."""
        if answer.status not in RETRY_AFTER_STATUSES:
            return answer
        if answer.retry_after is not None and answer.retry_after <= self._policy.max_retry_after:
            return answer._replace(wait=answer.retry_after)
        if answer.status == 429:
            # No word from the server, or a wait above the cap (the row then fails rather than
            # stall the run): everyone pauses for a backoff, so the run goes on carefully.
            return answer._replace(wait=self._backoff(attempt))
        return answer  # a 503 without a usable Retry-After: the usual backoff

    def _adjust_pace(self, answer: Answer) -> None:
        """Tell the shared limiter what the server thinks of our pace."""
        if answer.status != 429:
            self._limiter.succeeded()
            return
        # Pause everyone, not only this row: the limit is per key, every request would get 429.
        self._limiter.pause(answer.wait or 0.0)
        self._limiter.throttled()

    def _backoff(self, attempt: int) -> float:
        return backoff(
            attempt,
            initial=self._policy.backoff_initial,
            maximum=self._policy.backoff_max,
            jitter=self._policy.jitter,
            rnd=self._random(),
        )

    def _should_retry(self, outcome: AttemptOutcome) -> bool:
        if self._stopping:
            return False
        if isinstance(outcome, Answer) and self._waits_too_long(outcome):
            return False
        return is_transient(outcome)

    def _waits_too_long(self, answer: Answer) -> bool:
        """A 429 asking for more than --max-retry-after: the row fails rather than stall."""
        return (
            answer.status == 429
            and answer.retry_after is not None
            and answer.retry_after > self._policy.max_retry_after
        )

    # -- the row's result ----------------------------------------------------------------------

    def _result(
        self,
        call: Call,
        final: AttemptOutcome,
        attempts: int,
        started_at: datetime | None,
        finished_at: datetime,
        duration_ms: int,
    ) -> RowResult:
        if isinstance(final, Answer) and final.success:  # most rows: no message to compose
            return build_row_result(
                call.row, str(call.routing_id), _SUCCEEDED, final.status, attempts, "", "",
                call.body, final.response, started_at, finished_at, duration_ms,
            )  # fmt: skip
        common: dict[str, Any] = {
            "row": call.row,
            "routing_id": str(call.routing_id),
            "attempts": attempts,
            "request": call.body,
            "started_at": started_at,
            "finished_at": finished_at,
            "duration_ms": duration_ms,
        }
        if self._stopping and attempts < self._policy.max_attempts:
            plural = "s" if attempts != 1 else ""
            gave_up = f" (not tried again after {attempts} attempt{plural}: the run was stopping)"
        else:
            gave_up = f" (gave up after {attempts} attempts)" if attempts > 1 else ""
        if not isinstance(final, Answer):
            return RowResult(
                outcome=Outcome.FAILED,
                error_code=final.code,
                error_message=self._scrub(_one_line(f"{final}{gave_up}")),
                **common,
            )
        message = final.error_message
        if self._waits_too_long(final):
            assert final.retry_after is not None
            message = (
                f"the server asked to wait {final.retry_after:g} s before retrying, above "
                f"--max-retry-after {self._policy.max_retry_after:g} s: run again later or "
                "raise --max-retry-after"
            )
        elif is_transient(final):
            message += gave_up
        return RowResult(
            outcome=Outcome.FAILED,
            http_status=final.status,
            error_code=final.error_code,
            error_message=self._scrub(_one_line(message)),
            response=final.response,
            **common,
        )

    def _scrub(self, text: str) -> str:
        """Remove the key from text a server or a library may echo back to us."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure behind an httpx error, if that is what it was."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain is short (httpx <- httpcore <- ssl); never loop forever
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _describe(exc: httpx.HTTPError) -> str:
    """One line on what went wrong with the connection (httpx's own text is often empty)."""
    if isinstance(exc, httpx.ConnectError):
        what = "could not connect"
    elif isinstance(exc, httpx.RemoteProtocolError):
        what = "the server broke off or garbled its answer"
    elif isinstance(exc, httpx.ReadError):
        what = "the connection dropped before the answer was complete"
    elif isinstance(exc, httpx.WriteError):
        what = "the connection dropped while the request was being sent"
    else:
        what = "the request failed in transport"
    detail = str(exc).strip()
    return f"{what} ({type(exc).__name__}{': ' + detail if detail else ''})"


def _parse(text: str) -> Any:
    """``json.loads(text)`` for reading an envelope, by orjson where it can (a quarter of the
    cost, once per answer): orjson accepts no text that json refuses, and reads what it
    accepts the same way but for integers beyond 64 bits (floats there; no field of an
    envelope that is read is a number). What orjson refuses (NaN, a number out of range,
    nesting deeper than it goes) is left to json, which decides as it always did."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _envelope(payload: Any) -> str:
    """The envelope for the results file, re-serialised on one line: for a body that was not
    kept as received (``Sender._classify``).

    That is a body with a line break (to keep it on one line) or a backslash: an escape can
    spell the key in a way the scrubbing would not see (``\\/`` for ``/``, ``\\u0041`` for
    ``A``), and a parsed-then-dumped string has no such escapes left; or a body that is not
    plain UTF-8 (json also reads UTF-16/32 and a byte-order mark).
    """
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _code(outcome: AttemptOutcome) -> str:
    return outcome.error_code if isinstance(outcome, Answer) else outcome.code


def _reason(response: httpx.Response) -> str:
    return response.reason_phrase or ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _excerpt(response: httpx.Response, scrub: Callable[[str], str]) -> str:
    """At most EXCERPT_CHARS of a body, on one line, for the results file.

    Scrubbed before it is cut, so a cut cannot leave half a key behind.
    """
    # The whole body is in memory already; scrubbing all of it is what makes the cut safe.
    raw = response.content.decode("utf-8", errors="replace")
    text = _one_line(scrub(raw))
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"
