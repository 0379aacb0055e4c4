"""Only an API key is sent as the bearer, and a refused key's message names where it came from
(issue 28, item 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from batch.cli.app import app
from batch.errors import UsageError
from batch.sandbox import RunningSandbox, SandboxConfig, generate_api_key
from tests.conftest import StartSandbox

CI_TOKEN = "ghp_" + "Q7xZ2mL9vT4kR8nB1cW6yH3jD5fG0sA2eU"  # a CI token's shape, not a key
HEADER = "routing_id,for_inbound_call,for_outbound_call,status,outbound_sip_trunk_id"


def write_input(folder: Path, n: int = 3) -> Path:
    path = folder / "in.csv"
    rows = [f"{1000 + i},1,2,1,{500 + i}" for i in range(1, n + 1)]
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def write_job(folder: Path, base_url: str, variable: str) -> Path:
    write_input(folder)
    job = folder / "job.toml"
    job.write_text(
        f'input = "in.csv"\n[target]\nbase_url = "{base_url}"\napi_key_env = "{variable}"\n'
        "[safety]\nrows_are_complete = true\n"  # a real host: the rows are the records wanted
    )
    return job


def invoke(*args: str, env: dict[str, str]) -> Any:
    base = {"VOCOBASE_API_KEY": "", "REROUTE_BASE_URL": ""}
    return CliRunner().invoke(app, list(args), env={**base, **env})


def created(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} - {"in.csv", "job.toml", "key.txt"}


@pytest.mark.slow
def test_job_key_variable_holding_a_ci_token_is_refused(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """api_key_env naming a variable that holds a CI token: exit 2, nothing sent or created,
    the variable named and its value never shown."""
    job = write_job(tmp_path, live_sandbox.base_url, "SECRET_TOKEN")
    result = invoke("run", str(job), env={"SECRET_TOKEN": CI_TOKEN})
    assert result.exit_code == 2, result.output
    assert "SECRET_TOKEN" in result.stderr
    assert "does not hold an API key" in result.stderr
    assert CI_TOKEN not in result.output
    assert CI_TOKEN[:8] not in result.output
    assert live_sandbox.stats()["total"] == 0
    assert created(tmp_path) == set()


@pytest.mark.slow
@pytest.mark.parametrize("value", ["hunter2", "Bearer rg_live_abc123", "rg_live_", "rg_prod_x1"])
def test_default_variable_holding_no_key_is_refused(
    live_sandbox: RunningSandbox, tmp_path: Path, value: str
) -> None:
    """VOCOBASE_API_KEY holding something that is not a key: exit 2, nothing sent, named."""
    source = write_input(tmp_path)
    args = ["run", str(source), "--base-url", live_sandbox.base_url]
    result = invoke(*args, "--results", str(tmp_path / "out.csv"), env={"VOCOBASE_API_KEY": value})
    assert result.exit_code == 2, result.output
    assert "VOCOBASE_API_KEY does not hold an API key" in result.stderr
    assert value not in result.output.replace("rg_live_...", "")
    assert live_sandbox.stats()["total"] == 0
    assert created(tmp_path) == set()


@pytest.mark.slow
def test_key_file_holding_no_key_is_refused(live_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """--api-key-file whose content is not a key: exit 2, the file named, nothing sent."""
    source = write_input(tmp_path)
    key_file = tmp_path / "key.txt"
    key_file.write_text(CI_TOKEN + "\n")
    args = ["run", str(source), "--base-url", live_sandbox.base_url, "--api-key-file"]
    result = invoke(*args, str(key_file), "--results", str(tmp_path / "out.csv"), env={})
    assert result.exit_code == 2, result.output
    assert f"--api-key-file {key_file} does not hold an API key" in result.stderr
    assert CI_TOKEN not in result.output
    assert live_sandbox.stats()["total"] == 0


def test_sandbox_accepts_only_keys_reroute_sends() -> None:
    """The sandbox's generated key has the shape reroute sends; a key of another shape given
    with --api-key is refused, so a key the sandbox prints always works in a run."""
    from batch.secrets import is_api_key

    assert is_api_key(generate_api_key())
    for bad in ("secret", "rg_test_", "rg_test_has space", CI_TOKEN):
        with pytest.raises(UsageError):
            SandboxConfig(api_key=bad)
    SandboxConfig(api_key="rg_test_Rehearsal01")


@pytest.mark.slow
def test_sandbox_command_refuses_a_key_of_another_shape() -> None:
    """`reroute sandbox --api-key` with a value that is no test key: exit 2, value not shown."""
    result = CliRunner().invoke(app, ["sandbox", "--api-key", "hunter2hunter2", "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "hunter2hunter2" not in result.output


@pytest.mark.slow
def test_stop_after_401_names_the_jobs_key_variable(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """A 401 stop names the variable the job file took the key from, not VOCOBASE_API_KEY."""
    sandbox = start_sandbox(deny_status=401)
    job = write_job(tmp_path, sandbox.base_url, "ACME_ROUTING_KEY")
    result = invoke(
        "run", str(job), "--concurrency", "1", env={"ACME_ROUTING_KEY": sandbox.api_key}
    )
    assert result.exit_code == 3, result.output
    assert "check the key in ACME_ROUTING_KEY" in result.stdout
    assert "VOCOBASE_API_KEY" not in result.stdout


@pytest.mark.slow
def test_stop_after_401_names_the_key_file(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """A 401 stop of a run whose key came from --api-key-file names that file."""
    sandbox = start_sandbox(deny_status=401)
    source = write_input(tmp_path)
    key_file = tmp_path / "key.txt"
    key_file.write_text(sandbox.api_key)
    args = ["run", str(source), "--base-url", sandbox.base_url, "--concurrency", "1"]
    args += ["--api-key-file", str(key_file), "--results", str(tmp_path / "out.csv")]
    result = invoke(*args, env={})
    assert result.exit_code == 3, result.output
    assert f"check the key in --api-key-file {key_file.resolve()}" in result.stdout
    assert "VOCOBASE_API_KEY" not in result.stdout


@pytest.mark.slow
def test_preflight_401_names_the_jobs_key_variable(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """The account preflight refused with 401 (exit 3) names the job's key variable."""
    sandbox = start_sandbox(api_key=generate_api_key(), list_script=("401",))
    job = write_job(tmp_path, sandbox.base_url, "ACME_ROUTING_KEY")
    args = ["run", str(job), "--account-check", "--max-attempts", "1"]
    result = invoke(*args, env={"ACME_ROUTING_KEY": sandbox.api_key})
    assert "check the key in ACME_ROUTING_KEY" in result.output, result.output
    assert "VOCOBASE_API_KEY" not in result.output


def test_jobs_check_notes_a_key_variable_holding_no_key(tmp_path: Path) -> None:
    """`jobs check` says the job's key variable holds no API key (a run would be refused),
    naming the variable and never the value."""
    job = write_job(tmp_path, "https://api.vocobase.com/api/v2", "SECRET_TOKEN")
    env = {"SECRET_TOKEN": CI_TOKEN, "VOCOBASE_API_KEY": None, "REROUTE_BASE_URL": None}
    result = CliRunner().invoke(app, ["jobs", "check", str(job)], env=env)
    assert "SECRET_TOKEN does not hold an API key here" in result.output, result.output
    assert CI_TOKEN not in result.output
