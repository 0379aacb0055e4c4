"""`reroute status`: a run's state read from journals these tests write (batch.status.reader).

Journals are real: a ``Journal`` written through its API (records in its log until a batch is
copied into SQLite), audit tables written with ``batch.journal.audit``'s writers, the lock a real
``RunLock``. Time is passed in (``now=``), so rates and ETAs are exact.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batch.cli import app
from batch.errors import JournalError
from batch.journal import audit, rowrecords
from batch.journal.journal import Journal, journal_path
from batch.journal.lock import Holder, RunLock, lock_path_for, peek
from batch.journal.record import RunIdentity, RunRecord
from batch.model import Call, Outcome, RowResult
from batch.status.reader import read_status
from batch.status.state import locate
from batch.status.text import as_json, lines

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://127.0.0.1:9/api/v2"
T0 = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
JSON_KEYS = {
    "command", "exit_status", "event", "time", "version", "results", "journal", "job", "state",
    "running", "lock", "kind",
    "target", "started_at", "finished", "total", "candidates", "done", "left", "in_flight",
    "outcomes", "requests", "requests_trail", "requests_carried", "rate", "concurrency",
    "rows_per_min", "average_rows_per_min", "requests_per_min", "eta", "window",
    "last_failures", "segments", "events", "audit_trail", "notes", "sharing_key_with",
}  # fmt: skip


def _call(row: int) -> Call:
    return Call(row=row, routing_id=5000 + row, body='{"for_inbound_call":1}')


def _result(row: int, outcome: Outcome, at: datetime, status: int | None = 200) -> RowResult:
    code = "" if outcome is Outcome.SUCCEEDED else f"HTTP_{status}"
    return RowResult(
        row, str(5000 + row), outcome, status, 1, code, f"row {row} answered {status}",
        _call(row).body, "{}", at - timedelta(seconds=1), at, 1000,
    )  # fmt: skip


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "out.results.csv"


def _journal(results: Path, candidates: int = 10, **meta: str) -> Journal:
    source = results.with_name("in.csv")
    source.write_text("routing_id\n1\n")
    journal = Journal.open(journal_path(results), RunIdentity.of(source, BASE, results))
    journal.set_meta("candidates", str(candidates))
    journal.set_meta("settings", RunRecord(settings={"rate": "60/min", "concurrency": 4}).to_json())
    for key, value in meta.items():
        journal.set_meta(key, value)
    return journal


def _send(journal: Journal, row: int, outcome: Outcome, at: datetime, **kw: object) -> None:
    journal.begin(_call(row))
    journal.attempt(_call(row), 1, now=at - timedelta(seconds=1))
    journal.finish(_result(row, outcome, at, **kw))  # type: ignore[arg-type]


def _trail(results: Path) -> sqlite3.Connection:
    """A writer of the journal's audit tables (as the engine will be)."""
    db = sqlite3.connect(journal_path(results), isolation_level=None)
    db.executescript(audit.SCHEMA)
    return db


def _segment(db: sqlite3.Connection, at: datetime, **settings: object) -> int:
    start = audit.SegmentStart("run", "0.1.0", "ops@host-1", "in", "plan", "127.0.0.1", "KEY_VAR",
                               {"rate": "60/min", "concurrency": 4, **settings})  # fmt: skip
    return audit.begin_segment(db, start, at=rowrecords.stamp(at))


def _request(
    db: sqlite3.Connection, row: int, segment: int, sent: datetime, *, answered: bool
) -> None:
    stamp = rowrecords.stamp(sent)
    answer = rowrecords.stamp(sent + timedelta(seconds=0.2)) if answered else None
    values = (row, str(5000 + row), 1, segment, stamp, answer, 200 if answered else None, "", 0,
              audit.PACE, None)  # fmt: skip
    db.execute(audit.UPSERT_ATTEMPT, values)


@pytest.fixture
def held(results: Path) -> Iterator[Holder]:
    """This process holds the run's lock, as a run does, started at T0."""
    lock = RunLock(results, clock=lambda: T0)
    yield lock.acquire()
    lock.release()


