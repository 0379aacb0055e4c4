"""The `reroute` command line. Each command lives in its own module and registers on ``app``."""

from __future__ import annotations

import codecs
import gc
import io
import os
import sys
from typing import Any

from batch.cli import (
    jobs_cmd,
    plan_cmd,
    report_cmd,
    retry_cmd,
    run_cmd,
    sandbox_cmd,
    validate_cmd,
)
from batch.cli import status_cmd as status_cmd  # registers `reroute status`
from batch.cli.app import app

__all__ = [
    "app", "jobs_cmd", "main", "plan_cmd", "report_cmd", "retry_cmd", "run_cmd", "sandbox_cmd",
    "validate_cmd",
]  # fmt: skip


def main() -> None:
    """Console-script entry point."""
    # typer coerces flag values through pydantic, which first scans every installed package's
    # entry points for pydantic plugins (~50 ms); reroute uses none. An operator who sets the
    # variable keeps their choice.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # Output redirected to a file on Windows is in the code page (cp1252...), as it is under a
    # C locale anywhere: a cell it cannot spell is printed as "?" rather than ending the command.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and codecs.lookup(stream.encoding).name != "utf-8":
            stream.reconfigure(errors="replace")
    _only_the_command_asked_for(sys.argv[1:])
    try:
        app(prog_name="reroute")
    finally:
        # Speed unit: the command is over (files written and closed, the journal too). At exit
        # the interpreter's collector walks the whole heap once more to free what the OS frees
        # anyway: ~0.2 s after a 3,000-row run (docs/dev/benchmarks.md). Frozen, it skips that.
        gc.freeze()


def _only_the_command_asked_for(args: list[str]) -> None:
    """Leave on ``app`` only the command the arguments name, when they start with one.

    typer builds every command's parameters from its signature before it runs any (~40 ms for
    reroute's nine, a tenth of `reroute validate`); what it builds for the others is never
    used. `reroute --help`, a mistyped name and shell completion keep every command."""
    if not args or any(name.startswith("_REROUTE_COMPLETE") for name in os.environ):
        return
    from typer.main import get_command_name

    def named(info: Any) -> bool:
        name = info.name or (info.callback and get_command_name(info.callback.__name__))
        return bool(name == args[0])

    commands = [info for info in app.registered_commands if named(info)]
    groups = [info for info in app.registered_groups if named(info)]
    if len(commands) + len(groups) == 1:
        app.registered_commands, app.registered_groups = commands, groups
