"""Options shared by `run` and `retry`, and the log format: light imports only (start-up).

A setting's flag and help (its default filled in) come from the table of settings
(batch.settings): an option here gives its type, as typer reads it, and how it shows.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from batch.settings import SETTINGS


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def _option(name: str, *declarations: str, **shown: Any) -> Any:
    """The typer option of setting ``name``: its flag (or ``declarations``) and help."""
    setting = SETTINGS[name]
    assert setting.flag is not None, f"{name} has no flag in the table of settings"
    return typer.Option(*(declarations or (setting.flag,)), help=setting.help_text, **shown)


BaseUrlOpt = Annotated[str | None, _option("base_url")]
RateOpt = Annotated[str | None, _option("rate")]
ConcurrencyOpt = Annotated[int | None, _option("concurrency", min=1)]
MaxAttemptsOpt = Annotated[int | None, _option("max_attempts", min=1)]
TimeoutOpt = Annotated[float | None, _option("timeout")]
MaxRetryAfterOpt = Annotated[float | None, _option("max_retry_after")]
MaxOutageOpt = Annotated[str | None, _option("max_outage", metavar="DURATION")]
FreshOpt = Annotated[bool, _option("fresh")]
NotBeforeOpt = Annotated[str | None, _option("not_before", metavar="WHEN")]
NotAfterOpt = Annotated[str | None, _option("not_after", metavar="WHEN")]
SkipInvalidOpt = Annotated[bool, _option("skip_invalid")]
ConnectionIdOpt = Annotated[str | None, _option("connection_id")]
CurrentOpt = Annotated[Path | None, _option("current", metavar="SNAPSHOT")]
RowsAreCompleteOpt = Annotated[bool, _option("rows_are_complete")]
FillFromCurrentOpt = Annotated[bool, _option("fill_from_current")]
AllowWipeOpt = Annotated[bool, _option("allow_wipe")]
SkipUnchangedOpt = Annotated[bool, _option("skip_unchanged")]
RollbackOpt = Annotated[Path | None, _option("rollback", metavar="PATH")]
CanaryOpt = Annotated[int | None, _option("canary", min=1, metavar="N")]
ErrorBudgetOpt = Annotated[str | None, _option("error_budget", metavar="5%|N")]
KeepRunsOpt = Annotated[int | None, _option("keep_runs", min=1, metavar="N")]
SheetOpt = Annotated[str | None, _option("sheet", metavar="NAME", show_default=False)]
SeparatorOpt = Annotated[str | None, _option("separator", metavar="CHAR", show_default=False)]
EncodingOpt = Annotated[str | None, _option("encoding", metavar="NAME", show_default=False)]
AccountCheckOpt = Annotated[
    bool | None,
    _option("account_check", "--account-check/--no-account-check", show_default=False),
]
ApprovedPlanOpt = Annotated[
    str | None, _option("approved_plan", metavar="SHA256", show_default=False)
]
NoReportOpt = Annotated[bool, _option("report")]  # --no-report: the setting `report` off
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
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document on stdout (its shape: docs/json/); progress and logs "
        "stay on stderr. A command that cannot start prints none (its line is on stderr).",
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
