"""Settings that flow down from the CLI (and job files) to the stages, as frozen values."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from batch import voicelink
from batch.errors import UsageError
from batch.sheets.dialect import Reading

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|min|minute|h|hour)\s*$", re.I)
_UNIT_SECONDS = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0}
_UNIT_SECONDS |= {"h": 3600.0, "hour": 3600.0}

# The variable the API key is read from unless a flag or job file names another.
DEFAULT_API_KEY_ENV: Final = "VOCOBASE_API_KEY"


@dataclass(frozen=True, slots=True)
class Rate:
    """A request rate: ``count`` requests per ``period`` seconds (``60/min``)."""

    count: float
    period: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse ``N/s``, ``N/min`` or ``N/h``; a UsageError says the accepted forms."""
        match = _RATE.match(text)
        if not match or float(match.group(1)) <= 0:
            raise UsageError(
                f"rate {text!r} is not a rate: write N/s, N/min or N/h with N > 0, e.g. 60/min"
            )
        return cls(float(match.group(1)), _UNIT_SECONDS[match.group(2).lower()])

    @property
    def per_second(self) -> float:
        return self.count / self.period

    @property
    def interval(self) -> float:
        """Seconds between two evenly spaced requests."""
        return self.period / self.count

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.period, f"{self.period:g}s")
        return f"{self.count:g}/{unit}"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hour)?\s*$", re.I)
_DURATION_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``/``15min`` or ``1h``; UsageError shows the forms."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise UsageError(
            f"{text!r} is not a duration: write seconds (900), or N s, N m or N h with N > 0, "
            "e.g. 15m"
        )
    return float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "s").lower()]


def is_loopback_host(host: str) -> bool:
    """True for localhost and addresses in 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """Return the base URL without a trailing slash, or raise a UsageError saying what to fix.

    ``https://`` anywhere; plain ``http://`` only to a loopback address (the key would travel
    in clear text otherwise).
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"base URL {url!r} is not an http(s) URL: use e.g. {voicelink.DEFAULT_BASE_URL}"
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise UsageError(
            f"base URL {url!r} uses plain http:// to a non-loopback host, which would send the "
            "API key unencrypted: use https://"
        )
    return url.strip().rstrip("/")


_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


@dataclass(frozen=True, slots=True)
class ErrorBudget:
    """``--error-budget``: how many failed rows a run tolerates before it stops starting rows.

    ``5%``: the share of ``failed`` among the last ``WINDOW`` finished rows (all of them while
    fewer have finished) may not exceed 5 %. ``10``: at most 10 failed rows in the run.
    """

    percent: float | None = None
    count: int | None = None

    WINDOW = 100  # finished rows the share is measured over (a class constant, not a field)

    @classmethod
    def parse(cls, value: str | int) -> ErrorBudget:
        """``"5%"``, ``"2.5%"`` or a whole number ``10``; a UsageError shows both forms."""
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return cls(count=value)
        match = _BUDGET.match(value) if isinstance(value, str) else None
        if match and match.group(2) and float(match.group(1)) < 100:
            return cls(percent=float(match.group(1)))
        if match and not match.group(2) and match.group(1).isdigit():
            return cls(count=int(match.group(1)))
        raise UsageError(
            f"error budget {value!r} is not a budget: write a share of the last "
            f"{cls.WINDOW} finished rows like 5% (below 100%), or a number of failed rows like 10"
        )

    def __str__(self) -> str:
        if self.percent is not None:
            return f"{self.percent:g}% of the last {self.WINDOW} finished rows"
        return f"{self.count} failed rows"


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything `reroute run` needs to know, after flags, job file and environment merged."""

    input: Path
    results: Path
    base_url: str = voicelink.DEFAULT_BASE_URL
    rate: Rate = Rate(60, 60.0)
    concurrency: int = 4
    max_attempts: int = 5
    timeout: float = 30.0
    max_retry_after: float = 300.0
    # Seconds the host may stay unreachable before the run stops, resumable (--max-outage).
    max_outage: float = 900.0
    skip_invalid: bool = False
    # The account preflight (batch.prepare.preflight): None checks against a real host only (not the
    # embedded sandbox, not loopback); True/False force it (--[no-]account-check,
    # [safety].account_check).
    account_check: bool | None = None
    connection_id: str | None = None
    fresh: bool = False
    # Change window as moments (daily job-file windows already resolved); None = open side.
    not_before: datetime | None = None
    not_after: datetime | None = None
    # The NAME of the environment variable holding the API key (a job file may pick another).
    api_key_env: str = DEFAULT_API_KEY_ENV
    # Cutover safety (issue 6): the snapshot of the current records and what to do with it.
    current: Path | None = None
    fill_from_current: bool = False
    allow_wipe: bool = False
    skip_unchanged: bool = False
    rollback: Path | None = None
    canary: int | None = None  # send this many rows first, then stop or ask
    error_budget: ErrorBudget | None = None  # None: off
    keep_runs: int = 30  # past runs of the results path kept (batch.journal.archive)
    report: bool = True  # write the report at the end (batch.report)
    # How the input is read (issue 16): a workbook's sheet, a text file's separator, encoding.
    sheet: str | None = None
    separator: str | None = None
    encoding: str | None = None

    @property
    def reading(self) -> Reading:
        return Reading(self.sheet, self.separator, self.encoding)
