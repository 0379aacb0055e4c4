"""The account preflight: reading the lists (paged, paced, retried), judging rows, and where it
runs (validate/plan --account, run and retry before the question)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from typer.testing import CliRunner

from batch.cli import app
from batch.errors import AccountUnreadable
from batch.prepare.preflight import judge, targets_of_calls, targets_of_validation
from batch.prepare.validate import add_errors, validate
from batch.sandbox import SandboxBot
from batch.sandbox.app import create_app
from batch.sandbox.config import SandboxConfig
from batch.send.account import (
    Account,
    Bot,
    Connection,
    fetch_account,
)
from batch.send.accountfile import account_path, load_account, save_account
from batch.send.client import SendPolicy, build_client
from batch.send.limiter import Limiter
from batch.settings import Rate
from batch.sheets.load import load_table
from tests.conftest import StartSandbox

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
KEY = "rg_test_preflight"
MAIN = "3f2b8c1e-5a4d-4e6f-9b7a-1c2d3e4f5a6b"
OLD = "9e8d7c6b-5a49-4382-b1a0-f9e8d7c6b5a4"
OTHER = "11111111-2222-4333-8444-555555555555"
HEADER = (
    "routing_id,for_inbound_call,for_outbound_call,status,connection_id,"
    "inbound_websocket_bot_id,inbound_sip_trunk_id,outbound_websocket_bot_id,outbound_sip_trunk_id"
)
FAST = SendPolicy(max_attempts=3, timeout=5.0, backoff_initial=0.0, backoff_max=0.0)


def account(
    bots: tuple[Bot, ...] = (Bot(210, "Front desk", 1), Bot(93, "Legacy", 0)),
    connections: tuple[Connection, ...] = (Connection(MAIN, "Main", "ACTIVE"),),
) -> Account:
    return Account(bots, connections, datetime(2026, 11, 30, tzinfo=UTC))


def judged(tmp_path: Path, rows: list[str], acc: Account, default: str | None = None) -> Any:
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    v = validate(load_table(path), connection_id=default)
    verdict = judge(targets_of_validation(v), acc)
    return add_errors(v, verdict.errors), verdict


# --- judging: one test per code ------------------------------------------------------------


def test_unknown_bot_names_the_cell_and_the_nearest_bots(tmp_path: Path) -> None:
    """A bot id not on the account is UNKNOWN_BOT; the message names the field and nearby ids."""
    v, verdict = judged(tmp_path, ["1,1,3,1,,,,221,"], account())
    assert v.code_counts() == {"UNKNOWN_BOT": 1}
    message = verdict.errors["error_message"][0]
    assert "row 1, field outbound_websocket_bot_id: bot 221" in message
    assert '210 "Front desk"' in message


def test_inactive_bot_only_for_active_rows(tmp_path: Path) -> None:
    """An inactive bot is INACTIVE_BOT when the row is status 1, not when it is status 0."""
    v, _ = judged(tmp_path, ["1,3,4,1,,93,,,", "2,3,4,0,,93,,,"], account())
    assert v.code_counts() == {"INACTIVE_BOT": 1}
    assert v.judged["error_code"].to_list() == ["INACTIVE_BOT", ""]


def test_unknown_and_inactive_connections(tmp_path: Path) -> None:
    """A connection not on the account is UNKNOWN_CONNECTION; one not ACTIVE is INACTIVE_."""
    acc = account(connections=(Connection(MAIN, "Main", "ACTIVE"), Connection(OLD, "Old", "OFF")))
    v, verdict = judged(tmp_path, [f"1,1,4,1,{OTHER},,,,", f"2,1,4,1,{OLD.upper()},,,,"], acc)
    assert v.judged["error_code"].to_list() == ["UNKNOWN_CONNECTION", "INACTIVE_CONNECTION"]
    assert f"'Main' {MAIN} ACTIVE" in verdict.errors["error_message"][0]


def test_missing_connection_id_with_several_active(tmp_path: Path) -> None:
    """Several active connections: a row without one is MISSING_CONNECTION_ID, unless the
    --connection-id default fills it."""
    acc = account(connections=(Connection(MAIN, "Main", "ACTIVE"), Connection(OLD, "B", "ACTIVE")))
    v, _ = judged(tmp_path, ["1,1,4,1,,,,,"], acc)
    assert v.code_counts() == {"MISSING_CONNECTION_ID": 1}
    v, _ = judged(tmp_path, ["1,1,4,1,,,,,"], acc, default=MAIN)
    assert v.invalid == 0


def test_sip_trunks_are_said_once_not_per_row(tmp_path: Path) -> None:
    """SIP trunk ids cannot be checked: one summary line, no row code."""
    v, verdict = judged(tmp_path, ["1,2,2,1,,,31,,41", "2,2,2,1,,,32,,42"], account())
    assert v.invalid == 0
    assert sum("SIP trunk ids (2 rows) are not checked" in line for line in verdict.lines) == 1


def test_calls_and_validation_give_the_same_verdict() -> None:
    """The engine's judging from request bodies matches validate's from the columns."""
    v = validate(load_table(SAMPLES / "routing-changes-with-errors.csv"))
    acc = account(bots=(Bot(210, "a", 1), Bot(211, "b", 1), Bot(93, "c", 0)))
    by_columns = judge(targets_of_validation(v), acc).errors
    by_bodies = judge(targets_of_calls(v.calls()), acc).errors
    assert by_columns.equals(by_bodies)
    assert by_columns.height > 0


# --- reading the lists from the sandbox (no sockets) -----------------------------------------


async def read(config: SandboxConfig, *, per_page: int = 1000, limiter: Limiter | None = None,
               policy: SendPolicy = FAST) -> Account:  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(config))
    async with build_client(
        "http://127.0.0.1/api/v2", KEY, timeout=5.0, concurrency=1, transport=transport
    ) as client:
        pace = limiter or Limiter(Rate(1000, 1.0))
        return await fetch_account(client, pace, policy, per_page=per_page)


def bots(n: int) -> tuple[SandboxBot, ...]:
    return tuple(SandboxBot(i, f"bot {i}", 1) for i in range(1, n + 1))


@pytest.mark.parametrize(("n", "gets"), [(0, 2), (1000, 3), (1001, 3), (999, 2)])
async def test_paging_reads_until_a_short_page(n: int, gets: int) -> None:
    """Pages of 1,000 until a short (or empty) one: 0 bots is one bots GET, 1,000 and 1,001
    are two; every bot is read once (plus the connections GET)."""
    acc = await read(SandboxConfig(api_key=KEY, rate_limit=None, bots=bots(n)))
    assert [b.id for b in acc.bots] == list(range(1, n + 1))
    assert acc.requests == gets


async def test_connections_and_bots_per_active_connection() -> None:
    """Several active connections: the bots are read per connection, deduplicated."""
    config = SandboxConfig(
        api_key=KEY, rate_limit=None, connections=2, inactive_connection_ids=(OLD,),
        bots=bots(3),
    )  # fmt: skip
    acc = await read(config)
    assert len(acc.active_connections) == 2
    assert [c.status for c in acc.connections] == ["ACTIVE", "ACTIVE", "INACTIVE"]
    assert len(acc.bots) == 3
    assert acc.requests == 3  # connections, then one page of bots per active connection


async def test_a_list_failing_mid_way_stops_with_a_clear_error() -> None:
    """Page 2 keeps failing (500 after the retries): AccountUnreadable, never half a list."""
    config = SandboxConfig(api_key=KEY, rate_limit=None, bots=bots(5),
                           list_script=("ok", "ok", "500", "500", "500"))  # fmt: skip
    with pytest.raises(AccountUnreadable, match=r"bots list .* after 3 attempts: HTTP 500"):
        await read(config, per_page=2)


async def test_a_transient_failure_is_retried() -> None:
    """A 503 then a good answer: the list is read whole."""
    config = SandboxConfig(api_key=KEY, rate_limit=None, bots=bots(3), list_script=("503",))
    acc = await read(config)
    assert len(acc.bots) == 3
    assert acc.requests == 3


@pytest.mark.parametrize(("script", "match"), [
    (("ok", "shape"), "shape the docs do not describe"),
    (("401",), "HTTP 401 .*check the key"),
    (("html",) * 3, "after 3 attempts: HTTP 502 Bad Gateway"),
])  # fmt: skip
async def test_unreadable_lists(script: tuple[str, ...], match: str) -> None:
    """An undocumented shape, a refused key, a proxy's error page: AccountUnreadable."""
    config = SandboxConfig(api_key=KEY, rate_limit=None, bots=bots(1), list_script=script)
    with pytest.raises(AccountUnreadable, match=match):
        await read(config)


