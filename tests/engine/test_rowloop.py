"""The orchestrator: bounded concurrency, journaling, stop conditions, in virtual time."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from trio.testing import MockClock

from batch.engine.merge import Summary, merge_results
from batch.engine.rowloop import RunReport, execute, pending, run_calls
from batch.engine.stop import Observer, Observers, StopReason, StopToken
from batch.journal.journal import Journal
from batch.journal.record import RunIdentity
from batch.model import Call, Outcome, RowResult
from batch.sandbox import SandboxConfig, create_app
from batch.send.client import SendPolicy, build_client
from batch.send.limiter import Limiter
from batch.send.sender import Sender
from batch.settings import Rate
from tests.fakes import sender_hooks


async def send_all(
    calls: Any,
    *,
    client: httpx.AsyncClient,
    rate: Rate,
    policy: SendPolicy,
    concurrency: int,
    journal: Journal,
    observer: Observer | None = None,
    stop: StopToken | None = None,
) -> RunReport:
    """The engine's wiring in small: one Sender (journal hooks first), then the row loop."""
    observer = observer or Observer()
    on_attempt, on_retry = sender_hooks(journal, observer)
    sender = Sender(
        client, Limiter(rate), policy, on_attempt=on_attempt, on_retry=on_retry
    )  # fmt: skip
    return await run_calls(
        calls, sender=sender, journal=journal, concurrency=concurrency, observer=observer,
        stop=stop,
    )  # fmt: skip


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    source = tmp_path / "in.csv"
    source.write_text("x\n")
    ident = RunIdentity.of(source, "http://127.0.0.1:1/api/v2", tmp_path / "out.csv")
    with Journal.open(tmp_path / "out.csv.journal", ident) as j:
        yield j


def _calls(n: int) -> Iterator[Call]:
    for row in range(1, n + 1):
        body = f'{{"for_inbound_call":1,"for_outbound_call":4,"status":{row % 2}}}'
        yield Call(row=row, routing_id=1000 + row, body=body)


def _result(call: Call, outcome: Outcome = Outcome.SUCCEEDED, status: int = 200) -> RowResult:
    return RowResult(
        row=call.row,
        routing_id=str(call.routing_id),
        outcome=outcome,
        http_status=status,
        attempts=1,
        error_code="" if outcome is Outcome.SUCCEEDED else "X",
        request=call.body,
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
    )


class FakeSender:
    """Takes `delay` virtual seconds per row and reports attempts like the real sender."""

    def __init__(self, journal: Journal, delay: float = 1.0, observer: Observer | None = None):
        self.delay = delay
        self.in_flight = 0
        self.peak = 0
        self.sent: list[int] = []
        self.on_attempt, _ = sender_hooks(journal, observer or Observer())
        self.status: dict[int, int] = {}

    async def send(self, call: Call) -> RowResult:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.sent.append(call.row)
        self.on_attempt(call, 1)
        try:
            await anyio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        status = self.status.get(call.row, 200)
        return _result(call, Outcome.SUCCEEDED if status == 200 else Outcome.FAILED, status)


async def test_every_call_recorded_with_bounded_concurrency(journal: Journal) -> None:
    """20 one-second rows at concurrency 4 take exactly 5 s, never more than 4 in flight."""
    fake = FakeSender(journal)
    report = await execute(_calls(20), send=fake.send, journal=journal, concurrency=4)
    assert fake.peak == 4
    assert report.elapsed == 5.0
    assert report.outcomes == {Outcome.SUCCEEDED: 20}
    assert report.stopped is None
    assert journal.final_count() == 20


async def test_input_is_read_only_as_workers_free_up(journal: Journal) -> None:
    """Back-pressure: a row is taken from the input only when a worker is free for it."""
    consumed = 0

    def lazy() -> Iterator[Call]:
        nonlocal consumed
        for call in _calls(100):
            consumed += 1
            yield call

    fake = FakeSender(journal)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: execute(lazy(), send=fake.send, journal=journal, concurrency=3))
        await anyio.sleep(2.5)
        assert consumed == 9  # 3 rows at t=0, 3 at t=1, 3 at t=2: never more than in flight
        assert fake.in_flight == 3
        tg.cancel_scope.cancel()


