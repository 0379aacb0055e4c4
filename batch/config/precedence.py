"""The one place that knows the precedence of a run's settings: flag > job file > the journal
of the run resumed or retried > environment > default (batch.config.jobs reads job files)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time
from pathlib import Path

from batch.config.coerce import COERCE, same
from batch.config.jobs import ENV_VARS, JOB_KEYS, Job, is_job_file
from batch.engine import window
from batch.errors import UsageError
from batch.settings import SETTINGS, RunSettings


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
    recorded (its target and pace, ``batch.journal.record``).

    ``flags`` maps RunSettings field names to what the command line gave, ``None`` meaning "not
    given" (so boolean flags pass ``None``, not ``False``, when absent); values may be text as
    typed or already parsed. ``env`` is passed in (only the CLI reads the real environment).
    ``now`` resolves a daily window (times of day) to tonight's or the next occurrence; it is
    read from the clock only when a daily window needs it and none is given.
    Raises UsageError naming the flag, job key or variable that holds a bad value.
    """
    unknown = set(flags) - set(SETTINGS)
    if unknown:
        raise ValueError(f"not RunSettings fields: {sorted(unknown)}")
    if job is not None and is_job_file(str(flags.get("input") or "")):
        flags = {**flags, "input": None}  # `run JOB.toml`: the positional argument is the job
    values: dict[str, object] = {}
    for name in SETTINGS:
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
    values["results"] = _placeheld(values["results"], input_path, now)
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
    values["window_daily"] = win.daily
    return RunSettings(not_before=win.not_before, not_after=win.not_after, **values)  # type: ignore[arg-type]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


PLACEHOLDERS = ("date", "input_stem", "input_sha8")


def _placeheld(results: object, input_path: Path, now: datetime | None) -> Path:
    """The results path with its placeholders filled: ``{date}`` (UTC, YYYY-MM-DD),
    ``{input_stem}``, ``{input_sha8}`` (the input's content), for one results file per batch."""
    text = str(results)
    if "{" not in text:
        return Path(text)
    fields = {
        "date": (now or datetime.now(UTC)).strftime("%Y-%m-%d"),
        "input_stem": input_path.stem,
    }
    if "{input_sha8}" in text:
        from batch.journal.record import sha256_file

        try:
            fields["input_sha8"] = sha256_file(input_path)[:8]
        except OSError as exc:
            raise UsageError(f"results {text}: cannot read {input_path} ({exc.strerror})") from None
    try:
        return Path(text.format(**fields))
    except (KeyError, IndexError, ValueError):
        known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
        raise UsageError(f"results {text!r}: the placeholders are {known}") from None


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
        return flag, SETTINGS[name].flag or "--" + name.replace("_", "-")
    if job is not None and job.get(name) is not None:
        return job.get(name), f"{job.path} {JOB_KEYS[name]}"
    if remembered.get(name) is not None:
        return remembered[name], f"the run's journal ({name})"
    variable = ENV_VARS.get(name)
    if variable is not None and env.get(variable, "").strip():
        return env[variable], variable
    return None


def _coerce(name: str, value: object, source: str) -> object:
    """Parse a flag or environment value into its settings type; UsageError names the source."""
    try:
        return COERCE.get(name, same)(value)
    except UsageError as exc:
        raise UsageError(f"{source}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{source}: {exc}") from None


def _window_sources(flags: Mapping[str, object | None], job: Job | None) -> str:
    parts = [f"--{n.replace('_', '-')}" for n in ("not_before", "not_after") if flags.get(n)]
    if job is not None and (job.get("not_before") or job.get("not_after")):
        parts.append(f"{job.path} [window]")
    return ", ".join(parts) or "window"
