"""Refusals leave nothing behind, and the account check is part of the run's stop policy.

An invocation that sent nothing (refused by the account check, declined at the question, stopped
by a host that cannot answer) makes no journal and keeps no account lists: the same command, or
a corrected one, starts cleanly. A stop during the check (a signal, a name that does not
resolve, a certificate not trusted, a refused port, a key refused) ends as a stopped run: exit 3,
the results file written with every row ``not_attempted``, the lock released.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import trustme

from batch.journal.db import journal_path, log_path
from batch.journal.lock import lock_path_for
from batch.sandbox import SandboxBot, SandboxConfig, Tls, generate_api_key, serve_in_thread
from batch.send.accountfile import account_path
from tests.cli.test_run import invoke, write_input
from tests.conftest import StartSandbox

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LIVE_KEY = "rg_live_" + "c" * 40
HEADER = (
    "routing_id,for_inbound_call,for_outbound_call,status,connection_id,"
    "inbound_websocket_bot_id,inbound_sip_trunk_id,outbound_websocket_bot_id,outbound_sip_trunk_id"
)


def rows(path: Path, *lines: str) -> Path:
    path.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    return path


def left_behind(out: Path) -> list[str]:
    """The files a later invocation could read as a run, or reuse: none after a refusal."""
    names = [journal_path(out), log_path(journal_path(out)), account_path(out), lock_path_for(out)]
    return [p.name for p in names if p.exists()]


def outcomes(out: Path) -> list[str]:
    return pl.read_csv(out, infer_schema=False)["outcome"].to_list()


def bots(*status: int) -> tuple[SandboxBot, ...]:
    return tuple(SandboxBot(i, f"bot {i}", s) for i, s in enumerate(status, 1))


def check_run(base_url: str, source: Path, out: Path, *extra: str, key: str) -> Any:
    return invoke("run", str(source), "--base-url", base_url, "--results", str(out),
                  "--rate", "200/s", "--account-check", *extra, key=key)  # fmt: skip


# -- 1 to 4: an invocation that sent nothing leaves no run behind ------------------------------


def test_a_row_the_check_rejected_can_be_fixed_and_run(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """Issue 28 (1): the account check rejects a row; fixed, the same command runs (no
    "unfinished run" refusal), and the refused invocation left no journal or lists."""
    sandbox = start_sandbox(bots=bots(1, 1, 1))
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    rows(source, "11,1,3,1,,,,2,", "12,1,3,1,,,,9,")
    refused = check_run(sandbox.base_url, source, out, key=sandbox.api_key)
    assert refused.exit_code == 2, refused.output
    assert "the account check rejected 1 rows" in refused.output
    assert left_behind(out) == []
    assert not out.exists()

    rows(source, "11,1,3,1,,,,2,", "12,1,3,1,,,,3,")
    fixed = check_run(sandbox.base_url, source, out, key=sandbox.api_key)
    assert fixed.exit_code == 0, fixed.output
    assert outcomes(out) == ["succeeded", "succeeded"]
    assert sandbox.stats()["total"] == 2


def test_declined_then_edited_asks_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 28 (2): "no" at "Send them?", the sheet edited, the same command: asked again,
    not refused as an unfinished run; neither invocation leaves a journal."""
    monkeypatch.setattr("batch.cli.run_cmd.stdin_is_terminal", lambda: True)
    source, out = write_input(tmp_path / "in.csv", 3), tmp_path / "out.csv"
    args = ["run", str(source), "--base-url", "https://api.example.invalid/api/v2",
            "--no-account-check", "--rows-are-complete", "--results", str(out)]  # fmt: skip
    first = invoke(*args, key=LIVE_KEY, input="n\n")
    assert first.exit_code == 2, first.output
    assert "not confirmed" in first.stderr
    assert left_behind(out) == []

    write_input(source, 4)
    second = invoke(*args, key=LIVE_KEY, input="n\n")
    assert second.exit_code == 2, second.output
    assert "4 records to replace on api.example.invalid" in second.stderr
    assert "unfinished" not in second.stderr
    assert left_behind(out) == []


