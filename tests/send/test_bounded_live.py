"""A server answering every update with a huge body: the run's memory and every file it keeps
stay bounded (issue 28, item 14). A real `reroute run` process against a real loopback server
whose bodies are generated as they are sent, never held whole."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "rg_live_HugeAnswerKeyNeverShown0123456789"
HUGE = 64 * 1024 * 1024
HEAD = b'{"success": false, "error": {"code": "WAF", "message": "blocked"}, "page": "'
TAIL = b'"}'
BLOCK = b"A" * 65536
ROWS = 8


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    size = HUGE  # per server, set by serve()
    chunked = False

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(self.size))
        self.end_headers()
        try:
            for part in self._body():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if self.chunked else part)
            if self.chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading: as it should

    def _body(self) -> Iterator[bytes]:
        yield HEAD
        left = self.size - len(HEAD) - len(TAIL)
        while left > 0:
            part = BLOCK if left >= len(BLOCK) else BLOCK[:left]
            left -= len(part)
            yield part
        yield TAIL

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def serve(size: int, *, chunked: bool) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"size": size, "chunked": chunked})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v2"
    finally:
        server.shutdown()
        server.server_close()


def run(base_url: str, folder: Path) -> tuple[int, int]:
    """`reroute run` of ROWS rows against ``base_url`` in a child process: its exit status and
    its peak memory (max RSS, bytes)."""
    folder.mkdir()
    source = folder / "in.csv"
    rows = [f"{1000 + i},1,2,1,{500 + i}" for i in range(1, ROWS + 1)]
    header = "routing_id,for_inbound_call,for_outbound_call,status,outbound_sip_trunk_id"
    source.write_text("\n".join([header, *rows]) + "\n")
    env = {**os.environ, "VOCOBASE_API_KEY": KEY, "PYTHONPATH": str(ROOT)}
    env.pop("REROUTE_BASE_URL", None)
    args = ["run", str(source), "--base-url", base_url, "--results", str(folder / "out.csv")]
    args += ["--rate", "100/s", "--concurrency", "4", "--max-attempts", "1", "--no-report"]
    child = subprocess.Popen(
        [sys.executable, "-m", "batch", *args], cwd=folder, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    return child.returncode, usage.ru_maxrss * scale


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "wait4"), reason="a child's peak memory needs os.wait4")
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_huge_answers_keep_memory_and_files_bounded(tmp_path: Path, chunked: bool) -> None:
    """Every update answered with 64 MiB of JSON: the process's peak memory stays within a
    few MiB of a run with small answers, and no file it writes grows with the answers."""
    small_body = len(HEAD) + 100 + len(TAIL)
    with serve(small_body, chunked=chunked) as url:
        code, baseline = run(url, tmp_path / "small")
    assert code == 1  # every row failed (a 200 without success: true), as expected
    with serve(HUGE, chunked=chunked) as url:
        code, peak = run(url, tmp_path / "huge")
    assert code == 1
    assert peak < baseline + 32 * 1024 * 1024, (peak, baseline)
    written = [p for p in (tmp_path / "huge").iterdir() if p.name != "in.csv"]
    assert written
    for path in written:
        assert path.stat().st_size < 1024 * 1024, path
    frame = pl.read_csv(tmp_path / "huge" / "out.csv", infer_schema=False)
    assert frame["outcome"].to_list() == ["failed"] * ROWS
    assert set(frame["error_code"]) == {"BAD_RESPONSE"}
    assert all(len(text) < 400 for text in frame["response"])
    assert all("[answer cut:" in text for text in frame["response"])
