"""Where the runs on one machine that use the same API key find each other (issue 29).

One folder per key and API host, named by a hash of both (never the key itself), in the user's
runtime folder (:func:`pace_root`)::

    <pace root>/<key id>/slots                  the key's schedule of slots (batch.send.slots)
    <pace root>/<key id>/runs/<pid>-<token>.run  one per run: who it is (JSON), locked while it
                                                lives

A run joins (:func:`join`) before its first request and leaves when it ends. Its membership
file is locked, with the operating system's lock, for as long as the process lives: a file
whose lock anyone can take belongs to a run that died (``kill -9`` included), and whoever sees
it first removes it. The first run to join finds nobody alive and starts the schedule afresh;
the last to leave removes it. ``reroute status`` lists the other runs on the key
(:func:`sharing`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from batch.send.slots import FileSlots, lock, unlock

_RUNS: Final = "runs"
_SLOTS: Final = "slots"
_SUFFIX: Final = ".run"
_STARTING: Final = 60.0  # an empty membership file younger than this is a run starting up
_STAT_EVERY: Final = 0.05  # seconds between two looks at the runs' folder's time of change
_SCAN_EVERY: Final = 1.0  # ... and between two reads of its membership files, changed or not
_BINARY: Final = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


def pace_root(env: Mapping[str, str], platform: str, home: Path) -> Path:
    """The folder of shared paces: ``REROUTE_RUNTIME_DIR`` when set; else the user's runtime
    folder on Linux (``$XDG_RUNTIME_DIR``, a tmpfs emptied at logout), or their cache folder
    (``$XDG_CACHE_HOME`` or ``~/.cache``; ``~/Library/Caches`` on macOS; ``%LOCALAPPDATA%`` on
    Windows), then ``reroute/pace``. ``env``: the environment, which the command line reads."""
    if chosen := env.get("REROUTE_RUNTIME_DIR", "").strip():
        return Path(chosen)
    if platform == "win32":
        local = env.get("LOCALAPPDATA", "").strip()
        return (Path(local) if local else home / "AppData" / "Local") / "reroute" / "pace"
    if platform == "darwin":
        return home / "Library" / "Caches" / "reroute" / "pace"
    if (runtime := env.get("XDG_RUNTIME_DIR", "").strip()) and Path(runtime).is_dir():
        return Path(runtime) / "reroute" / "pace"
    cache = env.get("XDG_CACHE_HOME", "").strip()
    return (Path(cache) if cache else home / ".cache") / "reroute" / "pace"


def key_id(key: str, base_url: str) -> str:
    """The folder name of a key at an API host: a hash of both, from which neither comes back
    (the key is a long random secret: no list of guesses reaches it)."""
    digest = hashlib.sha256(b"reroute pace 1\0" + base_url.encode() + b"\0" + key.encode())
    return digest.hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Member:
    """A run sharing a key's pace, as its membership file says."""

    pid: int
    host: str
    started_at: datetime
    results: str  # the run's results file (absolute)
    rate: str  # its --rate

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "started_at": self.started_at.isoformat()})

    @classmethod
    def from_json(cls, text: str) -> Member | None:
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), str(data["host"]),
                       datetime.fromisoformat(data["started_at"]), str(data["results"]),
                       str(data["rate"]))  # fmt: skip
        except (ValueError, KeyError, TypeError):
            return None

    @classmethod
    def me(cls, results: Path, rate: str) -> Member:
        return cls(os.getpid(), socket.gethostname(), datetime.now(UTC),
                   str(results.resolve()), rate)  # fmt: skip


