"""The run journal: durable per-row records, run identity, resume bookkeeping."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import batch.journal.backlog as backlog_module
import batch.journal.maplog as maplog_module
from batch.errors import JournalError
from batch.journal.journal import Journal, journal_path
from batch.journal.loglines import line as _line
from batch.journal.record import RunIdentity, sha256_file
from batch.model import Call, Outcome, RowResult

BASE = "http://127.0.0.1:9/api/v2"


def _identity(tmp_path: Path, content: str = "routing_id\n1\n") -> RunIdentity:
    source = tmp_path / "in.csv"
    source.write_text(content)
    return RunIdentity.of(source, BASE, tmp_path / "out.csv")


def _call(row: int) -> Call:
    return Call(row=row, routing_id=100 + row, body='{"for_inbound_call":1}')


def _done(row: int, outcome: Outcome = Outcome.SUCCEEDED, status: int = 200) -> RowResult:
    return RowResult(
        row=row,
        routing_id=str(100 + row),
        outcome=outcome,
        http_status=status,
        attempts=1,
        request='{"for_inbound_call":1}',
        response='{"success":true}',
        started_at=datetime(2026, 11, 30, 1, 0, tzinfo=UTC),
        finished_at=datetime(2026, 11, 30, 1, 0, 1, tzinfo=UTC),
        duration_ms=1000,
    )


def test_journal_lives_beside_the_results_file(tmp_path: Path) -> None:
    """`out.csv` journals into `out.csv.journal` in the same directory."""
    assert journal_path(tmp_path / "out.csv") == tmp_path / "out.csv.journal"


def test_sha256_is_of_the_content(tmp_path: Path) -> None:
    """The identity hashes bytes, so a rewritten but identical file is the same run."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 3_000_000)
    b.write_bytes(b"x" * 3_000_000)
    assert sha256_file(a) == sha256_file(b)


def test_finished_rows_round_trip_and_survive_reopen(tmp_path: Path) -> None:
    """A finished row is read back identically after the journal is closed and reopened."""
    ident = _identity(tmp_path)
    path = tmp_path / "out.csv.journal"
    with Journal.open(path, ident) as journal:
        assert not journal.resumed
        journal.begin(_call(1))
        journal.finish(_done(1))
    with Journal.open(path, ident) as journal:
        assert journal.resumed
        assert journal.get(1) == _done(1)
        assert journal.is_final(1)
        assert not journal.is_final(2)


def test_attempt_marks_row_unknown_with_attempt_count(tmp_path: Path) -> None:
    """While a row is in flight, its record is `unknown` with the attempts started so far."""
    with Journal.open(tmp_path / "j", _identity(tmp_path)) as journal:
        journal.begin(_call(3))
        journal.attempt(_call(3), 1)
        journal.attempt(_call(3), 2)
        record = journal.get(3)
        assert record is not None
        assert record.outcome is Outcome.UNKNOWN
        assert record.attempts == 2
        assert record.request == _call(3).body
        assert not journal.is_final(3)
        assert journal.abandon(_call(3)) == record


def test_resumed_unknown_row_adds_earlier_attempts(tmp_path: Path) -> None:
    """A row sent twice before a crash and once after reports 3 attempts in total."""
    ident = _identity(tmp_path)
    with Journal.open(tmp_path / "j", ident) as journal:
        journal.begin(_call(1))
        journal.attempt(_call(1), 1)
        journal.attempt(_call(1), 2)
    with Journal.open(tmp_path / "j", ident) as journal:
        journal.begin(_call(1))
        journal.attempt(_call(1), 1)
        assert journal.get(1).attempts == 3  # type: ignore[union-attr]
        final = journal.finish(_done(1))
        assert final.attempts == 3
        assert journal.get(1) == final


def test_key_rejected_rows_are_not_final(tmp_path: Path) -> None:
    """A 401/403 row is sent again on resume: the key, not the row, was the problem."""
    with Journal.open(tmp_path / "j", _identity(tmp_path)) as journal:
        journal.finish(_done(1, Outcome.FAILED, 401))
        journal.finish(_done(2, Outcome.FAILED, 404))
        assert not journal.is_final(1)
        assert journal.is_final(2)
        assert journal.final_count() == 1


def test_results_stream_in_row_order(tmp_path: Path) -> None:
    """Records come back ordered by row, whatever order they finished in."""
    with Journal.open(tmp_path / "j", _identity(tmp_path)) as journal:
        for row in (5, 2, 9, 1):
            journal.finish(_done(row))
        assert [r.row for r in journal.results()] == [1, 2, 5, 9]
        assert journal.counts() == {Outcome.SUCCEEDED: 4}


def test_different_input_content_is_refused(tmp_path: Path) -> None:
    """Another input at the same results path is refused, naming --fresh and --results."""
    Journal.open(tmp_path / "j", _identity(tmp_path)).close()
    with pytest.raises(JournalError, match=r"input file's content.*--fresh.*--results"):
        Journal.open(tmp_path / "j", _identity(tmp_path, "routing_id\n2\n"))


