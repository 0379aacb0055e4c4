"""Which fault, if any, a request meets: drawn from the seed, or scripted per routing id.

With a seed, the fate of the n-th served request for a routing id depends only on
``(seed, routing id, n)``, not on how concurrent requests interleave: the same run against the
same sandbox meets the same faults, whatever the scheduling.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from batch.sandbox.config import Faults

ERROR_STATUSES = (500, 502, 503)


class Fate(StrEnum):
    OK = "ok"
    ERROR = "error"  # an HTTP error with the JSON envelope (status says which)
    HTML = "html"  # a proxy's HTML error page, 502
    DROP = "drop"  # the connection closed without an answer (after the record is stored)
    SLOW = "slow"  # the answer delayed by slow_seconds (after the record is stored)


@dataclass(frozen=True, slots=True)
class Draw:
    fate: Fate
    status: int | None = None  # for Fate.ERROR


_OK = Draw(Fate.OK)


class Dice:
    """Draws fates and delays for one sandbox."""

    def __init__(
        self, faults: Faults, seed: int | None, script: Mapping[int, tuple[str, ...]]
    ) -> None:
        self._faults = faults
        self._seed = seed
        self._script = script
        self._rng = random.Random(seed)  # delays: sequential is reproducible enough
        self._fates_on = any(
            (faults.error_rate, faults.html_rate, faults.drop_rate, faults.slow_rate)
        )

    def fate(self, routing_id: int, n: int) -> Draw:
        """The fate of the ``n``-th (1-based) served request for ``routing_id``."""
        scripted = self._script.get(routing_id, ())
        if n <= len(scripted):
            answer = scripted[n - 1]
            if answer.isdigit():
                return Draw(Fate.ERROR, int(answer))
            return Draw(Fate(answer))
        if not self._fates_on:
            return _OK
        rng = (
            random.Random(f"{self._seed}:{routing_id}:{n}") if self._seed is not None else self._rng
        )
        roll = rng.random()
        f = self._faults
        for share, fate in (
            (f.error_rate, Fate.ERROR),
            (f.html_rate, Fate.HTML),
            (f.drop_rate, Fate.DROP),
            (f.slow_rate, Fate.SLOW),
        ):
            if roll < share:
                return Draw(fate, rng.choice(ERROR_STATUSES) if fate is Fate.ERROR else None)
            roll -= share
        return _OK

    def delay(self) -> float:
        """Latency added to an answer: ``latency`` +- uniform ``jitter``, never negative."""
        f = self._faults
        if not f.jitter:
            return f.latency
        return max(0.0, f.latency + self._rng.uniform(-f.jitter, f.jitter))
