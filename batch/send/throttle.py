"""How long a run has been throttled without progress: what bounds waiting for 429s.

A 429 is a pacing signal, never a row's failure: a throttled row waits its turn (its 429s do not
count toward --max-attempts, batch.send.retry), and the pace slows (batch.send.pace). What bounds
the waiting is time, as for a host that is down (batch.send.outage): once every answer for
``max_seconds`` has been a 429 (counting the wait the last one asks for), the run gives up on
the throttle. Its listeners hear it once: the sender sends nothing more (rows not sent stay
``not_attempted``, rows that only met 429s too), the engine stops the run (exit 3, resumable).

```
free  --a 429-->  throttled (since then)  --an answer that is not a 429-->  free
throttled  --a 429 asking to wait past since + max_seconds-->  gone (the run stops)
```
"""

from __future__ import annotations

from collections.abc import Callable

import anyio


class Throttle:
    """The run's throttle, told of every answer (``answered``) and every 429 (``refused``)."""

    def __init__(
        self, max_seconds: float, *, clock: Callable[[], float] = anyio.current_time
    ) -> None:
        """``max_seconds``: how long the run may be throttled without progress (the run's
        --max-outage: how long it waits for an API that takes none of its requests)."""
        if not max_seconds > 0:
            raise ValueError("max_seconds must be positive")
        self.max_seconds = max_seconds
        self._clock = clock
        self.since: float | None = None  # the first 429 since the last other answer
        self.gone = False  # the run gave up: nothing more is sent
        self._listeners: list[Callable[[float], None]] = []

    def subscribe(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(seconds throttled)`` once, when the run gives up."""
        self._listeners.append(listener)

    def answered(self) -> None:
        """An answer that was not a 429: the server takes requests, the run progresses."""
        self.since = None

    def refused(self, wait: float) -> bool:
        """A 429, the next attempt ``wait`` seconds away. True: the run has given up (this
        time, or before)."""
        if self.gone:
            return True
        now = self._clock()
        if self.since is None:
            self.since = now
        if now + wait - self.since >= self.max_seconds:
            self.gone = True
            for listener in list(self._listeners):
                listener(now - self.since)
        return self.gone
