"""`reroute status` shows the other runs on this machine that share the run's API key (issue
29): who they are, from their membership files (batch.send.keyshare); nothing for a run that
is not running here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batch.journal.lock import RunLock
from batch.send.keyshare import KeyShare, join
from batch.status.reader import read_status
from batch.status.text import as_json, lines
from tests.send.test_keyshare import KEY, URL, member
from tests.status.test_status import T0, _journal

__all__ = ["T0"]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Path]:
    """A run writing out.results.csv, alive: its journal and its lock held."""
    results = tmp_path / "out.results.csv"
    _journal(results).close()
    with RunLock(results, clock=lambda: T0):
        yield results


def share(root: Path, tmp_path: Path, name: str, pid: int) -> KeyShare:
    joined = join(root, KEY, URL, member(tmp_path, name, pid=pid))
    assert joined is not None
    return joined


def test_status_names_the_other_runs_on_the_key(tmp_path: Path, running: Path) -> None:
    """Two runs on one key: the status of one names the other (pid, results, rate), in text and
    in JSON; never the key."""
    root = tmp_path / "pace"
    mine = share(root, tmp_path, running.name, pid=11)
    theirs = share(root, tmp_path, "other.results.csv", pid=22)
    status = read_status(running, pace_dir=root)
    text = "\n".join(lines(status))
    assert "shared, in turns, with 1 other run here: pid 22 writing" in text
    assert str(tmp_path / "other.results.csv") in text
    record = as_json(status, "test")
    assert [(m["pid"], m["results"], m["rate"]) for m in record["sharing_key_with"]] == [
        (22, str(tmp_path / "other.results.csv"), "60/min")
    ]
    assert KEY not in text
    assert KEY not in str(record)
    theirs.close()
    assert "no other run on this machine uses this API key" in "\n".join(
        lines(read_status(running, pace_dir=root))
    )
    mine.close()


def test_nothing_is_said_of_a_run_not_sharing_here(tmp_path: Path, running: Path) -> None:
    """A run in no key's folder (the embedded sandbox, another machine's), or a status asked
    without the folder: no line, null in JSON."""
    root = tmp_path / "pace"
    other = share(root, tmp_path, "other.results.csv", pid=22)
    for status in (read_status(running, pace_dir=root), read_status(running)):
        assert status.sharing is None
        assert not any(line.startswith("  key ") for line in lines(status))
        assert as_json(status, "test")["sharing_key_with"] is None
    other.close()
