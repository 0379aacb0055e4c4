"""How this process was started, so that every command reroute prints runs as printed.

    uv run reroute ...    `uv run` puts ``UV`` (the path of uv) in the environment it runs
    python -m batch ...   the interpreter ran ``batch/__main__.py``
    reroute ...           the installed console script

A resume, retry or rollback line that says ``reroute ...`` to someone who started it with
``uv run`` gives "command not found" when pasted. The command line works out how it was
started (:func:`started_as`: it alone reads the environment) and passes that down as a value;
:func:`command` spells a command with it, its arguments quoted for the shell (POSIX shells;
cmd.exe and PowerShell on Windows). A root module: the report, the status and the command
line all print commands.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

# How an installed reroute is started: what a caller that does not know says.
INSTALLED: Final = ("reroute",)


def started_as(env: Mapping[str, str], argv: Sequence[str] | None = None) -> tuple[str, ...]:
    """The words that start reroute the way this process was started, from its environment
    (``env``) and ``argv`` (this process's unless given)."""
    argv = sys.argv if argv is None else argv
    script = Path(argv[0]) if argv and argv[0] else Path()
    as_module = script.name == "__main__.py" and script.parent.name == "batch"
    if env.get("UV"):  # uv run: uv finds the project's interpreter and script again
        return ("uv", "run", "python", "-m", "batch") if as_module else ("uv", "run", "reroute")
    if as_module:
        return (_python(), "-m", "batch")
    return INSTALLED


def _python() -> str:
    """``python`` when that name runs this interpreter, else its full path (a venv not
    activated, a ``python3`` only system)."""
    found = shutil.which("python")
    try:
        if found and os.path.samefile(found, sys.executable):
            return "python"
    except OSError:
        pass
    return sys.executable or "python"


def command(started: Sequence[str], *args: str | Path, platform: str | None = None) -> str:
    """``reroute ARGS...`` as a line to paste: ``started`` (:func:`started_as`) then the
    arguments, quoted for the shell (``platform``: ``sys.platform`` unless given)."""
    words = [*started, *(str(arg) for arg in args)]
    if (platform or sys.platform) == "win32":  # cmd.exe and PowerShell quote with "
        return subprocess.list2cmdline(words)
    return shlex.join(words)
