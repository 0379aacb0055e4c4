"""The audit trail (batch.journal.audit): every request recorded with its wait and its cause (the
sender, in trio's virtual time), durably and numbered across invocations (the journal), and the
files beside the results file."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import httpx
import polars as pl
import pytest
from trio.testing import MockClock

from batch.engine import runtrail
from batch.journal import audit, rowrecords
from batch.journal.journal import Journal
from batch.journal.record import RunIdentity
from batch.model import Call, Outcome, RowResult
from batch.send.events import SendEvents
from tests.send.test_sender import BODY, CALL, EPOCH, OK_BODY, Script, error, make_sender

IDENTITY = RunIdentity("sha", "https://api.example.test/api/v2", "/tmp/out.csv")


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


class Trail(SendEvents):
    """Records what the sender tells of its requests and answers, with the loop's clock."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, int, str, float]] = []
        self.answers: list[tuple[int, int | None, str, float | None, bool]] = []

    def attempt(self, call: Call, n: int, *, waited_ms: int = 0, cause: str = "") -> None:
        self.sent.append((call.row, n, waited_ms, cause, anyio.current_time()))

    def answered(
        self, call: Call, status: int | None, code: str, retry_after: float | None, *,
        final: bool = False,
    ) -> None:  # fmt: skip
        self.answers.append((call.row, status, code, retry_after, final))


async def test_each_request_records_its_wait_and_why() -> None:
    """503 (backoff 1 s), 429 with Retry-After 7 (waits 7 s), a timeout (backoff 4 s), then 200:
    four requests, each with the wait before it, its cause and its answer."""
    script = Script(
        error(503, "UNAVAILABLE"),
        httpx.Response(429, headers={"Retry-After": "7"}, json={"success": False}),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json=OK_BODY),
    )
    trail = Trail()
    sender, _ = make_sender(script, timeout=5, events=trail)
    result = await sender.send(CALL)
    assert result.outcome is Outcome.SUCCEEDED
    assert [(row, n, waited, cause) for row, n, waited, cause, _ in trail.sent] == [
        (7, 1, 0, ""),
        (7, 2, 1000, audit.BACKOFF),
        (7, 3, 7000, audit.RETRY_AFTER),
        (7, 4, 4000, audit.BACKOFF),  # counted from the timeout's error, not from its request
    ]
    assert trail.answers == [
        (7, 503, "UNAVAILABLE", None, False),
        (7, 429, "RATE_LIMITED", 7.0, False),
        (7, None, "TIMEOUT", None, False),
        (7, 200, "", None, True),
    ]


async def test_a_row_held_by_another_rows_429_waits_for_the_pause() -> None:
    """Row 8 becomes ready at 0.5 s, during the 10 s pause row 7's 429 asked for: it goes at
    10 s, having waited 9.5 s for the pause (not for the pace)."""
    script = Script(
        httpx.Response(429, headers={"Retry-After": "10"}),
        httpx.Response(200, json=OK_BODY),
        httpx.Response(200, json=OK_BODY),
    )
    trail = Trail()
    sender, _ = make_sender(script, rate="1/s", events=trail)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.send, CALL)
        await anyio.sleep(0.5)
        tg.start_soon(sender.send, Call(row=8, routing_id=94, body=BODY))
    second = [entry for entry in trail.sent if entry[0] == 8]
    assert [(n, waited, cause) for _, n, waited, cause, _ in second] == [(1, 9500, audit.PAUSE)]


async def test_rows_waiting_for_their_slot_wait_for_the_pace() -> None:
    """At 2/s, three rows ready at once go at 0, 0.5 and 1 s: their waits say so."""
    script = Script(*[httpx.Response(200, json=OK_BODY) for _ in range(3)])
    trail = Trail()
    sender, _ = make_sender(script, rate="2/s", events=trail)
    async with anyio.create_task_group() as tg:
        for row in (1, 2, 3):
            tg.start_soon(sender.send, Call(row=row, routing_id=90 + row, body=BODY))
    waits = sorted((waited, cause) for _, _, waited, cause, _ in trail.sent)
    assert waits == [(0, ""), (500, audit.PACE), (1000, audit.PACE)]


# -- the journal: durable, numbered across invocations ----------------------------------------


def attempts_in(path: Path) -> list[audit.Attempt]:
    with closing(audit.read_only(path)) as db:
        return list(audit.attempts(db))


