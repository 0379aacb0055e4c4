"""The engine's answer to the breaker's news (batch.engine.guards.host_news)."""

from __future__ import annotations

import math

from batch.engine.guards import host_news
from batch.engine.stop import Observer, StopReason, StopToken
from batch.send.outage import HostNews, HostState


def test_a_host_gone_past_its_limit_stops_the_run_quoting_that_limit() -> None:
    """The stop says the --max-outage the breaker ran with (from its news), in words."""
    stop = StopToken()
    gone = HostNews(HostState.GONE, since=0.0, now=90.0, next_probe=math.inf,
                    cause="connection refused", probes=5, limit=90.0)  # fmt: skip
    host_news(gone, stop, Observer(), "api.example")
    assert stop.first is not None
    assert stop.first.reason == StopReason.HOST_UNREACHABLE
    assert "(connection refused; 5 probes), longer than --max-outage 1m 30s" in stop.first.message
