"""The sandbox app over httpx.ASGITransport: key, validation, state, limits, faults, extras."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from batch.errors import InputFileError, UsageError
from batch.sandbox import Faults, SandboxConfig, create_app
from batch.sandbox.config import connection_ids_for
from batch.settings import Rate

KEY = "rg_test_0123456789"
BODY = {"for_inbound_call": 1, "for_outbound_call": 4, "status": 1}
OPEN = {"rate_limit": None, "max_concurrent": None}  # limits off unless a test is about them


class FakeClock:
    """A clock the test moves by hand, for the rate limiter."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(config: SandboxConfig, clock: Callable[[], float] | None = None) -> httpx.AsyncClient:
    app = create_app(config, clock=clock)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox/api/v2",
        headers={"Authorization": f"Bearer {config.api_key}"},
    )


async def post(c: httpx.AsyncClient, routing_id: int | str, body: Any = None) -> httpx.Response:
    return await c.post(
        f"/voicelink/call-routing/{routing_id}", json=BODY if body is None else body
    )


async def stats(c: httpx.AsyncClient) -> dict[str, Any]:
    answer: dict[str, Any] = (await c.get("http://sandbox/sandbox/stats")).json()
    return answer


@pytest.fixture
async def sandbox() -> AsyncIterator[httpx.AsyncClient]:
    async with client(SandboxConfig(api_key=KEY, **OPEN)) as c:
        yield c


def error_code(response: httpx.Response) -> str:
    payload = response.json()
    assert payload["success"] is False
    code: str = payload["error"]["code"]
    return code


# -- the key -------------------------------------------------------------------------------------


async def test_missing_or_wrong_key_is_401(sandbox: httpx.AsyncClient) -> None:
    """No Authorization header, a wrong key, or a non-Bearer scheme answers 401 UNAUTHORIZED."""
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer nope"},
        {"Authorization": KEY},
    ):
        answer = await sandbox.post("/voicelink/call-routing/1", json=BODY, headers=headers)
        assert answer.status_code == 401
        assert error_code(answer) == "UNAUTHORIZED"
        assert KEY not in answer.text
    assert (
        await sandbox.get("/voicelink/call-routing/1", headers={"Authorization": ""})
    ).status_code == 401
    assert (await stats(sandbox))["records"] == 0


@pytest.mark.parametrize(("status", "code"), [(401, "UNAUTHORIZED"), (403, "FORBIDDEN")])
async def test_deny_switch_refuses_every_request(status: int, code: str) -> None:
    """deny_status makes even the right key get 401 or 403, and nothing is stored."""
    async with client(SandboxConfig(api_key=KEY, deny_status=status, **OPEN)) as c:
        answer = await post(c, 1)
        assert (answer.status_code, error_code(answer)) == (status, code)
        assert (await stats(c))["records"] == 0


def test_live_keys_are_refused() -> None:
    """The sandbox prints its key, so it will not take one that looks live."""
    with pytest.raises(UsageError, match="live key"):
        SandboxConfig(api_key="rg_live_abc")


# -- validation and state ------------------------------------------------------------------------


async def test_success_envelope_and_stored_record(sandbox: httpx.AsyncClient) -> None:
    """A good update answers the success envelope and the record reads back (sandbox-only GET)."""
    answer = await post(sandbox, 17)
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "data": {"id": 17, **BODY}}
    read = await sandbox.get("/voicelink/call-routing/17")
    assert read.json() == {"success": True, "data": {"id": 17, **BODY}}


async def test_update_replaces_the_whole_record(sandbox: httpx.AsyncClient) -> None:
    """A second update without a field wipes it, as the real API does."""
    await post(sandbox, 5, {**BODY, "for_inbound_call": 3, "inbound_websocket_bot_id": 9})
    await post(sandbox, 5, BODY)
    data = (await sandbox.get("/voicelink/call-routing/5")).json()["data"]
    assert "inbound_websocket_bot_id" not in data
    assert data["for_inbound_call"] == 1


