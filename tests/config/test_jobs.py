"""Job files: loading good files, refusing each kind of bad one, and flag > job > env > default."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch.config.jobs import Job, is_job_file, load_job
from batch.config.precedence import resolve_run_settings
from batch.errors import JobFileError, UsageError
from batch.prepare.validate import validate
from batch.secrets import looks_like_api_key
from batch.settings import ErrorBudget, Rate, RunSettings
from batch.sheets.load import load_table

REPO = Path(__file__).resolve().parents[2]
JOB_FILES = sorted((REPO / "jobs").glob("*.toml"))

FULL = """\
description = "test job"
input = "data/changes.csv"
results = "out/changes.results.csv"
[target]
base_url = "https://api.vocobase.com/api/v2/"
api_key_env = "ACME_VOCOBASE_KEY"
connection_id = "9b7f1c44-c87f-4f0c-9124-3c802a9c1a20"
[pace]
rate = "30/min"
concurrency = 2
max_attempts = 7
timeout = 12.5
max_retry_after = 90
[window]
not_before = "2026-12-05T01:00:00+00:00"
not_after = 2026-12-05T05:00:00+00:00
[safety]
skip_invalid = true
"""


def write_job(folder: Path, text: str, *, name: str = "job.toml") -> Path:
    """A job file plus the input file it names (data/changes.csv), in ``folder``."""
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "changes.csv").write_text("routing_id\n1\n")
    path = folder / name
    path.write_text(text)
    return path


def minimal(extra: str = "") -> str:
    return f'input = "data/changes.csv"\n{extra}'


def test_full_job_file_loads_every_key(tmp_path: Path) -> None:
    """Every schema key is read, typed, and paths are taken relative to the job file."""
    job = load_job(write_job(tmp_path, FULL))
    assert job == Job(
        tmp_path / "job.toml",
        {
            "input": tmp_path / "data" / "changes.csv",
            "results": tmp_path / "out" / "changes.results.csv",
            "base_url": "https://api.vocobase.com/api/v2",
            "api_key_env": "ACME_VOCOBASE_KEY",
            "connection_id": "9b7f1c44-c87f-4f0c-9124-3c802a9c1a20",
            "rate": Rate(30, 60.0),
            "concurrency": 2,
            "max_attempts": 7,
            "timeout": 12.5,
            "not_before": datetime(2026, 12, 5, 1, tzinfo=UTC),
            # a native TOML date-time works too
            "not_after": datetime(2026, 12, 5, 5, tzinfo=UTC),
            "skip_invalid": True,
            "max_retry_after": 90.0,
        },
        description="test job",
    )


def test_the_approved_plan_is_a_safety_key(tmp_path: Path) -> None:
    """[safety] approved_plan: the plan's sha256, as `reroute plan` printed it (any case)."""
    sha = "E89A98514AE17C669DC2FAFB6B3F1693174DFF3E5E1C6E051EC345CA2E0C12A5"
    job = load_job(write_job(tmp_path, minimal(f"[safety]\napproved_plan = '{sha}'\n")))
    assert job.get("approved_plan") == sha.lower()


def test_minimal_job_leaves_everything_unset(tmp_path: Path) -> None:
    """Keys absent from the file are None, so the next layer decides."""
    job = load_job(write_job(tmp_path, minimal()))
    assert job.input == tmp_path / "data" / "changes.csv"
    assert set(job.given) == {"input"}
    assert job.description is None


