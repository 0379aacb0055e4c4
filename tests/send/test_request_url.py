"""Where each POST goes, and what it carries: the URL as httpx's own merge gives it, no cookies.

`batch.send.request` names each POST's URL in full instead of letting httpx merge a relative path
with the base URL, and `batch.send.client` keeps no cookies (both speed units:
docs/dev/benchmarks.md).
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch.model import Call
from batch.send.client import build_client
from batch.send.request import Requester

ENVELOPE = b'{"status":"success","message":"ok","data":{"id":1}}'

BASES = [
    "https://api.vocobase.com/api/v2",
    "https://api.vocobase.com/api/v2/",
    "http://127.0.0.1:8123/api/v2",
    "http://[::1]:8123/api/v2/",
    "http://localhost:9/",
    "http://localhost:9",
    "https://gw.example.test:8443/tenants/a%20b/api/v2",
    "https://gw.example.test/proxy/vocobase/api/v2//",
]


async def _sent(base_url: str, calls: list[Call], answer_headers: list[tuple[str, str]]) -> list:
    seen: list[httpx.Request] = []

    def serve(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers=answer_headers, content=ENVELOPE)

    client = build_client(
        base_url, "rg_test_url", timeout=5, concurrency=1, transport=httpx.MockTransport(serve)
    )
    async with client:
        requester = Requester(client, 5, now=lambda: datetime.now(UTC))
        for call in calls:
            await requester.post(call, 0.0)
        assert len(client.cookies) == 0
    return seen


@pytest.mark.parametrize("base_url", BASES)
async def test_each_post_goes_where_httpx_would_send_the_relative_path(base_url: str) -> None:
    calls = [Call(row=1, routing_id=7, body="{}"), Call(row=2, routing_id=2**40, body="{}")]
    seen = await _sent(base_url, calls, [])
    expected = httpx.AsyncClient(base_url=base_url)
    assert [request.url for request in seen] == [
        expected.build_request("POST", call.path).url for call in calls
    ]
    assert all(request.url.path.endswith(f"/voicelink/call-routing/{c.routing_id}")
               for request, c in zip(seen, calls, strict=True))  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(
    segments=st.lists(
        st.text(alphabet="abcxyz0129-._~%20", min_size=1, max_size=6), min_size=0, max_size=3
    ),
    slash=st.booleans(),
    routing_id=st.integers(min_value=1, max_value=2**53),
)
async def test_any_base_path_gives_the_merged_url(
    segments: list[str], slash: bool, routing_id: int
) -> None:
    base_url = "https://api.example.test/" + "/".join(segments) + ("/" if slash else "")
    call = Call(row=1, routing_id=routing_id, body="{}")
    (request,) = await _sent(base_url, [call], [])
    assert request.url == httpx.AsyncClient(base_url=base_url).build_request("POST", call.path).url


async def test_a_cookie_the_server_sets_is_never_sent_back() -> None:
    calls = [Call(row=row, routing_id=row, body="{}") for row in (1, 2, 3)]
    seen = await _sent(
        "https://api.example.test/api/v2",
        calls,
        [("Set-Cookie", "AWSALB=sticky; Path=/"), ("Set-Cookie", "session=abc; Path=/api")],
    )
    assert len(seen) == 3
    assert all("cookie" not in request.headers for request in seen)


def test_cookies_set_on_the_client_are_not_kept() -> None:
    client = build_client("https://api.example.test/api/v2", None, timeout=5, concurrency=1)
    client.cookies = {"session": "abc"}  # type: ignore[assignment]
    client.cookies.set("other", "x")
    assert len(client.cookies) == 0
    assert "cookie" not in client.build_request("POST", "/voicelink/call-routing/1").headers