async def test_bad_body_is_400_naming_the_field(sandbox: httpx.AsyncClient) -> None:
    """A rule broken in the body answers 400 VALIDATION_ERROR whose message names the field."""
    answer = await post(sandbox, 5, {**BODY, "for_outbound_call": 3})
    assert answer.status_code == 400
    assert error_code(answer) == "VALIDATION_ERROR"
    assert answer.json()["error"]["message"].startswith("outbound_websocket_bot_id:")
    assert (await sandbox.get("/voicelink/call-routing/5")).status_code == 404


@pytest.mark.parametrize("raw_id", ["0", "abc", "-3", "1.5"])
async def test_bad_routing_id_is_400(sandbox: httpx.AsyncClient, raw_id: str) -> None:
    """A routing id that is not an integer >= 1 is a 400 naming routing_id."""
    answer = await post(sandbox, raw_id)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith("routing_id:")


async def test_not_found_ids_answer_404() -> None:
    """Ids listed in not_found_ids answer 404 NOT_FOUND and are not created."""
    async with client(SandboxConfig(api_key=KEY, not_found_ids=frozenset({8}), **OPEN)) as c:
        assert error_code(await post(c, 8)) == "NOT_FOUND"
        assert (await post(c, 9)).status_code == 200
        assert (await c.get("/voicelink/call-routing/8")).status_code == 404


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
async def test_seeded_state_knows_only_its_ids(tmp_path: Path, suffix: str) -> None:
    """--state seeds records from a file of input columns; other ids then answer 404."""
    frame = pl.DataFrame(
        {
            "Routing_ID ": [3, 4],
            "for_inbound_call": [2, 1],
            "for_outbound_call": [4, 4],
            "status": [1, 0],
            "inbound_sip_trunk_id": [11, None],
            "ticket": ["T-1", "T-2"],
        }
    )
    path = tmp_path / f"state{suffix}"
    {".csv": frame.write_csv, ".jsonl": frame.write_ndjson, ".parquet": frame.write_parquet}[
        suffix
    ](path)
    async with client(SandboxConfig(api_key=KEY, state=path, **OPEN)) as c:
        seeded = (await c.get("/voicelink/call-routing/3")).json()["data"]
        assert seeded == {
            "id": 3,
            "for_inbound_call": 2,
            "for_outbound_call": 4,
            "status": 1,
            "inbound_sip_trunk_id": 11,
        }
        assert (await post(c, 4)).status_code == 200
        assert error_code(await post(c, 5)) == "NOT_FOUND"
        assert (await stats(c))["records"] == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ticket\nT-1\n", "no routing_id column"),
        ("routing_id,status\n1,1\n1,0\n", "row 2, column routing_id: 1 appears twice"),
        ("routing_id,status\n1,active\n", "row 1, column status: 'active' is not a whole number"),
        ("routing_id,status\n0,1\n", "row 1, column routing_id: give an integer >= 1"),
    ],
)
def test_bad_state_file_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    """A bad state file is an InputFileError naming the file, row and column."""
    path = tmp_path / "state.csv"
    path.write_text(text)
    with pytest.raises(InputFileError, match=message) as caught:
        create_app(SandboxConfig(api_key=KEY, state=path))
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_state_file_is_named(tmp_path: Path) -> None:
    """A state path that does not exist is refused with the path in the message."""
    with pytest.raises(InputFileError, match="no such sandbox state file"):
        create_app(SandboxConfig(api_key=KEY, state=tmp_path / "nope.csv"))


# -- connections ---------------------------------------------------------------------------------


async def test_several_connections_require_a_known_connection_id() -> None:
    """With connections > 1, a missing or unknown connection_id is a 400 naming it."""
    known = connection_ids_for(2)
    async with client(SandboxConfig(api_key=KEY, connections=2, **OPEN)) as c:
        missing = await post(c, 1)
        assert missing.status_code == 400
        assert missing.json()["error"]["message"].startswith("connection_id: required")
        unknown = await post(
            c, 1, {**BODY, "connection_id": "11111111-2222-3333-4444-555555555555"}
        )
        assert unknown.status_code == 400
        assert "not a VoiceLink connection" in unknown.json()["error"]["message"]
        assert (await post(c, 1, {**BODY, "connection_id": known[1]})).status_code == 200
        assert (await post(c, 2, {**BODY, "connectionId": known[0].upper()})).status_code == 200


