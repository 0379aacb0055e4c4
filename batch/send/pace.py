"""How fast the limiter lets requests go: a pace learned from the server's 429s.

The algorithm is CUBIC (TCP CUBIC, RFC 9438) applied to the request rate with a measured rate at
each 429, as the AWS SDKs' "adaptive" retry mode does (botocore ``retries/adaptive.py``: on a
throttle, W_max becomes the *measured* send rate, not the rate the client meant to send), plus a
careful period after each 429 during which an arrival guard spaces requests by what answers show
of the network:

- A 429 episode remembers the pace it came at (``r_max``: the server's limit is about there) and
  slows to ``beta`` of it (0.8: an isolated 429 costs a fifth of the pace, not half). Refused
  again while climbing back, below r_max, the limit went down: r_max drops to 0.95 of that pace
  (CUBIC's fast convergence, less deep: a fall is found in a few steps of a fifth each).
- The measured rate: answers accepted from the end of the last 429's pause to the end of this
  one's, per second. A bucket is empty at both ends (it refused), and a window server's pauses
  end at its windows' edges, so for them that is the limit itself, however fast the pace that
  drained the bucket was; a strict server (no burst) accepted less than its limit while the pace
  climbed back, so for it the measured rate is a lower bound only. Hence r_max becomes the
  measured rate (never above the pace) where it is the limit:
  - after a pause of several intervals and seconds (a window's count), and the pace goes
    straight to it (the pause emptied the window: nothing to drain). A first such 429, with no
    earlier one in the window it ends (the shortest of a second, a minute, an hour longer than
    the pause), counts the pace held over the window's part before the pause;
  - on a second 429 in a row while climbing back after the server let a burst by (at least
    four answers since the pause ended: a strict server refuses at once when the pace after a
    pause is above its limit), falling at most to ``beta`` of the pace;
  - on the second 429 in a row on the plateau (a deep bucket drained slowly; the first may be
    jitter), then falling by a tenth at most;
  - and on a probe's 429 r_max rises no higher than it (a full bucket lets a probe run far above
    its rate before it refuses). The pace then starts from ``beta`` of the measured rate when
    that is lower.
- The pace climbs back from the end of the pause (nothing sent during it shows the pace is safe)
  along a concave cubic, fast at first, reaching ``1 - margin`` of r_max after ``recovery``
  intervals (or four of the episode's pauses, if longer), and holds there until the careful
  period ends. Refused once on that plateau, r_max is set where the pace stood, a little lower.
- Then it probes above r_max along the convex cubic, gently (1% above after one climb's time,
  8% after two), never above the configured rate (the ceiling). A 429 soon after a careful
  period (within another of its length) doubles the next one: a server that keeps refusing
  gets care for longer, one that refused once gets its full pace back.
- The arrival guard, on during careful periods when answers come with their latency: a server
  without burst refuses a request arriving even a millisecond less than one interval after the
  last one it admitted, so arrival jitter turns an exact pace into 429s. An answer's latency
  above the lowest seen is the delay its request met on the way in (or more, when the delay was
  on the way back: an error on the safe side). The next request then leaves one interval of the
  limit found after the last one's estimated arrival (the limit found: r_max after a probe, no
  more than a pace refused since), so it arrives at least an interval later whatever its own
  delay. The margin is what each answer showed, not a fixed cushion; it costs half the jitter on
  average, so it is on only while a server has shown it refuses.

Times are the limiter's clock, in seconds; paces are requests per second.
"""

from __future__ import annotations

