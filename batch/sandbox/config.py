"""What a sandbox is told to be: its key, limits, faults and seed state, as frozen values.

The CLI (``reroute sandbox``), ``reroute run --sandbox`` and the tests all build one of these and
hand it to :func:`batch.sandbox.app.create_app` or :func:`batch.sandbox.server.serve_in_thread`.
"""

from __future__ import annotations

import math
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from batch.errors import UsageError
from batch.sandbox.limits import RateLimitMode
from batch.sandbox.lists import SandboxBot
from batch.secrets import is_api_key
from batch.settings import Rate

TEST_KEY_PREFIX: Final = "rg_test_"
# Keys of the real service look like this; the sandbox prints the key it accepts, so it refuses
# to be given one (a live key pasted into --api-key would end up on screen and in scrollback).
LIVE_KEY_PREFIX: Final = "rg_live_"

# The API's documented limit for general endpoints, per key.
DEFAULT_RATE_LIMIT: Final = Rate(60, 60.0)

# Namespace of the connection ids the sandbox makes up when told --connections N (N > 1) without
# explicit ids: the same N always gives the same ids, so a test or a job file can name them.
_CONNECTION_NAMESPACE: Final = uuid.UUID("6f1c1d56-0c1e-4d4f-9a52-5b3a1c2f0e77")

# What a scripted answer may be (SandboxConfig.script): an HTTP status answered with the error
# envelope, or one of these words.
SCRIPT_WORDS: Final = frozenset({"ok", "drop", "html", "slow"})


def generate_api_key() -> str:
    """A fresh random sandbox key, ``rg_test_<40 hex digits>`` (never a live-looking key)."""
    return TEST_KEY_PREFIX + secrets.token_hex(20)


def connection_ids_for(count: int) -> tuple[str, ...]:
    """The made-up connection ids of an account with ``count`` connections (stable per count)."""
    return tuple(str(uuid.uuid5(_CONNECTION_NAMESPACE, f"connection-{i}")) for i in range(count))


def _share(name: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise UsageError(f"{name} {value!r} is not a share: give a number from 0 to 1, e.g. 0.05")


def _seconds(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0.0):
        raise UsageError(f"{name} {value!r} is not a duration: give seconds >= 0, e.g. 0.2")


@dataclass(frozen=True, slots=True)
class Faults:
    """Faults injected into answers, for rehearsals and tests. Shares are in [0, 1]; all off.

    One random draw per request picks at most one of error/html/drop/slow, so the shares are
    exact and must add up to at most 1. Error and HTML answers happen *before* the record is
    touched (the server or its proxy failed); drops and slow answers happen *after* it is stored
    (the work was done but the answer never came, or came too late: the case that makes a
    retried update have to be idempotent).
    """

    error_rate: float = 0.0  # 500/502/503 with the JSON error envelope
    html_rate: float = 0.0  # an HTML error page (proxy-style), status 502
    drop_rate: float = 0.0  # connection closed without an answer
    slow_rate: float = 0.0  # answer delayed by slow_seconds
    slow_seconds: float = 0.0
    latency: float = 0.0  # added to every answer, seconds
    jitter: float = 0.0  # +- uniform around latency

    def __post_init__(self) -> None:
        for name in ("error_rate", "html_rate", "drop_rate", "slow_rate"):
            _share(name.replace("_", "-"), getattr(self, name))
        for name in ("slow_seconds", "latency", "jitter"):
            _seconds(name.replace("_", "-"), getattr(self, name))
        total = self.error_rate + self.html_rate + self.drop_rate + self.slow_rate
        if total > 1.0 + 1e-9:
            raise UsageError(
                f"fault shares add up to {total:g}: error, html, drop and slow rates together "
                "must be at most 1"
            )


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Everything a sandbox needs. The defaults behave like the real API's documented limits."""

    api_key: str
    rate_limit: Rate | None = DEFAULT_RATE_LIMIT  # per key; None = off
    rate_limit_mode: RateLimitMode = RateLimitMode.BUCKET  # which kind of limiter enforces it
    arrival_jitter: float = 0.0  # requests reach the limiter up to this many seconds late
    max_concurrent: int | None = 5  # requests in flight per key; None = off
    connections: int = 1  # > 1: connection_id required and checked
    retry_after: bool = True  # send Retry-After on 429 (the docs are silent on it)
    faults: Faults = Faults()
    seed: int | None = None  # makes every fault draw reproducible
    state: Path | None = None  # seed records from a CSV/Parquet/JSONL of input columns
    # The account's WebSocket bots (GET /voicelink/bots): from a file (--bots), else made up to
    # fit the state (every bot id its records name, active).
    bots_file: Path | None = None
    reject_unknown_bots: bool = False  # an update naming a bot not on the account: 400
    # Sandbox-only switches for tests:
    connection_ids: tuple[str, ...] = ()  # the account's connections; default: made up
    inactive_connection_ids: tuple[str, ...] = ()  # listed with status INACTIVE
    bots: tuple[SandboxBot, ...] | None = None  # the bots, given directly (over bots_file)
    # Answers to the list GETs (bots and connections, counted together), 1st, 2nd, ...: an HTTP
    # status, "ok", "html" (a proxy's 502 page) or "shape" (a success of an undocumented shape).
    list_script: tuple[str, ...] = ()
    not_found_ids: frozenset[int] = frozenset()  # these routing ids always answer 404
    deny_status: int | None = None  # 401 or 403: every request with the right key gets it
    # routing id -> answers for its 1st, 2nd, ... update request, then normal behaviour. Each is
    # an HTTP status ("503", "429", "404" ...: the error envelope) or "ok", "drop", "html", "slow".
    script: Mapping[int, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.api_key.strip():
            raise UsageError("the sandbox needs an API key: leave --api-key out to generate one")
        if self.api_key.startswith(LIVE_KEY_PREFIX):
            raise UsageError(
                "that looks like a live key (rg_live_...): the sandbox prints the key it accepts, "
                "so give it a test key or leave --api-key out to generate one"
            )
        if not (self.api_key.startswith(TEST_KEY_PREFIX) and is_api_key(self.api_key)):
            # What the sandbox accepts, reroute must be able to send (batch.secrets).
            raise UsageError(
                "--api-key: the sandbox accepts a test key, rg_test_ followed by letters and "
                "digits (a key reroute sends); leave --api-key out to generate one"
            )
        _seconds("arrival-jitter", self.arrival_jitter)
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise UsageError("--max-concurrent must be at least 1 (or off)")
        if self.connections < 1:
            raise UsageError("--connections must be at least 1")
        if self.deny_status not in (None, 401, 403):
            raise UsageError("deny_status must be 401 or 403")
        for routing_id, answers in self.script.items():
            for answer in answers:
                if answer not in SCRIPT_WORDS and not (answer.isdigit() and len(answer) == 3):
                    raise UsageError(
                        f"script for routing id {routing_id}: {answer!r} is not an answer: use an "
                        f"HTTP status such as '503' or one of {', '.join(sorted(SCRIPT_WORDS))}"
                    )

    def known_connection_ids(self) -> tuple[str, ...]:
        """The account's connection ids (explicit, else made up from ``connections``)."""
        return self.connection_ids or connection_ids_for(self.connections)
