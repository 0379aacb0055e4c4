"""Answers are read up to a cap, and what an answer cut there means (issue 28, item 14).

Over ``httpx.MockTransport`` with bodies generated as they are read (never held whole): the
process-level checks (memory, files written) are in ``test_bounded_live.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from batch import voicelink
from batch.errors import AccountUnreadable
from batch.model import Call, Outcome, RowResult
from batch.send.account import fetch_account
from batch.send.bounded import ANSWER_CAP, LIST_CAP, read_capped
from batch.send.client import SendPolicy, build_client
from batch.send.limiter import Limiter
from batch.send.sender import Sender
from batch.settings import Rate

KEY = "rg_live_CutAnswerKeyNeverShown0123456789"
BODY = voicelink.encode_body({"for_inbound_call": 1, "for_outbound_call": 4, "status": 1})
CALL = Call(row=3, routing_id=93, body=BODY)
HUGE = 64 * 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Generated(httpx.AsyncByteStream):
    """``size`` bytes made as they are read: ``head``, ``fill`` repeated, then ``tail``; counts
    what was read, to show reading stopped."""

    def __init__(self, head: bytes, size: int, fill: bytes = b"A", tail: bytes = b"") -> None:
        self.head, self.size, self.fill, self.tail = head, size, fill, tail
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        block = self.fill * (65536 // len(self.fill))
        yield self.head
        self.sent = len(self.head)
        end = self.size - len(self.tail)
        while self.sent < end:
            part = block[: end - self.sent]
            self.sent += len(part)
            yield part
        self.sent += len(self.tail)
        yield self.tail


def huge(
    status: int, head: bytes, *, declared: bool = True, tail: bytes = b"", **headers: str
) -> Any:
    """A handler answering ``status`` with a HUGE body: ``head``, filler, ``tail``."""
    streams: list[Generated] = []

    def handler(request: httpx.Request) -> httpx.Response:
        stream = Generated(head, HUGE, tail=tail)
        streams.append(stream)
        if declared:
            headers["content-length"] = str(HUGE)
        return httpx.Response(status, headers=headers, stream=stream)

    handler.streams = streams  # type: ignore[attr-defined]
    return handler


async def no_sleep(seconds: float) -> None:
    await anyio.lowlevel.checkpoint()  # backoffs take no time here


async def send(handler: Any, **policy: Any) -> RowResult:
    client = build_client("https://api.example.test/api/v2", KEY, timeout=30, concurrency=1,
                          transport=httpx.MockTransport(handler))  # fmt: skip
    async with client:
        sender = Sender(client, Limiter(Rate.parse("1000/s")), SendPolicy(**policy),
                        sleep=no_sleep, random=lambda: 0.0)  # fmt: skip
        result = await sender.send(CALL)
    assert result is not None
    return result


@pytest.mark.parametrize("declared", [True, False])
async def test_huge_2xx_without_readable_success_fails_bad_response(declared: bool) -> None:
    """A 2xx whose body exceeds the cap and does not begin with success: true is failed
    BAD_RESPONSE (never succeeded on a guess), with a short excerpt and the size, not retried."""
    handler = huge(200, b'{"data": {"page": "', declared=declared, tail=b'"}}')
    result = await send(handler)
    assert result.outcome is Outcome.FAILED
    assert result.error_code == "BAD_RESPONSE"
    assert result.attempts == 1
    size = f"{HUGE:,} bytes" if declared else "at least "
    assert size in result.error_message
    assert "64 KiB" in result.error_message
    assert len(result.response) < 400
    assert "[answer cut:" in result.response
    assert handler.streams[0].sent < 4 * ANSWER_CAP  # reading stopped near the cap


async def test_huge_2xx_with_success_first_succeeds_with_an_excerpt() -> None:
    """A 2xx whose cut body begins with {"success": true is the API saying so: succeeded, the
    response column an excerpt marked as cut."""
    head = b'{"success": true, "data": {"blob": "'
    result = await send(huge(200, head, declared=False, tail=b'"}}'))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.response.startswith('{"success": true')
    assert "[answer cut: at least" in result.response
    assert len(result.response) < 400


async def test_huge_error_envelope_is_not_kept_whole() -> None:
    """A 2xx error envelope padded past the cap: failed, and nothing kept grows with it."""
    head = b'{"success": false, "error": {"code": "WAF", "message": "blocked"}, "pad": "'
    result = await send(huge(200, head, tail=b'"}'))
    assert result.outcome is Outcome.FAILED
    assert len(result.response) < 400
    assert len(result.error_message) < 800


async def test_huge_503_page_is_retried_as_a_gateway_page() -> None:
    """A 5xx with a huge page keeps its meaning (transient, retried), size in the message."""
    result = await send(huge(503, b"<html><body>upstream down"), max_attempts=2)
    assert result.outcome is Outcome.FAILED
    assert result.error_code == "HTTP_503"
    assert result.attempts == 2
    assert f"{HUGE:,} bytes" in result.error_message


async def test_a_key_at_the_cut_is_not_kept() -> None:
    """The key echoed so that the cap cuts it: no part of it reaches the kept excerpt."""
    head = b" " * (ANSWER_CAP - 24) + f"Bearer {KEY}".encode()  # 17 of its characters kept
    result = await send(huge(200, head))
    assert KEY[:12] not in result.response
    assert KEY[:12] not in result.error_message


async def test_small_answer_is_read_whole() -> None:
    """An envelope within the cap, declared or not, is read as before (kept as received)."""
    envelope = b'{"success":true,"data":{"id":93}}'

    async def chunks() -> AsyncIterator[bytes]:
        yield envelope[:10]
        yield envelope[10:]

    class Stream(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for part in chunks():
                yield part

    result = await send(lambda request: httpx.Response(200, stream=Stream()))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.response == envelope.decode()


async def test_read_capped_reports_what_is_known_of_the_size() -> None:
    """Content-Length gives the exact size; without it, the bytes counted up to the cut."""
    response = httpx.Response(200, stream=Generated(b"", 1000), headers={"content-length": "1000"})
    body = await read_capped(response, 100)
    assert (len(body.content), body.cut, body.size, body.known) == (100, True, 1000, True)
    assert body.size_text() == "1,000 bytes"
    body = await read_capped(httpx.Response(200, stream=Generated(b"", 1000)), 100)
    assert (len(body.content), body.cut, body.known) == (100, True, False)
    assert body.size_text().startswith("at least ")


async def test_account_page_beyond_the_list_cap_is_refused_clearly() -> None:
    """A list page larger than LIST_CAP: AccountUnreadable naming the size, read no further."""
    streams: list[Generated] = []

    def handler(request: httpx.Request) -> httpx.Response:
        stream = Generated(b'{"success": true, "data": {"data": [', LIST_CAP * 4, b"{},")
        streams.append(stream)
        return httpx.Response(200, stream=stream)

    client = build_client("https://api.example.test/api/v2", KEY, timeout=30, concurrency=1,
                          transport=httpx.MockTransport(handler))  # fmt: skip
    async with client:
        with pytest.raises(AccountUnreadable) as caught:
            await fetch_account(client, Limiter(Rate.parse("1000/s")), SendPolicy())
    message = str(caught.value)
    assert "8 MiB" in message
    assert "at least" in message
    assert KEY not in message
    assert len(streams) == 1  # not retried: it would answer the same
    assert streams[0].sent < 2 * LIST_CAP
