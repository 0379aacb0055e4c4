"""Outage mode in virtual time: the breaker alone, then a sender whose host goes away."""

from __future__ import annotations

import io
import json
import math
import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from rich.console import Console
from trio.testing import MockClock

from batch import voicelink
from batch.cli.progress import RunProgress
from batch.config.jobs import load_job
from batch.config.precedence import resolve_run_settings
from batch.errors import UsageError
from batch.model import Call, Outcome, RowResult
from batch.send.client import SendPolicy, build_client
from batch.send.limiter import Limiter
from batch.send.outage import Breaker, HostNews, HostState, Turn
from batch.send.sender import Sender
from batch.settings import Rate, RunSettings, parse_duration

BODY = voicelink.encode_body({"for_inbound_call": 1, "for_outbound_call": 4, "status": 1})
OK = {"success": True, "data": {"id": 1}}
KEY = "rg_live_OutageKeyThatMustNeverLeak0042"


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


def refused() -> httpx.ConnectError:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except OSError as exc:
        try:
            raise OSError("All connection attempts failed") from exc
        except OSError as outer:
            error = httpx.ConnectError("All connection attempts failed")
            error.__cause__ = outer
            return error


def no_such_name() -> httpx.ConnectError:
    """What httpcore raises when getaddrinfo says EAI_NONAME (simulated: nothing is looked up)."""
    error = httpx.ConnectError("[Errno -2] Name or service not known")
    error.__cause__ = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return error


def untrusted() -> httpx.ConnectError:
    error = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]")
    error.__cause__ = ssl.SSLCertVerificationError(1, "unable to get local issuer certificate")
    return error


class Host:
    """A fake API that is down (``fail()`` raised or returned) between two virtual moments."""

    def __init__(self, fail: Any, down_from: float = math.inf, down_until: float = math.inf):
        self.fail, self.down_from, self.down_until = fail, down_from, down_until
        self.requests: list[float] = []

    def down(self, at: float) -> bool:
        return self.down_from <= at < self.down_until

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        now = anyio.current_time()
        self.requests.append(now)
        if self.down(now):
            failure = self.fail()
            if isinstance(failure, httpx.Response):
                return failure
            raise failure
        return httpx.Response(200, json=OK)

    def during_outage(self) -> int:
        return sum(1 for t in self.requests if self.down(t))


def make(host: Host, breaker: Breaker, *, rate: str = "20/s", **policy: Any) -> Sender:
    client = build_client("https://api.example.test/api/v2", KEY, timeout=30, concurrency=4,
                          transport=httpx.MockTransport(host))  # fmt: skip
    return Sender(client, Limiter(Rate.parse(rate)), SendPolicy(**policy), breaker=breaker,
                  random=lambda: 0.0)  # fmt: skip


async def send_all(sender: Sender, rows: int, concurrency: int = 4) -> list[RowResult | None]:
    calls = iter([Call(row=n, routing_id=n, body=BODY) for n in range(1, rows + 1)])
    results: list[RowResult | None] = []

    async def worker() -> None:
        for call in calls:
            results.append(await sender.send(call))

    async with anyio.create_task_group() as tasks:
        for _ in range(concurrency):
            tasks.start_soon(worker)
    return results


# -- the breaker alone -------------------------------------------------------------------------


async def test_breaker_opens_after_threshold_and_probes_at_growing_capped_intervals() -> None:
    """Three host failures in a row open it; probes come 1, 2, 4, 8 s apart, capped at 8."""
    breaker = Breaker(max_outage=1000, threshold=3, first_probe=1, max_probe=8, random=lambda: 0)
    news: list[HostNews] = []
    breaker.subscribe(news.append)
    assert not breaker.failed("reset")
    assert not breaker.failed("reset")
    assert breaker.failed("reset")
    assert breaker.state is HostState.DOWN
    probes = []
    for _ in range(6):
        assert await breaker.admit() is Turn.PROBE
        probes.append(anyio.current_time())
        assert breaker.failed("refused", probe=True)
    assert probes == [1, 3, 7, 15, 23, 31]
    assert await breaker.admit() is Turn.PROBE
    breaker.answered()
    assert breaker.up
    assert news[-1].state is HostState.UP
    assert await breaker.admit() is Turn.GO


async def test_an_answer_between_failures_keeps_the_host_up() -> None:
    """Failures count only in a row: any answer starts the count again."""
    breaker = Breaker(max_outage=60, threshold=3)
    for _ in range(10):
        assert not breaker.failed("reset")
        assert not breaker.failed("reset")
        breaker.answered()
    assert breaker.up


