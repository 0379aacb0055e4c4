"""A journal as the previous reroute wrote it (records as positional tuples) reads back, and
this one writes the very same tables and log lines.

The database and the log below are spelled out by hand, byte for byte as reroute wrote them
before the journal read its records by name (captured from that version: a run that died with
one row in SQLite and the rest in its log). Nothing here is built with the code under test.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from batch.journal import loglines, rowrecords
from batch.journal.audit import Attempt
from batch.journal.journal import Journal
from batch.journal.record import RunIdentity
from batch.journal.rowrecords import IN_FLIGHT_MESSAGE
from batch.model import Call, Outcome, RowResult
from batch.report import data
from batch.status.reader import read_status

BODY = '{"for_inbound_call":1,"for_outbound_call":4,"status":1}'
BASE = "http://127.0.0.1:9/api/v2"
IDENTITY = RunIdentity("0" * 64, BASE, "/tmp/out.csv")
US = 1_796_000_400_000_000  # 2026-11-30T01:00:00Z in microseconds since the epoch
MESSAGE = "row 2: bad — “quoted”\nline"

# sqlite_master's text of every table, as the previous version created them.
OLD_TABLES = {
    "applied": "CREATE TABLE applied (\n    target TEXT NOT NULL,\n    routing_id TEXT NOT NULL,"
    "\n    body INTEGER NOT NULL,\n    at INTEGER,\n    PRIMARY KEY (target, routing_id)\n)",
    "attempts": "CREATE TABLE attempts (\n    row INTEGER NOT NULL,\n    attempt INTEGER NOT NULL,"
    "\n    routing_id TEXT NOT NULL,\n    segment INTEGER NOT NULL,\n    sent_at INTEGER NOT NULL,"
    "\n    answered_at INTEGER,\n    http_status INTEGER,\n    error_code TEXT NOT NULL,\n    "
    "waited_ms INTEGER NOT NULL,\n    wait_cause TEXT NOT NULL,\n    retry_after REAL,\n    "
    "PRIMARY KEY (row, attempt)\n) WITHOUT ROWID",
    "events": "CREATE TABLE events (\n    segment INTEGER NOT NULL,\n    at INTEGER NOT NULL,\n"
    "    kind TEXT NOT NULL,\n    detail TEXT NOT NULL\n)",
    "meta": "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "rows": "CREATE TABLE rows (row INTEGER PRIMARY KEY, routing_id TEXT NOT NULL, outcome TEXT "
    "NOT NULL, http_status INTEGER, attempts INTEGER NOT NULL, error_code TEXT NOT NULL, "
    "error_message TEXT NOT NULL, request TEXT NOT NULL, response TEXT NOT NULL, started_at "
    "INTEGER, finished_at INTEGER, duration_ms INTEGER)",
    "segments": "CREATE TABLE segments (\n    segment INTEGER PRIMARY KEY,\n    kind TEXT NOT "
    "NULL,\n    version TEXT NOT NULL,\n    operator TEXT NOT NULL,\n    started_at INTEGER NOT "
    "NULL,\n    finished_at INTEGER,\n    stop_reason TEXT NOT NULL DEFAULT '',\n    exit_status "
    "INTEGER,\n    input_sha256 TEXT NOT NULL,\n    plan_sha256 TEXT NOT NULL,\n    target_host "
    "TEXT NOT NULL,\n    key_variable TEXT NOT NULL,\n    settings TEXT NOT NULL\n)",
}
OLD_META = {
    "base_url": BASE, "format": "3", "input_sha256": "0" * 64, "reading": "",
    "results": "/tmp/out.csv", "snapshot": "",
}  # fmt: skip
# Row 1 succeeded and reached SQLite; its request was answered by the clock (1796592797159684).
OLD_ROW = (1, "101", "succeeded", 200, 1, "", "", BODY, '{"success":true}', US, US + 1_000_000,
           1000)  # fmt: skip
OLD_ATTEMPT = (1, 1, "101", 1, US, 1796592797159684, 200, "", 0, "", None)  # the table's order
# Then the log: row 2 answered 503, then 422 (failed); row 3 in flight; row 4 succeeded (its
# answer has no line: its row's record says it).
_B = r'"{\"for_inbound_call\":1,\"for_outbound_call\":4,\"status\":1}"'
OLD_LOG = [
    f'[2,"102","unknown",null,1,"","",{_B},"",1796000402000000,null,null,1,1796000402000000,5,'
    '"pace"]',
    '["a",2,"102",1,1,1796000402000000,1796592797159925,503,"HTTP_503",5,"pace",2.5]',
    f'[2,"102","unknown",null,2,"","",{_B},"",1796000402000000,null,null,1,1796000405000000,2500,'
    '"retry_after"]',
    '["a",2,"102",2,1,1796000405000000,1796592797159939,422,"VALIDATION_ERROR",2500,"retry_after"'
    ",null]",
    f'[2,"102","failed",422,2,"VALIDATION_ERROR","row 2: bad — “quoted”\\nline",{_B},'
    r'"{\"success\":false}",1796000402000000,1796000406000000,4000]',
    f'[3,"103","unknown",null,1,"","",{_B},"",1796000407000000,null,null,1,1796000407000000,0,""]',
    f'[4,"104","unknown",null,1,"","",{_B},"",1796000408000000,null,null,1,1796000408000000,1000,'
    '"pace"]',
    f'[4,"104","succeeded",200,1,"","",{_B},'
    r'"{\"success\":true}",1796000408000000,1796000409000000,1000]',
]


def at(seconds: int) -> datetime:
    return datetime(2026, 11, 30, 1, 0, seconds, tzinfo=UTC)


EXPECTED_ROWS = [
    RowResult(1, "101", Outcome.SUCCEEDED, 200, 1, request=BODY, response='{"success":true}',
              started_at=at(0), finished_at=at(1), duration_ms=1000),
    RowResult(2, "102", Outcome.FAILED, 422, 2, "VALIDATION_ERROR", MESSAGE, BODY,
              '{"success":false}', at(2), at(6), 4000),
    RowResult(3, "103", Outcome.UNKNOWN, None, 1, error_message=IN_FLIGHT_MESSAGE, request=BODY,
              started_at=at(7)),
    RowResult(4, "104", Outcome.SUCCEEDED, 200, 1, request=BODY, response='{"success":true}',
              started_at=at(8), finished_at=at(9), duration_ms=1000),
]  # fmt: skip
EXPECTED_ATTEMPTS = [
    Attempt(1, "101", 1, 1, US, 1796592797159684, 200),
    Attempt(2, "102", 1, 1, US + 2_000_000, 1796592797159925, 503, "HTTP_503", 5, "pace", 2.5),
    Attempt(2, "102", 2, 1, US + 5_000_000, 1796592797159939, 422, "VALIDATION_ERROR", 2500,
            "retry_after"),
    Attempt(3, "103", 1, 1, US + 7_000_000),
    Attempt(4, "104", 1, 1, US + 8_000_000, US + 9_000_000, 200, "", 1000, "pace"),
]  # fmt: skip


def _old_journal(folder: Path) -> Path:
    """The journal (and its log) of a run killed by the previous version; returns the
    results path it belongs to."""
    journal = folder / "out.csv.journal"
    with closing(sqlite3.connect(journal)) as db, db:
        db.execute("PRAGMA journal_mode=WAL")
        for table in OLD_TABLES.values():
            db.execute(table)
        db.executemany("INSERT INTO meta VALUES (?, ?)", OLD_META.items())
        db.execute(f"INSERT INTO rows VALUES ({', '.join('?' * len(OLD_ROW))})", OLD_ROW)
        db.execute(f"INSERT INTO attempts VALUES ({', '.join('?' * 11)})", OLD_ATTEMPT)
    log = "".join(f"{line}\n" for line in OLD_LOG).encode()
    Path(f"{journal}-log").write_bytes(log + bytes((1 << 20) - len(log)))
    return folder / "out.csv"


def test_the_hand_written_log_is_json_lines() -> None:
    """The fixture itself: every line of the old log is a JSON array of 12 or 16 values."""
    assert [len(json.loads(line)) for line in OLD_LOG] == [16, 12, 16, 12, 12, 16, 16, 12]


def test_a_journal_of_the_previous_version_reads_back_by_name(tmp_path: Path) -> None:
    """Opened by this version (the log copied in), every row and request of a journal the
    previous version wrote reads back as the named records it stands for."""
    results = _old_journal(tmp_path)
    with Journal.open(results.with_name("out.csv.journal"), IDENTITY) as journal:
        assert journal.resumed
        assert list(journal.results()) == EXPECTED_ROWS
        assert list(journal.attempt_records()) == EXPECTED_ATTEMPTS
        assert journal.is_final(2)
        assert not journal.is_final(3)


def test_readers_read_the_previous_versions_log_before_it_is_copied_in(tmp_path: Path) -> None:
    """`reroute status` and `reroute report` read a dead run's log without copying it in:
    the old lines count as this version's records do."""
    results = _old_journal(tmp_path)
    logged = loglines.read_log(Path(f"{results}.journal-log"))
    assert logged.rows == [r._replace(error_message="") if r.row == 3 else r
                           for r in EXPECTED_ROWS[1:]]  # fmt: skip
    assert logged.attempts == EXPECTED_ATTEMPTS[1:]
    status = read_status(results, now=at(30))
    assert {k: v for k, v in status.outcomes.items() if v} == {
        "succeeded": 2, "failed": 1, "unknown": 1,
    }  # fmt: skip
    assert [(f.row, f.error_code, f.error_message) for f in status.failures] == [
        (2, "VALIDATION_ERROR", MESSAGE)
    ]
    facts = data.read(results)
    assert facts.outcome_counts()["succeeded"] == 2
    assert facts.attempts.height == len(EXPECTED_ATTEMPTS)