_LATENCY_EPOCH = 256  # answers per epoch of the windowed minimum latency
_FLOOR_ALLOWANCE = 5.0  # the unseen latency floor: 5 spreads over the number of answers
_FALLEN = 0.95  # r_max, as a share of the pace of a 429 met while climbing back
_PLATEAU_FALL = 0.9  # the most r_max falls for a second 429 in a row on the plateau
_PROBE = 0.01  # share above the plateau the probe reaches one climb's time after it starts
_PAUSES_PER_CLIMB = 4  # the climb back lasts at least this many of the episode's pause
_PAUSES_PER_CAREFUL = 64  # and a careful period at least this many
_BURST_SEEN = 4  # accepted since the last pause's end before a 429: the server let a burst by
_WINDOWS = (1.0, 60.0, 3600.0)  # the lengths servers count requests over: a second, minute, hour
# Below this share of the ceiling, the pace found leaves much to win back (another run on the key
# may have left): careful periods grow to twice the first one (or _FAR_CAREFUL seconds) at most,
# so the probe that finds the room comes within minutes; near the ceiling, little is to be won
# and they may grow long (a strict server refuses every probe: fewer probes, fewer 429s). After
# a window server's long pause, they keep the length it asked for (_PAUSES_PER_CAREFUL).
_FAR = 0.8
_FAR_CAREFUL = 120.0
_ROOM = 2.0  # a probe refused at this multiple of the plateau found room, not a bucket's savings