def test_daily_window_loads_as_times_of_day(tmp_path: Path) -> None:
    """Times of day with offsets (quoted or native TOML) make a daily window."""
    text = minimal('[window]\nnot_before = "23:00:00+00:00"\nnot_after = 03:00:00\n')
    with pytest.raises(JobFileError, match=r"\[window\].not_after: '03:00:00' has no UTC offset"):
        load_job(write_job(tmp_path, text))
    text = minimal('[window]\nnot_before = "23:00:00+00:00"\nnot_after = "03:00+00:00"\n')
    job = load_job(write_job(tmp_path, text))
    assert job.get("not_before") == time(23, tzinfo=UTC)
    assert job.get("not_after") == time(3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (minimal("inputs = 'x'\n"), r"key inputs: unknown key \(did you mean input\?\)"),
        (
            minimal("[pace]\nspeed = '60/min'\n"),
            r"key \[pace\].speed: unknown key: the keys in \[pace\]",
        ),
        (
            minimal("[pace]\nconcurency = 4\n"),
            r"\[pace\].concurency: unknown key \(did you mean concurrency\?\)",
        ),
        (minimal("[targets]\nbase_url = 'x'\n"), "key targets: unknown key"),
        (minimal("pace = 5\n"), r"key pace: expected a table: write it as a \[pace\] section"),
        (
            minimal("[pace]\nconcurrency = '4'\n"),
            r"\[pace\].concurrency: expected a whole number >= 1 \(no quotes\), got '4'",
        ),
        (
            minimal("[pace]\nconcurrency = 0\n"),
            r"\[pace\].concurrency: expected a whole number >= 1",
        ),
        (
            minimal("[pace]\nmax_attempts = true\n"),
            r"\[pace\].max_attempts: expected a whole number",
        ),
        (minimal("[pace]\ntimeout = -1\n"), r"\[pace\].timeout: expected a number of seconds > 0"),
        (minimal("[pace]\ntimeout = nan\n"), r"\[pace\].timeout: expected a number of seconds > 0"),
        (minimal("[pace]\nrate = 60\n"), r"\[pace\].rate: expected a string in quotes, got int 60"),
        (
            minimal("[pace]\nrate = '60/day'\n"),
            r"\[pace\].rate: rate '60/day' is not a rate: write N/s",
        ),
        (
            minimal("[safety]\nskip_invalid = 'no'\n"),
            r"\[safety\].skip_invalid: expected true or false",
        ),
        (
            minimal("[target]\nbase_url = 'http://api.vocobase.com/api/v2'\n"),
            r"\[target\].base_url: .*unencrypted",
        ),
        (
            minimal("[target]\nconnection_id = 'abc'\n"),
            r"\[target\].connection_id: 'abc' is not a UUID",
        ),
        (
            minimal("[target]\napi_key_env = 'MY KEY'\n"),
            r"\[target\].api_key_env: 'MY KEY' is not an environment variable name",
        ),
        (
            minimal("[window]\nnot_before = '2026-12-05T01:00:00'\n"),
            r"\[window\].not_before: .* has no UTC offset",
        ),
        (
            minimal("[window]\nnot_before = 2026-12-05\n"),
            r"\[window\].not_before: .* is a date without a time",
        ),
        (
            minimal("[window]\nnot_before = 'friday'\n"),
            r"\[window\].not_before: 'friday' is not an ISO-8601",
        ),
        (
            minimal(
                "[window]\nnot_before = '2026-12-05T05:00:00+00:00'\n"
                "not_after = '2026-12-05T01:00:00+00:00'\n"
            ),
            r"key \[window\]: not_after .* must be later than not_before",
        ),
        (
            minimal(
                "[window]\nnot_before = '01:00:00+00:00'\nnot_after = '2026-12-05T05:00:00+00:00'\n"
            ),
            r"key \[window\]: not_before and not_after must both be",
        ),
        (
            minimal("[safety]\napproved_plan = 'e89a98514ae1'\n"),
            r"\[safety\].approved_plan: 'e89a98514ae1' is not a sha256: copy the 64 hex digits",
        ),
        ('results = "x.csv"\n', "key input: missing: name the file of changes to send"),
        (
            'input = "data/nope.csv"\n',
            r"key input: file .*nope.csv not found \(paths in a job file are relative",
        ),
        ('input = ""\n', "key input: is empty"),
        ("input = [\n", "not valid TOML"),
    ],
)
def test_bad_job_files_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    """Each kind of bad job file is one JobFileError naming the file, the key and the fix."""
    path = write_job(tmp_path, text)
    with pytest.raises(JobFileError, match=message) as info:
        load_job(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)