def test_counts_come_from_the_log_before_sqlite_has_them(results: Path) -> None:
    """Records still only in the journal's log are counted; after the copy into SQLite, the
    same counts; rows never sent are not_attempted."""
    journal = _journal(results)
    _send(journal, 1, Outcome.SUCCEEDED, T0)
    _send(journal, 2, Outcome.FAILED, T0, status=404)
    journal.begin(_call(3))
    journal.attempt(_call(3), 1, now=T0)  # in flight
    status = read_status(results, now=T0)
    assert status.outcomes == {
        "succeeded": 1, "failed": 1, "unknown": 1, "not_attempted": 7, "skipped": 0,
        "invalid": None,
    }  # fmt: skip
    assert (status.done, status.left, status.candidates, status.requests) == (2, 8, 10, 3)
    journal.close()
    again = read_status(results, now=T0)
    assert again.outcomes == status.outcomes
    assert again.state == "stopped"


def test_a_later_record_in_the_log_replaces_the_one_in_sqlite(results: Path) -> None:
    """SQLite holds a row in flight, the log its final answer: the answer counts, once."""
    with _journal(results) as journal:
        journal.begin(_call(1))
        journal.attempt(_call(1), 1, now=T0)
        journal.get(1)  # copies the log into SQLite (as every BATCH records)
        journal.finish(_result(1, Outcome.SUCCEEDED, T0))
        status = read_status(results, now=T0)
        assert status.outcomes["succeeded"] == 1
        assert status.outcomes["unknown"] == 0
        assert status.requests == 1


def test_rows_stopped_by_the_key_are_left_not_done(results: Path) -> None:
    """A row failed for a 401 is sent again by a resume: left, not decided."""
    with _journal(results, candidates=2) as journal:
        _send(journal, 1, Outcome.FAILED, T0, status=401)
        _send(journal, 2, Outcome.FAILED, T0, status=422)
    status = read_status(results, now=T0)
    assert (status.done, status.left) == (1, 1)
    assert status.outcomes["failed"] == 2


def test_others_give_the_total_and_invalid_rows(results: Path) -> None:
    """The `others` meta key (rows the run never sends) makes the counts the results file's."""
    with _journal(results, candidates=3, others='{"invalid": 2, "skipped": 1}') as journal:
        _send(journal, 1, Outcome.SUCCEEDED, T0)
    status = read_status(results, now=T0)
    assert status.total == 6
    assert status.outcomes == {
        "succeeded": 1, "failed": 0, "unknown": 0, "not_attempted": 2, "skipped": 1,
        "invalid": 2,
    }  # fmt: skip
    assert status.notes == ()


def test_a_journal_without_audit_tables_still_shows_counts(results: Path) -> None:
    """An older reroute's journal (no attempts, segments, events): counts, no trail, no rates."""
    with _journal(results) as journal:
        _send(journal, 1, Outcome.SUCCEEDED, T0)
    with closing(sqlite3.connect(journal_path(results))) as db:
        db.executescript("DROP TABLE attempts; DROP TABLE segments; DROP TABLE events;")
    status = read_status(results, now=T0)
    assert not status.trail
    assert status.segments == ()
    assert status.requests_per_min is None
    assert "segments: not recorded" in "\n".join(lines(status))


def test_running_names_the_lock_holder_and_its_operator(results: Path, held: Holder) -> None:
    """While the lock is held: running, the holder's pid and host, the segment's operator."""
    with _journal(results) as journal, closing(_trail(results)) as db:
        segment = _segment(db, T0 + timedelta(seconds=1))
        _request(db, 1, segment, T0 + timedelta(seconds=2), answered=False)
        journal.begin(_call(1))
        journal.attempt(_call(1), 1, now=T0 + timedelta(seconds=2))
        status = read_status(results, now=T0 + timedelta(seconds=3))
    assert status.running is True
    assert status.state == "running"
    assert status.holder == held
    assert status.holder.pid == os.getpid()
    assert status.operator == "ops@host-1"
    assert status.in_flight == 1
    record = as_json(status, "0.1.0")
    assert record["lock"]["pid"] == os.getpid()
    assert record["running"] is True


