"""What a sender tells as its rows go: one sink, one method per event (``batch.send.sender``).

The engine's sink (``batch.engine.sending.RunEvents``) records every request in the journal
before anything shows it, shows the rest, and turns a server's long pause or a host gone into a
stop; a test passes a fake that records what it was told. Every method is a no-op here:
override what you need. They are called from the sender's tasks, on the run's event loop, and
must be quick and must not raise.
"""

from __future__ import annotations

from batch.model import Call
from batch.send.outage import HostNews


class SendEvents:
    """The sink a :class:`~batch.send.sender.Sender` tells, in the order things happen."""

    def attempt(self, call: Call, n: int, *, waited_ms: int = 0, cause: str = "") -> None:
        """Attempt ``n`` (1-based) of ``call`` goes out now, after waiting ``waited_ms`` for
        ``cause`` (``batch.journal.audit``: pace, pause, backoff, retry_after, host_down; ""
        when it did not wait)."""

    def answered(
        self, call: Call, status: int | None, code: str, retry_after: float | None, *,
        final: bool = False,
    ) -> None:  # fmt: skip
        """The attempt's answer (``status`` None: a transport error, ``code`` says which).
        ``final``: it succeeded, so it is the row's last."""

    def retrying(self, call: Call, n: int, code: str) -> None:
        """Attempt ``n`` failed with ``code``; another will follow."""

    def long_pause(self, seconds: float) -> None:
        """A 429 asked to wait ``seconds``, longer than ``--max-retry-after``: the row ends
        there; the run should pause rather than spend every other row the same way."""

    def host_news(self, news: HostNews) -> None:
        """The host went down, is still down after a probe, is back, or is given up on
        (``batch.send.outage``); told before the sender acts on it itself."""
