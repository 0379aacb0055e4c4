"""What an answer asks of the pace: a success lets it climb, a 429 pauses every request and
slows the pace, a 429 (or a 503 that says) fixes once how long until the next attempt, and
backoff draws the wait after any other transient failure. Used by the sender (batch.send.sender) for
every answer; the limiter (batch.send.limiter) is shared by the whole run, and so is the throttle
(batch.send.throttle), which every answer tells whether the run still progresses.
"""

from __future__ import annotations

from collections.abc import Callable

from batch.send.client import SendPolicy
from batch.send.limiter import Limiter
from batch.send.retry import RETRY_AFTER_STATUSES, Answer, backoff
from batch.send.throttle import Throttle


class AnswerPace:
    def __init__(
        self,
        limiter: Limiter,
        policy: SendPolicy,
        random: Callable[[], float],
        throttle: Throttle | None = None,
    ) -> None:
        self._limiter = limiter
        self._policy = policy
        self._random = random
        self._throttle = throttle  # None: nobody asks how long the run has been throttled

    def heed(self, answer: Answer, n: int, latency: float) -> Answer:
        """Attempt ``n``'s answer, with what it means for the pace applied. ``latency`` (slot
        to answer, on the limiter's clock) lets the pace controller tell how late a request
        reached the server (batch.send.pace)."""
        if answer.success:  # the common case: nothing to wait for, the pace may climb
            self._limiter.succeeded(latency)
            if self._throttle is not None:
                self._throttle.since = None  # Throttle.answered, inline: once per request
            return answer
        answer = self._decide_wait(answer, n)
        self._adjust_pace(answer, latency)
        if self._throttle is not None:
            if answer.status == 429:
                self._throttle.refused(answer.wait or 0.0)
            else:
                self._throttle.answered()
        return answer

    def _decide_wait(self, answer: Answer, attempt: int) -> Answer:
        """Fix, once, how long a 429 (or a 503 that says) keeps us from the next attempt."""
        if answer.status not in RETRY_AFTER_STATUSES:
            return answer
        if answer.retry_after is not None and answer.retry_after <= self._policy.max_retry_after:
            return answer._replace(wait=answer.retry_after)
        if answer.status == 429:
            # No word from the server, or a wait above the cap (the row then fails rather than
            # stall the run): everyone pauses for a backoff, so the run goes on carefully.
            return answer._replace(wait=self.backoff(attempt))
        return answer  # a 503 without a usable Retry-After: the usual backoff

    def _adjust_pace(self, answer: Answer, latency: float) -> None:
        """Tell the shared limiter what the server thinks of our pace."""
        if answer.status != 429:
            self._limiter.succeeded(latency)
            return
        # Pause everyone, not only this row: the limit is per key, every request would get 429.
        self._limiter.pause(answer.wait or 0.0)
        # The server's own wait says how its limiter counts; a backoff of ours says nothing.
        told = answer.retry_after is not None and answer.wait == answer.retry_after
        self._limiter.throttled(told=told)

    def backoff(self, attempt: int) -> float:
        """The wait before attempt ``attempt`` + 1 after a transient failure (jittered)."""
        return backoff(
            attempt,
            initial=self._policy.backoff_initial,
            maximum=self._policy.backoff_max,
            jitter=self._policy.jitter,
            rnd=self._random(),
        )
