"""Reading an answer: the API's envelope, an error page, a body that is not JSON at all.

Every HTTP answer becomes an :class:`~batch.send.retry.Answer` value here (no httpx object past this
module and ``batch.send.sender``), with whatever the server echoed of the key scrubbed out.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import httpx
import orjson

from batch import voicelink
from batch.errors import (
    CertificateRejected,
    ConnectionFailed,
    HostUnreachable,
    NameNotResolved,
    NotConnected,
    ProxyAuthRequired,
    TransportError,
)
from batch.model import Call, Outcome, RowResult
from batch.send.bounded import Body
from batch.send.client import SendPolicy
from batch.send.cutanswer import cut_answer
from batch.send.retry import RETRY_AFTER_STATUSES, Answer, is_transient, retry_after_from_headers

EXCERPT_CHARS: Final = 200
REDACTED: Final = "[redacted]"
_BOM: Final = "\ufeff"  # a UTF-8 byte-order mark, decoded


class Reader:
    """Classifies answers for one client: ``secrets`` are scrubbed from anything kept."""

    def __init__(self, secrets: tuple[str, ...], now: Callable[[], datetime]) -> None:
        self._secrets = secrets
        self._now = now

    def scrub(self, text: str) -> str:
        """Remove the key from text a server or a library may echo back to us."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def read(self, response: httpx.Response, read: Body) -> Answer:
        """The answer classified: success, an API error, a transport-level code (contract).
        ``read``: its body as ``batch.send.bounded`` read it (whole, or cut at a cap)."""
        if read.cut:
            return cut_answer(response, read, self._scrub_cut, self._retry_after(response))
        status = response.status_code
        body = read.content
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
                return self._non_json(response, body)
            envelope = text
        else:
            # Parsed from the text when it is plain UTF-8, else from the bytes, which json
            # reads as UTF-16/32 or behind a byte-order mark too.
            try:
                payload = json.loads(text if plain else body)
            except (ValueError, RecursionError):
                return self._non_json(response, body)
            if b"\\u" in body:
                # An escape can spell a lone surrogate ("\\ud800"): valid JSON, but no UTF-8
                # file (journal, results) can hold it. Replaced ("?"), the rest of the answer
                # kept.
                payload = json.loads(
                    json.dumps(payload, ensure_ascii=False).encode(errors="replace")
                )
            envelope = _envelope(payload)
        text = self.scrub(envelope)
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
            return Answer(status, False, "BAD_RESPONSE", self.scrub(one_line(message)), text, True)
        if status == 429:
            detail = f": {error.message}" if error and error.message else ""
            message = f"rate limited (HTTP 429){detail}"
            return Answer(status, False, "RATE_LIMITED", message, text, True, retry_after)
        if error is not None and error.code:
            message = self.scrub(one_line(error.message or f"HTTP {status} {error.code}"))
            return Answer(status, False, error.code, message, text, True, retry_after)
        message = f"HTTP {status} {_reason(response)} without the API's error envelope"
        return Answer(status, False, f"HTTP_{status}", message, text, True, retry_after)

    def _non_json(self, response: httpx.Response, body: bytes) -> Answer:
        """An answer whose body is not JSON: a gateway page, a captive portal, an empty body."""
        status = response.status_code
        excerpt = excerpt_of(body, self.scrub)
        what = f"HTTP {status} {_reason(response)} with a body that is not JSON"
        if 200 <= status < 300:
            return Answer(status, False, "BAD_RESPONSE", what, excerpt, False)
        retry_after = self._retry_after(response)
        if status == 429:
            message = "rate limited (HTTP 429)"
            return Answer(status, False, "RATE_LIMITED", message, excerpt, False, retry_after)
        what += " (a proxy or gateway page?)"
        return Answer(status, False, f"HTTP_{status}", what, excerpt, False, retry_after)

    def _scrub_cut(self, text: str) -> str:
        """Scrub the beginning of a body cut at a cap: the key's first characters left at the
        cut (the rest beyond it) are dropped too, so no part of a key is kept."""
        longest = max((len(s) for s in self._secrets), default=0)
        return self.scrub(text[: max(0, len(text) - longest)] if longest else text)

    def _retry_after(self, response: httpx.Response) -> float | None:
        if response.status_code not in RETRY_AFTER_STATUSES:
            return None
        return retry_after_from_headers(response.headers, self._now())


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


def _reason(response: httpx.Response) -> str:
    return response.reason_phrase or ""


def one_line(text: str) -> str:
    return " ".join(text.split())


