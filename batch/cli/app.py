"""The typer application and what every command shares: consoles, errors, exit statuses.

Only ``batch/cli/`` reads the environment, prints and chooses exit codes (style.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from batch.errors import RerouteError
from batch.model import Exit as Exit  # the contract's exit statuses (one table)

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="reroute",
    help="Safe, paced, resumable bulk changes to VoiceLink call routing.",
    no_args_is_help=True,
    # --install-completion / --show-completion: typer's own, for bash, zsh, fish, PowerShell.
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        from batch import __version__

        print(f"reroute {__version__}", flush=True)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print reroute's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Options before the command name."""


_consoles: dict[str, Console] = {}


def __getattr__(name: str) -> Any:
    """``console`` and ``err_console`` (rich Consoles) are made on first use (PEP 562): most
    commands print a line or two, and importing rich costs more than `--help` itself (start-up:
    docs/dev/benchmarks.md). Plain lines go through ``say``; the progress display and the
    questions import these by name."""
    if name in ("console", "err_console"):
        if name not in _consoles:
            from rich.console import Console

            _consoles[name] = Console(highlight=False, stderr=name == "err_console")
        return _consoles[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def examples(*lines: str) -> str:
    """The end of a command's --help: one or two commands to copy (an epilog, kept as
    written: click rewraps no paragraph that starts with \\b)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def say(text: str = "") -> None:
    """One line of plain text on stdout: cells and file names exactly as they are (no rich
    markup, no emoji codes turned into pictures, no wrapping), and no rich to import."""
    print(text, flush=True)


# The JSON line of a command that ends before its work, by exit status (--log-format json).
_ENDED_EVENT: dict[int, str] = {Exit.NOTHING_SENT: "refused", Exit.STOPPED: "stopped"}


def fail(message: str, code: int = Exit.NOTHING_SENT, *, as_json: bool = False) -> NoReturn:
    """Print one line on stderr (no traceback, no markup) and exit. ``as_json`` (``--log-format
    json``): the line is a JSON object, ``refused`` for exit 2, as a log collector reads every
    other line of the command (``note``, ``summary``)."""
    if as_json:
        import json

        from batch.cli.progress import stamp

        event = _ENDED_EVENT.get(code, "error")
        record = {"time": stamp(), "event": event, "message": message, "exit_status": int(code)}
        print(json.dumps(record, ensure_ascii=False), file=sys.stderr, flush=True)
    else:
        print(f"reroute: {message}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


@contextmanager
def reporting_errors(*, as_json: bool = False) -> Iterator[None]:
    """Turn any RerouteError escaping a command into one stderr line and exit 2."""
    try:
        yield
    except RerouteError as exc:
        fail(str(exc), as_json=as_json)


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()
