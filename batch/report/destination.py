"""Where a report may go: never over a file of the run it tells, never replacing a device.

A report is made from the run's files, so writing it over one of them (``--out RESULTS``)
destroyed what it reports on. Refused, before anything is read or written: the results file
and every file reroute keeps beside it under its name (journal and its log, lock, attempts
file, run.json, account lists), the past runs archived in ``<stem>.runs/``, the files the run
read (input, job file, snapshot, key file, rollback file, as its journal recorded them), and
the results file of any other run (a journal beside it). The run's own reports are reports:
writing one over the other is allowed.

A regular file is written atomically (a temporary file renamed over it). A pipe or a device
(``/dev/stdout``, ``/dev/null``, a FIFO a viewer reads) is written into, as a shell's ``>``
would: renaming over it replaced ``/dev/null`` with a plain file. A folder is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from batch.errors import InputFileError, UsageError

# Keys of the run's record (batch.journal.record.RunRecord) naming files the run read or writes.
_RECORDED_FILES: Final = ("input", "job", "current", "api_key_file", "rollback")


def check_destination(out: Path, results: Path, record: Mapping[str, Any]) -> None:
    """Refuse ``out`` when it is a folder or a file of the run writing ``results``;
    ``record``: what the run's journal remembers (its input, snapshot, key file...)."""
    from batch.paths import FORMATS, default_path

    reports = {default_path(results, fmt).name for fmt in FORMATS}
    if not out.name or out.name == ".." or out.is_dir():
        raise UsageError(
            f"--out {out} is a folder: give a file path, e.g. {out / 'run.report.html'}"
        )
    target = _real(out)
    for mine, what in _files_of_run(results, record, reports):
        if _same(target, mine):
            raise UsageError(
                f"--out {out} is {what} (of the run this report tells): a report never "
                "overwrites it; give another path, or leave --out out (the report is then "
                f"{default_path(results)})"
            )
    if _journal_beside(target):
        raise UsageError(
            f"--out {out} is the results file of another run (a journal is beside it): "
            "give another path"
        )


def write_text(out: Path, text: str) -> None:
    """Write ``text`` to ``out``: into it when it is a pipe or device, else atomically (a
    symbolic link keeps pointing where it did: the file it names is replaced)."""
    from batch.sheets.results import atomic_file

    data = text.encode("utf-8")
    if out.exists() and not out.is_file():  # a FIFO, a character device: write into it
        try:
            with out.open("wb") as file:
                file.write(data)
        except OSError as exc:
            raise InputFileError(out, f"cannot be written: {exc.strerror or exc}") from exc
        return
    with atomic_file(_real(out) if out.is_symlink() else out) as file:
        file.write(data)


def _files_of_run(
    results: Path, record: Mapping[str, Any], reports: set[str]
) -> Iterator[tuple[Path, str]]:
    results = _real(results)
    yield results, "the results file"
    folder = results.parent
    prefix = results.name + "."
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.startswith(prefix) and path.name not in reports:
                yield path, "a file reroute keeps beside the results file"
    from batch.journal.archive import runs_folder

    runs = runs_folder(results)
    if runs.is_dir():
        for path in runs.rglob("*"):
            yield path, "an archived file of a past run"
        for about in runs.glob("*/run.json"):  # what each past run read
            yield from _recorded(_settings_of(about), folder, "a past run's")
    yield from _recorded(record, folder, "the run's")


def _recorded(record: Mapping[str, Any], folder: Path, whose: str) -> Iterator[tuple[Path, str]]:
    for key in _RECORDED_FILES:
        value = record.get(key)
        if isinstance(value, str) and value:
            # As given to the run: relative to where it ran (here, or the results' folder).
            for where in (Path(value), folder / value):
                yield _real(where), f"{whose} {key.replace('_', ' ')} file"


def _settings_of(about: Path) -> Mapping[str, Any]:
    """The settings an archived run's ``run.json`` (batch.journal.archive) records; {} if
    unreadable."""
    try:
        settings = json.loads(about.read_text(encoding="utf-8")).get("settings")
    except (OSError, ValueError, AttributeError):
        return {}
    return settings if isinstance(settings, dict) else {}


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)  # a hard link to one of them is the same file
    except OSError:
        return False


def _journal_beside(path: Path) -> bool:
    from batch.journal.db import journal_path

    return journal_path(path).is_file() if path.name else False
