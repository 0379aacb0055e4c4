"""The commands a report prints: resume the run, retry its failures, apply its rollback file.

Spelled from what the run recorded (its input or job file, its results path, the settings that
change what is sent), started the way this process was (``started``: what
batch.invoked.started_as told the command line) and quoted for the shell. A resume and a retry
take the target, key and pace from the run's journal, so they need no more flags; a rollback
file is a new input, so its command names the target the run went to.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from batch import voicelink
from batch.invoked import command
from batch.report.data import Facts

# Settings that change what a run sends: a resume must give them again (else it is refused),
# as the flag that gives each one.
_CONTENT_FLAGS: Final = (
    ("current", "--current"),
    ("fill_from_current", "--fill-from-current"),
    ("allow_wipe", "--allow-wipe"),
    ("skip_unchanged", "--skip-unchanged"),
    ("connection_id", "--connection-id"),
    ("sheet", "--sheet"),
    ("separator", "--separator"),
    ("encoding", "--encoding"),
)


def _flags(settings: dict[str, Any], names: tuple[tuple[str, str], ...]) -> list[str]:
    words: list[str] = []
    for name, flag in names:
        value = settings.get(name)
        if value is True:
            words.append(flag)
        elif value not in (None, False, ""):
            words += [flag, str(value)]
    return words


def resume(facts: Facts, started: Sequence[str]) -> str:
    """The command that continues the run: the same command again (a job file's run: the job
    file; a retry written to another results file: that retry again)."""
    settings = facts.settings
    results = str(facts.results)
    if settings.get("kind") == "retry":
        return command(started, "retry", settings.get("input") or results, "--results", results)
    if settings.get("job"):
        return command(started, "run", settings["job"])
    given = str(settings.get("input") or "INPUT")
    words = ["run", given]
    if Path(results) != Path(f"{Path(given).stem}.results.csv"):
        words += ["--results", results]
    return command(started, *words, *_flags(settings, _CONTENT_FLAGS))


def retry(facts: Facts, started: Sequence[str]) -> str:
    """The command that sends the rows that failed (or were left) again, to the same target
    at the same pace (the journal lends them)."""
    return command(started, "retry", str(facts.results))


def rollback(facts: Facts, path: str, started: Sequence[str]) -> str:
    """The command that applies the rollback file ``path``: a run of it, to the target the
    run went to (the sandbox, the base URL it used, the key file it read)."""
    settings = facts.settings
    words = ["run", path]
    if settings.get("sandbox"):
        words.append("--sandbox")
    elif (url := settings.get("base_url")) and url != voicelink.DEFAULT_BASE_URL:
        words += ["--base-url", str(url)]
    if settings.get("api_key_file"):
        words += ["--api-key-file", str(settings["api_key_file"])]
    return command(started, *words)
