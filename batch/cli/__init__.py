"""The `reroute` command line. Each command lives in its own module and registers on ``app``."""

from __future__ import annotations

from batch.cli import jobs_cmd, retry_cmd, run_cmd, sandbox_cmd, validate_cmd
from batch.cli.app import app

__all__ = ["app", "jobs_cmd", "main", "retry_cmd", "run_cmd", "sandbox_cmd", "validate_cmd"]


def main() -> None:
    """Console-script entry point."""
    app(prog_name="reroute")