def test_rates_and_eta_from_the_times_recorded(results: Path, held: Holder) -> None:
    """Current rate over the last 60 s, average over the segment's active time, ETA = rows
    left / current rate."""
    now = T0 + timedelta(minutes=10)
    with _journal(results, candidates=100) as journal, closing(_trail(results)) as db:
        segment = _segment(db, T0)
        first = T0 + timedelta(minutes=2)  # the window opened: the first request
        for i in range(40):  # 40 rows, one every 12 s from `first`: the last at +9m48s
            at = first + timedelta(seconds=12 * i)
            _request(db, i + 1, segment, at - timedelta(seconds=1), answered=True)
            _send(journal, i + 1, Outcome.SUCCEEDED, at)
        status = read_status(results, now=now)
    assert status.rows_per_min == pytest.approx(5.0)  # 5 rows decided in the last minute
    assert status.requests_per_min == pytest.approx(4.0)  # sent a second before: 8:59 is out
    assert status.average_rows_per_min == pytest.approx(40 * 60 / 481)  # from the 1st request
    assert status.left == 60
    assert status.eta == now + timedelta(minutes=12)


def test_window_not_yet_open_is_waiting(results: Path, held: Holder) -> None:
    """A running segment whose window opens later: waiting_for_window, and when it opens."""
    opens, closes = T0 + timedelta(hours=1), T0 + timedelta(hours=4)
    with _journal(results), closing(_trail(results)) as db:
        _segment(db, T0, not_before=opens.isoformat(), not_after=closes.isoformat())
    status = read_status(results, now=T0 + timedelta(minutes=30))
    assert status.state == "waiting_for_window"
    assert (status.window.state, status.window.not_before) == ("not_yet_open", opens)
    assert "opens in 30m 00s" in "\n".join(lines(status))
    assert read_status(results, now=opens).window.state == "open"
    assert read_status(results, now=closes).window.state == "closed"


def test_last_failures_latest_first_and_segments(results: Path) -> None:
    """The last failures (latest first) and the segments with how each ended."""
    with _journal(results) as journal, closing(_trail(results)) as db:
        segment = _segment(db, T0)
        for row in range(1, 8):
            _send(journal, row, Outcome.FAILED, T0 + timedelta(seconds=row), status=404)
        audit.end_segment(db, segment, stop_reason="interrupted", exit_status=3)
        audit.add_event(db, segment, audit.STOP, "interrupted: Ctrl-C")
    status = read_status(results, now=T0 + timedelta(minutes=1))
    assert [f.row for f in status.failures] == [7, 6, 5, 4, 3]
    assert status.failures[0].error_code == "HTTP_404"
    assert [(s.number, s.stop_reason, s.exit_status) for s in status.segments] == [
        (1, "interrupted", 3)
    ]
    assert status.events[0].kind == audit.STOP
    text = "\n".join(lines(status))
    assert "row 7 (routing id 5007): HTTP 404 HTTP_404" in text
    assert "interrupted (exit 3)" in text


def test_a_finished_run_says_so(results: Path) -> None:
    """`finished` in the meta table: finished, nothing running, nothing in flight."""
    with _journal(results, candidates=1, finished="1") as journal:
        _send(journal, 1, Outcome.SUCCEEDED, T0)
    status = read_status(results, now=T0)
    assert (status.state, status.running, status.in_flight, status.left) == (
        "finished", False, 0, 0,
    )  # fmt: skip


def test_a_lock_left_by_a_dead_run_is_not_running(results: Path) -> None:
    """A lock file naming a process that is gone (kill -9): not running, and said so."""
    with _journal(results) as journal:
        _send(journal, 1, Outcome.SUCCEEDED, T0)
    dead = Holder(2**22 + 12345, "host-1", T0)
    lock_path_for(results).write_text(" " + dead.to_json())
    status = read_status(results, now=T0)
    assert status.running is False
    assert status.state == "stopped"
    assert any("is gone" in note for note in status.notes)


def test_peek_sees_a_held_lock_without_taking_it(results: Path) -> None:
    """peek names the holder and never takes the lock: the holder keeps it, another run is
    still refused; without a lock table, a live pid on this host says held."""
    assert peek(results) == peek(results, lock_table=Path("/nonexistent"))
    with RunLock(results) as lock:
        assert peek(results).held is True
        assert peek(results, lock_table=Path("/nonexistent")).held is True
        assert lock.held
    assert peek(results).held is False


def test_reading_writes_nothing(results: Path) -> None:
    """status of a closed journal creates no file (no -wal/-shm) and changes none."""
    with _journal(results) as journal:
        _send(journal, 1, Outcome.SUCCEEDED, T0)
    before = {p.name: p.read_bytes() for p in results.parent.iterdir()}
    read_status(results, now=T0)
    assert {p.name: p.read_bytes() for p in results.parent.iterdir()} == before