async def test_connections_envelope_nested_is_accepted_and_anything_else_refused() -> None:
    """The connections list may answer data[...] or data.data[...]; data.items is refused."""

    def answer(body: object) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/bots"):
                return httpx.Response(200, json={"success": True, "data": {"data": []}})
            return httpx.Response(200, json=body)

        return httpx.MockTransport(handler)

    nested = {
        "success": True,
        "data": {
            "data": [
                {"connection_id": MAIN, "status": "ACTIVE", "name": "Main", "provider": "voicelink"}
            ]
        },
    }
    for body, ok in ((nested, True), ({"success": True, "data": {"items": []}}, False)):
        async with build_client("http://127.0.0.1/api/v2", KEY, timeout=5.0, concurrency=1,
                                transport=answer(body)) as client:  # fmt: skip
            if ok:
                acc = await fetch_account(client, Limiter(Rate(1000, 1.0)), FAST)
                assert acc.connections[0].connection_id == MAIN
            else:
                with pytest.raises(AccountUnreadable, match="connections list"):
                    await fetch_account(client, Limiter(Rate(1000, 1.0)), FAST)


# --- the budget: the GETs take slots on the run's limiter (virtual time) ---------------------


class TestBudget:
    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, Any]]:
        from trio.testing import MockClock

        return ("trio", {"clock": MockClock(autojump_threshold=0)})

    async def test_preflight_gets_are_paced_with_the_updates(self) -> None:
        """At 1/s, the 3 GETs of a 1,001-bot account take slots 0, 1, 2: the run's first
        update on the same limiter waits for slot 3."""
        import anyio

        limiter = Limiter(Rate(1, 1.0))
        start = anyio.current_time()
        await read(SandboxConfig(api_key=KEY, rate_limit=None, bots=bots(1001)), limiter=limiter)
        assert anyio.current_time() - start == pytest.approx(2.0)
        await limiter.acquire()  # the first update
        assert anyio.current_time() - start == pytest.approx(3.0)