def test_different_base_url_is_refused(tmp_path: Path) -> None:
    """Pointing the same results at another target is a different run."""
    ident = _identity(tmp_path)
    Journal.open(tmp_path / "j", ident).close()
    other = RunIdentity(ident.input_sha256, "https://api.vocobase.com/api/v2", ident.results)
    with pytest.raises(JournalError, match="base URL"):
        Journal.open(tmp_path / "j", other)


def test_fresh_discards_the_old_run(tmp_path: Path) -> None:
    """--fresh forgets everything the journal recorded, even for another run."""
    with Journal.open(tmp_path / "j", _identity(tmp_path)) as journal:
        journal.finish(_done(1))
    other = _identity(tmp_path, "routing_id\n7\n")
    with Journal.open(tmp_path / "j", other, fresh=True) as journal:
        assert not journal.resumed
        assert journal.get(1) is None


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    """A file that is not a journal gives one line suggesting --fresh, not a traceback."""
    (tmp_path / "j").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(JournalError, match="--fresh"):
        Journal.open(tmp_path / "j", _identity(tmp_path))


def test_wal_mode_is_on(tmp_path: Path) -> None:
    """The journal uses WAL, so commits survive the process dying right after them."""
    Journal.open(tmp_path / "j", _identity(tmp_path)).close()
    with closing(sqlite3.connect(tmp_path / "j")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.slow
def test_records_survive_kill_9(tmp_path: Path) -> None:
    """Rows written by a process killed with SIGKILL (no close, no cleanup) are all there."""
    ident = _identity(tmp_path)
    script = f"""
import os, signal
from pathlib import Path
from batch.journal.journal import Journal
from batch.journal.record import RunIdentity
from batch.model import RowResult, Outcome
j = Journal.open(Path({str(tmp_path / "j")!r}), RunIdentity(*{tuple(ident.as_meta().values())!r}))
for row in range(1, 601):
    j.finish(RowResult(row=row, routing_id=str(row), outcome=Outcome.SUCCEEDED, attempts=1))
from batch.model import Call
j.attempt(Call(row=601, routing_id=601, body="[]"), 1)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], check=False, timeout=30)
    assert proc.returncode == -9
    # 600 finals: the first batches copied into SQLite, the rest only in the log; then a mark.
    with closing(sqlite3.connect(tmp_path / "j")) as db:
        (in_table,) = db.execute("SELECT count(*) FROM rows").fetchone()
    assert 0 < in_table < 600
    assert Path(f"{tmp_path / 'j'}-log").stat().st_size > 0
    with Journal.open(tmp_path / "j", ident) as journal:
        assert journal.final_count() == 600
        in_flight = journal.get(601)
        assert in_flight is not None
        assert (in_flight.outcome, in_flight.attempts) == (Outcome.UNKNOWN, 1)
    assert not Path(f"{tmp_path / 'j'}-log").exists()  # all copied in, the log removed


@pytest.mark.parametrize(
    "body", ['{"for_inbound_call":1}', '{"note":"a \\"quoted\\" \\\\ caf\u00e9"}', "[]"]
)
def test_an_in_flight_mark_is_one_json_line_of_its_record(tmp_path: Path, body: str) -> None:
    """The mark's log line is the JSON of its record (the message every mark shares left out),
    and reads back as the same `unknown` row, whatever the body holds; what the request adds
    (batch.journal.audit) ends the same line."""
    ident = _identity(tmp_path)
    journal = Journal.open(tmp_path / "j", ident)
    started = datetime(2026, 11, 30, 1, 2, 3, 456789, tzinfo=UTC)
    journal.attempt(Call(row=7, routing_id=107, body=body), 2, now=started)
    [line] = _records(Path(f"{tmp_path / 'j'}-log")).splitlines()
    journal.close()
    stamp = 1_796_000_523_456_789  # 2026-11-30T01:02:03.456789Z in microseconds
    record = [7, "107", "unknown", None, 2, "", "", body, "", stamp, None, None]
    # Then the request's segment, when it was sent, how long it waited and why
    # (batch.journal.audit).
    assert json.loads(line) == [*record, 0, stamp, 0, ""]
    with Journal.open(tmp_path / "j", ident) as again:
        record = again.get(7)
    assert record is not None
    assert (record.request, record.attempts, record.started_at) == (body, 2, started)


def _records(log: Path) -> bytes:
    """The records of a journal's log: what comes before the zeros that follow them."""
    return log.read_bytes().split(b"\0", 1)[0]


def _crashed_with(tmp_path: Path, tail: bytes) -> tuple[RunIdentity, Path]:
    """A journal whose run died with two finals in its log, then ``tail`` copied in after
    them, and the zeros a log has after its records."""
    ident = _identity(tmp_path)
    path = tmp_path / "j"
    journal = Journal.open(path, ident)
    journal.finish(_done(1))
    journal.finish(_done(2))
    log = Path(f"{path}-log")
    saved = _records(log)
    journal.close()  # copies them in; put the log back as a crash would have left it
    path.unlink()
    for side in ("-wal", "-shm"):
        Path(f"{path}{side}").unlink(missing_ok=True)
    Journal.open(path, ident).close()
    log.write_bytes(saved + tail + bytes(4096))
    return ident, path


def test_a_last_line_cut_short_is_skipped(tmp_path: Path) -> None:
    """A line the dying process only wrote in part is skipped; the whole ones are read."""
    ident, path = _crashed_with(tmp_path, b'[3, "103", "succ')
    with Journal.open(path, ident) as journal:
        assert [r.row for r in journal.results()] == [1, 2]
        assert journal.get(1) == _done(1)


def test_records_after_the_first_zero_are_not_read(tmp_path: Path) -> None:
    """The zeros end the records: a log emptied only in part (the process killed while
    zeroing it, after its records were copied into SQLite) is read up to them."""
    ident, path = _crashed_with(tmp_path, b"")
    log = Path(f"{path}-log")
    log.write_bytes(_records(log) + b"\0" + b'[3, "103", "succeeded"')
    with Journal.open(path, ident) as journal:
        assert [r.row for r in journal.results()] == [1, 2]


def test_a_damaged_line_inside_the_log_is_a_clear_error(tmp_path: Path) -> None:
    """Garbage before the last line is not a crash's trace: refused, naming the log's line."""
    ident, path = _crashed_with(tmp_path, b'[3, "103"]\n' + b"not json\n")
    with pytest.raises(JournalError, match=r"-log: line 3 is not a journal record"):
        Journal.open(path, ident)


def test_a_log_without_its_journal_is_never_replayed(tmp_path: Path) -> None:
    """A new journal ignores (removes) a log left beside a journal file someone deleted."""
    ident = _identity(tmp_path)
    path = tmp_path / "j"
    Path(f"{path}-log").write_text('[1, "101", "succeeded", 200, 1, "", "", "", "", 1.0, 2.0, 1]\n')
    with Journal.open(path, ident) as journal:
        assert list(journal.results()) == []


def test_no_key_column_in_schema(tmp_path: Path) -> None:
    """The journal has no place for a key: only the run identity and row records."""
    Journal.open(tmp_path / "j", _identity(tmp_path)).close()
    with closing(sqlite3.connect(tmp_path / "j")) as db:
        keys = {k for (k,) in db.execute("SELECT key FROM meta")}
    assert keys == {"format", "input_sha256", "base_url", "results", "snapshot", "reading"}


_TEXT = st.text(st.characters(codec=None, exclude_categories=()))  # lone surrogates included
_NUMBER = st.none() | st.integers()  # beyond 64 bits too (json writes those lines)


_OUTCOME = st.sampled_from([str(o) for o in Outcome])
_RECORD = st.tuples(
    st.integers(1, 2**40), _TEXT, _OUTCOME, _NUMBER, st.integers(0, 99), _TEXT, _TEXT, _TEXT,
    _TEXT, _NUMBER, _NUMBER, _NUMBER,
)  # fmt: skip


@given(_RECORD)
def test_a_log_line_is_the_json_of_its_record(values: tuple[object, ...]) -> None:
    """A record's line of the log reads back (json.loads) as exactly the record's values, and
    is one line, whatever the strings hold (quotes, line breaks, non-ASCII, lone surrogates)."""
    line = _line(values)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == list(values)
    assert json.loads(line) == json.loads(json.dumps(values))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 12), st.booleans()),  # (row, final?) in the order written
        max_size=40,
    ),
    st.integers(1, 5),
    st.sampled_from([64, 300, 1 << 20]),
)
def test_records_read_back_as_the_last_one_written_per_row_across_batches(
    steps: list[tuple[int, bool]], batch: int, log_size: int
) -> None:
    """Marks and finals in any order, copied into SQLite every ``batch`` lines (one record per
    row per copy) or when the log is full (or grown, for a record larger than the log): every
    row reads back as the last record written for it, after a clean close and after a crash
    (the log replayed on open)."""
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        patch.setattr(backlog_module, "BATCH", batch)
        patch.setattr(maplog_module, "LOG_SIZE", log_size)
        path = Path(tmp) / "j"
        ident = _identity(Path(tmp))
        journal = Journal.open(path, ident)
        expected: dict[int, tuple[Outcome, int]] = {}
        for n, (row, final) in enumerate(steps, start=1):
            if final:
                journal.finish(_done(row)._replace(attempts=n))
                expected[row] = (Outcome.SUCCEEDED, n)
            else:
                journal.begin(_call(row))
                journal.attempt(_call(row), n)
                expected[row] = (Outcome.UNKNOWN, n)
        with Journal.open(path, ident) as crashed:  # the first one never closed: a dead run
            got = {r.row: (r.outcome, r.attempts) for r in crashed.results()}
        journal.close()
        assert got == expected
