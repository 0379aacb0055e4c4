"""The run's sink for what its sender tells (batch.engine.sending.RunEvents): the journal before
the progress, and the stops a server or a host calls for."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from batch.engine.sending import RunEvents
from batch.engine.stop import Observer, StopReason, StopToken
from batch.journal import audit
from batch.journal.journal import Journal
from batch.journal.record import RunIdentity
from batch.model import Call, Outcome
from batch.send.outage import HostNews, HostState
from batch.settings import RunSettings

CALL = Call(row=3, routing_id=93, body='{"status":1}')


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    source = tmp_path / "in.csv"
    source.write_text("x\n")
    ident = RunIdentity.of(source, "https://api.example.test/api/v2", tmp_path / "out.csv")
    with Journal.open(tmp_path / "out.csv.journal", ident) as j:
        j.segment = 1  # events belong to a segment
        yield j


class Looking(Observer):
    """Reads the journal at the moment it is told of an attempt or of the host."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.seen: list[object] = []

    def attempt(self, call: Call, n: int) -> None:
        record = self.journal.get(call.row)
        self.seen.append(None if record is None else (record.outcome, record.attempts))

    def host_down(self, since: datetime, next_probe: datetime, cause: str) -> None:
        self.seen.append(("down", cause))


def sink(journal: Journal, observer: Observer, stop: StopToken) -> RunEvents:
    settings = RunSettings(journal.path.with_name("in.csv"), journal.path.with_name("out.csv"))
    return RunEvents(journal, observer, stop, settings, "api.example.test")


def test_a_request_is_journaled_before_the_progress_is_told(journal: Journal) -> None:
    """When the observer hears of attempt 1, the journal already holds the row in flight
    (unknown, 1 attempt) with the request's wait and cause; the answer joins the trail."""
    observer = Looking(journal)
    events = sink(journal, observer, StopToken())
    events.attempt(CALL, 1, waited_ms=250, cause=audit.PACE)
    assert observer.seen == [(Outcome.UNKNOWN, 1)]
    events.answered(CALL, 503, "UNAVAILABLE", None)
    [request] = list(journal.attempt_records())
    columns = dict(zip(audit.ATTEMPT_COLUMNS, request, strict=True))
    waited = (columns["http_status"], columns["waited_ms"], columns["wait_cause"])
    assert waited == (503, 250, audit.PACE)


def test_a_long_pause_asked_by_the_server_is_a_soft_stop(journal: Journal) -> None:
    """A 429 asking for more than --max-retry-after stops the run gently, saying how long."""
    stop = StopToken()
    sink(journal, Observer(), stop).long_pause(900.0)
    assert stop.first is not None
    assert stop.first.reason == StopReason.PAUSED_BY_SERVER
    assert not stop.first.hard
    assert "900 s" in stop.first.message


def test_the_host_news_is_shown_journaled_and_a_host_gone_stops(journal: Journal) -> None:
    """Down: the progress is told and the journal keeps the event; gone for good (a name that
    does not resolve): the run stops as HOST_UNUSABLE."""
    observer, stop = Looking(journal), StopToken()
    events = sink(journal, observer, stop)
    events.host_news(HostNews(HostState.DOWN, 0.0, 1.0, 31.0, "CONNECTION_ERROR", 0))
    assert observer.seen == [("down", "CONNECTION_ERROR")]
    assert [e["kind"] for e in audit.events(journal.trail())] == [audit.HOST_DOWN_EVENT]
    assert stop.first is None
    events.host_news(HostNews(HostState.GONE, 0.0, 2.0, 0.0, "no such name", 0, fatal=True))
    assert stop.first is not None
    assert stop.first.reason == StopReason.HOST_UNUSABLE