async def test_soft_stop_finishes_in_flight_and_starts_nothing(journal: Journal) -> None:
    """A soft stop lets the 2 in-flight rows finish; the rest stay unsent."""
    fake = FakeSender(journal, delay=1.0)
    stop = StopToken()

    async def interrupt() -> None:
        await anyio.sleep(2.5)
        stop.request(StopReason.INTERRUPTED, "interrupted")

    async with anyio.create_task_group() as tg:
        tg.start_soon(interrupt)
        report = await execute(
            _calls(10), send=fake.send, journal=journal, concurrency=2, stop=stop
        )
    assert fake.sent == [1, 2, 3, 4, 5, 6]
    assert report.outcomes == {Outcome.SUCCEEDED: 6}
    assert report.stopped is not None
    assert report.stopped.reason == StopReason.INTERRUPTED
    assert report.elapsed == 3.0


async def test_soft_stop_cancels_after_grace(journal: Journal) -> None:
    """In-flight rows slower than the grace period are cancelled and recorded `unknown`."""
    fake = FakeSender(journal, delay=100.0)
    stop = StopToken()

    async def interrupt() -> None:
        await anyio.sleep(1)
        stop.request(StopReason.INTERRUPTED, "interrupted")

    async with anyio.create_task_group() as tg:
        tg.start_soon(interrupt)
        report = await execute(
            _calls(5), send=fake.send, journal=journal, concurrency=2, stop=stop, grace=7.0
        )
    assert report.elapsed == 8.0
    assert report.outcomes == {Outcome.UNKNOWN: 2}
    assert [(r.row, r.outcome) for r in journal.results()] == [
        (1, Outcome.UNKNOWN),
        (2, Outcome.UNKNOWN),
    ]


