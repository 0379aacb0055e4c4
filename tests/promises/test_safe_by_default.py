"""Safe by default against a real host (issue 25): real processes, a non-loopback HTTPS name.

The update replaces the whole record, so a run or retry to a real host sends nothing until the
operator has said how that is handled: a snapshot (``--current``) or ``--rows-are-complete``.
The host here is ``api.reroute.test``: a sandbox on 127.0.0.1 with a certificate for that name
from a test CA (trustme), reached through a hosts mapping in the child process (a
``sitecustomize`` on its PYTHONPATH: the name resolves to 127.0.0.1, nothing asks any DNS).
To reroute it is a real host: not loopback, not the embedded sandbox.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from batch.journal.db import journal_path
from batch.journal.record import remembered
from batch.sandbox import RunningSandbox, SandboxConfig, Tls, generate_api_key, serve_in_thread
from tests.cli.test_run import HEADER, write_input
from tests.promises.test_refusals import left_behind, outcomes

pytestmark = pytest.mark.slow

HOST = "api.reroute.test"
# The child's hosts mapping: HOST is 127.0.0.1 (as an /etc/hosts line would say).
HOSTS_MAPPING = f"""\
import socket

_lookup = socket.getaddrinfo


def _mapped(host, *args, **kwargs):
    named = host.decode() if isinstance(host, bytes) else host  # anyio passes it encoded
    return _lookup("127.0.0.1" if named == {HOST!r} else host, *args, **kwargs)