async def test_one_connection_needs_no_connection_id(sandbox: httpx.AsyncClient) -> None:
    """With a single connection, connection_id may be left out."""
    assert (await post(sandbox, 1)).status_code == 200


# -- limits --------------------------------------------------------------------------------------


async def test_rate_limit_is_per_key_with_retry_after() -> None:
    """Beyond the rate, 429 RATE_LIMITED with Retry-After; the limit opens again on schedule."""
    clock = FakeClock()
    config = SandboxConfig(api_key=KEY, rate_limit=Rate(2, 1.0), max_concurrent=None)
    async with client(config, clock) as c:
        assert [(await post(c, i)).status_code for i in (1, 2)] == [200, 200]
        refused = await post(c, 3)
        assert refused.status_code == 429
        assert error_code(refused) == "RATE_LIMITED"
        assert refused.headers["Retry-After"] == "1"
        clock.now += 0.49
        assert (await post(c, 3)).status_code == 429
        clock.now += 0.01
        assert (await post(c, 3)).status_code == 200
        assert (await post(c, 4)).status_code == 429
        assert (await stats(c))["by_status"] == {"200": 3, "429": 3}


async def test_rate_limit_default_is_sixty_a_minute() -> None:
    """The default allows 60 requests at once, then one per second, as the doc's 60/min."""
    clock = FakeClock()
    async with client(SandboxConfig(api_key=KEY, max_concurrent=None), clock) as c:
        codes = [(await post(c, i)).status_code for i in range(1, 62)]
        assert codes == [200] * 60 + [429]
        clock.now += 1.0
        assert (await post(c, 61)).status_code == 200


async def test_no_retry_after_leaves_the_header_out() -> None:
    """--no-retry-after: a 429 without the header, as the docs do not promise one."""
    config = SandboxConfig(api_key=KEY, rate_limit=Rate(1, 60), retry_after=False)
    async with client(config, FakeClock()) as c:
        await post(c, 1)
        refused = await post(c, 2)
        assert refused.status_code == 429
        assert "Retry-After" not in refused.headers


async def test_wrong_key_does_not_use_up_the_rate() -> None:
    """Refused keys are not counted against the key's rate (the limit is per key)."""
    config = SandboxConfig(api_key=KEY, rate_limit=Rate(1, 60))
    async with client(config, FakeClock()) as c:
        for _ in range(3):
            bad = await c.post(
                "/voicelink/call-routing/1", json=BODY, headers={"Authorization": "Bearer x"}
            )
            assert bad.status_code == 401
        assert (await post(c, 1)).status_code == 200


# -- faults --------------------------------------------------------------------------------------


async def fates(config: SandboxConfig, ids: list[int]) -> list[str]:
    """What each update meets: its status, "html", or "drop"."""
    seen = []
    async with client(config) as c:
        for routing_id in ids:
            try:
                answer = await post(c, routing_id)
            except httpx.RemoteProtocolError:
                seen.append("drop")
                continue
            html = answer.headers["content-type"].startswith("text/html")
            seen.append("html" if html else str(answer.status_code))
    return seen


async def test_faults_follow_their_shares_and_the_seed() -> None:
    """With a seed, the same requests meet the same faults, in about the configured shares."""
    faults = Faults(error_rate=0.2, html_rate=0.1, drop_rate=0.1)
    config = SandboxConfig(api_key=KEY, faults=faults, seed=7, **OPEN)
    ids = list(range(1, 401))
    first = await fates(config, ids)
    assert await fates(config, ids) == first
    assert await fates(config, list(reversed(ids))) == list(reversed(first))
    counts = {kind: first.count(kind) for kind in set(first)}
    assert set(counts) <= {"200", "500", "502", "503", "html", "drop"}
    assert 50 <= counts["500"] + counts["502"] + counts["503"] <= 110
    assert 20 <= counts["html"] <= 60
    assert 20 <= counts["drop"] <= 60
    other = await fates(SandboxConfig(api_key=KEY, faults=faults, seed=8, **OPEN), ids)
    assert other != first


