"""A 429 is a pacing signal, never a row's failure (issue 29), in trio's virtual time: throttled
attempts do not use up --max-attempts, a run throttled past its limit stops with its rows
not_attempted, and `attempts` still counts every request. The real processes are in
tests/send/test_throttled_live.py."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from trio.testing import MockClock

from batch import voicelink
from batch.engine.guards import throttled_out
from batch.engine.rowloop import run_calls
from batch.engine.stop import StopReason, StopToken
from batch.journal.journal import Journal
from batch.journal.record import RunIdentity
from batch.model import Call, Outcome, RowResult
from batch.send.client import SendPolicy, build_client
from batch.send.limiter import Limiter
from batch.send.retry import Answer, build_retrying
from batch.send.sender import Sender
from batch.send.throttle import Throttle
from batch.settings import Rate

BASE = "https://api.example.test/api/v2"
BODY = voicelink.encode_body({"for_inbound_call": 1, "for_outbound_call": 4, "status": 1})
OK = {"success": True, "data": {"id": 1}}


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


class Api:
    """A fake API answering each routing id from its own list of statuses (then 200), or 429
    (Retry-After 1) for everyone until ``throttled_until``; counts the requests per id."""

    def __init__(self, script: dict[int, list[int]] | None = None, throttled_until: float = 0):
        self.script = script or {}
        self.throttled_until = throttled_until
        self.requests: Counter[int] = Counter()
        self.last = -1.0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        routing_id = int(request.url.path.rsplit("/", 1)[-1])
        self.requests[routing_id] += 1
        self.last = anyio.current_time()
        answers = self.script.get(routing_id, [])
        status = answers.pop(0) if answers else 200
        if anyio.current_time() < self.throttled_until:
            status = 429
        if status == 429:
            body = {"success": False, "error": {"code": "RATE_LIMITED", "message": "slow"}}
            return httpx.Response(429, headers={"Retry-After": "1"}, json=body)
        if status == 200:
            return httpx.Response(200, json=OK)
        return httpx.Response(status, json={"success": False, "error": {"code": f"E{status}"}})


def sender_for(api: Api, **policy: Any) -> Sender:
    client = build_client(BASE, "rg_test_key", timeout=30, concurrency=4,
                          transport=httpx.MockTransport(api))  # fmt: skip
    return Sender(client, Limiter(Rate.parse("10/s")), SendPolicy(**policy),
                  random=lambda: 0.0)  # fmt: skip


def call(n: int) -> Call:
    return Call(row=n, routing_id=1000 + n, body=BODY)


async def test_429s_use_up_no_attempt() -> None:
    """--max-attempts 2: six 429s, then the row succeeds on its 7th request (all counted)."""
    api = Api({1001: [429] * 6})
    result = await sender_for(api, max_attempts=2).send(call(1))
    assert result is not None
    assert (result.outcome, result.attempts) == (Outcome.SUCCEEDED, 7)
    assert api.requests[1001] == 7


async def test_one_attempt_waits_out_a_429() -> None:
    """--max-attempts 1 used to fail a row on its first 429: now it waits its turn."""
    api = Api({1001: [429, 429]})
    result = await sender_for(api, max_attempts=1).send(call(1))
    assert result is not None
    assert (result.outcome, result.attempts) == (Outcome.SUCCEEDED, 3)


async def test_other_failures_still_count_between_429s() -> None:
    """500, 429, 429, 500 with --max-attempts 2: the two 500s spend both attempts, the 429s
    none; failed after 4 requests, the last answer's code kept."""
    api = Api({1001: [500, 429, 429, 500, 200]})
    result = await sender_for(api, max_attempts=2).send(call(1))
    assert result is not None
    assert (result.outcome, result.attempts, result.error_code) == (Outcome.FAILED, 4, "E500")
    assert "gave up after 4 attempts" in result.error_message


