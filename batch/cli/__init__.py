"""The `reroute` command line. Each command lives in its own module and registers on ``app``."""

from __future__ import annotations

import codecs
import io
import os
import sys

from batch.cli import jobs_cmd, report_cmd, retry_cmd, run_cmd, sandbox_cmd, validate_cmd
from batch.cli import status_cmd as status_cmd  # registers `reroute status`
from batch.cli.app import app

__all__ = [
    "app", "jobs_cmd", "main", "report_cmd", "retry_cmd", "run_cmd", "sandbox_cmd", "validate_cmd",
]  # fmt: skip


def main() -> None:
    """Console-script entry point."""
    # typer builds each command's parameters through pydantic, which first scans every
    # installed package's entry points for pydantic plugins (~50 ms at each start); reroute
    # uses none. An operator who sets the variable keeps their choice.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # Output redirected to a file on Windows is in the code page (cp1252...), as it is under a
    # C locale anywhere: a cell it cannot spell is printed as "?" rather than ending the command.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and codecs.lookup(stream.encoding).name != "utf-8":
            stream.reconfigure(errors="replace")
    app(prog_name="reroute")
