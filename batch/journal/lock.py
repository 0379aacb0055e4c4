"""One run at a time: an exclusive lock file beside the results file.

Two processes writing the same results file and journal would send rows twice and garble both,
so ``reroute run`` holds ``<results>.lock`` for its whole life. The lock is the operating
system's own, taken through ``filelock`` (``flock(2)`` on Linux and macOS, ``LockFileEx`` on
Windows): the kernel releases it when the holder exits in any way, ``kill -9`` included, so a
lock left by a dead process is never honoured; the holder's pid, host and start time are written
into the file only so that a refused second run can say who holds it. (The lock is per machine:
two hosts sharing a results folder over a network share are not protected; run a job from one
scheduler.)

Windows' lock is mandatory and covers byte 0, which no other process may then read: the
holder's details start at byte 1, after a blank, so a refused run can still read them there.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from batch.errors import InputFileError, LockedError


def lock_path_for(results: Path) -> Path:
    """``out.results.csv`` -> ``out.results.csv.lock`` (beside the journal, ``.journal``)."""
    return results.with_name(results.name + ".lock")


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or held) a run lock, as written into the lock file."""

    pid: int
    host: str
    started_at: datetime

    def describe(self) -> str:
        started = self.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"pid {self.pid} on host {self.host}, started {started}"

    def to_json(self) -> str:
        return json.dumps(
            {"pid": self.pid, "host": self.host, "started_at": self.started_at.isoformat()}
        )

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        """The holder recorded in a lock file; None when empty or half-written."""
        try:
            data = json.loads(text)
            return cls(
                int(data["pid"]), str(data["host"]), datetime.fromisoformat(data["started_at"])
            )
        except (ValueError, KeyError, TypeError):
            return None


class RunLock:
    """Hold ``<results>.lock`` exclusively; refuse at once if a live process holds it.

    ``with RunLock(results) as lock:`` raises LockedError naming the holder when another live
    process (or another RunLock in this one) has it. ``lock.took_over`` names the process that
    died holding it (its details were still in the file), for a "taking over" log line.
    """

    def __init__(self, results: Path, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = lock_path_for(results)
        self.took_over: Holder | None = None
        self._clock = clock or (lambda: datetime.now(UTC))
        self._fd: int | None = None

    def acquire(self) -> Holder:
        """Take the lock and record this process in it; returns what was recorded."""
        if self._fd is not None:
            raise RuntimeError("RunLock is not reentrant")
        while True:
            fd = self._open()
            try:
                locked = lock_descriptor(fd, blocking=False)
            except BaseException:
                os.close(fd)
                raise
            if not locked:
                holder = Holder.from_json(_read_all(fd))
                os.close(fd)
                who = holder.describe() if holder else "a process that is just starting"
                raise LockedError(
                    f"{self.path.name[: -len('.lock')]} is already being written by another "
                    f"reroute run ({who}): wait for it to finish or stop it; "
                    f"lock file {self.path}"
                )
            # The previous holder may have unlinked the file between our open and our lock:
            # then we locked an orphan inode and must try again on the file that is there now.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        # A normal release empties and removes the file, so details still in it were left by a
        # holder that died (kill -9, power loss): the kernel freed its lock; we take over.
        self.took_over = Holder.from_json(_read_all(fd))
        me = Holder(os.getpid(), socket.gethostname(), self._clock())
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b" " + me.to_json().encode())  # byte 0 is Windows' lock byte: see above
        os.fsync(fd)
        self._fd = fd
        return me

    def release(self) -> None:
        """Remove the lock file and drop the lock (removal first: see acquire's inode check)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            except PermissionError:
                # Windows removes no file that is open: close it, then remove it unless another
                # run opened it meanwhile (that run's handle then refuses the removal: it stays).
                os.close(fd)
                fd = -1
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
        finally:
            if fd >= 0:
                os.close(fd)  # closing the last descriptor releases the lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _open(self) -> int:
        try:
            # Not inherited by children (PEP 446); O_BINARY: no newline translation on Windows.
            return os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        except OSError as exc:
            raise InputFileError(
                self.path,
                f"cannot create the run's lock file ({exc.strerror}): check that the results "
                "folder exists and is writable",
            ) from exc

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


@dataclass(frozen=True, slots=True)
class Peek:
    """What a look at a run lock found, without taking it (``reroute status``)."""

    held: bool | None  # None: cannot tell (the holder is on another host, no lock table)
    holder: Holder | None  # who holds it, or held it last (a holder that died leaves its details)


def peek(results: Path, *, lock_table: Path = Path("/proc/locks")) -> Peek:
    """Whether a live process holds the lock of ``results``, and who, without taking it.

    Taking it even for an instant would make a run starting at that moment refuse, naming
    nobody. So: on Windows the lock covers byte 0, which then cannot be read; on Linux the
    kernel's table of locks (``lock_table``) lists the file's inode; elsewhere a holder on
    this host is alive or not (its pid), one on another host cannot be told.
    """
    try:
        fd = os.open(lock_path_for(results), os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return Peek(False, None)  # a run removes its lock file when it ends
    except OSError:
        return Peek(None, None)
    try:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            text, byte0_locked = _read_rest(fd), False
        except OSError:  # Windows: another process holds byte 0
            os.lseek(fd, 1, os.SEEK_SET)
            text, byte0_locked = _read_rest(fd), True
        inode = os.fstat(fd)
    finally:
        os.close(fd)
    holder = Holder.from_json(text)
    if byte0_locked or sys.platform == "win32":
        return Peek(byte0_locked, holder)
    held = _in_lock_table(lock_table, inode)
    if held is None and holder is not None and holder.host == socket.gethostname():
        held = _alive(holder.pid)
    if held is None and holder is None:
        held = False  # an empty file: a run just released it (or is just starting)
    return Peek(held, holder)


def _in_lock_table(table: Path, inode: os.stat_result) -> bool | None:
    """Whether Linux's ``/proc/locks`` lists a lock on this inode; None without the table."""
    if sys.platform == "win32":  # no lock table (and no os.major there)
        return None
    try:
        text = table.read_text()
    except OSError:
        return None
    where = f"{os.major(inode.st_dev):02x}:{os.minor(inode.st_dev):02x}:{inode.st_ino}"
    # "1: FLOCK  ADVISORY  WRITE 4121 fe:00:2146744 0 EOF" ("->" marks a process waiting)
    return any(where in line.split() and "->" not in line for line in text.splitlines())


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (signal 0 only checks; never on Windows,
    where os.kill ends the process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OSError:
        return False
    return True


def lock_descriptor(fd: int, *, blocking: bool) -> bool:
    """The platform's exclusive lock on ``fd`` (False: another descriptor holds it). filelock is
    imported here, by the commands that take the lock, not by every command."""
    import filelock

    return filelock.lock_descriptor(fd, blocking=blocking)


def _read_all(fd: int) -> str:
    """The holder's details: the whole file, or from byte 1 on where another process holds
    byte 0 (Windows); a file written before the blank came in starts at byte 0."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return _read_rest(fd)
    except OSError:
        os.lseek(fd, 1, os.SEEK_SET)
        return _read_rest(fd)


def _read_rest(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")
