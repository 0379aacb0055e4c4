"""Reading an answer: the API's envelope, an error page, a body that is not JSON at all.

Every HTTP answer becomes an :class:`~batch.retry.Answer` value here (no httpx object past this
module and ``batch.send``), with whatever the server echoed of the key scrubbed out.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import httpx
import orjson

from batch import voicelink
from batch.retry import RETRY_AFTER_STATUSES, Answer, retry_after_from_headers

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

    def read(self, response: httpx.Response) -> Answer:
        """The answer classified: success, an API error, a transport-level code (contract)."""
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

    def _non_json(self, response: httpx.Response) -> Answer:
        """An answer whose body is not JSON: a gateway page, a captive portal, an empty body."""
        status = response.status_code
        excerpt = _excerpt(response, self.scrub)
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


def _excerpt(response: httpx.Response, scrub: Callable[[str], str]) -> str:
    """At most EXCERPT_CHARS of a body, on one line, for the results file.

    Scrubbed before it is cut, so a cut cannot leave half a key behind.
    """
    # The whole body is in memory already; scrubbing all of it is what makes the cut safe.
    raw = response.content.decode("utf-8", errors="replace")
    text = one_line(scrub(raw))
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


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
