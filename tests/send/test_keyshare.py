"""Runs on one machine sharing a key's pace (issue 29): the schedule's file, the membership of
each run, the folder they live in. Two processes and a kill -9 are in test_keyshare_live.py."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from batch.send.keyshare import KeyShare, Member, join, key_id, pace_root, sharing
from batch.send.sharedlimiter import SharedLimiter
from batch.send.slots import STALE, FileSlots, SlotState
from batch.settings import Rate

KEY = "rg_live_S3cretKeyThatMustNeverLeak42"
URL = "https://api.vocobase.com/api/v2"


def member(tmp_path: Path, name: str, pid: int = 4242) -> Member:
    return Member(pid, "here", datetime.now(UTC), str((tmp_path / name).resolve()), "60/min")


def test_the_folder_is_named_by_a_hash_never_the_key() -> None:
    """The key's folder is a hash of the key and the host: stable, not the key, not a part
    of it, another for another host or key."""
    name = key_id(KEY, URL)
    assert name == key_id(KEY, URL)
    assert KEY not in name
    assert KEY[:8] not in name
    assert "S3cret" not in name
    assert name != key_id(KEY, "https://staging.example/api/v2")
    assert name != key_id(KEY + "x", URL)


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {"XDG_RUNTIME_DIR": "{tmp}"}, "{tmp}/reroute/pace"),
        ("linux", {"XDG_RUNTIME_DIR": "/no/such/dir"}, "{home}/.cache/reroute/pace"),
        ("linux", {"XDG_CACHE_HOME": "/c"}, "/c/reroute/pace"),
        ("darwin", {"XDG_RUNTIME_DIR": "{tmp}"}, "{home}/Library/Caches/reroute/pace"),
        ("win32", {"LOCALAPPDATA": "/L"}, "/L/reroute/pace"),
        ("win32", {}, "{home}/AppData/Local/reroute/pace"),
        ("linux", {"REROUTE_RUNTIME_DIR": "/mine", "XDG_RUNTIME_DIR": "{tmp}"}, "/mine"),
    ],
)
def test_the_pace_folder_on_each_system(
    tmp_path: Path, platform: str, env: dict[str, str], expected: str
) -> None:
    """The user's runtime folder on Linux (when it exists), their cache folder otherwise (and
    on macOS and Windows), REROUTE_RUNTIME_DIR before all."""
    home = tmp_path / "home"
    env = {k: v.format(tmp=tmp_path) for k, v in env.items()}
    got = pace_root(env, platform, home)
    assert got == Path(expected.format(tmp=tmp_path, home=home))


def test_the_schedule_file_is_one_for_every_reader(tmp_path: Path) -> None:
    """What one run writes under the lock, another reads: every field, bookings included."""
    path = tmp_path / "slots"
    a = os.open(path, os.O_RDWR | os.O_CREAT)
    b = os.open(path, os.O_RDWR)
    clock = [100.0]
    try:
        one, two = FileSlots(a, clock=lambda: clock[0]), FileSlots(b, clock=lambda: clock[0])
        with one.locked(100.0) as state:
            state.last_sent, state.not_before, state.paused_until = 99.0, 100.5, 101.0
            state.accepted = 7
            assert state.book(12345, 102.0, 100.0)
        with two.locked(100.0) as seen:
            assert (seen.last_sent, seen.not_before, seen.paused_until) == (99.0, 100.5, 101.0)
            assert seen.accepted == 7
            assert seen.booked == {12345: (102.0, 100.0)}
            assert seen.next_slot(100.0, 1.0, -1.0) == 103.0  # after the booking, its pace
    finally:
        os.close(a)
        os.close(b)


def test_a_slot_booked_by_a_run_that_died_is_dropped(tmp_path: Path) -> None:
    """A booking whose moment passed STALE seconds ago, its run silent as long, goes; one a
    run still waits on (seen lately) stays."""
    state = SlotState()
    state.book(1, 10.0, 9.0)  # its run died
    state.book(2, 10.5, 9.0)
    state.booked[2] = (10.5, 12.0 + STALE)  # still waiting at 12 + STALE
    state.drop_stale(12.5 + STALE)
    assert list(state.booked) == [2]
    assert state.first(2)


def test_a_garbled_schedule_reads_as_empty(tmp_path: Path) -> None:
    """A record cut short (a crash mid-write) or not ours: a fresh schedule, no error."""
    path = tmp_path / "slots"
    path.write_bytes(b" rrs2garbage")
    fd = os.open(path, os.O_RDWR)
    try:
        with FileSlots(fd).locked(0.0) as state:
            assert state == SlotState()
    finally:
        os.close(fd)


def test_runs_on_a_key_see_each_other_and_the_last_one_out_clears_up(tmp_path: Path) -> None:
    """Two runs join: each lists the other, `sharing` finds them by results file; the first
    to leave is gone from the list at once; the last removes the schedule."""
    root = tmp_path / "pace"
    a = join(root, KEY, URL, member(tmp_path, "a.csv", pid=1))
    b = join(root, KEY, URL, member(tmp_path, "b.csv", pid=2))
    assert a is not None
    assert b is not None
    assert [m.pid for m in a.others()] == [2]
    assert [m.pid for m in b.others()] == [1]
    found = sharing(root, tmp_path / "a.csv")
    assert found is not None
    assert [m.results for m in found] == [str(tmp_path / "b.csv")]
    assert sharing(root, tmp_path / "other.csv") is None
    a.close()
    assert b.others() == []
    assert (b.folder / "slots").exists()
    b.close()
    assert not (b.folder / "slots").exists()
    assert list((b.folder / "runs").iterdir()) == []
    assert not any(KEY in p.name for p in root.rglob("*"))


def test_the_membership_of_a_dead_run_is_removed(tmp_path: Path) -> None:
    """A membership file nobody holds the lock of (its run was killed) is no run: the next
    look removes it; an empty one stays while young (a run starting up)."""
    root = tmp_path / "pace"
    live = join(root, KEY, URL, member(tmp_path, "a.csv", pid=1))
    assert live is not None
    runs = live.folder / "runs"
    dead = runs / "999-deadbeef.run"
    dead.write_text(" " + member(tmp_path, "dead.csv", pid=999).to_json())
    starting = runs / "998-00000000.run"
    starting.write_text("")
    assert live.others() == []
    assert not dead.exists()
    assert starting.exists()
    old = time.time() - 3600
    os.utime(starting, (old, old))
    live.others()
    assert not starting.exists()
    live.close()


def test_the_first_run_on_a_key_starts_the_schedule_afresh(tmp_path: Path) -> None:
    """A schedule left by a dead run (a pause far ahead, bookings) is forgotten by the next
    run to find nobody alive; a run that joins others keeps theirs."""
    root = tmp_path / "pace"
    folder = root / key_id(KEY, URL)
    (folder / "runs").mkdir(parents=True)
    fd = os.open(folder / "slots", os.O_RDWR | os.O_CREAT)
    with FileSlots(fd).locked(time.monotonic()) as state:
        state.paused_until = time.monotonic() + 3600
    os.close(fd)
    first = KeyShare(folder, member(tmp_path, "a.csv", pid=1))
    with first.slots.locked(time.monotonic()) as state:
        assert state.paused_until < time.monotonic()
        state.paused_until = time.monotonic() + 5
    second = KeyShare(folder, member(tmp_path, "b.csv", pid=2))
    with second.slots.locked(time.monotonic()) as state:
        assert state.paused_until > time.monotonic()  # the live run's pause holds
    first.close()
    second.close()


def test_a_folder_that_cannot_be_written_means_pacing_alone(tmp_path: Path) -> None:
    """join() answers None where the folder cannot be made (the run paces alone)."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert join(blocker / "pace", KEY, URL, member(tmp_path, "a.csv")) is None


