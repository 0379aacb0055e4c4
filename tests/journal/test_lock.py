"""One run at a time: the lock beside the results file, across processes and after kill -9."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from batch.errors import InputFileError, LockedError
from batch.journal.lock import Holder, RunLock, lock_path_for

# A child process that takes the lock, says so, and holds it until its stdin closes.
HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from batch.journal.lock import RunLock
    with RunLock(Path(sys.argv[1])):
        print("locked", flush=True)
        sys.stdin.read()
    print("released", flush=True)
    """
)


@contextmanager
def holder_process(results: Path) -> Iterator[subprocess.Popen[str]]:
    """Start a process holding the lock for ``results``; it is gone when the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(results)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def test_lock_file_sits_beside_the_results() -> None:
    """The lock of out/x.results.csv is out/x.results.csv.lock."""
    assert lock_path_for(Path("out/x.results.csv")) == Path("out/x.results.csv.lock")


def test_lock_records_the_holder_and_cleans_up(tmp_path: Path) -> None:
    """While held, the file names this process; after release the file is gone."""
    results = tmp_path / "r.results.csv"
    clock = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
    with RunLock(results, clock=lambda: clock) as lock:
        assert lock.held
        assert lock.took_over is None
        holder = Holder.from_json(lock.path.read_text())
        assert holder == Holder(os.getpid(), socket.gethostname(), clock)
    assert not lock.held
    assert not lock.path.exists()


def test_second_lock_in_the_same_process_is_refused(tmp_path: Path) -> None:
    """Two RunLocks on one results file exclude each other even within one process."""
    results = tmp_path / "r.results.csv"
    with RunLock(results), pytest.raises(LockedError, match=f"pid {os.getpid()}"):
        RunLock(results).acquire()
    with RunLock(results) as again:  # free again once released
        assert again.held


def test_different_results_files_do_not_conflict(tmp_path: Path) -> None:
    """Runs writing different results files run side by side."""
    with RunLock(tmp_path / "a.csv") as a, RunLock(tmp_path / "b.csv") as b:
        assert a.held
        assert b.held


@pytest.mark.slow
def test_a_live_holder_in_another_process_is_named(tmp_path: Path) -> None:
    """A second run refuses at once, naming the holder's pid, host and start time."""
    results = tmp_path / "r.results.csv"
    with holder_process(results) as proc:
        with pytest.raises(LockedError) as info:
            RunLock(results).acquire()
        message = str(info.value)
        assert f"pid {proc.pid} on host {socket.gethostname()}, started 20" in message
        assert "r.results.csv is already being written by another reroute run" in message
        assert proc.stdin is not None
        proc.stdin.close()  # let it finish normally
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "released"
    with RunLock(results) as lock:
        assert lock.took_over is None  # a clean release leaves nothing to take over


@pytest.mark.slow
def test_a_lock_left_by_kill_9_is_taken_over(tmp_path: Path) -> None:
    """After the holder is killed with SIGKILL its lock is free and the takeover names it."""
    results = tmp_path / "r.results.csv"
    with holder_process(results) as proc:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert lock_path_for(results).read_text()  # the dead holder's details are still there
        with RunLock(results) as lock:
            assert lock.took_over is not None
            assert lock.took_over.pid == proc.pid
            mine = Holder.from_json(lock.path.read_text())
            assert mine is not None
            assert mine.pid == os.getpid()


def test_half_written_lock_file_still_refuses(tmp_path: Path) -> None:
    """A holder whose details are unreadable is still respected, and the message says so."""
    results = tmp_path / "r.results.csv"
    with RunLock(results) as lock:
        lock.path.write_text("{not json")
        with pytest.raises(LockedError, match="a process that is just starting"):
            RunLock(results).acquire()


def test_missing_results_folder_is_one_clear_error(tmp_path: Path) -> None:
    """A lock that cannot be created says which file and what to check."""
    with pytest.raises(InputFileError, match="results folder exists and is writable"):
        RunLock(tmp_path / "no-such-dir" / "r.csv").acquire()