async def test_breaker_gives_up_after_max_outage() -> None:
    """Past max_outage since the host went down, admit says GONE, at that very moment."""
    breaker = Breaker(max_outage=100, threshold=1, first_probe=1, max_probe=30, random=lambda: 0)
    news: list[HostNews] = []
    breaker.subscribe(news.append)
    breaker.failed("refused")
    while (turn := await breaker.admit()) is Turn.PROBE:
        breaker.failed("refused", probe=True)
    assert turn is Turn.GONE
    assert anyio.current_time() == 100
    assert news[-1].state is HostState.GONE
    assert not news[-1].fatal


async def test_a_runs_breaker_gives_up_at_its_max_outage_and_every_news_says_the_limit() -> None:
    """Breaker.of(settings) waits --max-outage (90 s here), and each news carries that limit
    (the engine's messages quote it from there)."""
    settings = RunSettings(input=Path("in.csv"), results=Path("out.csv"), max_outage=90.0)
    breaker = Breaker.of(settings)
    news: list[HostNews] = []
    breaker.subscribe(news.append)
    while not breaker.failed("refused"):
        pass
    while (turn := await breaker.admit()) is Turn.PROBE:
        breaker.failed("refused", probe=True)
    assert turn is Turn.GONE
    assert anyio.current_time() == 90
    assert [item.limit for item in news] == [90.0] * len(news)
    assert news[-1].state is HostState.GONE


async def test_only_one_probe_at_a_time_and_waiters_follow_it() -> None:
    """While the probe is out the others wait; its answer lets them all go."""
    breaker = Breaker(max_outage=100, threshold=1, first_probe=1, random=lambda: 0)
    breaker.failed("refused")
    turns: list[Turn] = []

    async def waiter() -> None:
        turns.append(await breaker.admit())

    async with anyio.create_task_group() as tasks:
        for _ in range(3):
            tasks.start_soon(waiter)
        await anyio.sleep(1.5)
        assert turns == [Turn.PROBE]
        breaker.answered()
    assert turns == [Turn.PROBE, Turn.GO, Turn.GO]


async def test_an_abandoned_probe_lets_another_probe() -> None:
    """A probe cancelled before it reported frees the probe slot."""
    breaker = Breaker(max_outage=100, threshold=1, first_probe=1, random=lambda: 0)
    breaker.failed("refused")
    assert await breaker.admit() is Turn.PROBE
    breaker.probe_abandoned()
    assert await breaker.admit() is Turn.PROBE


# -- a sender whose host goes away -------------------------------------------------------------


async def test_a_60_second_outage_costs_no_row_its_outcome() -> None:
    """600 rows at 20/s, the host refusing connections for 60 s mid-run: every row succeeds,
    no row is charged the outage, and the outage costs a bounded number of probes."""
    host = Host(refused, down_from=10.0, down_until=70.0)
    breaker = Breaker(max_outage=900)
    sender = make(host, breaker, max_attempts=5)
    results = await send_all(sender, 600)
    assert all(r is not None and r.outcome is Outcome.SUCCEEDED for r in results)
    assert sum(r.attempts for r in results if r) == len(host.requests)
    # The failures that showed the host down, the rows in flight, and the probes: a handful.
    assert host.during_outage() <= 3 + 4 + 8
    assert len(host.requests) - 600 == host.during_outage()


async def test_outage_by_gateway_answers_is_an_outage_too() -> None:
    """502/503/504 across requests is the host's state: rows wait, then succeed."""
    gateway = Host(lambda: httpx.Response(503, text="<html>down</html>"), 5.0, 65.0)
    results = await send_all(make(gateway, Breaker(max_outage=900)), 300)
    assert all(r is not None and r.outcome is Outcome.SUCCEEDED for r in results)
    assert gateway.during_outage() <= 3 + 4 + 8


