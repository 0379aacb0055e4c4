"""The audit trail: every request, every run segment and every event, kept in the run's journal.

Three SQLite tables beside the journal's ``rows`` (the journal's database, so one file holds the
whole story, and a resumed run appends to it):

- ``attempts``: one record per request ever sent, keyed by (row, attempt). Written through the
  journal's log like a row's records (durable the moment it is known): once when the request
  goes out (no answer yet), again when its answer (or transport error) is known. A request cut
  off by ``kill -9`` keeps its first record: sent, never answered.
- ``segments``: one per invocation that sent (a start, a resume, a retry, the next window):
  version, operator, times, how it ended, what it sent (input and plan sha256), where, with which
  key variable (its NAME, never the key) and settings.
- ``events``: what the guards did and when (window, canary, error budget, a server pause, a stop).

The writers are here; the journal calls them. The readers open the database read-only
(:func:`read_only`), so ``reroute status`` and ``reroute report`` never block or slow a run.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS attempts (
    row INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    routing_id TEXT NOT NULL,
    segment INTEGER NOT NULL,
    sent_at INTEGER NOT NULL,
    answered_at INTEGER,
    http_status INTEGER,
    error_code TEXT NOT NULL,
    waited_ms INTEGER NOT NULL,
    wait_cause TEXT NOT NULL,
    retry_after REAL,
    PRIMARY KEY (row, attempt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segments (
    segment INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    version TEXT NOT NULL,
    operator TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    stop_reason TEXT NOT NULL DEFAULT '',
    exit_status INTEGER,
    input_sha256 TEXT NOT NULL,
    plan_sha256 TEXT NOT NULL,
    target_host TEXT NOT NULL,
    key_variable TEXT NOT NULL,
    settings TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    segment INTEGER NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


class Attempt(NamedTuple):
    """One request as the audit trail keeps it: a record of the ``attempts`` table (its columns,
    in order), a line of the attempts file. Times in microseconds since the epoch, as the journal
    holds every time. Defined here, beside its table: the journal alone writes it; the attempts
    file, ``reroute status`` and the report read it back from the journal."""

    row: int
    routing_id: str
    attempt: int  # 1-based, counted across the row's invocations
    segment: int  # the invocation that sent it (``segments``)
    sent_at: int
    answered_at: int | None = None  # None: no answer (yet, or ever)
    http_status: int | None = None  # None: a transport error (``error_code``), or no answer
    error_code: str = ""
    waited_ms: int = 0  # the wait before it went out
    wait_cause: str = ""  # why it waited (below)
    retry_after: float | None = None  # the answer's Retry-After, in seconds


ATTEMPT_COLUMNS: Final = Attempt._fields
UPSERT_ATTEMPT: Final = (
    f"INSERT OR REPLACE INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(ATTEMPT_COLUMNS))})"
)

# Why a request waited before it went out (``wait_cause``).
PACE: Final = "pace"  # its slot under --rate (or --concurrency)
PAUSE: Final = "pause"  # every request paused after a 429 (the server's Retry-After)
BACKOFF: Final = "backoff"  # the backoff after a transient failure of this row
RETRY_AFTER: Final = "retry_after"  # this row's own 429/503 said how long to wait
HOST_DOWN: Final = "host_down"  # the host was down (outage mode): waited for it to answer

# Event kinds (``events.kind``).
WINDOW_WAIT = "window_wait"  # the window has not opened: waiting for it
WINDOW_OPEN = "window_open"
WINDOW_CLOSED = "window_closed"  # it closed with rows left to send
CANARY_PASSED = "canary_passed"
CANARY_STOPPED = "canary_stopped"
BUDGET_EXCEEDED = "budget_exceeded"
SERVER_PAUSE = "server_pause"  # a 429 asked for longer than --max-retry-after
HOST_DOWN_EVENT = "host_down"
HOST_UP = "host_up"
STOP = "stop"  # any other stop (a signal, a rejected key)


def now_us() -> int:
    """The wall clock in microseconds since the epoch (as every time in the journal)."""
    return time.time_ns() // 1000


def operator_name() -> str:
    """``user@host`` of whoever runs reroute (for the segment; never anything secret)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError, ImportError):  # no pwd module (Windows) and no USER set
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def plan_sha256(bodies: Iterable[tuple[int, str, str]]) -> str:
    """The sha256 of the planned requests: each (row, routing id, body) on its own line, in
    row order. Two segments that would send the same bodies to the same records agree."""
    digest = hashlib.sha256()
    for row, routing_id, body in bodies:
        digest.update(f"{row}\t{routing_id}\t{body}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class SegmentStart:
    """What a segment records when it starts (the end adds when, why and the exit status)."""

    kind: str  # "run" (a start), "resume", "retry"
    version: str
    operator: str
    input_sha256: str
    plan_sha256: str
    target_host: str
    key_variable: str  # the NAME of the variable (or the key file's path), never the key
    settings: Mapping[str, Any]


def begin_segment(db: sqlite3.Connection, start: SegmentStart, *, at: int | None = None) -> int:
    """Record a segment's start; returns its number (1, 2, ...)."""
    with db:
        cursor = db.execute(
            "INSERT INTO segments (kind, version, operator, started_at, input_sha256, "
            "plan_sha256, target_host, key_variable, settings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                start.kind, start.version, start.operator, now_us() if at is None else at,
                start.input_sha256, start.plan_sha256, start.target_host, start.key_variable,
                json.dumps(dict(start.settings), sort_keys=True, default=str),
            ),
        )  # fmt: skip
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def end_segment(
    db: sqlite3.Connection, segment: int, *, stop_reason: str, exit_status: int | None
) -> None:
    with db:
        db.execute(
            "UPDATE segments SET finished_at = ?, stop_reason = ?, exit_status = ? "
            "WHERE segment = ?",
            (now_us(), stop_reason, exit_status, segment),
        )