SECRET_LIVE = "rg_live_" + "Zx81Qp0LmN4vB7tY2sK9"
SECRET_TOKEN = "sk" + "Q7vP2mX9LkT4wR8nB3cZ6yH1jD5"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (minimal(f'[target]\napi_key_env = "{SECRET_LIVE}"\n'), "line 3"),
        (minimal(f'[target]\napi_key = "{SECRET_LIVE}"\n'), "line 3"),
        (minimal(f"# old key: {SECRET_LIVE}\n"), "line 2"),
        (minimal(f'[target]\napi_key_env = "{SECRET_TOKEN}"\n'), r"key \[target\].api_key_env"),
        (minimal(f'description = "{SECRET_TOKEN}"\n'), "key description"),
        (minimal(f'[target]\nsecret = "{SECRET_TOKEN}"\n'), r"key \[target\].secret"),
        (minimal(f'[target]\nsecret = ["x", "Bearer {SECRET_TOKEN}"]\n'), r"key \[target\].secret"),
    ],
)
def test_api_keys_in_job_files_are_refused_and_not_echoed(
    tmp_path: Path, text: str, where: str
) -> None:
    """A key-like value anywhere (even a comment) is refused, naming where but never the value."""
    with pytest.raises(JobFileError, match=f"{where}: this looks like an API key") as info:
        load_job(write_job(tmp_path, text))
    assert SECRET_LIVE not in str(info.value)
    assert SECRET_TOKEN not in str(info.value)
    assert "api_key_env" in str(info.value)  # says where the key belongs instead


@pytest.mark.parametrize(
    "text",
    [
        "VOCOBASE_API_KEY",
        "ACME_PROD_VOCOBASE_API_KEY_2026",
        "9b7f1c44-c87f-4f0c-9124-3c802a9c1a20",
        "../samples/routing-changes-2026-12-05.csv",
        "https://api.vocobase.com/api/v2",
        "nightly-reroute-for-the-acme-account",
    ],
)
def test_ordinary_values_are_not_mistaken_for_keys(text: str) -> None:
    """Variable names, UUIDs, paths, URLs and slugs are not keys."""
    assert not looks_like_api_key(text)


@pytest.mark.parametrize(
    "text",
    ["rg_live_abc", "RG_TEST_x", "Bearer abc", "4f9a1c2e8b7d6a5f3e2d1c0b9a8f7e6d", SECRET_TOKEN],
)
def test_keys_and_random_tokens_are_recognised(text: str) -> None:
    """Prefixed keys, bearer headers and long random tokens are keys."""
    assert looks_like_api_key(text)


def test_unreadable_and_non_utf8_job_files(tmp_path: Path) -> None:
    """A missing or non-UTF-8 job file is one clear error."""
    with pytest.raises(JobFileError, match="cannot read the job file"):
        load_job(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'description = "caf\xe9"\n')
    with pytest.raises(JobFileError, match="not UTF-8"):
        load_job(bad)


# --- precedence: flag > job file > environment > default ----------------------------------

JOB_PATH = Path("jobs/j.toml")
NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def job(**values: object) -> Job:
    return Job(JOB_PATH, {"input": Path("jobs/in.csv"), **values})


