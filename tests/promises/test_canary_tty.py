"""Promise of `reroute run --canary N` on a terminal: Ctrl-C at "Send the rest?" ends promptly.

A real `python -m batch run` process whose stdin, stdout and stderr are a pseudo-terminal (so
the canary asks its question), against a sandbox on 127.0.0.1. Ctrl-C is sent as SIGINT to
the process, as a terminal does to its foreground process.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest

from batch.sandbox import RunningSandbox

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FIRST_ID = 5000
QUESTION = b"Send the rest?"


def write_input(path: Path, n: int) -> Path:
    lines = ["routing_id,for_inbound_call,for_outbound_call,status,note"]
    lines += [f"{FIRST_ID + i},1,4,1,n{i}" for i in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class OnTerminal:
    """A process on a pseudo-terminal; ``output`` is everything it wrote so far."""

    proc: subprocess.Popen[bytes]
    master: int
    output: bytearray = field(default_factory=bytearray)

    def read_for(self, seconds: float) -> None:
        """Collect output for up to ``seconds`` (less if the process ends)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], min(left, 0.05))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the other side is closed
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    return
                self.output += chunk
            elif self.proc.poll() is not None:
                return

    def wait_for_text(self, text: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"never saw {text!r}; output:\n{self.text}")
            self.read_for(0.1)

    def exit_within(self, seconds: float) -> int | None:
        """The exit status if the process ends within ``seconds`` (output drained), else None."""
        deadline = time.monotonic() + seconds
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.read_for(0.1)
        self.read_for(0.2)
        return self.proc.poll()

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")


@contextmanager
def on_terminal(args: list[str], key: str) -> Iterator[OnTerminal]:
    master, slave = os.openpty()
    env = {**os.environ, "VOCOBASE_API_KEY": key, "PYTHONPATH": str(ROOT), "TERM": "xterm"}
    env.pop("REROUTE_BASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch", *args],
        cwd=ROOT,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    try:
        yield OnTerminal(proc, master)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        os.close(master)


def canary_args(sandbox: RunningSandbox, source: Path, out: Path) -> list[str]:
    return [
        "run", str(source), "--base-url", sandbox.base_url, "--results", str(out),
        "--rate", "50/s", "--canary", "2",
    ]  # fmt: skip


# Today: the question waits in a worker thread blocked reading the terminal; Ctrl-C stops the
# run but the process cannot exit (the interpreter waits for that thread) until Enter is
# pressed: still running 5 s later.
def test_ctrl_c_at_the_canary_question_exits_3_promptly(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Ctrl-C at "Send the rest?": exit 3 within seconds (no Enter), rest unsent, no traceback."""
    source, out = write_input(tmp_path / "in.csv", 6), tmp_path / "out.csv"
    with on_terminal(canary_args(live_sandbox, source, out), live_sandbox.api_key) as term:
        term.wait_for_text(QUESTION, timeout=20)
        term.proc.send_signal(signal.SIGINT)
        status = term.exit_within(5.0)
        assert status is not None, f"still running 5 s after Ctrl-C:\n{term.text}"
        assert status == 3, term.text
        assert "Traceback" not in term.text
    assert live_sandbox.stats()["total"] == 2
    outcomes = pl.read_csv(out, infer_schema=False)["outcome"].to_list()
    assert outcomes == ["succeeded"] * 2 + ["not_attempted"] * 4


# Today: the second Ctrl-C lands in the interpreter's shutdown, which is waiting for the
# question's thread: a KeyboardInterrupt traceback from threading._shutdown is printed.
def test_second_ctrl_c_at_the_canary_question_prints_no_traceback(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Two Ctrl-C at "Send the rest?": exit 3, no threading._shutdown traceback, rest unsent."""
    source, out = write_input(tmp_path / "in.csv", 6), tmp_path / "out.csv"
    with on_terminal(canary_args(live_sandbox, source, out), live_sandbox.api_key) as term:
        term.wait_for_text(QUESTION, timeout=20)
        term.proc.send_signal(signal.SIGINT)
        term.read_for(0.5)
        if term.proc.poll() is None:
            term.proc.send_signal(signal.SIGINT)
        status = term.exit_within(5.0)
        assert status is not None, f"still running 5 s after two Ctrl-C:\n{term.text}"
        assert "Traceback" not in term.text, term.text
        assert "_shutdown" not in term.text, term.text
        assert status == 3, term.text
    assert live_sandbox.stats()["total"] == 2


def test_ctrl_c_held_down_at_the_canary_question_still_exits_3(
    live_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Ctrl-C pressed again and again, every 20 ms from the question to the process's very end
    (its summary, its report, the interpreter shutting down): exit 3, never killed by the
    signal (-2), no traceback, the rest unsent."""
    source, out = write_input(tmp_path / "in.csv", 6), tmp_path / "out.csv"
    with on_terminal(canary_args(live_sandbox, source, out), live_sandbox.api_key) as term:
        term.wait_for_text(QUESTION, timeout=20)
        deadline = time.monotonic() + 15
        while term.proc.poll() is None and time.monotonic() < deadline:
            term.proc.send_signal(signal.SIGINT)
            term.read_for(0.02)
        status = term.exit_within(5.0)
        assert status == 3, term.text
        assert "Traceback" not in term.text, term.text
    assert live_sandbox.stats()["total"] == 2
