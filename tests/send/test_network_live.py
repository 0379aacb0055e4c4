"""The network as it is, over real loopback sockets: HTTPS trusted and not, a refused port, a name
that does not resolve (simulated), a proxy in the environment, and a host that goes away."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import polars as pl
import pytest
import trustme
from typer.testing import CliRunner

from batch.cli import app
from batch.model import Call, Outcome
from batch.sandbox import SandboxConfig, Tls, generate_api_key, serve_in_thread
from batch.send.client import Network, SendPolicy, build_client
from batch.send.issuer import issuer_name, presented_issuer
from batch.send.limiter import Limiter
from batch.send.outage import Breaker, HostState
from batch.send.sender import Sender
from batch.settings import Rate
from tests.cli.test_run import write_input

pytestmark = pytest.mark.slow

CALL = Call(row=1, routing_id=5, body='{"for_inbound_call":1,"for_outbound_call":4,"status":1}')
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="Example Corp Inspection")


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> tuple[Tls, Path]:
    """A certificate for 127.0.0.1 issued by a private CA, and that CA's PEM file."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key, ca_pem = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_pem.write_to_path(str(key))
    with chain.open("wb") as out:
        for blob in cert.cert_chain_pems:
            out.write(blob.bytes())
    ca.cert_pem.write_to_path(str(ca_pem))
    return Tls(chain, key), ca_pem


def sandbox_config(key: str | None = None) -> SandboxConfig:
    return SandboxConfig(api_key=key or generate_api_key(), rate_limit=None, max_concurrent=None)


def invoke(*args: str, key: str = "", **env: str) -> Any:
    unset = ("REROUTE_BASE_URL", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY",
             "ALL_PROXY", "NO_PROXY")  # fmt: skip
    base = {"VOCOBASE_API_KEY": key} | dict.fromkeys(unset, "") | {n.lower(): "" for n in unset}
    return CliRunner().invoke(app, list(args), env={**base, **env})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def outcomes(path: Path) -> dict[str, int]:
    frame = pl.read_csv(path, infer_schema=False)
    return {str(k): int(v) for k, v in frame["outcome"].value_counts().iter_rows()}


# -- TLS ---------------------------------------------------------------------------------------


async def test_https_with_a_private_ca_trusted_through_ssl_cert_file(
    tls_files: tuple[Tls, Path],
) -> None:
    """A real HTTPS exchange succeeds when the private CA is given (SSL_CERT_FILE's value)."""
    tls, ca_pem = tls_files
    config = sandbox_config()
    with serve_in_thread(config, tls=tls) as sandbox:
        assert sandbox.base_url.startswith("https://")
        client = build_client(sandbox.base_url, config.api_key, timeout=10, concurrency=1,
                              network=Network(ca_file=str(ca_pem)))  # fmt: skip
        async with client:
            result = await Sender(client, Limiter(Rate(10, 1)), SendPolicy()).send(CALL)
    assert result is not None
    assert result.outcome is Outcome.SUCCEEDED


async def test_untrusted_certificate_stops_at_once_naming_the_fix(
    tls_files: tuple[Tls, Path],
) -> None:
    """Without the CA, the handshake fails once, the host is gone (fatal) and the row is
    resendable, its message saying how to trust a private CA."""
    tls, _ = tls_files
    config = sandbox_config()
    with serve_in_thread(config, tls=tls) as sandbox:
        breaker = Breaker(max_outage=900)
        async with build_client(sandbox.base_url, config.api_key, timeout=10,
                                concurrency=1) as client:  # fmt: skip
            sender = Sender(
                client, Limiter(Rate(10, 1)), SendPolicy(), breaker=breaker,
                issuer=presented_issuer,
            )  # fmt: skip
            result = await sender.send(CALL)
            assert await sender.send(Call(row=2, routing_id=6, body=CALL.body)) is None
    assert result is not None
    assert (result.outcome, result.error_code, result.attempts) == (
        Outcome.FAILED, "HOST_UNREACHABLE", 1,
    )  # fmt: skip
    assert "SSL_CERT_FILE" in result.error_message
    assert "issued by" in result.error_message
    assert "Example Corp Inspection" in result.error_message  # the CA to ask IT for
    assert not result.decided
    assert breaker.state is HostState.GONE
    assert sandbox.stats()["total"] == 0


