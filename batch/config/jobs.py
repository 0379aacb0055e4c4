"""Job files: a reviewed TOML file that says what to run, where, how fast and when.

Operations teams review a job file in a pull request, then a scheduler runs
``reroute run jobs/NAME.toml``. The file is read with ``tomllib`` into a frozen :class:`Job`
(the settings it gives; a key left out is not set), checked strictly (an unknown key is a typo
that would silently change a run); batch.config.precedence merges it with flags, environment and
defaults. Its keys are RunSettings' fields, each in the table the
table of settings puts it in (batch.settings); paths are relative to the job file's folder::

    description = "..."                # optional, shown by `reroute jobs check`
    input = "../samples/routing-changes.csv"
    results = "routing-changes.results.csv"
    sheet, separator, encoding, report # optional: how the input is read; report = false
    [target]  base_url, api_key_env (the NAME of a variable, never a key), connection_id
    [pace]    rate ("60/min"), concurrency, ... (the pace and patience of the run)
    [window]  not_before, not_after   (ISO-8601 with offset; times of day = every night)
    [safety]  skip_invalid, account_check, current (a snapshot file), the cutover switches,
              rollback (a file to write), canary (rows), error_budget ("5%" or 10), keep_runs
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Final

from batch.config.coerce import COERCE, same, shown
from batch.engine import window
from batch.errors import JobFileError, UsageError
from batch.secrets import KEY_PREFIX, KEY_REFUSED, looks_like_api_key, strings_of
from batch.settings import DEFAULT_API_KEY_ENV, SETTINGS
from batch.settingtable import Kind, Setting

# Environment variables that feed a setting (the key itself is read by the CLI, by name).
ENV_VARS: Mapping[str, str] = {name: s.env for name, s in SETTINGS.items() if s.env is not None}


def schema(table: Mapping[str, Setting]) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """A job file's keys, from the table of settings: the top-level ones (``description``
    first), and each table's, in the order messages list them."""
    top, tables = ["description"], dict[str, list[str]]()
    for name, setting in table.items():
        if setting.job == "":
            top.append(name)
        elif setting.job is not None:
            tables.setdefault(setting.job, []).append(name)
    return tuple(top), {table: tuple(names) for table, names in tables.items()}


_TOP_KEYS, _TABLES = schema(SETTINGS)
# Where each setting lives in a job file, for messages: ``[pace].rate``, ``input``.
JOB_KEYS: Mapping[str, str] = {
    name: setting.job_key for name, setting in SETTINGS.items() if setting.job is not None
}
_MUST_EXIST = frozenset({"input", "current"})  # paths a job reads (others it writes)


@dataclass(frozen=True, slots=True)
class Job:
    """A job file, as written: ``given`` maps each setting it gives (a RunSettings field name) to
    its value, converted as the setting's flag would be; paths are relative to the job file's
    folder, and a window bound may be a time of day (a daily window). A key left out is absent.
    """

    path: Path
    given: Mapping[str, Any]
    description: str | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.given) - set(JOB_KEYS))
        if unknown or "input" not in self.given:
            raise ValueError(f"a job gives its input and job-file settings only, not {unknown}")

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def input(self) -> Path:
        path = self.given["input"]
        assert isinstance(path, Path)
        return path

    def get(self, name: str) -> Any:
        """The value the job gives setting ``name``; None when it gives none."""
        return self.given.get(name)

    def without(self, name: str) -> Job:
        """The job as if it did not give setting ``name`` (the next layer decides)."""
        return replace(self, given={k: v for k, v in self.given.items() if k != name})


def is_job_file(path: Path | str) -> bool:
    """``reroute run`` takes a job file where it takes an input file: told apart by ``.toml``."""
    return Path(path).suffix.lower() == ".toml"