def test_the_retry_loop_leaves_429s_out_of_the_count() -> None:
    """build_retrying's stop: attempt numbers less the 429s seen, against --max-attempts."""
    throttled = Answer(429, False, "RATE_LIMITED", "slow", "{}", True, 1.0)
    failed = Answer(500, False, "E500", "boom", "{}", True)
    outcomes = iter([throttled, throttled, throttled, failed, throttled, failed, throttled])
    seen: list[Answer] = []

    def attempt() -> Answer:
        seen.append(next(outcomes))
        return seen[-1]

    async def nap(_: float) -> None:
        return None

    retrying = build_retrying(
        max_attempts=2, should_retry=lambda o: True, wait=lambda s: 0.0, sleep=nap
    )

    async def main() -> Answer | BaseException:
        async def attempt_async() -> Answer:
            return attempt()

        result: Answer = await retrying(attempt_async)
        return result

    final = anyio.run(main)
    assert final is failed
    assert len(seen) == 6  # 2 charged (the 500s), 4 free (the 429s)


async def test_held_at_429_the_run_stops_after_its_limit_and_fails_no_row(
    tmp_path: Path,
) -> None:
    """Every answer a 429 for longer than the limit (60 s here): the run stops (THROTTLED), no
    request goes out after that, no row is `failed`; the rows that met the 429s are
    not_attempted with every request counted, the others never sent."""
    api = Api(throttled_until=float("inf"))
    sender = sender_for(api, max_attempts=5, max_throttled=60.0)
    stop = StopToken()
    limit = sender.throttle.max_seconds  # --max-outage's 60 s, as SendPolicy.of gives it
    sender.throttle.subscribe(lambda seconds: throttled_out(stop, seconds, limit))
    calls = [call(n) for n in range(1, 21)]
    identity = RunIdentity("sha", BASE, str(tmp_path / "out.csv"))
    with Journal.open(tmp_path / "out.csv.journal", identity) as journal:
        sender = _with_journal(sender, journal)
        report = await run_calls(calls, sender=sender, journal=journal, concurrency=4, stop=stop)
        records = [journal.get(c.row) for c in calls]
    assert report.stopped is not None
    assert report.stopped.reason == StopReason.THROTTLED
    assert "--max-outage 1m 00s" in report.stopped.message
    assert 59.0 <= api.last <= 61.0  # nothing sent once the limit was past
    sent = [r for r in records if r is not None]
    assert sent  # the first rows met the 429s...
    assert all(r.outcome is Outcome.NOT_ATTEMPTED for r in sent)  # ...and none failed
    assert sum(r.attempts for r in sent) == sum(api.requests.values())
    assert all(r.http_status == 429 and "not applied" in r.error_message for r in sent)
    assert all(not r.decided for r in sent)  # a resume sends them


async def test_a_throttle_that_lifts_in_time_costs_nothing() -> None:
    """429s for 50 s, the limit 60 s: every row succeeds, `attempts` counting the 429s."""
    api = Api(throttled_until=50.0)
    sender = sender_for(api, max_attempts=1, max_throttled=60.0)
    results: list[RowResult | None] = []

    async def one(n: int) -> None:
        results.append(await sender.send(call(n)))

    async with anyio.create_task_group() as tasks:
        for n in range(1, 9):
            tasks.start_soon(one, n)
    assert all(r is not None and r.outcome is Outcome.SUCCEEDED for r in results)
    assert sum(r.attempts for r in results if r) == sum(api.requests.values()) > 8
    assert not sender.throttle.gone


def test_the_throttle_counts_only_time_without_progress() -> None:
    """429s interleaved with other answers never add up: each answer starts the clock over."""
    now = [0.0]
    throttle = Throttle(10.0, clock=lambda: now[0])
    heard: list[float] = []
    throttle.subscribe(heard.append)
    for _ in range(30):  # 30 s of 429s, an answer every 6 s
        now[0] += 1.0
        if now[0] % 6 == 0:
            throttle.answered()
        else:
            assert not throttle.refused(1.0)
    assert heard == []
    while not throttle.refused(1.0):
        now[0] += 1.0
    # From the first 429 after the last answer (at 30 s): given up at 39 s, as the wait the
    # last 429 asks for (1 s) would take it to the limit.
    assert (now[0], heard) == (39.0, [9.0])
    assert throttle.refused(0.0)  # gone stays gone, heard once
    assert len(heard) == 1


def _with_journal(sender: Sender, journal: Journal) -> Sender:
    """The sender, recording attempts in ``journal`` as the engine's does."""
    sender._on_attempt = journal.attempt
    return sender
