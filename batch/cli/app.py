"""The typer application and what every command shares: consoles, errors, exit statuses.

Only ``batch/cli/`` reads the environment, prints and chooses exit codes (style.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NoReturn, cast

import typer

from batch.errors import RerouteError

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="reroute",
    help="Safe, paced, resumable bulk changes to VoiceLink call routing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class _Lazy:
    """A rich Console made on first use: most commands print a line or two, and importing
    rich costs more than a command like `--help` (start-up: README, Performance)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)

    # `with console:` (rich's Live does it) looks these up on the type, not through __getattr__.
    def __enter__(self) -> Any:
        return self.__getattr__("__enter__")()

    def __exit__(self, *exc: object) -> Any:
        return self.__getattr__("__exit__")(*exc)


console = cast("Console", _Lazy(highlight=False))
err_console = cast("Console", _Lazy(stderr=True, highlight=False))


class Exit(IntEnum):
    """Exit statuses of the contract."""

    OK = 0
    SOME_FAILED = 1  # run/retry: finished, some rows did not succeed; validate: some invalid
    NOTHING_SENT = 2  # bad usage, unreadable input, invalid rows without --skip-invalid
    STOPPED = 3  # stopped early; the results file is written and the same command resumes
    RESULTS_NOT_WRITTEN = 4  # rows were sent, the results file could not be written: the journal
    # keeps every outcome, and the same command writes it (sending nothing already decided)


def fail(message: str, code: int = Exit.NOTHING_SENT) -> NoReturn:
    """Print one line on stderr (no traceback, no markup) and exit."""
    print(f"reroute: {message}", file=sys.stderr, flush=True)
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
