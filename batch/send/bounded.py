"""Reading an answer's body up to a cap: what a server chooses to send never decides how much
reroute holds in memory or writes down.

A broken upstream, a proxy or a WAF page may answer with megabytes; read whole (httpx's
``response.content``), an 8-row run once held gigabytes and wrote as much into its results and
journal. Here a body is streamed and reading stops at the cap: the beginning is kept, with what
is known of the size (``Content-Length``, or the bytes counted up to the cap: "at least N").
What the cut means for a row is ``batch.send.answers``'s to say.

Speed unit: an answer that declares a length within the cap is read as httpx reads it
(``aread``), so the common small envelope costs what it did; only an answer without a length,
or an encoded one, is read chunk by chunk.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import httpx

# An update's envelope is a few hundred bytes ({"success": true, "data": {...}}, the record
# passed through); 64 KiB leaves room for an error page worth reading and nothing more.
ANSWER_CAP: Final = 64 * 1024
# A page of the bots list holds up to 1,000 records (voicelink-api.md) of a few hundred bytes
# each (id, name, client id, websocket URL, status): 8 MiB fits a real page many times over.
LIST_CAP: Final = 8 * 1024 * 1024


class Body(NamedTuple):
    """An answer's body as read: all of it, or its first ``cap`` bytes when it held more."""

    content: bytes  # never more than the cap
    size: int  # bytes the answer holds: exact, or at least this many when ``known`` is False
    cut: bool  # the answer held more than the cap: ``content`` is its beginning
    known: bool = True  # ``size`` is exact (read whole, or declared by Content-Length)

    def size_text(self) -> str:
        """``1,234 bytes`` or ``at least 65,537 bytes``."""
        return f"{self.size:,} bytes" if self.known else f"at least {self.size:,} bytes"


def cap_text(cap: int) -> str:
    """A cap as people read it: ``64 KiB``, ``8 MiB``."""
    if cap % (1024 * 1024) == 0:
        return f"{cap // (1024 * 1024)} MiB"
    return f"{cap // 1024} KiB" if cap % 1024 == 0 else f"{cap} bytes"


async def read_capped(response: httpx.Response, cap: int) -> Body:
    """The body of a streamed ``response``, at most ``cap`` bytes of it (decoded: what a
    ``Content-Encoding`` expands to counts). The caller closes the response; one cut short
    leaves its connection to be closed, not reused."""
    declared = _declared_length(response)
    if declared is not None and declared <= cap:
        content = await response.aread()  # the common case, exactly as httpx reads it
        return Body(content, len(content), False)
    chunks: list[bytes] = []
    held = 0
    async for chunk in response.aiter_bytes():
        room = cap - held
        if len(chunk) > room:
            chunks.append(chunk[:room])
            seen = held + len(chunk)
            if declared is not None:
                return Body(b"".join(chunks), max(declared, seen), True, True)
            return Body(b"".join(chunks), seen, True, False)
        chunks.append(chunk)
        held += len(chunk)
    content = b"".join(chunks)
    return Body(content, len(content), False)


async def fetch(client: httpx.AsyncClient, request: httpx.Request, cap: int) -> tuple[
    httpx.Response, Body
]:  # fmt: skip
    """Send ``request`` and read at most ``cap`` bytes of its answer; the response is closed
    (its body is in the ``Body``, never in the response)."""
    response = await client.send(request, stream=True)
    try:
        body = await read_capped(response, cap)
    finally:
        await response.aclose()
    return response, body


def _declared_length(response: httpx.Response) -> int | None:
    """The body's length as the headers declare it, when it is the length of what we read:
    not for an encoded body (gzip expands), nor for a header that is not one number."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return None
    raw = response.headers.get("content-length")
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw)
