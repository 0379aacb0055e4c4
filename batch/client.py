"""The run's HTTP client and how hard to try one row: the values the sender is built from."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import httpx

from batch import __version__
from batch.errors import UsageError

USER_AGENT: Final = f"reroute/{__version__}"


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """How hard to try one row. Flows down from the run settings."""

    max_attempts: int = 5  # requests per row, first one included (--max-attempts)
    timeout: float = 30.0  # seconds for one whole request, connect to last byte (--timeout)
    max_retry_after: float = 300.0  # a 429 asking for longer fails the row (--max-retry-after)
    backoff_initial: float = 1.0  # wait after the first failed attempt, before jitter
    backoff_max: float = 60.0  # the exponential backoff never waits longer than this
    jitter: float = 0.5  # up to this share of each backoff is taken off at random

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise UsageError(f"max attempts is {self.max_attempts}: use 1 or more")
        for name in ("timeout", "max_retry_after", "backoff_initial", "backoff_max"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "timeout" and value == 0):
                raise UsageError(f"{name.replace('_', ' ')} is {value}: use a positive number")
        if not 0 <= self.jitter <= 1:
            raise UsageError(f"jitter is {self.jitter}: use a share between 0 and 1")


def build_client(
    base_url: str,
    api_key: str | None,
    *,
    timeout: float,
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The HTTP client of a run: the only place the key goes into a header.

    TLS verification is always on; the pool holds as many connections as requests in flight;
    redirects are not followed (a redirected POST is an answer to report, not to chase).
    ``api_key=None`` sends no Authorization header (the embedded sandbox needs none).
    """
    if concurrency < 1:
        raise UsageError(f"concurrency is {concurrency}: use 1 or more requests in flight")
    if not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"timeout is {timeout}: use a positive number of seconds")
    # Content-Type here, not per request: httpx merges per-request headers at a cost that
    # showed in the overhead benchmark, and every request this client sends is JSON.
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    if api_key is not None:
        key = api_key.strip()
        # Checked here, without echoing it: httpx's own error for a bad header value would
        # print the value, and with it the key.
        if not key or not key.isascii() or not key.isprintable() or " " in key:
            raise UsageError(
                "the API key is empty or holds spaces, control or non-ASCII characters: "
                "check VOCOBASE_API_KEY or the --api-key-file contents"
            )
        headers["Authorization"] = f"Bearer {key}"
    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        verify=True,
        follow_redirects=False,
        transport=transport,
    )