def load_job(path: Path | str) -> Job:
    """Read and check a job file; every problem is a JobFileError naming the file and the key."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise JobFileError(path, f"cannot read the job file ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JobFileError(path, "the job file is not UTF-8 text: save it as UTF-8") from None
    # Look for keys in the raw text first: a key in a comment or in a line TOML cannot parse
    # is as leaked as one in a value. The value itself is never echoed.
    for number, line in enumerate(text.splitlines(), start=1):
        if KEY_PREFIX.search(line):
            raise JobFileError(path, f"line {number}: {KEY_REFUSED}")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise JobFileError(path, f"not valid TOML: {exc}") from None
    for key, value in strings_of(doc):
        if looks_like_api_key(value) and not _a_digest(key, value):
            raise JobFileError(path, f"key {key}: {KEY_REFUSED}")
    return _Reader(path, doc).job()


# A sha256 in hex (a plan's hash) is random-looking by nature, and public: it is not a key.
_HEX_DIGEST: Final = re.compile(r"^[0-9a-fA-F]{64}$")


def _a_digest(key: str, value: str) -> bool:
    """``value`` is a sha256 where a setting of that kind is written (``approved_plan``)."""
    name = key.rsplit(".", 1)[-1]
    setting = SETTINGS.get(name)
    return (
        setting is not None
        and setting.kind is Kind.SHA256
        and bool(_HEX_DIGEST.match(value.strip()))
    )


class _Reader:
    """Type-checks one parsed job document; raises JobFileError at the first problem.

    A value's TOML type is checked here (job files are typed: a count has no quotes, a rate
    has them), by the setting's kind; its meaning by the same converters as the command line's
    flags (``COERCE``), so a job key and its flag accept the same values and say the same things.
    """

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path = path
        self.doc = doc

    def fail(self, key: str, problem: str) -> JobFileError:
        return JobFileError(self.path, f"key {key}: {problem}")

    def job(self) -> Job:
        for key, value in self.doc.items():
            if key in _TABLES:
                if not isinstance(value, dict):
                    raise self.fail(key, f"expected a table: write it as a [{key}] section")
                for inner in value:
                    if inner not in _TABLES[key]:
                        raise self.fail(f"[{key}].{inner}", _unknown(inner, _TABLES[key], key))
            elif key not in _TOP_KEYS:
                known = [*_TOP_KEYS, *(f"[{t}]" for t in _TABLES)]
                raise self.fail(key, _unknown(key, known, None))
        if "input" not in self.doc:
            raise self.fail(
                "input",
                "missing: name the file of changes to send, e.g. "
                'input = "../samples/routing-changes.csv"',
            )
        given: dict[str, Any] = {
            name: self.value(f"[{table}].{name}", self.doc.get(table, {}).get(name))
            for table, names in _TABLES.items()
            for name in names
        }
        given |= {name: self.value(name, self.doc.get(name)) for name in _TOP_KEYS}
        description = given.pop("description")
        given = {name: value for name, value in given.items() if value is not None}
        if given.get("current") is None:
            for name in ("fill_from_current", "allow_wipe", "skip_unchanged", "rollback"):
                if given.get(name):
                    raise self.fail(
                        f"[safety].{name}",
                        "needs [safety].current, the snapshot of the current records "
                        '(e.g. current = "../samples/routing-current.csv")',
                    )
        rollback = given.get("rollback")
        if rollback is not None and rollback in (
            given["input"],
            given.get("current"),
            given.get("results"),
        ):
            raise self.fail(
                "[safety].rollback",
                f"{rollback} is also the job's input, snapshot or results file: name another file",
            )
        try:  # a daily window is checked against an arbitrary day: only its shape matters here
            window.resolve(given.get("not_before"), given.get("not_after"), datetime.now(UTC))
        except ValueError as exc:
            raise self.fail("[window]", str(exc)) from None
        return Job(self.path, given, description)

    def value(self, key: str, value: object) -> Any:
        """One key's value: its TOML type checked, then converted as its flag would be."""
        if value is None:
            return None
        name = key.rsplit(".", 1)[-1]
        kind = SETTINGS[name].kind if name in SETTINGS else None  # None: the description
        if kind is Kind.PATH:
            return self.path_of(key, value, must_exist=name in _MUST_EXIST)
        types, expected = _TOML_TYPES.get(kind, ((str,), "a string in quotes"))
        if isinstance(value, bool) is not (bool in types) or not isinstance(value, types):
            raise self.fail(key, f"expected {expected}, got {shown(value)}")
        try:
            return COERCE.get(name, same)(value)
        except (UsageError, ValueError, TypeError) as exc:
            raise self.fail(key, str(exc)) from None

    def path_of(self, key: str, value: object, *, must_exist: bool = False) -> Path | None:
        """A path from the job file, relative to the job file's folder."""
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string in quotes, got {shown(value)}")
        if not value.strip():
            raise self.fail(key, "is empty: name a file, relative to the job file's folder")
        path = _beside(self.path, value)
        if must_exist and not path.is_file():
            what = "export the current records there" if key.endswith("current") else "create it"
            raise self.fail(
                key,
                f"file {path} not found (paths in a job file are relative to the job file's "
                f"folder, {self.path.parent}): fix the path or {what}",
            )
        return path


# Kinds of setting whose job key is not a string in quotes: the types TOML gives, and the words.
_COUNT = ((int,), "a whole number >= 1 (no quotes)")
_SECONDS = ((int, float), "a number of seconds > 0 (no quotes)")
_FLAG = ((bool,), "true or false (no quotes)")
_TOML_TYPES: Mapping[Kind | None, tuple[tuple[type, ...], str]] = {
    Kind.COUNT: _COUNT,
    Kind.ROWS: _COUNT,
    Kind.SECONDS: _SECONDS,
    Kind.DURATION: ((int, float, str), 'a duration like "15m" or a number of seconds'),
    Kind.SWITCH: _FLAG,
    Kind.BUDGET: ((str, int), '"5%" or a whole number'),
    # a date (datetime's base class) too: the window's own check says what is missing
    Kind.MOMENT: ((str, date, time), "an ISO-8601 time with its offset"),
}


def _beside(job_path: Path, value: str) -> Path:
    """A path from a job file, relative to the job file's folder (tidied, not resolved)."""
    path = Path(value.strip()).expanduser()
    if path.is_absolute():
        return path
    return Path(os.path.normpath(job_path.parent / path))


def _unknown(key: str, known: list[str] | tuple[str, ...], table: str | None) -> str:
    close = difflib.get_close_matches(key, [k.strip("[]") for k in known], n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    where = f"in [{table}] " if table else ""
    return f"unknown key{hint}: the keys {where}are {', '.join(known)}"


__all__ = [
    "DEFAULT_API_KEY_ENV",
    "ENV_VARS",
    "Job",
    "is_job_file",
    "load_job",
    "looks_like_api_key",
]