def test_a_membership_says_who_and_never_the_key(tmp_path: Path) -> None:
    """The membership file: pid, host, start, results, rate; not the key."""
    root = tmp_path / "pace"
    share = join(root, KEY, URL, member(tmp_path, "a.csv", pid=7))
    assert share is not None
    (path,) = (share.folder / "runs").iterdir()
    data = json.loads(path.read_text()[1:])
    assert set(data) == {"pid", "host", "started_at", "results", "rate"}
    assert KEY not in path.read_text()
    share.close()


def test_a_run_paces_alone_until_another_comes_then_they_take_turns(tmp_path: Path) -> None:
    """Alone on its key, a run's schedule stays its own (the file untouched: no lock per
    request); once another run joins, the next request moves it into the key's, where the
    newcomer's slot comes one interval after; once alone again, its own schedule goes on."""
    root = tmp_path / "pace"
    now = [100.0]
    folder = root / key_id(KEY, URL)
    # The schedule's file told the runs' (virtual) clock: it converts no times.
    a = KeyShare(folder, member(tmp_path, "a.csv", pid=1), clock=lambda: now[0])
    first = SharedLimiter(Rate(10, 1.0), a.slots, clock=lambda: now[0], company=a.company)
    for _ in range(5):
        now[0] += 0.1
        assert first.try_acquire()
    with a.slots.locked(now[0]) as state:
        assert state.last_sent == float("-inf")  # never written: paced alone
    b = KeyShare(folder, member(tmp_path, "b.csv", pid=2), clock=lambda: now[0])
    second = SharedLimiter(Rate(10, 1.0), b.slots, clock=lambda: now[0], company=b.company)
    now[0] += 0.1
    assert first.try_acquire()  # it sees the newcomer, and takes this slot in the key's
    with a.slots.locked(now[0]) as state:
        assert state.last_sent == now[0]
    assert not second.try_acquire()  # a tenth of a second later at the soonest
    now[0] += 0.1
    assert second.try_acquire()
    assert not first.try_acquire()
    b.close()
    now[0] += 1.1  # the next look at the folder (and the next slot)
    assert first.try_acquire()
    with a.slots.locked(now[0]) as state:
        before = state.last_sent
    now[0] += 0.1
    assert first.try_acquire()
    with a.slots.locked(now[0]) as state:
        assert state.last_sent == before  # alone again: the file is left alone
    a.close()