# setting -> (flag value as typed, its parsed value, job value, env value or None, default)
LAYERS: dict[str, tuple[object, object, object, str | None, object]] = {
    "base_url": (
        "https://flag.example/api/v2",
        "https://flag.example/api/v2",
        "https://job.example/api/v2",
        "https://env.example/api/v2",
        "https://api.vocobase.com/api/v2",
    ),
    "rate": ("10/s", Rate(10, 1.0), Rate(30, 60.0), None, Rate(60, 60.0)),
    "concurrency": (8, 8, 2, None, 4),
    "max_attempts": (9, 9, 3, None, 5),
    "timeout": (5.0, 5.0, 12.5, None, 30.0),
    "max_retry_after": (60.0, 60.0, 600.0, None, 300.0),
    "skip_invalid": (False, False, True, None, False),
    "connection_id": (
        "11111111-2222-3333-4444-555555555555",
        "11111111-2222-3333-4444-555555555555",
        "9b7f1c44-c87f-4f0c-9124-3c802a9c1a20",
        None,
        None,
    ),
    "api_key_env": ("FLAG_KEY", "FLAG_KEY", "JOB_KEY", None, "VOCOBASE_API_KEY"),
    "results": (
        "flag.csv",
        Path("flag.csv"),
        Path("jobs/job.csv"),
        None,
        Path("jobs/j.results.csv"),
    ),
    "canary": ("7", 7, 3, None, None),
    "error_budget": ("5%", ErrorBudget(percent=5.0), ErrorBudget(count=4), None, None),
    "current": ("flag-now.csv", Path("flag-now.csv"), Path("jobs/now.csv"), None, None),
    "rollback": ("flag-rb.csv", Path("flag-rb.csv"), Path("jobs/rb.csv"), None, None),
    "allow_wipe": (True, True, False, None, False),
    "not_after": (
        "2026-12-06T05:00:00+00:00",
        datetime(2026, 12, 6, 5, tzinfo=UTC),
        datetime(2026, 12, 5, 5, tzinfo=UTC),
        None,
        None,
    ),
}
ENV_NAMES = {"base_url": "REROUTE_BASE_URL"}


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize(
    ("use_flag", "use_job", "use_env"), list(itertools.product([False, True], repeat=3))
)
def test_precedence_flag_then_job_then_env_then_default(
    name: str, use_flag: bool, use_job: bool, use_env: bool
) -> None:
    """For every setting and every mix of layers, the highest layer that sets it wins."""
    flag, parsed, job_value, env_value, default = LAYERS[name]
    flags = {name: flag} if use_flag else {}
    the_job = job(**({name: job_value} if use_job else {}))
    env = {ENV_NAMES[name]: env_value} if use_env and env_value is not None else {}
    settings = resolve_run_settings(flags, the_job, env, now=NOW)
    if use_flag:
        expected = parsed
    elif use_job:
        expected = job_value
    elif env:
        expected = env_value
    else:
        expected = default
    assert getattr(settings, name) == expected


def test_without_a_job_the_contract_defaults_apply() -> None:
    """No job file: results default to <input stem>.results.csv here, and RunSettings defaults."""
    settings = resolve_run_settings({"input": "data/in.csv"}, None, {}, now=NOW)
    assert settings == RunSettings(input=Path("data/in.csv"), results=Path("in.results.csv"))


def test_env_base_url_is_checked_and_named() -> None:
    """A bad REROUTE_BASE_URL is a UsageError naming the variable."""
    with pytest.raises(UsageError, match=r"^REROUTE_BASE_URL: .*unencrypted"):
        resolve_run_settings({"input": "x.csv"}, None, {"REROUTE_BASE_URL": "http://x.com"})
    blank = resolve_run_settings({"input": "x.csv"}, None, {"REROUTE_BASE_URL": "  "})
    assert blank.base_url == "https://api.vocobase.com/api/v2"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"rate": "fast"}, "^--rate: rate 'fast' is not a rate"),
        ({"concurrency": 0}, "^--concurrency: expected a whole number >= 1"),
        ({"timeout": "soon"}, "^--timeout: could not convert"),
        ({"connection_id": "abc"}, "^--connection-id: 'abc' is not a UUID"),
        ({"not_before": "tomorrow"}, "^--not-before: 'tomorrow' is not an ISO-8601"),
    ],
)
def test_bad_flag_values_name_the_flag(flags: dict[str, object], message: str) -> None:
    """A bad flag value is a UsageError that names the flag."""
    with pytest.raises(UsageError, match=message):
        resolve_run_settings({"input": "x.csv", **flags}, None, {}, now=NOW)


