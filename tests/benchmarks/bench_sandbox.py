"""Requests per second of the sandbox, limits and faults off (issue 3: goal >= 2,000/s).

    uv run python tests/benchmarks/bench_sandbox.py [--seconds 5] [--connections 32] [--tool auto]

The sandbox runs as `reroute sandbox` in its own process (as in a rehearsal; in-process it would
share the GIL with the load generator). The load comes from `wrk` when it is installed (Debian:
`apt-get install wrk`) or else from a small keep-alive HTTP/1.1 client written on raw anyio
sockets, so this works on a bare machine: httpx itself is slower than the server it would
measure. Every answer is checked to be a 200.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import anyio

ROOT = Path(__file__).resolve().parents[2]
KEY = "rg_test_benchmark"
BODY = json.dumps({"for_inbound_call": 1, "for_outbound_call": 4, "status": 1}).encode()
GOAL = 2000.0


def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "batch", "sandbox", "--port", "0", "--api-key", KEY]
    command += ["--rate-limit", "off", "--max-concurrent", "off"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip().startswith("base URL"):
            return process, line.split()[2]
    raise SystemExit("the sandbox did not start")


def request_bytes(host: str, port: int, path: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    )
    return head.encode() + BODY


async def python_load(base_url: str, seconds: float, connections: int) -> tuple[int, float]:
    """Keep-alive connections, one request at a time each; returns (answers, elapsed)."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    done = 0
    deadline = 0.0

    async def worker(index: int) -> None:
        nonlocal done
        routing_id = index * 1_000_000
        async with await anyio.connect_tcp(host, port) as stream:
            buffer = b""
            while time.perf_counter() < deadline:
                routing_id += 1
                path = f"{parts.path}/voicelink/call-routing/{routing_id}"
                await stream.send(request_bytes(host, port, path))
                while b"\r\n\r\n" not in buffer:
                    buffer += await stream.receive()
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise SystemExit(f"unexpected answer: {head[:60]!r}")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(buffer) < length:
                    buffer += await stream.receive()
                buffer = buffer[length:]
                done += 1

    start = time.perf_counter()
    deadline = start + seconds
    async with anyio.create_task_group() as tg:
        for index in range(1, connections + 1):
            tg.start_soon(worker, index)
    return done, time.perf_counter() - start


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "%s/voicelink/call-routing/" .. counter)
end
done = function(summary, latency, requests)
  io.write(string.format("NON2XX %%d\\n", summary.errors.status))
end
"""


def wrk_load(wrk: str, base_url: str, seconds: float, connections: int) -> tuple[int, float]:
    path = urlsplit(base_url).path
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % (BODY.decode(), KEY, path))
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", script.name, base_url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    Path(script.name).unlink()
    total = int(next(ln for ln in out.splitlines() if "requests in" in ln).split()[0])
    bad = int(next(ln for ln in out.splitlines() if ln.startswith("NON2XX")).split()[1])
    if bad:
        raise SystemExit(f"{bad} answers were not 2xx:\n{out}")
    return total, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args()
    wrk = shutil.which("wrk") if args.tool in ("auto", "wrk") else None
    if args.tool == "wrk" and wrk is None:
        raise SystemExit("wrk is not installed (apt-get install wrk), use --tool python")
    process, base_url = start_sandbox()
    try:
        if wrk:
            tool = "wrk"
            answers, elapsed = wrk_load(wrk, base_url, args.seconds, args.connections)
        else:
            tool = "python (raw anyio sockets)"
            answers, elapsed = anyio.run(python_load, base_url, args.seconds, args.connections)
    finally:
        process.terminate()
        process.wait(timeout=20)
    rate = answers / elapsed
    verdict = "meets" if rate >= GOAL else "MISSES"
    print(
        f"sandbox: {answers} answers (all 200) in {elapsed:.1f} s = {rate:,.0f} req/s "
        f"with {args.connections} keep-alive connections via {tool}; "
        f"{verdict} the goal of {GOAL:,.0f} req/s"
    )
    sys.exit(0 if rate >= GOAL else 1)


if __name__ == "__main__":
    main()