def add_event(db: sqlite3.Connection, segment: int, kind: str, detail: str) -> None:
    with db:
        db.execute(
            "INSERT INTO events (segment, at, kind, detail) VALUES (?, ?, ?, ?)",
            (segment, now_us(), kind, detail),
        )


def forget(db: sqlite3.Connection) -> None:
    """A new run starts in this journal (the previous one's files are archived): its trail goes."""
    with db:
        db.execute("DELETE FROM attempts")
        db.execute("DELETE FROM segments")
        db.execute("DELETE FROM events")


# -- reading (read-only: never blocks or slows a run) -------------------------------------------


def read_only(journal: Path) -> sqlite3.Connection:
    """The journal opened for reading only (a WAL reader: the run goes on undisturbed). The
    log of records not yet copied in is not read: what it holds is at most a few hundred rows
    behind (use :func:`pending_log` for those)."""
    # The path quoted into the URI (a folder named "a?b#c" is still a path). With no -wal file
    # beside the journal no run has it open: immutable=1 then reads without creating the -wal
    # and -shm files a reader would otherwise leave behind (a reader writes nothing).
    uri = f"{journal.resolve().as_uri()}?mode=ro"
    if not Path(f"{journal}-wal").exists():
        uri += "&immutable=1"
    db = sqlite3.connect(uri, uri=True, check_same_thread=False)
    db.execute("PRAGMA query_only=1")
    return db


def has_trail(db: sqlite3.Connection) -> bool:
    """Whether the journal has the audit tables (a journal of an older reroute has none)."""
    (found,) = db.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
        "('attempts', 'segments', 'events')"
    ).fetchone()
    return bool(found == 3)


def segments(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every segment, oldest first, as plain values (times in microseconds since the epoch,
    settings decoded)."""
    cursor = db.execute("SELECT * FROM segments ORDER BY segment")
    names = [d[0] for d in cursor.description]
    found = []
    for values in cursor:
        record = dict(zip(names, values, strict=True))
        record["settings"] = json.loads(record["settings"])
        found.append(record)
    return found


def requests_by_answer(db: sqlite3.Connection) -> dict[str, int]:
    """Requests per answer: the HTTP status, else the transport error's code ("no answer")."""
    counts: dict[str, int] = {}
    for status, code, n in db.execute(
        "SELECT http_status, error_code, count(*) FROM attempts GROUP BY 1, 2"
    ):
        label = str(status) if status is not None else (code or "no answer")
        counts[label] = counts.get(label, 0) + n
    return counts


def events(db: sqlite3.Connection) -> list[dict[str, Any]]:
    cursor = db.execute("SELECT segment, at, kind, detail FROM events ORDER BY at, rowid")
    return [dict(zip(("segment", "at", "kind", "detail"), v, strict=True)) for v in cursor]


def attempts(db: sqlite3.Connection, *, batch: int = 10_000) -> Iterator[Attempt]:
    """Every request, by row then attempt, streamed."""
    cursor = db.execute(f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM attempts ORDER BY row, attempt")
    while chunk := cursor.fetchmany(batch):
        yield from map(Attempt._make, chunk)