def test_a_job_file_names_its_results(tmp_path: Path) -> None:
    """A JOB.toml argument resolves to the job's results path, as `run` does."""
    (tmp_path / "in.csv").write_text("routing_id,for_inbound_call,for_outbound_call,status\n")
    job = tmp_path / "nightly.toml"
    job.write_text('input = "in.csv"\nresults = "out/night.csv"\n')
    with pytest.raises(JournalError, match="no run of this job yet"):
        locate(job, {})
    (tmp_path / "out").mkdir()
    with _journal(tmp_path / "out" / "night.csv"):
        pass
    results, loaded = locate(job, {})
    assert results == tmp_path / "out" / "night.csv"
    assert loaded is not None
    assert loaded.path == job


def test_cli_json_is_one_object_with_the_documented_keys(results: Path) -> None:
    """--log-format json prints one JSON object with exactly the documented keys
    (docs/status-and-report.md)."""
    with _journal(results) as journal:
        _send(journal, 1, Outcome.SUCCEEDED, T0)
    done = CliRunner().invoke(app, ["status", str(results), "--log-format", "json"])
    assert done.exit_code == 0, done.output
    record = json.loads(done.stdout)
    assert set(record) == JSON_KEYS
    assert record["outcomes"]["succeeded"] == 1
    assert set(record["outcomes"]) == {o.value for o in Outcome}


def test_cli_without_a_journal_is_exit_2_in_one_line(tmp_path: Path) -> None:
    """No journal beside RESULTS: exit 2, one line naming the file and what to give."""
    done = CliRunner().invoke(app, ["status", str(tmp_path / "none.csv")])
    assert done.exit_code == 2
    assert done.stderr.count("\n") == 1
    assert "none.csv: no such results file" in done.stderr
    assert "Traceback" not in done.output


@pytest.mark.slow
def test_watch_stops_on_ctrl_c_with_exit_0(results: Path) -> None:
    """--watch --log-format json prints a line per refresh; Ctrl-C ends it, exit 0, quietly."""
    with _journal(results) as journal:
        _send(journal, 1, Outcome.SUCCEEDED, T0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch", "status", str(results), "--watch", "--log-format", "json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    assert first["outcomes"]["succeeded"] == 1
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_a_file_that_is_not_a_journal_is_exit_2(results: Path) -> None:
    """Garbage where the journal should be: exit 2, one line naming it, no traceback."""
    journal_path(results).write_bytes(b"not a database at all" * 100)
    done = CliRunner().invoke(app, ["status", str(results)])
    assert done.exit_code == 2
    assert "not a readable run journal" in done.stderr
    assert "Traceback" not in done.output


def test_a_stopped_jobs_window_is_its_next_one(tmp_path: Path) -> None:
    """Not running, a job with a daily window: the window shown is the next occurrence."""
    (tmp_path / "in.csv").write_text("routing_id,for_inbound_call,for_outbound_call,status\n")
    job = tmp_path / "nightly.toml"
    job.write_text(
        'input = "in.csv"\nresults = "night.csv"\n'
        '[window]\nnot_before = "01:00:00+00:00"\nnot_after = "05:00:00+00:00"\n'
    )
    with _journal(tmp_path / "night.csv") as journal:
        _send(journal, 1, Outcome.SUCCEEDED, T0)
    results, loaded = locate(job, {})
    noon = T0.replace(hour=12)
    status = read_status(results, job=loaded, now=noon)
    assert status.window.state == "not_yet_open"
    assert status.window.not_before == T0 + timedelta(days=1)
    assert status.job == job


@pytest.mark.slow
def test_watch_on_a_terminal_redraws_and_ends_on_ctrl_c(results: Path) -> None:
    """--watch on a terminal draws the status in place (rich); Ctrl-C ends it, exit 0."""
    import pty
    import select

    with _journal(results) as journal:
        _send(journal, 1, Outcome.SUCCEEDED, T0)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch", "status", str(results), "--watch"],
        cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 30
    while b"Ctrl-C to stop" not in output and time.monotonic() < deadline:
        if select.select([master], [], [], 0.1)[0]:
            output += os.read(master, 65536)
    assert b"succeeded 1" in output, output
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    while select.select([master], [], [], 0.1)[0]:
        try:
            output += os.read(master, 65536)
        except OSError:
            break
    os.close(master)
    assert b"Traceback" not in output
    assert b"Aborted" not in output