# --- kept beside the journal --------------------------------------------------------------


def test_lists_round_trip_beside_the_results(tmp_path: Path) -> None:
    """The lists are kept as <results>.account.json and read back equal."""
    acc = account()
    path = account_path(tmp_path / "out.csv")
    assert path.name == "out.csv.account.json"
    save_account(path, acc)
    assert load_account(path) == acc
    assert load_account(tmp_path / "missing.json") is None


# --- the sandbox's own lists -----------------------------------------------------------------


async def test_sandbox_validates_per_page_and_rejects_unknown_bots() -> None:
    """per_page outside 1..1000 is a 400 naming the field; --reject-unknown-bots refuses
    updates naming a bot the account lacks."""
    config = SandboxConfig(api_key=KEY, rate_limit=None, bots=bots(2), reject_unknown_bots=True)
    transport = httpx.ASGITransport(app=create_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1/api/v2",
                                 headers={"Authorization": f"Bearer {KEY}"}) as client:  # fmt: skip
        for per_page in ("0", "1001", "x"):
            answer = await client.get("/voicelink/bots", params={"per_page": per_page})
            assert answer.status_code == 400
            assert answer.json()["error"]["message"].startswith("per_page:")
        listed = await client.get("/voicelink/bots", params={"per_page": 1000})
        assert listed.json()["data"]["data"][1]["id"] == 2
        body = {"for_inbound_call": 1, "for_outbound_call": 3, "status": 1,
                "outbound_websocket_bot_id": 7}  # fmt: skip
        refused = await client.post("/voicelink/call-routing/5", json=body)
        assert refused.status_code == 400
        assert "bot 7 not found" in refused.json()["error"]["message"]


# --- where it runs: the commands, against a live loopback sandbox --------------------------


def invoke(*args: str, key: str = "") -> Any:
    env = {"VOCOBASE_API_KEY": key, "REROUTE_BASE_URL": ""}
    return CliRunner().invoke(app, list(args), env=env)


def sample_sandbox(start_sandbox: StartSandbox, **fields: Any) -> Any:
    return start_sandbox(state=SAMPLES / "routing-current.csv",
                         bots_file=SAMPLES / "routing-bots.json", **fields)  # fmt: skip


@pytest.mark.slow
def test_validate_account_finds_the_samples_deleted_and_inactive_bots(
    start_sandbox: StartSandbox,
) -> None:
    """validate --account on the error sample: one deleted bot, one inactive, said per cell."""
    sandbox = sample_sandbox(start_sandbox)
    result = invoke("validate", str(SAMPLES / "routing-changes-with-errors.csv"), "--account",
                    "--base-url", sandbox.base_url, key=sandbox.api_key)  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "UNKNOWN_BOT 1" in result.output
    assert "INACTIVE_BOT 1" in result.output
    assert "account check: 7 WebSocket bots (1 inactive)" in result.output
    assert "SIP trunk ids" in result.output
    assert sandbox.stats()["total"] == 0  # read-only


@pytest.mark.slow
def test_plan_account_on_the_clean_sample_passes(start_sandbox: StartSandbox) -> None:
    """plan --account on the clean sample: every row points at what the account has."""
    sandbox = sample_sandbox(start_sandbox)
    result = invoke("plan", str(SAMPLES / "routing-changes.csv"), "--account",
                    "--base-url", sandbox.base_url, key=sandbox.api_key)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "point at what the account has" in result.output


def test_validate_account_needs_a_key() -> None:
    """--account without a key: exit 2 before anything is read."""
    result = invoke("validate", str(SAMPLES / "routing-changes.csv"), "--account")
    assert result.exit_code == 2
    assert "no API key" in result.output