async def test_error_fault_is_an_envelope_and_leaves_the_record_alone() -> None:
    """A 5xx fault answers the JSON error envelope before the record is touched."""
    config = SandboxConfig(api_key=KEY, faults=Faults(error_rate=1.0), seed=1, **OPEN)
    async with client(config) as c:
        answer = await post(c, 1)
        assert answer.status_code in (500, 502, 503)
        assert answer.json()["success"] is False
        assert (await stats(c))["records"] == 0


async def test_html_fault_is_a_proxy_page() -> None:
    """An HTML fault is a 502 text/html page that is not JSON at all."""
    config = SandboxConfig(api_key=KEY, faults=Faults(html_rate=1.0), **OPEN)
    async with client(config) as c:
        answer = await post(c, 1)
        assert answer.status_code == 502
        assert answer.text.startswith("<html>")
        with pytest.raises(json.JSONDecodeError):
            answer.json()


async def test_drop_under_asgi_raises_what_httpx_raises_and_stores() -> None:
    """Under ASGITransport a drop is httpx.RemoteProtocolError; the update was still applied."""
    config = SandboxConfig(api_key=KEY, faults=Faults(drop_rate=1.0), **OPEN)
    async with client(config) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await post(c, 4)
        assert (await c.get("/voicelink/call-routing/4")).status_code == 200
        assert (await stats(c))["by_status"] == {"dropped": 1}


async def test_script_answers_in_order_then_behaves() -> None:
    """A scripted routing id meets its answers in order, then normal behaviour."""
    script = {3: ("503", "429", "html", "ok", "404")}
    async with client(SandboxConfig(api_key=KEY, script=script, **OPEN)) as c:
        codes = [(await post(c, 3)).status_code for _ in range(6)]
        assert codes == [503, 429, 502, 200, 404, 200]
        assert (await stats(c))["by_routing_id"] == {"3": 6}


def test_fault_shares_must_fit() -> None:
    """Shares outside [0, 1], or adding up to more than 1, are refused with the rule."""
    with pytest.raises(UsageError, match="from 0 to 1"):
        Faults(error_rate=1.5)
    with pytest.raises(UsageError, match="at most 1"):
        Faults(error_rate=0.6, drop_rate=0.6)
    with pytest.raises(UsageError, match="not an answer"):
        SandboxConfig(api_key=KEY, script={1: ("boom",)})


# -- stats and other paths -----------------------------------------------------------------------


async def test_stats_count_per_routing_id_and_status(sandbox: httpx.AsyncClient) -> None:
    """/sandbox/stats proves how many times each id was sent, and with which answers."""
    await post(sandbox, 1)
    await post(sandbox, 1)
    await post(sandbox, 2, {"status": 1})
    counts = await stats(sandbox)
    assert counts["total"] == 3
    assert counts["by_routing_id"] == {"1": 2, "2": 1}
    assert counts["by_status"] == {"200": 2, "400": 1}
    assert counts["in_flight"] == 0
    assert counts["max_in_flight"] == 1


async def test_unknown_paths_answer_the_envelope(sandbox: httpx.AsyncClient) -> None:
    """Unknown paths and methods get the error envelope, not a bare text page."""
    assert error_code(await sandbox.get("/nope")) == "NOT_FOUND"
    assert (
        error_code(await sandbox.put("/voicelink/call-routing/1", json=BODY))
        == "METHOD_NOT_ALLOWED"
    )


async def test_seeded_records_bring_their_connections(tmp_path: Path) -> None:
    """Connection ids named in --state are the account's too, in any UUID spelling."""
    mine = "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE"
    path = tmp_path / "state.csv"
    path.write_text(
        f"routing_id,for_inbound_call,for_outbound_call,status,connectionId\n5,1,4,1,{mine}\n"
    )
    async with client(SandboxConfig(api_key=KEY, connections=2, state=path, **OPEN)) as c:
        assert (await c.get("/voicelink/call-routing/5")).json()["data"]["connection_id"] == mine
        answer = await post(c, 5, {**BODY, "connection_id": mine.lower()})
        assert answer.status_code == 200