def test_window_merges_across_layers_and_is_checked() -> None:
    """--not-before with the job's not_after form one window; an inverted one names both."""
    the_job = job(not_after=datetime(2026, 12, 5, 5, tzinfo=UTC))
    settings = resolve_run_settings(
        {"not_before": "2026-12-05T02:00:00+00:00"}, the_job, {}, now=NOW
    )
    assert (settings.not_before, settings.not_after) == (
        datetime(2026, 12, 5, 2, tzinfo=UTC),
        datetime(2026, 12, 5, 5, tzinfo=UTC),
    )
    with pytest.raises(UsageError, match=r"--not-before, jobs/j.toml \[window\]\): not_after"):
        resolve_run_settings({"not_before": "2026-12-05T06:00:00+00:00"}, the_job, {}, now=NOW)


def test_daily_window_resolves_to_the_next_night() -> None:
    """A job's daily window becomes tonight's moments as seen at ``now``."""
    the_job = job(not_before=time(1, tzinfo=UTC), not_after=time(5, tzinfo=UTC))
    settings = resolve_run_settings({}, the_job, {}, now=NOW)
    assert settings.not_before == datetime(2026, 12, 5, 1, tzinfo=UTC)
    assert settings.not_after == datetime(2026, 12, 5, 5, tzinfo=UTC)


def test_no_input_at_all_is_a_usage_error() -> None:
    """Without an input file or a job there is nothing to run."""
    with pytest.raises(UsageError, match="no input"):
        resolve_run_settings({}, None, {})


def test_unknown_flag_names_are_a_programming_error() -> None:
    """A misspelt flag name from the CLI layer fails loudly instead of being ignored."""
    with pytest.raises(ValueError, match="not RunSettings fields"):
        resolve_run_settings({"rates": "1/s"}, None, {})


# --- the shipped job files ---------------------------------------------------------------


def test_jobs_folder_has_the_shipped_examples() -> None:
    """The two documented examples are shipped."""
    assert {p.name for p in JOB_FILES} >= {"example-cutover.toml", "nightly-reroute.toml"}


@pytest.mark.parametrize("path", JOB_FILES, ids=lambda p: p.name)
def test_every_shipped_job_loads_and_plans(path: Path) -> None:
    """Each file in jobs/ loads, resolves, and its input validates with rows to send."""
    loaded = load_job(path)
    settings = resolve_run_settings({}, loaded, {}, now=NOW)
    assert settings.input.is_file()
    assert settings.not_after is not None
    # It works on the day someone clones the repository: its window is still to come.
    today = resolve_run_settings({}, loaded, {}, now=datetime.now(UTC))
    assert today.not_after is not None
    assert today.not_after > datetime.now(UTC)
    validation = validate(load_table(settings.input), connection_id=settings.connection_id)
    assert validation.valid > 0
    assert next(iter(validation.calls())).body.startswith("{")


def test_job_files_are_told_apart_by_extension() -> None:
    """`reroute run X` treats X as a job file exactly when it ends in .toml."""
    assert is_job_file("jobs/nightly.TOML")
    assert not is_job_file("samples/routing-changes.csv")


def test_the_job_path_given_as_input_is_not_taken_for_the_input() -> None:
    """`run jobs/j.toml`: the positional argument names the job; the job's input is used."""
    settings = resolve_run_settings({"input": JOB_PATH}, job(), {}, now=NOW)
    assert settings.input == Path("jobs/in.csv")


# --- any job file: a Job or one JobFileError, never a traceback ----------------------------

SCALARS = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(timezones=st.sampled_from([UTC, None])),
)
KEYS = st.sampled_from(
    ["input", "results", "description", "rate", "concurrency", "timeout", "not_before", "x"]
)
TABLES = st.sampled_from(["", "target", "pace", "window", "safety", "other"])