def excerpt_of(body: bytes, scrub: Callable[[str], str]) -> str:
    """At most EXCERPT_CHARS of a body, on one line, for the results file.

    Scrubbed before it is cut, so a cut cannot leave half a key behind.
    """
    # The body (at most a cap, batch.send.bounded) is in memory already; scrubbing all of it is
    # what makes the cut safe.
    raw = body.decode("utf-8", errors="replace")
    text = one_line(scrub(raw))
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def transport_error(
    exc: httpx.HTTPError, host: str, via: str, scrub: Callable[[str], str]
) -> TransportError:
    """Our error for an httpx error that is not a timeout (raise it ``from exc``). ``via``:
    how requests travel (" through the proxy ..."), said in connection errors."""
    rejected = certificate_error(exc)
    if rejected is not None:
        return CertificateRejected(certificate_message(host, rejected))
    if (missing := name_not_found(exc)) is not None:
        return NameNotResolved(
            f"the host name {host} does not resolve ({missing.strerror}){via}: check the base "
            "URL for a typo (--base-url, REROUTE_BASE_URL or the job's base_url), and this "
            "machine's DNS or VPN"
        )
    if isinstance(exc, httpx.ProxyError) and "407" in str(exc):
        return ProxyAuthRequired(
            f"{host}: the proxy asks for credentials (407 Proxy Authentication Required) and "
            f"passed no request to the API{via}: put its user and password in HTTPS_PROXY "
            "(http://USER:PASSWORD@PROXY:PORT), or ask your IT team which proxy and account "
            "to use, or set NO_PROXY if this host needs none"
        )
    what = scrub(one_line(describe(exc)))
    if isinstance(exc, httpx.ConnectError):  # refused, no route: nothing reached the host
        return NotConnected(f"{what} to {host}{via}")
    return ConnectionFailed(f"{what}{via}")  # reset, dropped mid-answer, garbage from the peer


def certificate_message(host: str, rejected: ssl.SSLCertVerificationError) -> str:
    """What a certificate that did not verify means, and how to trust a private CA."""
    why = getattr(rejected, "verify_message", None) or str(rejected)
    return one_line(
        f"{host}: the TLS certificate did not verify ({why}): its issuing CA is not one this "
        "machine trusts. If it is a private or corporate CA (a TLS-inspecting proxy), get its "
        "certificate (PEM) from your IT team and set SSL_CERT_FILE to that file (or "
        "SSL_CERT_DIR to a folder of them), or add it to the system's trust store; otherwise "
        "check the base URL. reroute never turns verification off"
    )


def certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure behind an httpx error, if that is what it was."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain is short (httpx <- httpcore <- ssl); never loop forever
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


# getaddrinfo's "no such name" (EAI_NODATA: the name exists without an address); not EAI_AGAIN,
# a DNS server failing for now, which is an outage like any other.
_NO_SUCH_NAME: Final = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)


def name_not_found(exc: BaseException) -> socket.gaierror | None:
    """The failed name lookup behind an httpx error, if the name does not exist."""
    for seen in _chain(exc):
        if isinstance(seen, socket.gaierror) and seen.errno in _NO_SUCH_NAME:
            return seen
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, exception groups opened (trio reports connection attempts
    as one); bounded, the chains are short (httpx <- httpcore <- OS)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        current = todo.pop()
        seen.append(current)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        if (cause := current.__cause__ or current.__context__) is not None:
            todo.append(cause)
    return seen


def describe(exc: httpx.HTTPError) -> str:
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


def waits_too_long(answer: Answer, policy: SendPolicy) -> bool:
    """A 429 asking for more than --max-retry-after: the row fails rather than stall."""
    return (
        answer.status == 429
        and answer.retry_after is not None
        and answer.retry_after > policy.max_retry_after
    )


def row_result(
    call: Call,
    final: Answer | TransportError,
    attempts: int,
    started_at: datetime | None,
    finished_at: datetime,
    duration_ms: int,
    *,
    policy: SendPolicy,
    stopping: bool,
    scrub: Callable[[str], str],
) -> RowResult:
    """The row's result from its final outcome and the ``attempts`` (requests) sent for it."""
    if isinstance(final, Answer) and final.success:  # most rows: no message to compose
        return RowResult(
            call.row, str(call.routing_id), Outcome.SUCCEEDED, http_status=final.status,
            attempts=attempts, request=call.body, response=final.response,
            started_at=started_at, finished_at=finished_at, duration_ms=duration_ms,
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
    if stopping and attempts < policy.max_attempts:
        plural = "s" if attempts != 1 else ""
        gave_up = f" (not tried again after {attempts} attempt{plural}: the run was stopping)"
    else:
        gave_up = f" (gave up after {attempts} attempts)" if attempts > 1 else ""
    if not isinstance(final, Answer):
        if isinstance(final, HostUnreachable):
            gave_up = ""  # not a verdict on the row: its message says what happens next
        return RowResult(
            outcome=Outcome.FAILED,
            error_code=final.code,
            error_message=scrub(one_line(f"{final}{gave_up}")),
            **common,
        )
    message = final.error_message
    outcome = Outcome.FAILED
    if final.status == 429:
        # Throttled, never judged: the row stays to send (a 429 is never a row's failure), and
        # the run stopped before its turn came (a long Retry-After, throttled past its limit,
        # another stop).
        outcome = Outcome.NOT_ATTEMPTED
        if waits_too_long(final, policy):
            assert final.retry_after is not None
            message = (
                f"not applied: the server asked to wait {final.retry_after:g} s before "
                f"retrying, above --max-retry-after {policy.max_retry_after:g} s; running the "
                "same command again later sends it (or raise --max-retry-after)"
            )
        else:
            message = (
                "not applied: throttled (HTTP 429) until the run stopped; running the same "
                "command again sends it"
            )
    elif is_transient(final):
        message += gave_up
    return RowResult(
        outcome=outcome,
        http_status=final.status,
        error_code=final.error_code,
        error_message=scrub(one_line(message)),
        response=final.response,
        **common,
    )
