"""Options shared by `run` and `retry`, and the log format: light imports only (start-up)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from batch import voicelink


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help=f"API base URL (env REROUTE_BASE_URL; default {voicelink.DEFAULT_BASE_URL}). "
        "http:// only to loopback.",
    ),
]
RateOpt = Annotated[
    str | None,
    typer.Option(
        "--rate",
        help="Requests per unit: N/s, N/min or N/h (default 60/min; 20/s with --sandbox).",
    ),
]
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", min=1, help="Requests in flight at most (4).")
]
MaxAttemptsOpt = Annotated[
    int | None, typer.Option("--max-attempts", min=1, help="Requests per row at most (5).")
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        help="Seconds per request (30); also how long a first Ctrl-C lets requests finish.",
    ),
]
MaxRetryAfterOpt = Annotated[
    float | None,
    typer.Option(
        "--max-retry-after",
        help="A 429 asking to wait longer than this many seconds pauses the run: it stops "
        "(exit 3) and says when the API takes requests again (300).",
    ),
]
MaxOutageOpt = Annotated[
    str | None,
    typer.Option(
        "--max-outage",
        help="How long the API may take none of the run's requests (host unreachable: "
        "refused, timing out, 502/503/504; or every answer a 429) while the run waits: past "
        "this it stops (exit 3), resumable (15m; 900, 90s, 15m, 1h).",
        metavar="DURATION",
    ),
]
FreshOpt = Annotated[
    bool,
    typer.Option(
        "--fresh",
        help="Start over: forget the journal of an earlier run (only once the run is "
        "confirmed; nothing is forgotten on a no).",
    ),
]
SandboxOpt = Annotated[
    bool,
    typer.Option(
        "--sandbox",
        help="Start the embedded stand-in API on loopback and run against it (no key needed).",
    ),
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation on a terminal.")
]
LogFormatOpt = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        help="text: progress bar on a terminal, else a line every few seconds; json: JSON lines.",
    ),
]
NotBeforeOpt = Annotated[
    str | None,
    typer.Option(
        "--not-before",
        help="Start of the change window: ISO-8601 with offset (2026-12-05T01:00:00+00:00), or "
        "a time of day with offset (01:00:00+00:00, every night). Waits until then.",
        metavar="WHEN",
    ),
]
NotAfterOpt = Annotated[
    str | None,
    typer.Option(
        "--not-after",
        help="End of the change window (same forms): no new row starts after it; in-flight "
        "rows finish, the results are written, exit 3; the same command resumes next window.",
        metavar="WHEN",
    ),
]
SheetOpt = Annotated[
    str | None,
    typer.Option(
        "--sheet",
        help="The sheet of an .xlsx workbook to read, by its tab's name (default: the first).",
        metavar="NAME",
        show_default=False,
    ),
]
SeparatorOpt = Annotated[
    str | None,
    typer.Option(
        "--separator",
        help="The separator of a text file: ';', '|' or tab (default: a comma; a tab for "
        ".tsv, .txt and UTF-16 files).",
        metavar="CHAR",
        show_default=False,
    ),
]
EncodingOpt = Annotated[
    str | None,
    typer.Option(
        "--encoding",
        help="The encoding of a text file, as Python names it: cp1252 (Excel's 'CSV' in "
        "Western Europe), cp1250, latin-1, utf-16... (default UTF-8; UTF-16 with its BOM).",
        metavar="NAME",
        show_default=False,
    ),
]
ApiKeyFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--api-key-file",
        help="Read the API key from this file instead of VOCOBASE_API_KEY.",
        dir_okay=False,
    ),
]
RecheckAccountOpt = Annotated[
    bool,
    typer.Option(
        "--recheck-account",
        help="Read the account's lists again instead of reusing those this run read before "
        "(a bot was created or reactivated since).",
    ),
]
AccountCheckOpt = Annotated[
    bool | None,
    typer.Option(
        "--account-check/--no-account-check",
        help="Before the first update, check every bot and connection the rows name against the "
        "account's lists (on by default against a real host, off for the sandbox and loopback).",
        show_default=False,
    ),
]
NoReportOpt = Annotated[
    bool,
    typer.Option(
        "--no-report",
        help="Do not write the report (<results stem>.report.html) at the end; `reroute report "
        "RESULTS` writes it any time.",
    ),
]