def write_rows(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def run(sandbox: Any, source: Path, results: Path, *extra: str) -> Any:
    return invoke("run", str(source), "--base-url", sandbox.base_url, "--results", str(results),
                  "--rate", "200/s", *extra, key=sandbox.api_key)  # fmt: skip


@pytest.mark.slow
def test_run_account_check_rejects_before_any_update(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """A row naming a deleted bot: exit 2, no update sent, the rows and the fix said."""
    sandbox = start_sandbox(bots=bots(3))
    source = write_rows(tmp_path / "in.csv", ["11,1,3,1,,,,2,", "12,1,3,1,,,,9,"])
    result = run(sandbox, source, tmp_path / "out.csv", "--account-check")
    assert result.exit_code == 2, result.output
    assert "row 2 (line 3), field outbound_websocket_bot_id: bot 9" in result.output
    assert "the account check rejected 1 rows, so nothing was sent" in result.output
    assert sandbox.stats()["total"] == 0


@pytest.mark.slow
def test_run_skip_invalid_sends_the_rest(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """--skip-invalid: the rejected row is invalid in the results, the others are sent."""
    sandbox = start_sandbox(bots=bots(3))
    source = write_rows(tmp_path / "in.csv", ["11,1,3,1,,,,2,", "12,1,3,1,,,,9,"])
    out = tmp_path / "out.csv"
    result = run(sandbox, source, out, "--account-check", "--skip-invalid")
    assert result.exit_code == 1, result.output
    frame = pl.read_csv(out, infer_schema=False)
    assert frame["outcome"].to_list() == ["succeeded", "invalid"]
    assert frame["error_code"].to_list()[1] == "UNKNOWN_BOT"
    assert sandbox.stats()["total"] == 1


@pytest.mark.slow
def test_run_stops_when_a_list_cannot_be_read(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """The bots list answers 500 every time: nothing sent, never half-checked; the server's
    fault, not the sheet's: exit 3 (stopped, the same command starts), every row
    not_attempted."""
    sandbox = start_sandbox(bots=bots(3), list_script=("ok", "500", "500"))
    source = write_rows(tmp_path / "in.csv", ["11,1,3,1,,,,2,"])
    out = tmp_path / "out.csv"
    result = run(sandbox, source, out, "--account-check", "--max-attempts", "2")
    assert result.exit_code == 3, result.output
    assert "could not be read after 2 attempts" in result.output
    assert sandbox.stats()["total"] == 0
    assert pl.read_csv(out, infer_schema=False)["outcome"].to_list() == ["not_attempted"]


@pytest.mark.slow
def test_loopback_is_not_checked_unless_asked(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """Against loopback the check is off by default: no list is read."""
    sandbox = start_sandbox(bots=bots(3))
    source = write_rows(tmp_path / "in.csv", ["11,1,3,1,,,,9,"])
    result = run(sandbox, source, tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    assert sandbox.stats()["lists"] == {}


@pytest.mark.slow
def test_a_retry_does_not_read_the_lists_again(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """The lists are kept with the run: a retry continuing its journal reuses them."""
    sandbox = start_sandbox(bots=bots(3), script={12: ("503", "503")})
    source = write_rows(tmp_path / "in.csv", ["11,1,3,1,,,,2,", "12,1,3,1,,,,3,"])
    out = tmp_path / "out.csv"
    first = run(sandbox, source, out, "--account-check", "--max-attempts", "2")
    assert first.exit_code == 1, first.output
    assert sandbox.stats()["lists"] == {"connections": 1, "bots": 1}
    assert account_path(out).exists()
    again = invoke("retry", str(out), "--base-url", sandbox.base_url, "--rate", "200/s",
                   "--account-check", key=sandbox.api_key)  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "are reused" in again.output
    assert sandbox.stats()["lists"] == {"connections": 1, "bots": 1}


@pytest.mark.slow
def test_job_file_turns_the_check_on_and_the_flag_off(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """[safety] account_check = true checks a loopback target; --no-account-check wins over it."""
    sandbox = start_sandbox(bots=bots(3))
    write_rows(tmp_path / "in.csv", ["11,1,3,1,,,,9,"])
    job = tmp_path / "job.toml"
    job.write_text(
        f'input = "in.csv"\nresults = "out.csv"\n[target]\nbase_url = "{sandbox.base_url}"\n'
        '[pace]\nrate = "200/s"\n[safety]\naccount_check = true\n'
    )
    checked = invoke("run", str(job), key=sandbox.api_key)
    assert checked.exit_code == 2, checked.output
    assert "UNKNOWN_BOT" in checked.output
    assert sandbox.stats()["total"] == 0
    skipped = invoke("run", str(job), "--no-account-check", key=sandbox.api_key)
    assert skipped.exit_code == 0, skipped.output
    assert sandbox.stats()["total"] == 1
