"""What the tests use in place of production code they do not exercise here: the API's mode
rule written out as a reference, and the journal-then-observer wiring of a sender's attempts
for the row-loop tests' fake senders."""

from __future__ import annotations

from collections.abc import Callable

from batch import voicelink as vl
from batch.engine.stop import Observer
from batch.journal.journal import Journal
from batch.model import Call


def targets_used(inbound: int, outbound: int) -> frozenset[str]:
    """The bot/trunk id fields a record with these modes needs (and no others)."""
    used = set()
    for (field, value), target in vl.TARGET_FOR_MODE.items():
        mode = inbound if field == vl.FOR_INBOUND_CALL else outbound
        if mode == value:
            used.add(target)
    return frozenset(used)


def sender_hooks(
    journal: Journal, observer: Observer
) -> tuple[Callable[[Call, int], None], Callable[[Call, int, str], None]]:
    """``on_attempt`` and ``on_retry`` for the sender: journal first (durability), then show."""

    def on_attempt(call: Call, n: int) -> None:
        journal.attempt(call, n)
        observer.attempt(call, n)

    return on_attempt, observer.retrying