socket.getaddrinfo = _mapped
"""


@dataclass
class RealHost:
    """A sandbox that reroute sees as a real host, and how to run reroute against it."""

    sandbox: RunningSandbox
    env: dict[str, str]
    cwd: Path

    @property
    def base_url(self) -> str:
        return f"https://{HOST}:{self.sandbox.port}/api/v2"

    def reroute(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m batch ARGS`` in a child process (stdin not a terminal: nothing asked)."""
        return subprocess.run(
            [sys.executable, "-m", "batch", *args], cwd=self.cwd, env=self.env,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def run(self, source: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.reroute("run", str(source), "--base-url", self.base_url, "--results",
                            str(out), "--rate", "200/s", "--no-report", *extra)  # fmt: skip


@pytest.fixture
def real_host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RealHost]:
    """``real_host``; parametrize indirectly with a dict of SandboxConfig fields (a script)."""
    ca = trustme.CA(organization_name="Reroute Test CA")
    cert = ca.issue_cert(HOST)
    chain, key, ca_pem = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_pem.write_to_path(str(key))
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    ca.cert_pem.write_to_path(str(ca_pem))
    hosts = tmp_path / "hosts"
    hosts.mkdir()
    (hosts / "sitecustomize.py").write_text(HOSTS_MAPPING)
    fields = getattr(request, "param", {})
    config = SandboxConfig(api_key=generate_api_key(), rate_limit=None, max_concurrent=None,
                           **fields)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.pop("REROUTE_BASE_URL", None)
    env |= {"PYTHONPATH": str(hosts), "SSL_CERT_FILE": str(ca_pem),
            "VOCOBASE_API_KEY": config.api_key}  # fmt: skip
    with serve_in_thread(config, tls=Tls(chain, key)) as sandbox:
        yield RealHost(sandbox, env, tmp_path)


def snapshot(path: Path, *lines: str) -> Path:
    path.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    return path


def test_no_snapshot_and_no_statement_sends_nothing(real_host: RealHost, tmp_path: Path) -> None:
    """A sheet run against a real host with neither a snapshot nor the statement: exit 2, one
    message naming both ways and the plan command, 0 requests (not even the account check's
    GETs), nothing made; with either one, the same sheet runs."""
    source, out = write_input(tmp_path / "in.csv", 3), tmp_path / "out.csv"
    refused = real_host.run(source, out)
    assert refused.returncode == 2, refused.stderr
    message = refused.stderr.strip()
    assert message.count("\n") == 0, message
    assert f"{HOST} is a real host and the update replaces the whole record" in message
    assert "--current SNAPSHOT" in message
    assert "--rows-are-complete" in message
    assert "[safety].rows_are_complete = true" in message
    # The plan command as this process was started (python -m batch here: batch.invoked).
    assert f"-m batch plan {source} --current SNAPSHOT" in message
    assert real_host.sandbox.stats()["total"] == 0
    assert real_host.sandbox.stats()["lists"] == {}
    assert left_behind(out) == []
    assert not out.exists()

    stated = real_host.run(source, out, "--rows-are-complete")
    assert stated.returncode == 0, stated.stderr
    assert outcomes(out) == ["succeeded"] * 3
    # Another sheet at that results path is a new run: the statement was about the other one.
    source.write_text(source.read_text().replace("1003,1,2,1,503", "1003,1,2,1,9"))
    new_sheet = real_host.run(source, out)
    assert new_sheet.returncode == 2, new_sheet.stderr
    assert "--rows-are-complete" in new_sheet.stderr
    assert real_host.sandbox.stats()["total"] == 3

    current = snapshot(tmp_path / "current.csv", "1001,1,2,1,501,x", "1002,1,2,1,9,x",
                       "1003,1,2,1,503,x")  # fmt: skip
    judged = real_host.run(source, tmp_path / "judged.csv", "--current", str(current))
    assert judged.returncode == 0, judged.stderr
    assert real_host.sandbox.stats()["total"] == 6


@pytest.mark.parametrize("real_host", [{"script": {1002: ("500",)}}], indirect=True)
def test_the_statement_holds_for_the_runs_resume_and_retry(
    real_host: RealHost, tmp_path: Path
) -> None:
    """--rows-are-complete said once: the run's log line says what happens; its resume and its
    retry go on without the flag; a resume that would change the choice is refused."""
    source, out = write_input(tmp_path / "in.csv", 3), tmp_path / "out.csv"
    extra = ("--concurrency", "1", "--max-attempts", "1", "--canary", "2")
    first = real_host.run(source, out, "--rows-are-complete", *extra)
    assert first.returncode == 3, first.stderr  # the canary's row 2 failed
    assert (
        f"3 records to replace on {HOST} at 200/s (concurrency 1), about 1s: no snapshot, so how "
        "many of them change is not known; 3 of them send no connection_id (any the record "
        "holds is cleared); no rollback file (it needs --current)"
    ) in first.stderr
    assert outcomes(out) == ["succeeded", "failed", "not_attempted"]

    current = snapshot(tmp_path / "current.csv", "1001,1,2,1,501,x", "1002,1,2,1,502,x",
                       "1003,1,2,1,503,x")  # fmt: skip
    changed = real_host.run(source, out, *extra, "--current", str(current))
    assert changed.returncode == 2, changed.stderr
    assert "the snapshot (--current) file's content" in changed.stderr
    assert real_host.sandbox.stats()["total"] == 2

    resumed = real_host.run(source, out, *extra)  # no flag: the run said it
    assert resumed.returncode == 1, resumed.stderr
    assert f"1 record to replace on {HOST}" in resumed.stderr
    assert outcomes(out) == ["succeeded", "failed", "succeeded"]

    retried = real_host.reroute("retry", str(out), "--no-report")
    assert retried.returncode == 0, retried.stderr
    assert f"1 record to replace on {HOST}" in retried.stderr
    assert "each with the request the results file recorded; no rollback file" in retried.stderr
    assert outcomes(out) == ["succeeded"] * 3
    assert real_host.sandbox.stats()["total"] == 4
    record = remembered(journal_path(out))
    assert record is not None
    assert record.replace_choice == "--rows-are-complete"


@pytest.mark.parametrize("real_host", [{"script": {1002: ("500",)}}], indirect=True)
def test_the_snapshot_holds_for_the_runs_resume_and_a_retry_elsewhere(
    real_host: RealHost, tmp_path: Path
) -> None:
    """--current: the line counts what the rows sent change against it, the rollback file
    named; a resume counts only the rows it sends; a retry into another results file, and a
    retry of that one, keep the choice."""
    source, out = write_input(tmp_path / "in.csv", 3), tmp_path / "out.csv"
    current = snapshot(tmp_path / "current.csv", "1001,1,2,1,501,x", "1002,1,2,1,9,x",
                       "1003,1,2,1,9,x")  # fmt: skip
    rollback = tmp_path / "rollback.csv"
    args = ("--current", str(current), "--rollback", str(rollback), "--concurrency", "1",
            "--max-attempts", "1", "--canary", "2")  # fmt: skip
    first = real_host.run(source, out, *args)
    assert first.returncode == 3, first.stderr
    assert (
        f"3 records to replace on {HOST} at 200/s (concurrency 1), about 1s: 2 of them change "
        f"against {current}, 0 values cleared; rollback file: {rollback} (written before the "
        "first request)"
    ) in first.stderr
    resumed = real_host.run(source, out, *args)
    assert resumed.returncode == 1, resumed.stderr
    assert f"1 record to replace on {HOST} at 200/s (concurrency 1), about 1s: 1 of them" in (
        resumed.stderr
    )

    elsewhere = tmp_path / "second.csv"
    retried = real_host.reroute("retry", str(out), "--results", str(elsewhere), "--no-report")
    assert retried.returncode == 0, retried.stderr
    assert outcomes(elsewhere) == ["succeeded"] * 3
    record = remembered(journal_path(elsewhere))
    assert record is not None
    assert (record.kind, record.replace_choice) == ("retry", "--current")
    again = real_host.reroute("retry", str(elsewhere), "--results", str(tmp_path / "third.csv"),
                              "--no-report")  # fmt: skip
    assert again.returncode == 0, again.stderr  # nothing left to send, and not refused
    assert real_host.sandbox.stats()["total"] == 4


def test_a_job_file_says_it_with_its_key(real_host: RealHost, tmp_path: Path) -> None:
    """A job for a real host without [safety].rows_are_complete (or a snapshot) is refused like
    the sheet; with the key it runs."""
    write_input(tmp_path / "in.csv", 2)
    job = tmp_path / "job.toml"
    body = (f'input = "in.csv"\n[target]\nbase_url = "{real_host.base_url}"\n'
            '[pace]\nrate = "200/s"\n')  # fmt: skip
    job.write_text(body)
    refused = real_host.reroute("run", str(job), "--no-report")
    assert refused.returncode == 2, refused.stderr
    assert "[safety].rows_are_complete = true" in refused.stderr
    assert real_host.sandbox.stats()["total"] == 0
    job.write_text(body + "[safety]\nrows_are_complete = true\n")
    ran = real_host.reroute("run", str(job), "--no-report")
    assert ran.returncode == 0, ran.stderr
    assert real_host.sandbox.stats()["total"] == 2