def test_lists_of_a_refused_check_are_not_reused(tmp_path: Path) -> None:
    """Issue 28 (3): refused because a bot is inactive; the bot activated, the same command
    reads the lists again and runs."""
    source, out = rows(tmp_path / "in.csv", "11,1,3,1,,,,2,"), tmp_path / "out.csv"
    key = generate_api_key()
    config = SandboxConfig(api_key=key, rate_limit=None, max_concurrent=None, bots=bots(1, 0))
    with serve_in_thread(config) as before:
        base_url, port = before.base_url, before.port
        refused = check_run(base_url, source, out, key=key)
        assert refused.exit_code == 2, refused.output
        assert "INACTIVE_BOT" in refused.output or "is inactive" in refused.output
    assert left_behind(out) == []
    config = SandboxConfig(api_key=key, rate_limit=None, max_concurrent=None, bots=bots(1, 1))
    with serve_in_thread(config, port=port) as after:  # the bot activated, the same address
        again = check_run(base_url, source, out, key=key)
        assert again.exit_code == 0, again.output
        assert after.stats()["lists"] == {"connections": 1, "bots": 1}
        assert after.stats()["total"] == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_base_url_typo_fixed_runs(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """Issue 28 (4): a wrong port in the base URL stops the check (exit 3, every row
    not_attempted, no journal); the corrected command is a new run, not "unfinished"."""
    sandbox = start_sandbox(bots=bots(1, 1))
    source, out = rows(tmp_path / "in.csv", "11,1,3,1,,,,2,", "12,1,3,1,,,,1,"), tmp_path / "o.csv"
    typo = f"http://127.0.0.1:{_free_port()}/api/v2"
    stopped = check_run(typo, source, out, key=sandbox.api_key)
    assert stopped.exit_code == 3, stopped.output
    assert "check the base URL" in stopped.output
    assert outcomes(out) == ["not_attempted", "not_attempted"]
    assert left_behind(out) == []

    fixed = check_run(sandbox.base_url, source, out, key=sandbox.api_key)
    assert fixed.exit_code == 0, fixed.output
    assert "unfinished" not in fixed.output
    assert outcomes(out) == ["succeeded", "succeeded"]


# -- 5: a host that can never answer, met by the check ---------------------------------------


@pytest.mark.usefixtures("no_dns")
def test_dns_failure_in_the_check_is_a_stop(tmp_path: Path) -> None:
    """Issue 28 (5): a name that does not resolve, met by the default account check of a real
    host: exit 3 (stopped, resumable), the results file written with every row not_attempted,
    no journal; the key is never shown."""
    source, out = write_input(tmp_path / "in.csv", 5), tmp_path / "out.csv"
    result = invoke("run", str(source), "--base-url", "https://api.vocobase.invalid/api/v2",
                    "--results", str(out), "--yes", "--rows-are-complete",
                    key=LIVE_KEY)  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "api.vocobase.invalid does not resolve" in result.output
    assert "fix your input" not in result.output
    assert "c" * 40 not in result.output
    assert outcomes(out) == ["not_attempted"] * 5
    assert left_behind(out) == []


@pytest.fixture
def untrusted(tmp_path: Path) -> Iterator[Any]:
    """A sandbox on HTTPS with a certificate from a CA nobody trusts."""
    ca = trustme.CA(organization_name="Untrusted Inspection CA")
    cert = ca.issue_cert("127.0.0.1")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key))
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    config = SandboxConfig(api_key=generate_api_key(), rate_limit=None, max_concurrent=None)
    with serve_in_thread(config, tls=Tls(chain, key)) as sandbox:
        yield sandbox


def test_untrusted_certificate_in_the_check_is_a_stop(untrusted: Any, tmp_path: Path) -> None:
    """Issue 28 (5): a certificate that does not verify, met by the account check: exit 3,
    results written (every row not_attempted), nothing sent, no journal."""
    source, out = write_input(tmp_path / "in.csv", 3), tmp_path / "out.csv"
    result = check_run(untrusted.base_url, source, out, key=untrusted.api_key)
    assert result.exit_code == 3, result.output
    assert "certificate" in result.output
    assert outcomes(out) == ["not_attempted"] * 3
    assert untrusted.stats()["total"] == 0
    assert left_behind(out) == []


def test_a_key_refused_in_the_check_is_a_stop(start_sandbox: StartSandbox, tmp_path: Path) -> None:
    """The key refused (401) while the lists are read: a stop as in the sending (exit 3,
    results written), not "fix your input"."""
    sandbox = start_sandbox(deny_status=401)
    source, out = write_input(tmp_path / "in.csv", 2), tmp_path / "out.csv"
    result = check_run(sandbox.base_url, source, out, key=sandbox.api_key)
    assert result.exit_code == 3, result.output
    assert "rejected the key" in result.output
    assert outcomes(out) == ["not_attempted"] * 2
    assert left_behind(out) == []


