"""How this process was started, so that every command reroute prints runs as printed.

    uv run reroute ...    `uv run` puts ``UV`` (the path of uv) in the environment it runs
    python -m batch ...   the interpreter ran ``batch/__main__.py``
    reroute ...           the installed console script (by its full path when the shell
                          would not find this one by name: a venv not activated)

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
    path = env.get("PATH")
    if as_module:
        return (_named_or_full("python", sys.executable, path), "-m", "batch")
    if script.name.lower().removesuffix(".exe") == "reroute":
        return (_named_or_full("reroute", str(script), path),)
    return INSTALLED


def _named_or_full(name: str, program: str, path: str | None) -> str:
    """``name`` when the shell finds ``program`` by that name on ``path`` (the environment's
    PATH), else ``program``'s full path: a venv's ``bin/reroute`` or python started without
    activating it, a ``python3`` only system.

    Paths are compared as they are, symbolic links not followed: a venv's ``bin/python`` links
    to the system's interpreter, which runs without the venv (and without reroute)."""
    if len(Path(program).parts) < 2:  # a bare name: the shell found it by its name
        return name
    full = os.path.normcase(os.path.abspath(program))
    found = shutil.which(name, path=path)
    if found and os.path.normcase(os.path.abspath(found)) == full:
        return name
    return str(Path(program).absolute())


def command(started: Sequence[str], *args: str | Path, platform: str | None = None) -> str:
    """``reroute ARGS...`` as a line to paste: ``started`` (:func:`started_as`) then the
    arguments, quoted for the shell (``platform``: ``sys.platform`` unless given)."""
    words = [*started, *(str(arg) for arg in args)]
    if (platform or sys.platform) == "win32":  # cmd.exe and PowerShell quote with "
        return subprocess.list2cmdline(words)
    return shlex.join(words)


def with_env(variables: Mapping[str, str], line: str, *, platform: str | None = None) -> str:
    """``line`` (:func:`command`) run with ``variables`` set for it: ``NAME=value line`` in a
    POSIX shell, ``$env:NAME='value'; line`` in PowerShell on Windows."""
    if (platform or sys.platform) == "win32":  # PowerShell doubles a ' inside '...'
        sets = [f"$env:{name}='{value.replace(QUOTE, QUOTE * 2)}';" for name, value in
                variables.items()]  # fmt: skip
    else:
        sets = [f"{name}={shlex.quote(value)}" for name, value in variables.items()]
    return " ".join([*sets, line])


QUOTE: Final = "'"