def toml_value(value: object) -> str:
    """A scalar written as TOML (just enough for the property test)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    return str(value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(TABLES, KEYS, SCALARS), max_size=8))
def test_any_job_document_loads_or_is_one_clear_error(
    tmp_path_factory: pytest.TempPathFactory, entries: list[tuple[str, str, object]]
) -> None:
    """Whatever a job file holds, loading gives a Job or one JobFileError line, nothing else."""
    folder = tmp_path_factory.mktemp("job")
    grouped: dict[str, dict[str, object]] = {}
    for table, key, value in entries:
        grouped.setdefault(table, {})[key] = value
    lines = [f"{k} = {toml_value(v)}" for k, v in grouped.pop("", {}).items()]
    for table, items in grouped.items():
        lines += [f"[{table}]", *(f"{k} = {toml_value(v)}" for k, v in items.items())]
    path = write_job(folder, "\n".join(lines) + "\n")
    outcome: Job | JobFileError
    try:
        outcome = load_job(path)
    except JobFileError as exc:
        outcome = exc
    if isinstance(outcome, JobFileError):
        assert str(outcome).startswith(f"{path}: ")
        assert "\n" not in str(outcome)
    else:
        assert outcome.input.is_file()


SAFETY = """\
[safety]
current = "data/current.csv"
fill_from_current = true
allow_wipe = false
skip_unchanged = true
rollback = "out/rollback.parquet"
canary = 5
error_budget = "5%"
"""


def test_safety_keys_load_with_paths_beside_the_job(tmp_path: Path) -> None:
    """[safety] current/fill_from_current/.../error_budget are read; paths beside the job file."""
    path = write_job(tmp_path, minimal(SAFETY))
    (tmp_path / "data" / "current.csv").write_text("routing_id\n1\n")
    loaded = load_job(path)
    assert loaded.get("current") == tmp_path / "data" / "current.csv"
    assert loaded.get("rollback") == tmp_path / "out" / "rollback.parquet"
    switches = ("fill_from_current", "allow_wipe", "skip_unchanged")
    assert [loaded.get(name) for name in switches] == [True, False, True]
    assert loaded.get("canary") == 5
    assert loaded.get("error_budget") == ErrorBudget(percent=5.0)
    settings = resolve_run_settings({}, loaded, {})
    assert settings.current == loaded.get("current")
    assert settings.error_budget == ErrorBudget(percent=5.0)
    count = load_job(write_job(tmp_path, minimal("[safety]\nerror_budget = 10\n"), name="c.toml"))
    assert count.get("error_budget") == ErrorBudget(count=10)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('current = "data/none.csv"', "key [safety].current: file"),
        ("current = 5", "key [safety].current: expected a string"),
        ("fill_from_current = true", "key [safety].fill_from_current: needs [safety].current"),
        ('rollback = "rb.csv"', "key [safety].rollback: needs [safety].current"),
        ('canary = "5"', "key [safety].canary: expected a whole number"),
        ("canary = 0", "key [safety].canary: expected a whole number"),
        ('error_budget = "lots"', "key [safety].error_budget: error budget 'lots'"),
        ("error_budget = 2.5", "key [safety].error_budget: expected"),
        ("skip_unchanged = 1", "key [safety].skip_unchanged: expected true or false"),
        ("canry = 5", "did you mean canary?"),
    ],
)
def test_bad_safety_keys_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    """Each bad [safety] value is one JobFileError naming the file and the key."""
    path = write_job(tmp_path, minimal(f"[safety]\n{text}\n"))
    with pytest.raises(JobFileError) as caught:
        load_job(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_rollback_over_the_input_is_refused(tmp_path: Path) -> None:
    """[safety].rollback naming the job's input or snapshot would destroy it: refused."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "current.csv").write_text("routing_id\n1\n")
    for target in ("data/changes.csv", "data/current.csv"):
        body = f'[safety]\ncurrent = "data/current.csv"\nrollback = "{target}"\n'
        path = write_job(tmp_path, minimal(body))
        with pytest.raises(JobFileError, match=r"key \[safety\]\.rollback: .* name another file"):
            load_job(path)