def test_a_request_cut_off_keeps_its_record_and_the_next_invocation_counts_on(
    tmp_path: Path,
) -> None:
    """A request recorded, its answer recorded, then a second request whose process dies (the
    journal is never closed): reopened, both are there, the second never answered; a later
    invocation numbers its request 3 and records its segment."""
    path = tmp_path / "out.csv.journal"
    call = Call(row=1, routing_id=41, body=BODY)
    first = Journal.open(path, IDENTITY)
    first.segment = 1
    first.begin(call)
    first.attempt(call, 1, waited_ms=12, cause=audit.PACE)
    first.answered(call, 503, "UNAVAILABLE", None)
    first.attempt(call, 2, waited_ms=1000, cause=audit.BACKOFF)
    first._backlog._mapped.close()  # the process dies: nothing copied into SQLite, the log stays
    first._db.close()

    second = Journal.open(path, IDENTITY)
    records = attempts_in(path)
    assert [
        (r.row, r.attempt, r.segment, r.http_status, r.error_code, r.waited_ms, r.wait_cause)
        for r in records
    ] == [
        (1, 1, 1, 503, "UNAVAILABLE", 12, audit.PACE),
        (1, 2, 1, None, "", 1000, audit.BACKOFF),
    ]
    first_answered, second_answered = (r.answered_at for r in records)
    assert first_answered is not None  # answered
    assert second_answered is None  # never answered
    second.segment = 2
    second.begin(call)
    second.attempt(call, 1)
    second.answered(call, 200, "", None, final=True)
    result = second.finish(RowResult(1, "41", Outcome.SUCCEEDED, 200, attempts=1))
    second.close()
    assert result.attempts == 3
    last = attempts_in(path)[-1]
    assert (last.attempt, last.segment, last.http_status) == (3, 2, 200)


def test_a_success_cut_off_before_the_copy_in_is_answered_by_its_row_record(
    tmp_path: Path,
) -> None:
    """A success's answer is not logged (its row's final record says it): after a crash, the
    request is answered when the row finished, with its status, whether its "sent" record was
    still in the log or already copied into SQLite."""
    path = tmp_path / "out.csv.journal"
    calls = [Call(row=r, routing_id=40 + r, body=BODY) for r in (1, 2)]
    first = Journal.open(path, IDENTITY)
    first.segment = 1
    for n, call in enumerate(calls):
        first.begin(call)
        first.attempt(call, 1)
        if n == 0:
            first.trail()  # row 1's "sent" record reaches SQLite before its answer
        first.answered(call, 200, "", None, final=True)
        done = RowResult(call.row, str(call.routing_id), Outcome.SUCCEEDED, 200, attempts=1,
                         finished_at=EPOCH)  # fmt: skip
        first.finish(done)
    first._backlog._mapped.close()  # the process dies: the log is all that is left of the answers
    first._db.close()
    Journal.open(path, IDENTITY).close()
    records = attempts_in(path)
    assert [(r.row, r.attempt, r.answered_at, r.http_status) for r in records] == [
        (1, 1, rowrecords.stamp(EPOCH), 200),
        (2, 1, rowrecords.stamp(EPOCH), 200),
    ]


def test_a_new_run_at_the_results_path_forgets_the_old_trail(tmp_path: Path) -> None:
    path = tmp_path / "out.csv.journal"
    call = Call(row=1, routing_id=41, body=BODY)
    with Journal.open(path, IDENTITY) as journal:
        start = audit.SegmentStart("run", "0", "me@here", "sha", "plan", "h", "VAR", {})
        assert journal.begin_segment(start) == 1
        journal.event(audit.STOP, "interrupted")
        journal.begin(call)
        journal.attempt(call, 1)
        journal.start_run(RunIdentity("other", IDENTITY.base_url, IDENTITY.results))
        db = journal.trail()
        assert [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("attempts", "segments", "events")] == [0, 0, 0]  # fmt: skip


def test_the_attempts_file_streams_the_journal_with_times_in_utc(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet.journal"
    calls = [Call(row=r, routing_id=40 + r, body=BODY) for r in (2, 1)]
    with Journal.open(path, IDENTITY) as journal:
        journal.segment = 1
        for call in calls:
            journal.begin(call)
            journal.attempt(call, 1, waited_ms=5, cause=audit.PACE)
            journal.answered(call, 429, "RATE_LIMITED", 2.5)
        written = runtrail.write_attempts(tmp_path / "out.parquet", journal.attempt_records())
    assert written.name == "out.parquet.attempts.parquet"
    frame = pl.read_parquet(written)
    assert frame.columns == list(audit.ATTEMPT_COLUMNS)
    assert frame["row"].to_list() == [1, 2]  # by row, then attempt
    assert frame["retry_after"].to_list() == [2.5, 2.5]
    assert all(t.endswith("Z") for t in frame["sent_at"].to_list())
    assert not list(tmp_path.glob(".*"))  # no scratch file left behind


def test_old_journals_gain_the_trail_tables(tmp_path: Path) -> None:
    """A journal written before the trail existed opens, and its reader says it has none."""
    path = tmp_path / "out.csv.journal"
    with Journal.open(path, IDENTITY):
        pass
    with closing(sqlite3.connect(path)) as db:
        db.executescript("DROP TABLE attempts; DROP TABLE segments; DROP TABLE events;")
    with closing(audit.read_only(path)) as db:
        assert not audit.has_trail(db)
    with Journal.open(path, IDENTITY):
        pass
    with closing(audit.read_only(path)) as db:
        assert audit.has_trail(db)
        assert json.dumps(audit.segments(db)) == "[]"
