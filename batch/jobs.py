"""Job files: a reviewed TOML file that says what to run, where, how fast and when.

Operations teams review a job file in a pull request, then a scheduler runs
``reroute run jobs/NAME.toml``. The file is read with ``tomllib`` into a frozen :class:`Job`
(``None`` = not set in the file), checked strictly (an unknown key is a typo that would
silently change a run), and merged with flags, environment and defaults by
:func:`resolve_run_settings`, the one place that knows the precedence
flag > job file > environment > default. Schema (paths relative to the job file's folder)::

    description = "..."                # optional, shown by `reroute jobs check`
    input = "../samples/routing-changes.csv"
    results = "routing-changes.results.csv"
    [target]  base_url, api_key_env (the NAME of a variable, never a key), connection_id
    [pace]    rate ("60/min"), concurrency, max_attempts, timeout, max_retry_after
    [window]  not_before, not_after   (ISO-8601 with offset; times of day = every night)
    [safety]  skip_invalid, current (a snapshot file), fill_from_current, allow_wipe,
              skip_unchanged, rollback (a file to write), canary (rows), error_budget ("5%" or 10)
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from batch import window
from batch.errors import JobFileError, UsageError
from batch.secrets import KEY_PREFIX, KEY_REFUSED, is_uuid, looks_like_api_key, strings_of
from batch.settings import ErrorBudget, Rate, RunSettings, check_base_url
from batch.window import Bound

# Environment variables that feed a setting (the key itself is read by the CLI, by name).
ENV_VARS: Mapping[str, str] = {"base_url": "REROUTE_BASE_URL"}
DEFAULT_API_KEY_ENV = "VOCOBASE_API_KEY"

_TOP_KEYS = ("description", "input", "results")
_TABLES: Mapping[str, tuple[str, ...]] = {
    "target": ("base_url", "api_key_env", "connection_id"),
    "pace": ("rate", "concurrency", "max_attempts", "timeout", "max_retry_after"),
    "window": ("not_before", "not_after"),
    "safety": (
        "skip_invalid",
        "current",
        "fill_from_current",
        "allow_wipe",
        "skip_unchanged",
        "rollback",
        "canary",
        "error_budget",
    ),
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


@dataclass(frozen=True, slots=True)
class Job:
    """A job file's settings, as written (paths made relative to the job file's folder)."""

    path: Path
    input: Path
    results: Path | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    connection_id: str | None = None
    rate: Rate | None = None
    concurrency: int | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    not_before: Bound | None = None  # aware datetime, or aware time of day (a daily window)
    not_after: Bound | None = None
    skip_invalid: bool | None = None
    max_retry_after: float | None = None
    description: str | None = None
    current: Path | None = None  # [safety]: paths relative to the job file's folder
    fill_from_current: bool | None = None
    allow_wipe: bool | None = None
    skip_unchanged: bool | None = None
    rollback: Path | None = None
    canary: int | None = None
    error_budget: ErrorBudget | None = None

    @property
    def name(self) -> str:
        return self.path.stem


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
        if looks_like_api_key(value):
            raise JobFileError(path, f"key {key}: {KEY_REFUSED}")
    return _Reader(path, doc).job()


class _Reader:
    """Type-checks one parsed job document; raises JobFileError at the first problem."""

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
        target, pace = self.doc.get("target", {}), self.doc.get("pace", {})
        win, safety = self.doc.get("window", {}), self.doc.get("safety", {})
        job = Job(
            path=self.path,
            input=self.input_path(),
            results=self.optional_path("results"),
            base_url=self.base_url(target.get("base_url")),
            api_key_env=self.env_name(target.get("api_key_env")),
            connection_id=self.connection_id(target.get("connection_id")),
            rate=self.rate(pace.get("rate")),
            concurrency=self.count("[pace].concurrency", pace.get("concurrency")),
            max_attempts=self.count("[pace].max_attempts", pace.get("max_attempts")),
            timeout=self.seconds("[pace].timeout", pace.get("timeout")),
            max_retry_after=self.seconds("[pace].max_retry_after", pace.get("max_retry_after")),
            not_before=self.bound("[window].not_before", win.get("not_before")),
            not_after=self.bound("[window].not_after", win.get("not_after")),
            skip_invalid=self.flag("[safety].skip_invalid", safety.get("skip_invalid")),
            description=self.text("description", self.doc.get("description")),
            current=self.snapshot(safety.get("current")),
            fill_from_current=self.flag(
                "[safety].fill_from_current", safety.get("fill_from_current")
            ),
            allow_wipe=self.flag("[safety].allow_wipe", safety.get("allow_wipe")),
            skip_unchanged=self.flag("[safety].skip_unchanged", safety.get("skip_unchanged")),
            rollback=self.safety_path("rollback", safety.get("rollback")),
            canary=self.count("[safety].canary", safety.get("canary")),
            error_budget=self.budget(safety.get("error_budget")),
        )
        if job.current is None:
            for name in ("fill_from_current", "allow_wipe", "skip_unchanged", "rollback"):
                if getattr(job, name):
                    raise self.fail(
                        f"[safety].{name}",
                        "needs [safety].current, the snapshot of the current records "
                        '(e.g. current = "../samples/routing-current.csv")',
                    )
        if job.rollback is not None and job.rollback in (job.input, job.current, job.results):
            raise self.fail(
                "[safety].rollback",
                f"{job.rollback} is also the job's input, snapshot or results file: "
                "name another file",
            )
        try:  # a daily window is checked against an arbitrary day: only its shape matters here
            window.resolve(job.not_before, job.not_after, datetime.now(UTC))
        except ValueError as exc:
            raise self.fail("[window]", str(exc)) from None
        return job

    def text(self, key: str, value: object) -> str | None:
        if value is not None and not isinstance(value, str):
            raise self.fail(key, f"expected a string in quotes, got {_shown(value)}")
        return value

    def optional_path(self, key: str) -> Path | None:
        value = self.text(key, self.doc.get(key))
        if value is None:
            return None
        if not value.strip():
            raise self.fail(key, "is empty: name a file, relative to the job file's folder")
        return _beside(self.path, value)

    def input_path(self) -> Path:
        path = self.optional_path("input")
        assert path is not None  # presence checked by the caller
        if not path.is_file():
            raise self.fail(
                "input",
                f"file {path} not found (paths in a job file are relative to the job file's "
                f"folder, {self.path.parent}): fix the path or create the file",
            )
        return path

    def base_url(self, value: object) -> str | None:
        url = self.text("[target].base_url", value)
        if url is None:
            return None
        try:
            return check_base_url(url)
        except UsageError as exc:
            raise self.fail("[target].base_url", str(exc)) from None

    def env_name(self, value: object) -> str | None:
        name = self.text("[target].api_key_env", value)
        if name is not None and not _ENV_NAME.match(name):
            raise self.fail(
                "[target].api_key_env",
                f"{name!r} is not an environment variable name: write the NAME of the variable "
                f'that holds the key, e.g. api_key_env = "{DEFAULT_API_KEY_ENV}"',
            )
        return name

    def connection_id(self, value: object) -> str | None:
        text = self.text("[target].connection_id", value)
        if text is not None and not is_uuid(text.strip()):
            raise self.fail(
                "[target].connection_id",
                f"{text!r} is not a UUID: copy the connection id from the VoiceLink console, "
                'e.g. "9b7f1c44-c87f-4f0c-9124-3c802a9c1a20"',
            )
        return text.strip() if text is not None else None

    def rate(self, value: object) -> Rate | None:
        text = self.text("[pace].rate", value)
        if text is None:
            return None
        try:
            return Rate.parse(text)
        except UsageError as exc:
            raise self.fail("[pace].rate", str(exc)) from None

    def count(self, key: str, value: object) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(key, f"expected a whole number >= 1 (no quotes), got {_shown(value)}")
        return value

    def seconds(self, key: str, value: object) -> float | None:
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise self.fail(
                key, f"expected a number of seconds > 0 (no quotes), got {_shown(value)}"
            )
        return float(value)

    def flag(self, key: str, value: object) -> bool | None:
        if value is not None and not isinstance(value, bool):
            raise self.fail(key, f"expected true or false (no quotes), got {_shown(value)}")
        return value

    def safety_path(self, name: str, value: object) -> Path | None:
        text = self.text(f"[safety].{name}", value)
        if text is None:
            return None
        if not text.strip():
            raise self.fail(
                f"[safety].{name}", "is empty: name a file, relative to the job file's folder"
            )
        return _beside(self.path, text)

    def snapshot(self, value: object) -> Path | None:
        path = self.safety_path("current", value)
        if path is not None and not path.is_file():
            raise self.fail(
                "[safety].current",
                f"file {path} not found (paths in a job file are relative to the job file's "
                f"folder, {self.path.parent}): export the current records there or fix the path",
            )
        return path

    def budget(self, value: object) -> ErrorBudget | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(
                "[safety].error_budget", f'expected "5%" or a whole number, got {_shown(value)}'
            )
        try:
            return ErrorBudget.parse(value)
        except UsageError as exc:
            raise self.fail("[safety].error_budget", str(exc)) from None

    def bound(self, key: str, value: object) -> Bound | None:
        if value is None:
            return None
        try:
            if isinstance(value, str):
                return window.parse_bound(value)
            return window.check_bound(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None


def resolve_run_settings(
    flags: Mapping[str, object | None],
    job: Job | None,
    env: Mapping[str, str],
    *,
    now: datetime | None = None,
    remembered: Mapping[str, object] | None = None,
) -> RunSettings:
    """Merge flag > job file > remembered > environment > default into RunSettings; the one
    place that does. ``remembered``: what the journal of the run being resumed or retried
    recorded (its target and pace, ``batch.record``).

    ``flags`` maps RunSettings field names to what the command line gave, ``None`` meaning "not
    given" (so boolean flags pass ``None``, not ``False``, when absent); values may be text as
    typed or already parsed. ``env`` is passed in (only the CLI reads the real environment).
    ``now`` resolves a daily window (times of day) to tonight's or the next occurrence; it is
    read from the clock only when a daily window needs it and none is given.
    Raises UsageError naming the flag, job key or variable that holds a bad value.
    """
    unknown = set(flags) - _SETTING_NAMES
    if unknown:
        raise ValueError(f"not RunSettings fields: {sorted(unknown)}")
    if job is not None and is_job_file(str(flags.get("input") or "")):
        flags = {**flags, "input": None}  # `run JOB.toml`: the positional argument is the job
    values: dict[str, object] = {}
    for name in _SETTING_NAMES:
        picked = _pick(name, flags, job, env, remembered or {})
        if picked is not None:
            value, source = picked
            values[name] = _coerce(name, value, source)
    if "input" not in values:
        raise UsageError("no input: give an input file or a job file")
    input_path = values["input"]
    assert isinstance(input_path, Path)
    if "results" not in values:
        values["results"] = (
            job.path.parent / f"{job.name}.results.csv"
            if job is not None
            else Path(f"{input_path.stem}.results.csv")
        )
    before, after = values.pop("not_before", None), values.pop("not_after", None)
    assert before is None or isinstance(before, datetime | time)
    assert after is None or isinstance(after, datetime | time)
    daily = isinstance(before, time) or isinstance(after, time)  # datetime is no time subclass
    at = now if now is not None else (datetime.now(UTC) if daily else _EPOCH)
    try:
        win = window.resolve(before, after, at)
    except ValueError as exc:
        raise UsageError(f"change window ({_window_sources(flags, job)}): {exc}") from None
    # Each value was coerced to its field's type by _COERCE above.
    return RunSettings(not_before=win.not_before, not_after=win.not_after, **values)  # type: ignore[arg-type]


_SETTING_NAMES = frozenset(f.name for f in fields(RunSettings))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Where each setting lives in a job file (for messages); input/results are top-level keys.
_JOB_KEYS = {name: f"[{table}].{name}" for table, names in _TABLES.items() for name in names}
_JOB_KEYS |= {"input": "input", "results": "results"}


def _pick(
    name: str,
    flags: Mapping[str, object | None],
    job: Job | None,
    env: Mapping[str, str],
    remembered: Mapping[str, object],
) -> tuple[object, str] | None:
    """The winning value of one setting and where it came from, or None for the default."""
    flag = flags.get(name)
    if flag is not None:
        return flag, "--" + name.replace("_", "-")
    if job is not None and name in _JOB_KEYS:
        value = getattr(job, name)
        if value is not None:
            return value, f"{job.path} {_JOB_KEYS[name]}"
    if remembered.get(name) is not None:
        return remembered[name], f"the run's journal ({name})"
    variable = ENV_VARS.get(name)
    if variable is not None and env.get(variable, "").strip():
        return env[variable], variable
    return None


def _coerce(name: str, value: object, source: str) -> object:
    """Parse a flag or environment value into its settings type; UsageError names the source."""
    try:
        return _COERCE.get(name, _same)(value)
    except UsageError as exc:
        raise UsageError(f"{source}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{source}: {exc}") from None


def _same(value: object) -> object:
    return value


def _as_path(value: object) -> Path:
    return value if isinstance(value, Path) else Path(str(value))


def _as_rate(value: object) -> Rate:
    return value if isinstance(value, Rate) else Rate.parse(str(value))


def _as_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a whole number >= 1, got {_shown(value)}")
    return value


def _as_seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"expected a number of seconds > 0, got {_shown(value)}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"expected a number of seconds > 0, got {_shown(value)}")
    return number


def _as_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_shown(value)}")
    return value


def _as_uuid(value: object) -> str:
    text = str(value).strip()
    if not is_uuid(text):
        raise ValueError(
            f"{text!r} is not a UUID: copy the connection id from the VoiceLink console"
        )
    return text


def _as_bound(value: object) -> Bound:
    return window.parse_bound(value) if isinstance(value, str) else window.check_bound(value)


def _as_budget(value: object) -> ErrorBudget:
    if isinstance(value, ErrorBudget):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f'expected "5%" or a whole number, got {_shown(value)}')
    return ErrorBudget.parse(value)


def _as_canary(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return _as_count(value)


def _as_env_name(value: object) -> str:
    text = str(value)
    if not _ENV_NAME.match(text) or looks_like_api_key(text):
        raise ValueError("not an environment variable name: give the NAME of the variable")
    return text


_COERCE: Mapping[str, Callable[[object], object]] = {
    "input": _as_path,
    "results": _as_path,
    "base_url": lambda v: check_base_url(str(v)),
    "rate": _as_rate,
    "concurrency": _as_count,
    "max_attempts": _as_count,
    "timeout": _as_seconds,
    "max_retry_after": _as_seconds,
    "skip_invalid": _as_bool,
    "fresh": _as_bool,
    "connection_id": _as_uuid,
    "not_before": _as_bound,
    "not_after": _as_bound,
    "api_key_env": _as_env_name,
    "current": _as_path,
    "rollback": _as_path,
    "fill_from_current": _as_bool,
    "allow_wipe": _as_bool,
    "skip_unchanged": _as_bool,
    "canary": _as_canary,
    "error_budget": _as_budget,
}


def _window_sources(flags: Mapping[str, object | None], job: Job | None) -> str:
    parts = [f"--{n.replace('_', '-')}" for n in ("not_before", "not_after") if flags.get(n)]
    if job is not None and (job.not_before or job.not_after):
        parts.append(f"{job.path} [window]")
    return ", ".join(parts) or "window"


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


def _shown(value: object) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, str) else repr(value)


__all__ = [
    "DEFAULT_API_KEY_ENV",
    "ENV_VARS",
    "Job",
    "is_job_file",
    "load_job",
    "looks_like_api_key",
    "resolve_run_settings",
]