def test_the_same_steps_write_the_same_tables_and_lines(tmp_path: Path) -> None:
    """The run that wrote the old journal, replayed by this version: the same tables, and the
    same log bytes (an answer's time aside: the clock's)."""
    path = tmp_path / "out.csv.journal"
    journal = Journal.open(path, IDENTITY)
    journal.segment = 1
    one, two, three, four = (Call(row, 100 + row, BODY) for row in (1, 2, 3, 4))
    journal.begin(one)
    journal.attempt(one, 1, now=at(0))
    journal.answered(one, 200, "", None, final=True)
    journal.finish(EXPECTED_ROWS[0])
    journal.trail()  # row 1 reaches SQLite
    journal.begin(two)
    journal.attempt(two, 1, now=at(2), waited_ms=5, cause="pace")
    journal.answered(two, 503, "HTTP_503", 2.5)
    journal.attempt(two, 2, now=at(5), waited_ms=2500, cause="retry_after")
    journal.answered(two, 422, "VALIDATION_ERROR", None)
    journal.finish(EXPECTED_ROWS[1])
    journal.begin(three)
    journal.attempt(three, 1, now=at(7))
    journal.begin(four)
    journal.attempt(four, 1, now=at(8), waited_ms=1000, cause="pace")
    journal.answered(four, 200, "", None, final=True)
    journal.finish(EXPECTED_ROWS[3])
    written = Path(f"{path}-log").read_bytes().split(b"\0", 1)[0].decode().splitlines()
    journal.close()

    def clockless(line: str) -> object:
        mark, *values = json.loads(line)
        if mark != loglines.ATTEMPT_MARK:
            return line
        return Attempt._make(values)._replace(answered_at=None)

    assert [clockless(line) for line in written] == [clockless(line) for line in OLD_LOG]
    with closing(sqlite3.connect(path)) as db:
        tables = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    assert tables == OLD_TABLES