def test_run_against_an_untrusted_certificate_stops_with_exit_3(
    tls_files: tuple[Tls, Path], tmp_path: Path
) -> None:
    """`reroute run` to HTTPS with an untrusted CA: exit 3 within seconds, nothing else sent,
    the cause and the fix said once; with SSL_CERT_FILE the same command resumes and finishes."""
    tls, ca_pem = tls_files
    config = sandbox_config()
    source, out = write_input(tmp_path / "in.csv", 60), tmp_path / "out.csv"
    with serve_in_thread(config, tls=tls) as sandbox:
        args = ["run", str(source), "--base-url", sandbox.base_url, "--results", str(out),
                "--rate", "50/s", "--yes"]  # fmt: skip
        began = time.monotonic()
        first = invoke(*args, key=config.api_key)
        assert first.exit_code == 3, first.output
        assert time.monotonic() - began < 10
        assert "SSL_CERT_FILE" in first.output
        assert "to resume" in first.output
        counts = outcomes(out)
        assert counts.get("not_attempted", 0) >= 56
        assert counts.get("failed", 0) <= 4
        assert config.api_key not in first.output
        again = invoke(*args, key=config.api_key, SSL_CERT_FILE=str(ca_pem))
        assert again.exit_code == 0, again.output
        assert outcomes(out) == {"succeeded": 60}


# -- hosts that can never answer ---------------------------------------------------------------


def test_refused_port_stops_within_seconds(tmp_path: Path) -> None:
    """Nothing listens on the port and nothing has answered: exit 3 at once, rows resendable."""
    source, out = write_input(tmp_path / "in.csv", 200), tmp_path / "out.csv"
    url = f"http://127.0.0.1:{free_port()}/api/v2"
    began = time.monotonic()
    result = invoke("run", str(source), "--base-url", url, "--results", str(out), "--rate",
                    "20/s", key="rg_test_" + "a" * 40)  # fmt: skip
    assert result.exit_code == 3, result.output
    assert time.monotonic() - began < 10
    assert "no request of this run has been answered" in result.output
    counts = outcomes(out)
    assert counts.get("not_attempted", 0) >= 196
    frame = pl.read_csv(out, infer_schema=False).filter(pl.col("outcome") == "failed")
    assert set(frame["error_code"]) <= {"HOST_UNREACHABLE"}


@pytest.mark.usefixtures("no_dns")
def test_unresolvable_host_stops_within_seconds(tmp_path: Path) -> None:
    """A base URL whose name does not resolve (the lookup simulated: EAI_NONAME, nothing asked
    of any DNS): exit 3, a few requests at most, the message names the host and the fix."""
    source, out = write_input(tmp_path / "in.csv", 500), tmp_path / "out.csv"
    began = time.monotonic()
    result = invoke("run", str(source), "--base-url", "https://api.vocobase.invalid/api/v2",
                    "--results", str(out), "--rate", "50/s", "--yes", "--no-account-check",
                    "--rows-are-complete", key="rg_live_" + "b" * 40)  # fmt: skip
    assert result.exit_code == 3, result.output
    assert time.monotonic() - began < 10
    assert "api.vocobase.invalid does not resolve" in result.output
    assert "typo" in result.output
    assert "b" * 40 not in result.output
    counts = outcomes(out)
    assert counts.get("not_attempted", 0) >= 496


# -- proxies -----------------------------------------------------------------------------------


def test_a_proxy_in_the_environment_leaves_the_sandbox_run_working(tmp_path: Path) -> None:
    """HTTP(S)_PROXY pointing at a dead proxy: `run --sandbox` still sends straight to loopback."""
    dead = f"http://127.0.0.1:{free_port()}"
    out = tmp_path / "out.csv"
    result = invoke("run", str(REPO / "samples" / "routing-changes.csv"), "--sandbox",
                    "--results", str(out), HTTP_PROXY=dead, HTTPS_PROXY=dead,
                    http_proxy=dead, https_proxy=dead)  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    assert "CONNECTION_ERROR" not in result.output
    assert "HOST_UNREACHABLE" not in result.output


async def test_real_hosts_go_through_the_proxy_named_in_errors() -> None:
    """A non-loopback host goes through the configured proxy (a loopback stand-in here, so
    nothing leaves the machine); NO_PROXY and loopback go straight."""
    seen: list[bytes] = []

    async def proxy(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            seen.append(await stream.receive())
            body = b'{"success":true,"data":{"id":5}}'
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                              b"Connection: close\r\n\r\n%s" % (len(body), body))  # fmt: skip

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    network = Network(http_proxy=f"http://user:secret@127.0.0.1:{port}", no_proxy="internal.test")
    assert network.proxy_for("http://127.0.0.1:9/x") is None
    assert network.proxy_for("http://api.internal.test/x") is None
    assert network.via("http://api.example.test/x") == f"through the proxy http://127.0.0.1:{port}"
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, proxy)
        async with build_client("http://api.example.test/api/v2", None, timeout=5,
                                concurrency=1, network=network) as client:  # fmt: skip
            result = await Sender(client, Limiter(Rate(10, 1)), SendPolicy()).send(CALL)
        tasks.cancel_scope.cancel()
    assert result is not None
    assert result.outcome is Outcome.SUCCEEDED
    assert seen
    assert seen[0].startswith(b"POST http://api.example.test/api/v2/")


