"""What the tests use in place of production code they do not exercise here: the API's mode
rule written out as a reference, and a sender's event sink wired as the engine wires it (the
journal first, then the observer) for the row-loop tests and their fake senders."""

from __future__ import annotations

from batch import voicelink as vl
from batch.engine.stop import Observer
from batch.journal.journal import Journal
from batch.model import Call
from batch.send.events import SendEvents
from batch.send.outage import HostNews


def targets_used(inbound: int, outbound: int) -> frozenset[str]:
    """The bot/trunk id fields a record with these modes needs (and no others)."""
    used = set()
    for (field, value), target in vl.TARGET_FOR_MODE.items():
        mode = inbound if field == vl.FOR_INBOUND_CALL else outbound
        if mode == value:
            used.add(target)
    return frozenset(used)


class Sink(SendEvents):
    """A sender's events, as the engine's sink handles them in small: a request is journaled
    before the observer is told. ``told`` keeps every event in
    order (a long pause and the host's news are only kept: no stop token here)."""

    def __init__(self, journal: Journal | None = None, observer: Observer | None = None) -> None:
        self.journal = journal
        self.observer = observer or Observer()
        self.told: list[tuple[object, ...]] = []

    def attempt(self, call: Call, n: int, *, waited_ms: int = 0, cause: str = "") -> None:
        self.told.append(("attempt", call.row, n))
        if self.journal is not None:
            self.journal.attempt(call, n, waited_ms=waited_ms, cause=cause)
        self.observer.attempt(call, n)

    def answered(
        self, call: Call, status: int | None, code: str, retry_after: float | None, *,
        final: bool = False,
    ) -> None:  # fmt: skip
        self.told.append(("answered", call.row, status, code))
        if self.journal is not None:
            self.journal.answered(call, status, code, retry_after, final=final)

    def retrying(self, call: Call, n: int, code: str) -> None:
        self.told.append(("retrying", call.row, n, code))
        self.observer.retrying(call, n, code)

    def long_pause(self, seconds: float) -> None:
        self.told.append(("long_pause", seconds))

    def host_news(self, news: HostNews) -> None:
        self.told.append(("host", news.state))