class KeyShare:
    """This run's place among the runs on its key: its membership (held until :meth:`close`)
    and the key's schedule (``slots``)."""

    def __init__(self, folder: Path, me: Member, *, clock: Callable[[], float] = time.monotonic):
        self.folder = folder
        self.me = me
        runs = folder / _RUNS
        runs.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._path = runs / f"{me.pid}-{secrets.token_hex(4)}{_SUFFIX}"
        self._member = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _BINARY, 0o600)
        try:
            # A look from another run holds it for an instant; unlocked, it would pass for dead.
            if not lock(self._member, patience=1.0):
                raise OSError(f"{self._path}: cannot lock this run's membership")
            os.write(self._member, b" " + me.to_json().encode())  # byte 0: Windows' lock byte
            alone = not self.others()
            self._slots = _open_slots(folder / _SLOTS)
        except BaseException:
            self._drop_member()
            raise
        self.slots = FileSlots(self._slots, clock=clock)
        if alone:  # what a schedule holds now is a dead run's (or a reboot's: another clock)
            self.slots.reset(clock())
        self._company = not alone
        self._next_stat = self._next_scan = -float("inf")
        self._mtime = -1

    def company(self, now: float) -> bool:
        """Whether other runs share the key now; asked per request, so it looks at the runs'
        folder's time of change at most every 50 ms, and reads the memberships when it changed
        (a run came or went) and every second. ``now``: the caller's clock."""
        if now < self._next_stat:
            return self._company
        self._next_stat = now + _STAT_EVERY
        try:
            changed = os.stat(self.folder / _RUNS).st_mtime_ns
        except OSError:
            return self._company
        if changed != self._mtime or now >= self._next_scan:
            self._mtime, self._next_scan = changed, now + _SCAN_EVERY
            self._company = bool(self.others())
        return self._company

    def others(self) -> list[Member]:
        """The other runs on the key that are alive (the membership of a dead one is removed)."""
        return [m for path, m in _alive(self.folder) if path != self._path]

    def close(self) -> None:
        """Leave: the last run out removes the schedule; the membership goes."""
        if self._member < 0:
            return
        try:
            locked = lock(self._slots)
            try:
                if not self.others():
                    with contextlib.suppress(OSError):  # Windows keeps an open file: no harm
                        os.unlink(self.folder / _SLOTS)
            finally:
                if locked:
                    unlock(self._slots)
        finally:
            os.close(self._slots)
            self._drop_member()

    def _drop_member(self) -> None:
        fd, self._member = self._member, -1
        try:
            os.unlink(self._path)  # first, while locked: nobody takes it for a dead run's
        except OSError:
            os.close(fd)  # Windows removes no open file
            fd = -1
            with contextlib.suppress(OSError):
                os.unlink(self._path)
        finally:
            if fd >= 0:
                os.close(fd)

    def __enter__(self) -> KeyShare:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def join(root: Path, key: str, base_url: str, me: Member) -> KeyShare | None:
    """Join the runs on ``key`` at ``base_url`` under ``root``. None: the folder cannot be
    written (the run then paces alone, as before)."""
    try:
        return KeyShare(root / key_id(key, base_url), me)
    except OSError:
        return None


def sharing(root: Path, results: Path) -> list[Member] | None:
    """The other live runs on the key of the live run writing ``results``; None: no live run
    on this machine writes it (or it shares no key)."""
    target = str(results.resolve())
    try:
        folders = [p for p in root.iterdir() if p.is_dir()]
    except OSError:
        return None
    for folder in folders:
        members = _alive(folder)
        if any(m.results == target for _, m in members):
            return [m for _, m in members if m.results != target]
    return None


def _alive(folder: Path) -> list[tuple[Path, Member]]:
    """The live runs in ``folder``, by membership file; the files of dead runs are removed."""
    found: list[tuple[Path, Member]] = []
    try:
        paths = sorted((folder / _RUNS).glob(f"*{_SUFFIX}"))
    except OSError:
        return found
    for path in paths:
        member = _look(path)
        if member is not None:
            found.append((path, member))
    return found


def _look(path: Path) -> Member | None:
    """The run of a membership file if it is alive (its lock is held); a dead run's file is
    removed (an empty one only once it is old: its run may be starting)."""
    try:
        fd = os.open(path, os.O_RDWR | _BINARY)
    except OSError:
        return None  # gone meanwhile
    dead = False
    try:
        if lock(fd, patience=0.0):
            dead = True
            text = _read(fd)
            if not text.strip() and time.time() - os.fstat(fd).st_mtime < _STARTING:
                dead = False  # a run starting: it locks it in a moment
            unlock(fd)
            return None
        return Member.from_json(_read(fd))
    finally:
        os.close(fd)
        if dead:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _read(fd: int) -> str:
    """The membership, from byte 1 (byte 0 is the lock byte another process may hold)."""
    os.lseek(fd, 1, os.SEEK_SET)
    return os.read(fd, 4096).decode("utf-8", errors="replace")


def _open_slots(path: Path) -> int:
    """The schedule's file, open; never one a leaving run removed meanwhile."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _BINARY, 0o600)
        locked = lock(fd)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        finally:
            if locked:
                unlock(fd)
        if same:
            return fd
        os.close(fd)