async def test_hard_stop_cancels_in_flight_at_once(journal: Journal) -> None:
    """A second Ctrl-C (hard stop) cancels in-flight rows immediately: they become unknown."""
    fake = FakeSender(journal, delay=100.0)
    stop = StopToken()

    async def interrupt() -> None:
        await anyio.sleep(1)
        stop.request(StopReason.INTERRUPTED, "interrupted")
        await anyio.sleep(1)
        stop.request(StopReason.INTERRUPTED, "interrupted again", hard=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(interrupt)
        report = await execute(
            _calls(5), send=fake.send, journal=journal, concurrency=3, stop=stop, grace=30
        )
    assert report.elapsed == 2.0
    assert report.outcomes == {Outcome.UNKNOWN: 3}
    assert stop.hard


async def test_cancelled_before_sending_is_not_attempted(journal: Journal) -> None:
    """A row cancelled before its first request leaves no record (not_attempted)."""
    stop = StopToken()

    async def never_sends(call: Call) -> RowResult:
        await anyio.sleep(50)  # e.g. waiting for the limiter
        raise AssertionError("unreachable")

    async def interrupt() -> None:
        await anyio.sleep(1)
        stop.request(StopReason.INTERRUPTED, "x", hard=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(interrupt)
        report = await execute(
            _calls(3), send=never_sends, journal=journal, concurrency=3, stop=stop
        )
    assert report.outcomes == {Outcome.NOT_ATTEMPTED: 3}
    assert list(journal.results()) == []


async def test_stop_before_start_sends_nothing(journal: Journal) -> None:
    """A stop requested before the run begins (Ctrl-C during validation) sends nothing."""
    fake = FakeSender(journal)
    stop = StopToken()
    stop.request(StopReason.INTERRUPTED, "early")
    report = await execute(_calls(5), send=fake.send, journal=journal, concurrency=2, stop=stop)
    assert fake.sent == []
    assert report.started == 0


@pytest.mark.parametrize("status", [401, 403])
async def test_key_rejected_stops_the_run(journal: Journal, status: int) -> None:
    """A 401/403 stops at once: later rows are never sent, the message says check the key."""
    fake = FakeSender(journal, delay=1.0)
    fake.status[3] = status
    report = await execute(_calls(50), send=fake.send, journal=journal, concurrency=1)
    assert fake.sent == [1, 2, 3]
    assert report.stopped is not None
    assert report.stopped.reason == StopReason.KEY_REJECTED
    assert "check the key in VOCOBASE_API_KEY" in report.stopped.message
    assert report.outcomes == {Outcome.SUCCEEDED: 2, Outcome.FAILED: 1}


async def test_resume_skips_decided_rows(journal: Journal) -> None:
    """A resumed run sends only rows not yet decided (unknown rows are sent again)."""
    journal.finish(_result(Call(1, 1001, "{}")))
    journal.finish(_result(Call(2, 1002, "{}"), Outcome.FAILED, 404))
    journal.begin(Call(3, 1003, "{}"))
    journal.attempt(Call(3, 1003, "{}"), 1)
    with Journal.open(journal.path, None) as again:  # as the next invocation opens it
        assert again.resumed
        fake = FakeSender(again)
        await execute(pending(_calls(5), again), send=fake.send, journal=again, concurrency=2)
        assert fake.sent == [3, 4, 5]
        record = again.get(3)
    assert record is not None
    assert (record.outcome, record.attempts) == (Outcome.SUCCEEDED, 2)


async def test_observer_sees_every_row(journal: Journal) -> None:
    """Progress hooks get run start, attempts and each finished row."""

    class Recorder(Observer):
        def __init__(self) -> None:
            self.events: list[str] = []

        def attempt(self, call: Call, n: int) -> None:
            self.events.append(f"a{call.row}")

        def row_finished(self, result: RowResult) -> None:
            self.events.append(f"f{result.row}")

    recorder = Recorder()
    fake = FakeSender(journal, observer=recorder)
    await execute(_calls(2), send=fake.send, journal=journal, concurrency=1, observer=recorder)
    assert recorder.events == ["a1", "f1", "a2", "f2"]


def test_merge_results_keeps_input_order_and_text(journal: Journal) -> None:
    """Results: every base row in order, journal records win, routing_id stays as written."""
    journal.finish(_result(Call(2, 1002, "{}")))
    base = [
        RowResult(row=1, routing_id="abc", outcome=Outcome.INVALID, error_code="NOT_AN_INTEGER"),
        RowResult(row=2, routing_id="1002.0", outcome=Outcome.NOT_ATTEMPTED, request="{}"),
        RowResult(row=3, routing_id="1003", outcome=Outcome.NOT_ATTEMPTED, request="{}"),
    ]
    merged = list(merge_results(base, journal))
    assert [(r.row, r.outcome, r.routing_id) for r in merged] == [
        (1, Outcome.INVALID, "abc"),
        (2, Outcome.SUCCEEDED, "1002.0"),
        (3, Outcome.NOT_ATTEMPTED, "1003"),
    ]


def test_summary_counts_codes_with_examples() -> None:
    """The summary counts outcomes and error codes, keeping the first row of each code."""
    rows = [
        RowResult(row=1, routing_id="1", outcome=Outcome.SUCCEEDED),
        RowResult(row=2, routing_id="2", outcome=Outcome.FAILED, error_code="NOT_FOUND"),
        RowResult(row=3, routing_id="3", outcome=Outcome.FAILED, error_code="NOT_FOUND"),
        RowResult(row=4, routing_id="4", outcome=Outcome.INVALID, error_code="A;B"),
    ]
    summary = Summary()
    assert list(summary.tally(rows)) == rows
    assert summary.total == 4
    assert not summary.all_succeeded
    assert summary.retryable == 2
    top = summary.top_codes()
    assert (top[0][0], top[0][1], top[0][2].row) == ("NOT_FOUND", 2, 2)
    assert {code for code, _, _ in top} == {"NOT_FOUND", "A", "B"}


# -- the whole run over httpx.ASGITransport on the sandbox app (no sockets, virtual time) ----


def _sandbox_client(**config: Any) -> tuple[httpx.AsyncClient, Any]:
    sandbox = SandboxConfig(api_key="rg_test_asgi", rate_limit=None, max_concurrent=None, **config)
    app = create_app(sandbox)
    transport = httpx.ASGITransport(app=app)
    base = "http://sandbox.test/api/v2"
    return build_client(base, "rg_test_asgi", timeout=5, concurrency=4, transport=transport), app


@pytest.mark.parametrize("rate", ["1000/s", "2/s"])
async def test_no_task_yields_while_a_final_record_is_uncommitted(
    journal: Journal, rate: str
) -> None:
    """A final record may share its commit with the next row's in-flight mark, but whenever
    the run yields (a request in flight, a wait for a slot), every row it saw finish is on disk
    (in SQLite or its log): what a run resumed after kill -9 would read. At 1000/s the worker
    goes straight on to its next row (one commit for both); at 2/s it waits for its slot, and
    commits before waiting. A watcher task looks every 5 ms (virtual) and at every request.
    """
    finished: list[int] = []
    late: list[list[int]] = []
    outside = sqlite3.connect(journal.path)

    class Finished(Observer):
        def row_finished(self, result: RowResult) -> None:
            finished.append(result.row)

    def look() -> None:
        query = "SELECT row FROM rows WHERE outcome = 'succeeded'"
        decided = {row for (row,) in outside.execute(query)}
        log = Path(f"{journal.path}-log")
        records = log.read_bytes().split(b"\0", 1)[0] if log.exists() else b""
        for line in records.splitlines():  # the records end where the log's zeros begin
            row, outcome = json.loads(line)[0], json.loads(line)[2]
            if outcome == "succeeded":
                decided.add(row)
        missing = [row for row in finished if row not in decided]
        if missing:
            late.append(missing)

    async def answer(request: httpx.Request) -> httpx.Response:
        look()
        await anyio.sleep(0.01)
        return httpx.Response(200, json={"success": True, "data": {"id": 1}})

    async def watch() -> None:
        while True:
            look()
            await anyio.sleep(0.005)

    client = build_client(
        "http://sandbox.test/api/v2",
        "rg_test_asgi",
        timeout=5,
        concurrency=3,
        transport=httpx.MockTransport(answer),
    )
    async with client, anyio.create_task_group() as tg:
        tg.start_soon(watch)
        report = await send_all(
            _calls(12),
            client=client,
            rate=Rate.parse(rate),
            policy=SendPolicy(),
            concurrency=3,
            journal=journal,
            observer=Finished(),
        )
        tg.cancel_scope.cancel()
    look()
    outside.close()
    assert report.outcomes == {Outcome.SUCCEEDED: 12}
    assert len(finished) == 12
    assert late == []


async def test_whole_run_over_asgi_is_paced_exactly(journal: Journal) -> None:
    """20 rows at 4/s over the sandbox app: all succeed, the last starts at exactly 4.75 s."""
    client, app = _sandbox_client()
    async with client:
        report = await send_all(
            _calls(20),
            client=client,
            rate=Rate.parse("4/s"),
            policy=SendPolicy(),
            concurrency=4,
            journal=journal,
        )
    assert report.outcomes == {Outcome.SUCCEEDED: 20}
    assert report.elapsed == 4.75
    assert app.sandbox.state.stats()["total"] == 20


async def test_whole_run_over_asgi_retries_faults(journal: Journal) -> None:
    """Scripted 503, HTML page, 429 and 500s: every row ends succeeded and the server saw
    each row exactly `attempts` times."""
    script = {1001: ("503", "ok"), 1002: ("html", "ok"), 1003: ("429", "ok"), 1004: ("500",) * 3}
    client, app = _sandbox_client(script=script)
    async with client:
        await send_all(
            _calls(6),
            client=client,
            rate=Rate.parse("10/s"),
            policy=SendPolicy(max_attempts=5),
            concurrency=3,
            journal=journal,
        )
    seen = app.sandbox.state.stats()["by_routing_id"]
    for record in journal.results():
        assert record.outcome is Outcome.SUCCEEDED
        assert seen[record.routing_id] == record.attempts
    assert journal.get(4).attempts == 4  # type: ignore[union-attr]


async def test_whole_run_over_asgi_stops_on_401(journal: Journal) -> None:
    """A 401 from the server stops the run: one request sent, the rest never."""
    client, app = _sandbox_client(deny_status=401)
    async with client:
        report = await send_all(
            _calls(10),
            client=client,
            rate=Rate.parse("10/s"),
            policy=SendPolicy(),
            concurrency=1,
            journal=journal,
        )
    assert report.stopped is not None
    assert report.stopped.reason == StopReason.KEY_REJECTED
    assert app.sandbox.state.stats()["total"] == 1
    assert [r.error_code for r in journal.results()] == ["UNAUTHORIZED"]


async def test_soft_stop_holds_back_rows_waiting_for_their_first_slot(journal: Journal) -> None:
    """On a soft stop, started rows still waiting for the limiter send nothing (not_attempted);
    the row already answered stays succeeded."""
    client, app = _sandbox_client()
    stop = StopToken()

    async def interrupt() -> None:
        await anyio.sleep(1.5)  # rows 1, 2 answered (t=0, t=1); rows 3-6 wait for the limiter
        stop.request(StopReason.INTERRUPTED, "interrupted")

    async with client, anyio.create_task_group() as tg:
        tg.start_soon(interrupt)
        report = await send_all(
            _calls(10),
            client=client,
            rate=Rate.parse("1/s"),
            policy=SendPolicy(),
            concurrency=4,
            journal=journal,
            stop=stop,
        )
    assert report.outcomes == {Outcome.SUCCEEDED: 2, Outcome.NOT_ATTEMPTED: 4}
    assert report.elapsed == 1.5
    assert app.sandbox.state.stats()["total"] == 2
    assert [r.row for r in journal.results()] == [1, 2]


async def test_observers_fan_out_and_can_stop_the_run(journal: Journal) -> None:
    """Several observers see every event; one of them (an error budget, say) can stop the run."""
    stop = StopToken()

    class Budget(Observer):
        def __init__(self) -> None:
            self.failed = 0

        def row_finished(self, result: RowResult) -> None:
            self.failed += result.outcome is Outcome.FAILED
            if self.failed >= 2:
                stop.request("error_budget", "2 rows failed: over budget")

    class Count(Observer):
        def __init__(self) -> None:
            self.finished = 0

        def row_finished(self, result: RowResult) -> None:
            self.finished += 1

    budget, count = Budget(), Count()
    fake = FakeSender(journal)
    fake.status.update({2: 404, 4: 404})
    report = await execute(
        _calls(20),
        send=fake.send,
        journal=journal,
        concurrency=1,
        stop=stop,
        observer=Observers(budget, count),
    )
    assert count.finished == 4
    assert fake.sent == [1, 2, 3, 4]
    assert report.stopped is not None
    assert report.stopped.reason == "error_budget"


def test_observers_call_every_override_of_every_hook_in_order() -> None:
    """Observers fans each hook out to the observers that override it, in the order given
    (a subclass's override counts; the base class's no-ops are skipped, not replaced)."""
    seen: list[str] = []

    class Shows(Observer):
        def attempt(self, call: Call, n: int) -> None:
            seen.append(f"shows attempt {call.row}/{n}")

        def row_finished(self, result: RowResult) -> None:
            seen.append(f"shows finished {result.row}")

    class Counts(Observer):
        def row_finished(self, result: RowResult) -> None:
            seen.append(f"counts finished {result.row}")

    class CountsMore(Counts):
        def attempt(self, call: Call, n: int) -> None:
            seen.append(f"more attempt {call.row}/{n}")

    fan = Observers(Shows(), Observer(), Counts(), CountsMore())
    fan.attempt(Call(row=4, routing_id=104, body="{}"), 2)
    fan.row_finished(RowResult(row=4, routing_id="104", outcome=Outcome.SUCCEEDED))
    assert seen == [
        "shows attempt 4/2",
        "more attempt 4/2",
        "shows finished 4",
        "counts finished 4",
        "counts finished 4",
    ]