def test_a_stop_in_a_resumed_runs_check_keeps_what_succeeded(tmp_path: Path) -> None:
    """A resumed run stopped by its check (the host gone): the results file merges the run's
    journal (what succeeded stays succeeded); the next resume sends only what was left."""
    key = generate_api_key()
    source, out = write_input(tmp_path / "in.csv", 3), tmp_path / "out.csv"

    def config(**fields: Any) -> SandboxConfig:
        return SandboxConfig(api_key=key, rate_limit=None, max_concurrent=None, **fields)

    extra = ("--concurrency", "1", "--max-attempts", "1", "--canary", "2")
    with serve_in_thread(config(script={1002: ("500",)})) as first:
        base_url, port = first.base_url, first.port
        canary = check_run(base_url, source, out, *extra, key=key)
        assert canary.exit_code == 3, canary.output
    assert outcomes(out) == ["succeeded", "failed", "not_attempted"]
    # Nobody listens there now; the lists are read again (not those kept for the run).
    stopped = check_run(base_url, source, out, *extra, "--recheck-account", key=key)
    assert stopped.exit_code == 3, stopped.output
    assert "account check" in stopped.output
    assert outcomes(out) == ["succeeded", "failed", "not_attempted"]
    with serve_in_thread(config(), port=port) as back:
        resumed = check_run(base_url, source, out, *extra, key=key)
        assert resumed.exit_code == 1, resumed.output
        assert back.stats()["total"] == 1  # row 3 only: row 1 succeeded, row 2 is retry's
    assert outcomes(out) == ["succeeded", "failed", "succeeded"]


# -- 7: signals during the account check -----------------------------------------------------


class _Silent:
    """A loopback server that accepts connections and never answers (the check waits)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connected = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.connected.set()

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_check_is_a_graceful_stop(signum: int, tmp_path: Path) -> None:
    """Issue 28 (7): SIGTERM or Ctrl-C while the account check waits for its lists: exit 3,
    one message, the results file written (every row not_attempted), lock and journal log
    gone."""
    server = _Silent()
    source, out = write_input(tmp_path / "in.csv", 4), tmp_path / "out.csv"
    env = {**os.environ, "VOCOBASE_API_KEY": generate_api_key(), "REROUTE_BASE_URL": ""}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "batch", "run", str(source), "--base-url",
             f"http://127.0.0.1:{server.port}/api/v2", "--results", str(out),
             "--account-check", "--timeout", "60", "--no-report"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.connected.wait(30), "the check never connected"
        time.sleep(0.3)  # the GET is written and waits for its answer
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        server.close()
    assert proc.returncode == 3, (stdout, stderr)
    assert "during the account check" in stdout + stderr
    assert "Traceback" not in stderr
    assert outcomes(out) == ["not_attempted"] * 4
    assert left_behind(out) == []


# -- also seen: the archive keeps each run's own lists ----------------------------------------


def test_a_new_runs_fresh_lists_are_not_archived(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """A new input over a finished run with the check: the lists it reads stay beside the
    results file (the previous run's go to the archive with its results)."""
    sandbox = start_sandbox(bots=bots(1, 1, 1))
    source, out = rows(tmp_path / "in.csv", "11,1,3,1,,,,2,"), tmp_path / "out.csv"
    assert check_run(sandbox.base_url, source, out, key=sandbox.api_key).exit_code == 0
    first_lists = account_path(out).read_text()
    time.sleep(0.01)  # another read time
    rows(source, "11,1,3,1,,,,3,")
    second = check_run(sandbox.base_url, source, out, key=sandbox.api_key)
    assert second.exit_code == 0, second.output
    assert account_path(out).exists()
    assert account_path(out).read_text() != first_lists
    archived = list((tmp_path / "out.runs").glob(f"*/{account_path(out).name}"))
    assert [p.read_text() for p in archived] == [first_lists]


def test_a_stop_in_the_check_with_nothing_left_to_send_is_exit_1(tmp_path: Path) -> None:
    """A finished run with a failed row, run again with its lists read again from a host now
    gone: nothing is left to send, so the exit says how the run ended (1), never "stopped"."""
    key = generate_api_key()
    source, out = write_input(tmp_path / "in.csv", 2), tmp_path / "out.csv"
    config = SandboxConfig(api_key=key, rate_limit=None, max_concurrent=None,
                           script={1002: ("500",)})  # fmt: skip
    with serve_in_thread(config) as sandbox:
        base_url = sandbox.base_url
        first = check_run(base_url, source, out, "--max-attempts", "1", key=key)
        assert first.exit_code == 1, first.output
    again = check_run(base_url, source, out, "--max-attempts", "1", "--recheck-account", key=key)
    assert again.exit_code == 1, again.output
    assert outcomes(out) == ["succeeded", "failed"]
