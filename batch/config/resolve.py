"""Settings for one invocation of `run` or `retry`: flags, job file, the run being continued.

Precedence: command-line flag > job file > what the run's journal remembers (its target and
pace, ``batch.journal.record``) > environment > default. ``retry`` and a resume therefore go where
the run went, with the key variable and pace it used, unless a flag says otherwise; the printed
retry and resume commands need no flags to do the right thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from batch.config.jobs import ENV_VARS, Job, is_job_file, load_job
from batch.config.precedence import resolve_run_settings
from batch.engine.target import check_results_argument, check_results_path
from batch.errors import UsageError
from batch.journal.journal import journal_path
from batch.journal.record import RunRecord, kept_of, remembered
from batch.settings import SANDBOX_RATE, RunSettings


def job_from(path: Path) -> Job | None:
    """The job file given as INPUT (``.toml``), loaded and checked; None for a rows file."""
    return load_job(path) if is_job_file(path) else None


def settings_from(
    flags: Mapping[str, object | None],
    env: Mapping[str, str],
    *,
    sandbox: bool,
    job: Job | None = None,
    earlier: RunRecord | None = None,
) -> RunSettings:
    """Merge the layers into RunSettings (batch.config.precedence).

    With ``--sandbox`` the embedded sandbox is the target, whatever the job's base_url says,
    and paces at SANDBOX_RATE unless a flag, the job or the earlier run set a rate.
    """
    reused = earlier.reused() if earlier is not None else {}
    if sandbox:
        if flags.get("base_url") is not None:
            raise UsageError("--sandbox runs against the embedded sandbox: drop --base-url")
        given = flags.get("rate") is not None or (job is not None and job.get("rate") is not None)
        if not given and "rate" not in reused:
            flags = {**flags, "rate": SANDBOX_RATE}
        env = {k: v for k, v in env.items() if k != ENV_VARS["base_url"]}
        if job is not None:
            job = job.without("base_url")  # the sandbox's URL wins over the job's
        reused.pop("base_url", None)
    return resolve_run_settings(flags, job, env, remembered=reused)


def _sandbox_remembered(
    earlier: RunRecord | None, flags: Mapping[str, object | None], job: Job | None
) -> bool:
    """The earlier run went to the embedded sandbox, and nothing names another target."""
    return (
        earlier is not None
        and earlier.sandbox
        and flags.get("base_url") is None
        and (job is None or job.get("base_url") is None)
    )


def for_run(
    flags: Mapping[str, object | None], env: Mapping[str, str], *, sandbox: bool, job: Job | None
) -> tuple[RunSettings, bool, RunRecord | None]:
    """`run`'s settings, whether it goes to the sandbox, and the record of the run it would
    resume (None for a new run)."""
    first = settings_from(flags, env, sandbox=sandbox, job=job)
    check_results_path(first.results)  # before anything is read, sent or created
    earlier = remembered(journal_path(first.results))
    if earlier is None or earlier.kind != "run":
        return first, sandbox, None
    sandbox = sandbox or _sandbox_remembered(earlier, flags, job)
    return settings_from(flags, env, sandbox=sandbox, job=job, earlier=earlier), sandbox, earlier


def for_retry(
    flags: Mapping[str, object | None], env: Mapping[str, str], *, sandbox: bool
) -> tuple[RunSettings, bool, RunRecord | None]:
    """`retry`'s settings: the run (or retry) that wrote the results file lends its target,
    key variable and pace (the journal at the output path first, then the source's)."""
    first = settings_from(flags, env, sandbox=sandbox)
    check_results_argument(first.input)
    check_results_path(first.results)  # before anything is read, sent or created
    earlier = remembered(journal_path(first.results)) or remembered(journal_path(first.input))
    if earlier is None:
        return first, sandbox, None
    sandbox = sandbox or _sandbox_remembered(earlier, flags, None)
    return settings_from(flags, env, sandbox=sandbox, earlier=earlier), sandbox, earlier


def record_of(
    settings: RunSettings,
    *,
    kind: str,
    sandbox: bool,
    job: Job | None = None,
    api_key_file: Path | None = None,
    earlier: RunRecord | None = None,
) -> RunRecord:
    """What the journal remembers of this invocation (never the key). A retry (``earlier``:
    the record of the run or retry that wrote its results file) keeps that run's replace
    choice (batch.engine.replacing), a retry of a retry too."""
    record = RunRecord(
        kind=kind,
        input=str(settings.input),
        job=str(job.path) if job is not None else None,
        sandbox=sandbox,
        api_key_file=str(api_key_file.resolve()) if api_key_file is not None else None,
        settings=kept_of(settings, sandbox=sandbox),
    )
    return record.keeping_choice(earlier) if kind == "retry" else record