_TEXT = st.text(st.characters(codec=None, exclude_categories=()))  # lone surrogates included
_MOMENT = st.none() | st.datetimes(timezones=st.just(UTC))
_RESULTS = st.builds(
    RowResult, st.integers(min_value=1), _TEXT, st.sampled_from(Outcome),
    st.none() | st.integers(100, 599), st.integers(0, 99), _TEXT, _TEXT, _TEXT, _TEXT, _MOMENT,
    _MOMENT, st.none() | st.integers(),
)  # fmt: skip


@given(_RESULTS)
def test_a_stored_record_reads_back_as_the_result_it_stores(result: RowResult) -> None:
    """Any RowResult, stored (a table row, a log line) and read back, is the same RowResult:
    the encoding loses nothing, whatever the texts, times and numbers hold."""
    stored = rowrecords.encode(result)
    assert rowrecords.decode(stored) == result
    assert rowrecords.decode(json.loads(loglines.line(stored))) == result


@given(
    st.integers(1, 2**40), _TEXT, st.integers(1, 99), _TEXT, st.integers(0, 253_402_300_799_999_999)
)
def test_an_in_flight_record_is_the_encoding_of_its_unknown_result(
    row: int, routing_id: str, attempts: int, body: str, started: int
) -> None:
    """The in-flight mark, made at once for speed, is exactly what encode makes of the
    `unknown` RowResult it stands for."""
    mark = RowResult(row, routing_id, Outcome.UNKNOWN, attempts=attempts, request=body,
                     started_at=rowrecords.when(started))  # fmt: skip
    assert rowrecords.in_flight(row, routing_id, attempts, body, started) == rowrecords.encode(mark)
