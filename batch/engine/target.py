"""Where a run's requests go, and what must hold of its results path before the first one
(and of a RESULTS argument before a run is read from it)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from batch.errors import InputFileError, UsageError
from batch.settings import RunSettings, is_loopback_host

SANDBOX_IDENTITY: Final = "embedded-sandbox"  # its port changes each time; the run does not


@dataclass(frozen=True)
class Target:
    base_url: str
    key: str | None
    host: str
    sandbox: bool

    @property
    def needs_confirmation(self) -> bool:
        return not self.sandbox and not is_loopback_host(self.host)


def check_results_argument(path: Path) -> None:
    """Refuse, as one line, a RESULTS argument that cannot name a results file: a folder
    (``.``, ``/``, ``..``, any directory). A file's journal is named after the file, and a
    folder has no such name (``Path('.').with_name`` raised, a traceback)."""
    if not path.name or path.name == ".." or path.is_dir():
        raise UsageError(
            f"{path}: is a folder: give the results file of a run (its --results; default "
            "<input stem>.results.csv) or the run's job file"
        )


def check_results_path(results: Path, *, flag: str = "--results") -> None:
    """Refuse, before anything is sent or created, a results path reroute can never write:
    a folder, a type it does not write, a pipe or device (the file is replaced, never written
    into), a missing or read-only folder, or a file beside it that reroute writes (journal,
    attempts file, run.json, report) which is a folder. One line naming the path and the fix;
    the same check whether it comes from a flag, a job file or the default."""
    from batch.sheets.results import check_extension

    if not results.name or results.name == ".." or results.is_dir():
        raise UsageError(f"{flag} {results} is a directory: give a file path, e.g. out.csv")
    try:
        check_extension(results)
    except InputFileError as exc:
        raise UsageError(f"{flag} {results}: {exc.problem}") from None
    if results.exists() and not results.is_file():
        raise UsageError(
            f"{flag} {results} is not a regular file (a pipe, device or socket): results are "
            "written by replacing the file; give a file path"
        )
    parent = results.resolve().parent
    if not parent.is_dir():
        what = (
            f"{parent} is a file, not a folder"
            if parent.exists()
            else (f"the folder {parent} does not exist")
        )
        raise UsageError(f"{flag} {results}: {what}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(
            f"{flag} {results}: the folder {parent} is not writable: choose a folder you can "
            "write to"
        )
    for beside in _written_beside(results):
        if beside.exists() and not beside.is_file():
            raise UsageError(
                f"{flag} {results}: {beside} (which reroute writes beside it) is a folder or "
                "a special file: move it away, or choose another --results"
            )


def _written_beside(results: Path) -> tuple[Path, ...]:
    """The files a run writes beside ``results`` (named after it)."""
    from batch.engine.runtrail import attempts_path, run_json_path
    from batch.journal.db import journal_path
    from batch.paths import default_path

    return (
        journal_path(results),
        attempts_path(results),
        run_json_path(results),
        default_path(results),
    )


@contextmanager
def target(
    settings: RunSettings, key: str | None, *, sandbox: bool, note: Callable[[str], None]
) -> Iterator[Target]:
    """Where requests go: the real host, or the embedded sandbox on a free loopback port
    (limited to the run's own pace; its address is told through ``note``)."""
    if not sandbox:
        url = settings.base_url
        yield Target(url, key, urlsplit(url).hostname or url, False)
        return
    from batch.sandbox.config import SandboxConfig, generate_api_key
    from batch.sandbox.server import serve_in_thread

    config = SandboxConfig(
        api_key=generate_api_key(),
        rate_limit=settings.rate,
        max_concurrent=max(5, settings.concurrency),
    )
    with serve_in_thread(config) as running:
        note(f"sandbox: embedded stand-in API at {running.base_url}")
        yield Target(running.base_url, running.api_key, "127.0.0.1", True)
