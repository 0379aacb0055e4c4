"""reroute: safe, paced, resumable bulk changes to VoiceLink call routing."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """``__version__``: the installed distribution's version (pyproject.toml is its one
    source), read on first use: reading package metadata costs start-up time `--help` skips."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("voicelink-batch")
        except PackageNotFoundError:  # a source tree on sys.path, never installed
            found = "0+unknown"
        globals()["__version__"] = found  # read once: each reading scans the installed packages
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