async def test_max_outage_stops_rows_resendable() -> None:
    """A host down longer than max_outage: rows in flight end HOST_UNREACHABLE (resent on
    resume), rows not started send nothing, and it happens at max_outage, not later."""
    host = Host(refused, down_from=2.0)
    breaker = Breaker(max_outage=120)
    gone_at: list[float] = []
    breaker.subscribe(lambda n: gone_at.append(n.now) if n.state is HostState.GONE else None)
    results = await send_all(make(host, breaker), 200)
    sent = [r for r in results if r is not None]
    failed = [r for r in sent if r.outcome is Outcome.FAILED]
    assert failed
    assert all(r.error_code == "HOST_UNREACHABLE" and not r.decided for r in failed)
    assert all(r.outcome is Outcome.SUCCEEDED for r in sent if r not in failed)
    assert len(sent) < 200  # the rest were never started
    assert gone_at
    assert gone_at[0] == pytest.approx(2.0 + 120, abs=0.2)


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        (no_such_name, "does not resolve"),
        (untrusted, "SSL_CERT_FILE"),
        (refused, "could not connect"),
    ],
)
async def test_a_host_that_can_never_answer_stops_at_once(failure: Any, words: str) -> None:
    """Name not resolving, certificate not trusted, refused before any answer: a few
    requests, the rows that sent one resendable, the rest not attempted; no time passes."""
    host = Host(failure, down_from=0.0)
    breaker = Breaker(max_outage=900)
    news: list[HostNews] = []
    breaker.subscribe(news.append)
    results = await send_all(make(host, breaker), 500)
    assert len(host.requests) <= 4
    assert anyio.current_time() < 1.0
    sent = [r for r in results if r is not None]
    assert len(sent) == len(host.requests)
    for r in sent:
        assert (r.outcome, r.error_code, r.decided) == (Outcome.FAILED, "HOST_UNREACHABLE", False)
        assert words in r.error_message
        assert KEY not in r.error_message
    assert news[-1].state is HostState.GONE
    assert news[-1].fatal
    assert words in news[-1].cause


async def test_refused_after_answers_is_an_outage_not_a_stop() -> None:
    """Once the host has answered, a refused connection is an outage: the run waits for it."""
    host = Host(refused, down_from=3.0, down_until=20.0)
    results = await send_all(make(host, Breaker(max_outage=900)), 100)
    assert all(r is not None and r.outcome is Outcome.SUCCEEDED for r in results)


@pytest.mark.parametrize("attempts", [1, 3])
async def test_transport_errors_while_the_host_answers_still_spend_attempts(attempts: int) -> None:
    """One row whose requests keep dropping while every other request is answered fails after
    --max-attempts (1 too: it waits for the next answer, not for a timer): the host is up, so
    the error is the row's."""

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/13"):
            raise httpx.ReadError("connection reset")
        return httpx.Response(200, json=OK)

    client = build_client("https://api.example.test/api/v2", KEY, timeout=30, concurrency=4,
                          transport=httpx.MockTransport(handler))  # fmt: skip
    sender = Sender(client, Limiter(Rate.parse("20/s")), SendPolicy(max_attempts=attempts),
                    breaker=Breaker(max_outage=900, threshold=3), random=lambda: 0.0)  # fmt: skip
    results = await send_all(sender, 40)
    bad = [r for r in results if r is not None and r.outcome is Outcome.FAILED]
    assert [(r.row, r.attempts, r.error_code) for r in bad] == [(13, attempts, "CONNECTION_ERROR")]
    assert anyio.current_time() < 3.0 * attempts


# -- the flag, the job key, the progress line --------------------------------------------------


def test_max_outage_flag_and_job_key_share_one_converter(tmp_path: Path) -> None:
    """--max-outage and [pace].max_outage take seconds or N s/m/h; a bad value says the forms."""
    source = tmp_path / "in.csv"
    source.write_text("routing_id,for_inbound_call,for_outbound_call,status\n1,1,4,1\n")
    job = tmp_path / "job.toml"
    job.write_text(f'input = "{source.name}"\n[pace]\nmax_outage = "20m"\n')
    assert resolve_run_settings({"input": source}, load_job(job), {}).max_outage == 1200
    flags = {"input": source, "max_outage": "90"}
    assert resolve_run_settings(flags, load_job(job), {}).max_outage == 90
    assert parse_duration("1h") == 3600
    with pytest.raises(UsageError, match="is not a duration"):
        resolve_run_settings({"input": source, "max_outage": "soon"}, None, {})


def test_progress_says_since_when_and_next_probe() -> None:
    """While the host is down the progress line says since when and when the next probe goes."""
    stream = io.StringIO()
    progress = RunProgress(style="json", err=Console(file=io.StringIO()), stream=stream)
    since = datetime(2026, 11, 30, 14, 3, 7, tzinfo=UTC)
    progress.host_down(since, datetime.now(UTC) + timedelta(seconds=8.2), "refused")
    event = json.loads(stream.getvalue().splitlines()[-1])
    assert event["event"] == "host_down"
    assert event["message"] == "host unreachable since 14:03:07 UTC, next probe in 8 s"
    assert "host unreachable since 14:03:07 UTC" in progress.status()
    progress.host_back(62.0, 7)
    assert json.loads(stream.getvalue().splitlines()[-1])["event"] == "host_back"
    assert "unreachable" not in progress.status()