# -- a host that goes away and comes back --------------------------------------------------------


@pytest.fixture
def process_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.pop("REROUTE_BASE_URL", None)
    return env


def start_run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "batch", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_outage_costs_no_row_its_outcome(tmp_path: Path, process_env: dict[str, str]) -> None:
    """A real run whose server goes away for 3 s and comes back on the same port: every row
    succeeds, exit 0, and the outage costs a handful of requests, not rows."""
    key = generate_api_key()
    port = free_port()
    source, out = write_input(tmp_path / "in.csv", 120), tmp_path / "out.csv"
    args = ["run", str(source), "--base-url", f"http://127.0.0.1:{port}/api/v2", "--results",
            str(out), "--rate", "30/s", "--log-format", "json"]  # fmt: skip
    with serve_in_thread(sandbox_config(key), port=port) as first:
        proc = start_run(args, {**process_env, "VOCOBASE_API_KEY": key}, tmp_path)
        wait_for(lambda: first.stats()["total"] >= 30, 30)
        before = first.stats()["total"]
    time.sleep(3)
    with serve_in_thread(sandbox_config(key), port=port) as second:
        _stdout, stderr = proc.communicate(timeout=60)
        after = second.stats()["total"]
    assert proc.returncode == 0, stderr
    assert outcomes(out) == {"succeeded": 120}
    assert '"event": "host_down"' in stderr
    assert "next probe in" in stderr
    assert '"event": "host_back"' in stderr
    frame = pl.read_csv(out, infer_schema=False)
    sent = sum(int(a) for a in frame["attempts"])
    assert before + after <= sent <= 120 + 4 + 3 + 8  # in flight, threshold, probes


def test_max_outage_stops_resumably(tmp_path: Path, process_env: dict[str, str]) -> None:
    """A server gone for longer than --max-outage: exit 3, rows not sent are not_attempted,
    the resume command printed; the same command later sends the rest and nothing twice."""
    key = generate_api_key()
    port = free_port()
    source, out = write_input(tmp_path / "in.csv", 120), tmp_path / "out.csv"
    args = ["run", str(source), "--base-url", f"http://127.0.0.1:{port}/api/v2", "--results",
            str(out), "--rate", "30/s", "--max-outage", "3s", "--timeout", "2"]  # fmt: skip
    env = {**process_env, "VOCOBASE_API_KEY": key}
    with serve_in_thread(sandbox_config(key), port=port) as first:
        proc = start_run(args, env, tmp_path)
        wait_for(lambda: first.stats()["total"] >= 30, 30)
    began = time.monotonic()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr
    assert time.monotonic() - began < 3 + 2 + 5
    assert "longer than --max-outage" in stdout
    assert "to resume" in stdout
    counts = outcomes(out)
    assert counts.get("not_attempted", 0) > 0
    assert set(counts) <= {"succeeded", "not_attempted", "failed", "unknown"}
    done = pl.read_csv(out, infer_schema=False).filter(pl.col("outcome") == "succeeded")
    with serve_in_thread(sandbox_config(key), port=port) as second:
        again = subprocess.run([sys.executable, "-m", "batch", *args], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=60)  # fmt: skip
        resent = [int(r) for r in done["routing_id"] if second.record(int(r)) is not None]
    assert again.returncode == 0, again.stderr
    assert outcomes(out) == {"succeeded": 120}
    assert resent == []


def test_the_issuer_is_read_from_a_certificate(ca: trustme.CA) -> None:
    """The DER walk finds the issuing CA's name; damaged bytes give None, never an error."""
    der = ssl.PEM_cert_to_DER_cert(ca.issue_cert("127.0.0.1").cert_chain_pems[0].bytes().decode())
    assert "Example Corp Inspection" in (issuer_name(der) or "")
    assert issuer_name(der[:40]) is None
    assert issuer_name(b"") is None
    assert issuer_name(bytes(range(256))) is None
