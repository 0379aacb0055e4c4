"""The typer application and what every command shares: consoles, errors, exit statuses.

Only ``batch/cli/`` reads the environment, prints and chooses exit codes (style.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import NoReturn

import typer
from rich.console import Console

from batch.errors import RerouteError

app = typer.Typer(
    name="reroute",
    help="Safe, paced, resumable bulk changes to VoiceLink call routing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class Exit(IntEnum):
    """Exit statuses of the contract."""

    OK = 0
    SOME_FAILED = 1  # run/retry: finished, some rows did not succeed; validate: some invalid
    NOTHING_SENT = 2  # bad usage, unreadable input, invalid rows without --skip-invalid
    STOPPED = 3  # stopped early; the results file is written and the same command resumes


def fail(message: str, code: int = Exit.NOTHING_SENT) -> NoReturn:
    """Print one line on stderr (no traceback, no markup) and exit."""
    err_console.print(f"reroute: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn any RerouteError escaping a command into one stderr line and exit 2."""
    try:
        yield
    except RerouteError as exc:
        fail(str(exc))


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()