class Pace:
    """The pace controller of one :class:`batch.send.limiter.Limiter` (CUBIC, careful periods)."""

    def __init__(
        self,
        ceiling: float,
        *,
        beta: float = 0.8,
        floor: float = 1 / 16,
        margin: float = 0.01,
        recovery: float = 16,
        careful: float = 128,
    ) -> None:
        """``ceiling``: the configured rate, never exceeded. ``beta``: share of the pace kept on a
        429. ``floor``: lowest share of the ceiling. ``margin``: how far below r_max the pace
        holds. ``recovery`` and ``careful``: the climb back and the first careful period, in
        intervals at the ceiling."""
        if not 0 < beta < 1:
            raise ValueError("beta must be between 0 and 1")
        if not 0 < floor <= 1 or not 0 <= margin < 1:
            raise ValueError("floor must be in (0, 1] and margin in [0, 1)")
        if recovery <= 0 or careful < 0:
            raise ValueError("recovery must be above 0 and careful at least 0")
        self.ceiling = ceiling
        self.per_second = ceiling
        self.settled = True  # at the ceiling with no curve to follow: nothing to compute
        self._beta = beta
        self._margin = margin
        self._floor = ceiling * floor
        self._recovery = recovery / ceiling
        self._k = self._recovery  # this episode's climb, seconds
        self._first_careful = careful / ceiling
        self._careful = self._first_careful
        self._most_careful = 1024 * self._first_careful
        self._window_careful = 0.0  # the careful period a window's longest pause asked for
        self._r_max = ceiling
        self._limit = ceiling
        self._from = ceiling  # the pace right after the last decrease
        self._since = -float("inf")  # when the last decrease happened
        self._careful_until = -float("inf")
        self._latency_low = float("inf")  # lowest latency of the previous epoch
        self._latency_high = 0.0  # highest of the previous epoch
        self._latency_count = 0  # answers in the previous epoch
        self._epoch_low = float("inf")  # ... and of this one
        self._epoch_high = 0.0
        self._epoch_count = 0
        self.accepted = 0  # answers that were not a 429 (the limiter counts them)
        self._last = (-float("inf"), 0)  # (end of its pause, accepted) of the last 429
        self._on_plateau = False  # the last 429 came on the plateau
        self._burst_climb = False  # ... while climbing, after the server let a burst by

    def _measured(self, now: float, pause: float, estimated: bool) -> float:
        """Answers accepted per second from the end of the last 429's pause to the end of this
        one's: a bucket or window server was as empty at both ends.

        ``estimated`` (``_estimated``): a long pause of the server's with no 429 in the window it
        ends (the shortest of a second, a minute, an hour that is longer than the pause): a
        window server's first refusal, its count spent at the pace held since the window began,
        so it admits that pace over the window's part before the pause. (If the pace did not
        hold, the next window's 429 measures again.)"""
        if estimated:
            window = next(w for w in _WINDOWS if w > pause)
            return self.per_second * (window - pause) / window
        at, count = self._last
        span = now + pause - at
        return (self.accepted - count) / span if span > 0 else float("inf")

    def _estimated(self, now: float, pause: float) -> bool:
        """Whether this long pause ends a window with no earlier 429 in it (its count is then
        estimated from the pace, not measured)."""
        window = next((w for w in _WINDOWS if w > pause), None)
        return window is not None and pause > 2.0 and self._last[0] < now + pause - window

    @property
    def limit_interval(self) -> float:
        """Seconds between requests at the server's limit as last found (the guard's spacing: r_max
        after a probe, no faster than a pace refused since)."""
        return 1.0 / self._limit

    def guarded(self, now: float) -> bool:
        """Whether the arrival guard is on (a careful period lasts)."""
        return now < self._careful_until

    def refused(self, now: float, pause: float = 0.0, *, told: bool = True) -> float:
        """A 429 episode began at ``now``, sending paused for ``pause`` seconds: the
        multiplicative decrease. Returns the new pace. ``told``: the pause is the server's
        (Retry-After); one of our own (a backoff) says nothing of its windows."""
        pace = self.per_second
        careful_until = self._careful_until
        if careful_until <= now < careful_until + self._careful:
            self._careful = min(2 * self._careful, self._most_careful)
        elif now >= careful_until + self._careful:
            self._careful = self._first_careful  # long quiet since: the server forgave us
        # A pause of several intervals (and seconds) comes from a server that counts requests
        # over a long window: what it accepted between two pauses' ends is its limit.
        long_pause = told and pause > max(2.0, 4 / pace)
        estimated = long_pause and self._estimated(now, pause)
        measured = self._measured(now, pause, estimated)
        plateau = False
        burst_climb = False
        kept = False
        climbing = now - self._since < self._k
        if long_pause:
            # A window server's count is spent: what it accepted (measured between two pauses'
            # ends, or over the window this pause ends) is its limit, wherever the pace stood.
            self._r_max = min(pace, measured)
            self._limit = min(self._limit, self._r_max * (1 - self._margin))
            pace = self._r_max
            plateau = not climbing and now < careful_until
        elif climbing:
            # Refused while climbing back, below r_max: the limit fell, to below this pace (or,
            # rarely, jitter got past the guard). The guard spaces by no more than this pace.
            # A strict server refuses as soon as the pace crosses its limit, so the next climb
            # finds it again once the pace starts below it, letting many requests by. A server
            # that lets many by on two climbs in a row has a burst (a bucket, windows of a
            # second): it was empty at both 429s, so what it accepted between them is its
            # limit, and the fall may be as deep as an isolated 429's.
            self._r_max = pace * _FALLEN
            burst = self.accepted - self._last[1] >= _BURST_SEEN
            if burst and self._burst_climb:
                self._r_max = min(self._r_max, max(measured, pace * self._beta))
            burst_climb = burst
            self._limit = min(self._limit, self._r_max)
        elif now < careful_until:
            # Refused on the plateau: it stands too high. Once is as likely jitter the guard did
            # not absorb (a strict server accepts less than its limit while the pace climbs, so
            # what it accepted says little): a step of the margin. Twice in a row (a deep bucket
            # drained slowly), the server's measured acceptance is the limit. The guard spaces
            # by an interval of the limit so found.
            if self._on_plateau:
                self._r_max = min(pace, max(measured, pace * _PLATEAU_FALL))
            else:
                self._r_max = pace
            self._limit = min(self._limit, self._r_max * (1 - self._margin))
            pace = min(pace, self._r_max)
            plateau = True
        else:
            # Refused while probing: the limit is about there, or the probe met jitter that a
            # careful period absorbs; r_max never falls for it. No higher than the server
            # accepted since the last 429 either: a bucket refills while the plateau holds just
            # below its rate, and lets a probe run far above it before it refuses (half as high
            # again for a few requests saved). But a probe that more than doubled the plateau
            # found room no bucket's savings explain (another run on the key left): the plateau
            # measured itself, not the server, and the pace refused is about the limit (a
            # bucket's burst that let it run too high is found by the climb back's 429s).
            found = pace * (1 - self._margin) if pace >= _ROOM * self._r_max else measured
            # A probe above a limit found before (below the ceiling) that is refused says the
            # limit stands: back to the plateau, without a fall below it (a probe every few
            # minutes far below the ceiling then costs its pause, not a minute's pace).
            kept = self._r_max < self.ceiling
            self._r_max = self._limit = max(self._r_max, min(pace, found))
            pace = min(pace, self._r_max)
        # Nothing accepted (answers lost on the way, say) measures no limit: never below the floor.
        self._r_max = max(self._r_max, self._floor)
        self._limit = max(self._limit, self._floor)
        self._last = (now + pause, self.accepted)
        self._on_plateau = plateau
        self._burst_climb = burst_climb
        # The climb takes several pauses: answers come back only after one. And a careful
        # period is worth more where a refusal costs a long pause.
        self._k = max(self._recovery, _PAUSES_PER_CLIMB * pause)
        self._careful = max(self._careful, _PAUSES_PER_CAREFUL * pause)
        if long_pause:
            self._window_careful = max(self._window_careful, _PAUSES_PER_CAREFUL * pause)
        if self._r_max < _FAR * self.ceiling:
            # Not below what a window's long pause asked for: there a probe costs the rest of a
            # window.
            most = max(2 * self._first_careful, _FAR_CAREFUL, self._window_careful)
            self._careful = min(self._careful, most)
        # Below the pace, or the limit measured when lower: a window server's count is sent at
        # once (its pause emptied the window: there is nothing to drain).
        # A first 429's count is an estimate: never faster than an isolated 429's slowdown.
        slowed = self._r_max * (1 - self._margin) if kept else pace * self._beta
        if long_pause:
            target = self._r_max * (1 - self._margin)
            slowed = min(self.per_second * self._beta, target) if estimated else target
        self._from = max(self._floor, slowed)
        self._since = now + pause  # the climb starts when sending does
        self._careful_until = self._since + self._k + self._careful
        self.per_second = self._from
        self.settled = False
        return self.per_second

    def update(self, now: float) -> float:
        """The pace at ``now`` along the curve since the last decrease."""
        if self.settled:
            return self.per_second
        k = self._k
        target = self._r_max * (1 - self._margin)
        elapsed = max(0.0, now - self._since)
        if elapsed < k:
            pace = target - (target - self._from) * (1 - elapsed / k) ** 3  # concave
        elif now < self._careful_until:
            pace = target  # the careful plateau

        else:
            probe = (now - self._careful_until) / k
            pace = target * (1 + _PROBE * probe**3)  # convex: 1% above after k, 8% after 2k
        if pace >= self.ceiling:
            pace = self.ceiling
            self.settled = True
        self.per_second = max(self._floor, pace)
        return self.per_second

    def excess(self, latency: float) -> float:
        """Seconds ``latency`` lies above the lowest latency of the last few hundred answers,
        plus what that lowest one may still lie above the true floor."""
        if latency < self._epoch_low:
            self._epoch_low = latency
        if latency > self._epoch_high:
            self._epoch_high = latency
        self._epoch_count += 1
        low = min(self._latency_low, self._epoch_low)
        high = max(self._latency_high, self._epoch_high)
        # The lowest of n answers spread over s seconds lies above the floor by s/n on average,
        # by more than 4.6 s/n once in a hundred: allow for that, it shrinks as answers come.
        unseen = _FLOOR_ALLOWANCE * (high - low) / (self._epoch_count + self._latency_count)
        if self._epoch_count >= _LATENCY_EPOCH:
            # A windowed minimum: a route that got slower for good lifts it within two epochs.
            self._latency_low, self._latency_high = self._epoch_low, self._epoch_high
            self._latency_count = self._epoch_count
            self._epoch_low, self._epoch_high, self._epoch_count = float("inf"), 0.0, 0
        return latency - low + unseen
