"""Settings that flow down from the CLI (and job files) to the stages, as frozen values.

:class:`RunSettings` is also the one table of settings: each field carries, besides its type and
default, what every layer needs to know about it (``about``): its kind (which picks the converter
and the job file's TOML types, batch.config.coerce), its job-file key, its flag and help, the
environment variable that feeds it, and what the journal's record of a run does with it.
``SETTINGS`` reads the table back; the job-file schema, the converters, the run record and the
command line's help are made from it, so a new setting is one field here, plus its flag
(batch.cli.options) and the code that uses it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from batch import voicelink
from batch.errors import UsageError
from batch.settingtable import Kind, Memory, Setting, about, table_of
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


# The rate --sandbox runs at unless a flag, the job or the earlier run sets one: a quick demo
# (40 rows in about 2 s).
SANDBOX_RATE: Final = "20/s"


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything `reroute run` needs to know, after flags, job file and environment merged.

    The fields are in the order the job file's keys are listed in its messages.
    """

    input: Path = field(metadata=about(Kind.PATH, job="", flag=None))
    results: Path = field(metadata=about(Kind.PATH, job=""))  # help: per command
    # [target]
    base_url: str = field(default=voicelink.DEFAULT_BASE_URL, metadata=about(
        Kind.URL, job="target", env="REROUTE_BASE_URL", memory=Memory.REUSE,
        help="API base URL (env {env}; default {default}). http:// only to loopback.",
    ))  # fmt: skip
    # The NAME of the environment variable holding the API key (a job file may pick another).
    api_key_env: str = field(default=DEFAULT_API_KEY_ENV, metadata=about(
        Kind.VARIABLE, job="target", flag=None, memory=Memory.REUSE,
    ))  # fmt: skip
    connection_id: str | None = field(default=None, metadata=about(
        Kind.UUID, job="target", memory=Memory.KEEP,
        help="Connection UUID for rows whose cell is empty.",
    ))  # fmt: skip
    # [pace]
    rate: Rate = field(default=Rate(60, 60.0), metadata=about(
        Kind.RATE, job="pace", memory=Memory.REUSE,
        help="Requests per unit: N/s, N/min or N/h (default {default}; "
        + SANDBOX_RATE + " with --sandbox).",
    ))  # fmt: skip
    concurrency: int = field(default=4, metadata=about(
        Kind.COUNT, job="pace", memory=Memory.REUSE,
        help="Requests in flight at most ({default}).",
    ))  # fmt: skip
    max_attempts: int = field(default=5, metadata=about(
        Kind.COUNT, job="pace", memory=Memory.REUSE,
        help="Requests per row at most ({default}).",
    ))  # fmt: skip
    timeout: float = field(default=30.0, metadata=about(
        Kind.SECONDS, job="pace", memory=Memory.REUSE,
        help="Seconds per request ({default}); also how long a first Ctrl-C lets requests finish.",
    ))  # fmt: skip
    max_retry_after: float = field(default=300.0, metadata=about(
        Kind.SECONDS, job="pace", memory=Memory.REUSE,
        help="A 429 asking to wait longer than this many seconds pauses the run: it stops "
        "(exit 3) and says when the API takes requests again ({default}).",
    ))  # fmt: skip
    max_outage: float = field(default=900.0, metadata=about(
        Kind.DURATION, job="pace", memory=Memory.REUSE,
        help="How long the API may take none of the run's requests (host unreachable: "
        "refused, timing out, 502/503/504; or every answer a 429) while the run waits: past "
        "this it stops (exit 3), resumable ({default}; 900, 90s, 15m, 1h).",
    ))  # fmt: skip
    # [window]: moments (daily job-file windows already resolved); None = open side.
    not_before: datetime | None = field(default=None, metadata=about(
        Kind.MOMENT, job="window",
        help="Start of the change window: ISO-8601 with offset (2026-12-05T01:00:00+00:00), or "
        "a time of day with offset (01:00:00+00:00, every night); either may name a time zone "
        "instead of the offset (01:00 Europe/London). Waits until then.",
    ))  # fmt: skip
    not_after: datetime | None = field(default=None, metadata=about(
        Kind.MOMENT, job="window",
        help="End of the change window (same forms): no new row starts after it; in-flight "
        "rows finish, the results are written, exit 3; the same command resumes next window.",
    ))  # fmt: skip
    # Derived, never given: the window was written as times of day, so it opens every night
    # (a stop at its close promises the next one; a one-off window has none).
    window_daily: bool = field(default=False, metadata=about(Kind.SWITCH, flag=None))
    # [safety]; the cutover switches (issue 6) need the snapshot of the current records.
    skip_invalid: bool = field(default=False, metadata=about(
        Kind.SWITCH, job="safety", help="Send the valid rows even if some are invalid.",
    ))  # fmt: skip
    current: Path | None = field(default=None, metadata=about(
        Kind.PATH, job="safety", memory=Memory.RECORD,
        help="Snapshot of the current records (.csv, .parquet, .jsonl; the input columns): "
        "rows that would erase a field the record has (wipes) are refused as invalid.",
    ))  # fmt: skip
    # Against a real host a run needs this or `current` (batch.engine.replacing); the record
    # keeps it, and the run's resumes and retries take it from there (not a new run).
    rows_are_complete: bool = field(default=False, metadata=about(
        Kind.SWITCH, job="safety", memory=Memory.RECORD,
        help="Without --current: state that every row is the complete record you want (the "
        "update replaces the whole record; an empty cell erases the field). Against a real host "
        "a run needs this or --current; the run's resume and retry keep it.",
    ))  # fmt: skip
    fill_from_current: bool = field(default=False, metadata=about(
        Kind.SWITCH, job="safety", memory=Memory.KEEP,
        help="Empty cells (and absent columns) take the snapshot's value; a bot or trunk id "
        "the row's modes do not use is dropped. Needs --current.",
    ))  # fmt: skip
    allow_wipe: bool = field(default=False, metadata=about(
        Kind.SWITCH, job="safety", memory=Memory.KEEP,
        help="Send rows that erase a field the record has. Needs --current.",
    ))  # fmt: skip
    skip_unchanged: bool = field(default=False, metadata=about(
        Kind.SWITCH, job="safety", memory=Memory.KEEP,
        help="Leave out rows identical to the current record (outcome skipped; retry does not "
        "send them). Needs --current.",
    ))  # fmt: skip
    rollback: Path | None = field(default=None, metadata=about(
        Kind.PATH, job="safety",
        help="Before the first request, write the current values of every record this run "
        "changes (input format by extension): a run of PATH puts them back. Needs "
        "--current.",
    ))  # fmt: skip
    canary: int | None = field(default=None, metadata=about(  # send this many rows first
        Kind.ROWS, job="safety",
        help="Send the first N rows, then stop if any failed (exit 3); if all succeeded, ask "
        "on a terminal (--yes: go on), go on elsewhere.",
    ))  # fmt: skip
    error_budget: ErrorBudget | None = field(default=None, metadata=about(  # None: off
        Kind.BUDGET, job="safety",
        help=f"Stop starting rows (exit 3) when failed rows exceed 5% of the last "
        f"{ErrorBudget.WINDOW} finished, or a count like 10. Default off.",
    ))  # fmt: skip
    keep_runs: int = field(default=30, metadata=about(  # batch.journal.archive
        Kind.COUNT, job="safety",
        help="Past runs of the results path kept in <stem>.runs/ ({default}).",
    ))  # fmt: skip
    # The account preflight (batch.prepare.preflight): None checks against a real host only
    # (not the embedded sandbox, not loopback); True/False force it.
    account_check: bool | None = field(default=None, metadata=about(
        Kind.SWITCH, job="safety",
        help="Before the first update, check every bot and connection the rows name against the "
        "account's lists (on by default against a real host, off for the sandbox and loopback).",
    ))  # fmt: skip
    # The plan the change board approved (`reroute plan` printed its sha256): a run whose plan
    # has another hash sends nothing (batch.prepare.approval).
    approved_plan: str | None = field(default=None, metadata=about(
        Kind.SHA256, job="safety",
        help="Send only if this run's plan has this sha256, as `reroute plan` printed it (the "
        "approved plan); otherwise send nothing (exit 2) and name the rows that differ.",
    ))  # fmt: skip
    # How the input is read (issue 16): a workbook's sheet, a text file's separator, encoding.
    sheet: str | None = field(default=None, metadata=about(
        Kind.SHEET, job="", memory=Memory.RECORD,
        help="The sheet of an .xlsx workbook to read, by its tab's name (default: the first).",
    ))  # fmt: skip
    separator: str | None = field(default=None, metadata=about(
        Kind.SEPARATOR, job="", memory=Memory.RECORD,
        help="The separator of a text file: ';', '|' or tab (default: a comma; a tab for "
        ".tsv, .txt and UTF-16 files).",
    ))  # fmt: skip
    encoding: str | None = field(default=None, metadata=about(
        Kind.ENCODING, job="", memory=Memory.RECORD,
        help="The encoding of a text file, as Python names it: cp1252 (Excel's 'CSV' in "
        "Western Europe), cp1250, latin-1, utf-16... (default UTF-8; UTF-16 with its BOM).",
    ))  # fmt: skip
    report: bool = field(default=True, metadata=about(  # write the report at the end
        Kind.SWITCH, job="", flag="--no-report",
        help="Do not write the report (<results stem>.report.html) at the end; the report "
        "command writes it any time.",
    ))  # fmt: skip
    fresh: bool = field(default=False, metadata=about(
        Kind.SWITCH,
        help="Start over: forget the journal of an earlier run (only once the run is "
        "confirmed; nothing is forgotten on a no).",
    ))  # fmt: skip

    @property
    def reading(self) -> Reading:
        return Reading(self.sheet, self.separator, self.encoding)


# The table of settings, read back from RunSettings' fields (batch.settingtable).
SETTINGS: Final[Mapping[str, Setting]] = table_of(RunSettings)
