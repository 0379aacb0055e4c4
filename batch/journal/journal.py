"""The run's journal: every row's outcome, written durably the moment it is known.

A long run (10,000 rows at 60/min is almost three hours) must survive ``kill -9``, a reboot or a
Ctrl-C and continue where it stopped. The journal is a SQLite database in WAL mode beside the
results file (``<results>.journal``), with an append-only log beside it (``<results>.journal-log``)
that makes each record durable the moment it is known (``batch.journal.backlog``). Every record
is in the log before reroute sends anything or waits for anything: an in-flight mark before its
request goes out, a final record at once.

What it holds, per input row that was ever sent:
- while a row is in flight, an ``unknown`` record with the attempts started so far (written when
  each attempt starts), so a crash leaves at most ``--concurrency`` unknowns;
- once the answer is known, the final record (``succeeded`` / ``failed``), replacing it.
Rows never sent have no record (they are ``not_attempted``). A meta table names the run (sha256
of the input's content, the base URL and the resolved results path) and remembers the settings
that define it (``batch.journal.record``: target, key variable NAME, pace, what changes the bodies),
so resume and retry reuse them. The API key is never stored here.

Attempts accumulate: a row sent again (a resume after a 401, a retry of a failure) starts from
the attempts and first send time its earlier record holds, or that the caller carried in from
a results file (:meth:`Journal.carry`), whichever counted more.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from batch.errors import JournalError
from batch.journal import applied, audit, loglines, rowrecords
from batch.journal import db as journaldb
from batch.journal.audit import Attempt
from batch.journal.backlog import Backlog
from batch.journal.db import discard as discard  # the journal's files, for its users
from batch.journal.db import journal_path as journal_path
from batch.journal.record import RunIdentity
from batch.model import Call, Outcome, RowResult


class Journal:
    """One run's durable record of row outcomes. Open with :meth:`open`; use as a context.

    The orchestrator calls :meth:`begin` when it starts a row, :meth:`attempt` as each request
    starts (via the sender's ``on_attempt`` hook), then :meth:`finish` with the final result, or
    :meth:`abandon` if the row was cancelled. Not thread-safe: one event loop drives it.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, *, resumed: bool) -> None:
        self._db = connection
        self.path = path
        self.resumed = resumed  # True when records of an earlier invocation were found
        self._closed = False
        self.target = self.meta("base_url") or ""  # where this journal's rows were applied
        try:
            self._backlog = Backlog(connection, path)
        except JournalError:
            connection.close()
            raise
        # The request in flight of each row (bounded by --concurrency).
        self._sent: dict[int, Attempt] = {}
        self.segment = 0  # the segment (audit trail) this invocation's requests belong to
        # Attempts made for in-flight rows by earlier invocations (a resumed row, a retried
        # one), and when the row was first sent: added to this invocation's, so `attempts`
        # stays the number of requests sent and `started_at` the first. Bounded by
        # --concurrency: only rows in flight are here.
        self._prior: dict[int, tuple[int, int | None]] = {}  # (attempts, microseconds)
        # What a retry read from a results file about each row it sends (see carry()).
        self._carried: Mapping[int, tuple[int, datetime | None]] = {}

    @classmethod
    def open(cls, path: Path, identity: RunIdentity | None, *, fresh: bool = False) -> Journal:
        """Open (or create) the journal at ``path`` for the run ``identity``.

        Raises JournalError when the file is not a journal, or records a different run (the
        message says to use --fresh or another --results). ``fresh`` discards it first.
        ``identity=None`` opens an existing journal whatever run it records (a retry in place
        updates the journal of the run that wrote the results file).
        """
        db, resumed = journaldb.connect(path, identity, fresh=fresh)
        return cls(db, path, resumed=resumed)

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Write and copy in what is pending, and close; closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self._backlog.close()
        finally:
            self._db.close()

    def delete(self) -> None:
        """Close and remove the journal files (when the results file now holds everything)."""
        self.close()
        journaldb.discard(self.path)

    # -- reading ---------------------------------------------------------------------------

    def get(self, row: int) -> RowResult | None:
        self._backlog.flush()
        record = self._db.execute(
            f"SELECT {rowrecords.COLUMNS} FROM rows WHERE row = ?", (row,)
        ).fetchone()
        return None if record is None else rowrecords.to_result(record)

    def is_final(self, row: int) -> bool:
        """True when the row was decided (RowResult.decided) and must not be sent again."""
        self._backlog.flush()
        record = self._db.execute(
            "SELECT outcome, http_status, error_code FROM rows WHERE row = ?", (row,)
        ).fetchone()
        if record is None:
            return False
        outcome, status, code = record
        return RowResult(
            row, "", Outcome(outcome), http_status=status, error_code=code or ""
        ).decided

    def results(self) -> Iterator[RowResult]:
        """Every record, in row order (streamed: the cursor is read lazily)."""
        self._backlog.flush()
        for record in self._db.execute(f"SELECT {rowrecords.COLUMNS} FROM rows ORDER BY row"):
            yield rowrecords.to_result(record)

    def counts(self) -> dict[Outcome, int]:
        self._backlog.flush()
        return {
            Outcome(outcome): n
            for outcome, n in self._db.execute("SELECT outcome, count(*) FROM rows GROUP BY 1")
        }

    def final_count(self) -> int:
        """How many rows are decided (skipped by a resumed run)."""
        return sum(1 for result in self.results() if result.decided)

    def applied_at(self, call: Call) -> datetime | None:
        """When ``call``'s very body was applied to its routing id on this journal's target by
        an earlier run of this results path; None when it was not."""
        at = applied.applied_at(self._db, self.target, str(call.routing_id), call.body)
        return None if at is None else rowrecords.when(at)

    def remember_applied(self) -> None:
        """Fold this run's succeeded rows into the memory of what was applied
        (batch.journal.applied); the engine calls it when an invocation ends."""
        self._backlog.flush()
        applied.remember(self._db, self.target)

    def start_run(self, identity: RunIdentity) -> None:
        """Make this journal the journal of a new run (``identity``): the rows of the previous
        one are forgotten (the caller archived its results file first; what they applied is
        folded into the memory first, should its last invocation have died)."""
        self.remember_applied()
        audit.forget(self._db)  # its trail went with its files to the archive
        with self._db:
            self._db.execute("DELETE FROM rows")
            self._db.execute("DELETE FROM meta WHERE key = 'finished'")
            self._db.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                list(identity.as_meta().items()),
            )
        self.target = identity.base_url
        self.resumed = False

    # -- the audit trail (batch.journal.audit) ---------------------------------------------

    def begin_segment(self, start: audit.SegmentStart) -> int:
        """This invocation starts sending: a new segment of the run's story."""
        self.segment = audit.begin_segment(self._db, start)
        return self.segment

    def end_segment(self, stop_reason: str, exit_status: int | None) -> None:
        if self.segment:
            audit.end_segment(self._db, self.segment, stop_reason=stop_reason,
                              exit_status=exit_status)  # fmt: skip

    def event(self, kind: str, detail: str) -> None:
        """What a guard did (window, canary, budget, a pause, a stop), when it did it."""
        if self.segment:
            audit.add_event(self._db, self.segment, kind, detail)

    def trail(self) -> sqlite3.Connection:
        """The database, flushed, for a reader's own queries (tests)."""
        self._backlog.flush()
        return self._db

    def attempt_records(self) -> Iterator[Attempt]:
        """Every request of the run, by row then attempt, streamed; raises JournalError when
        the database cannot be read."""
        self._backlog.flush()
        try:
            yield from audit.attempts(self._db)
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot read the run's requests ({exc})") from exc

    def audit_summary(
        self,
    ) -> tuple[dict[str, int], list[dict[str, Any]], list[dict[str, Any]]]:
        """Requests per answer, every segment and every event (run.json's parts); raises
        JournalError when the database cannot be read."""
        self._backlog.flush()
        try:
            return (audit.requests_by_answer(self._db), audit.segments(self._db),
                    audit.events(self._db))  # fmt: skip
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot read the audit trail ({exc})") from exc

    def record(self, result: RowResult) -> None:
        """Record a row decided without a request (already applied by an earlier run)."""
        self._write(result)
        self.resumed = True  # it has records now: pending() must look them up

    def has_applied(self) -> bool:
        """Whether anything was ever applied on this journal's target (a quick check that
        spares a new journal one lookup per row)."""
        row = self._db.execute("SELECT 1 FROM applied WHERE target = ? LIMIT 1", (self.target,))
        return row.fetchone() is not None

    def metadata(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def meta(self, key: str) -> str | None:
        """A value of the journal's meta table (the run's identity, its remembered settings)."""
        for (value,) in self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)):
            return str(value)
        return None

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or with None, remove) a value of the meta table."""
        with self._db:
            if value is None:
                self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value)
                )

    # -- writing ---------------------------------------------------------------------------

    def carry(self, earlier: Mapping[int, tuple[int, datetime | None]]) -> None:
        """Attempts and first send time per row that a retry read from a results file: a row
        sent again counts on from them (when its journal record does not count more)."""
        self._carried = earlier

    def begin(self, call: Call) -> None:
        """The run is about to send ``call``: remember the attempts made before (an earlier
        invocation's record of any outcome, or what a retry carried in) and the first send."""
        attempts, started = self._carried.get(call.row, (0, None))
        earlier = self.get(call.row) if self.resumed else None
        if earlier is not None:
            attempts = max(attempts, earlier.attempts)
            moments = [m for m in (started, earlier.started_at) if m is not None]
            started = min(moments) if moments else None
        self._prior[call.row] = (attempts, rowrecords.stamp(started))

    def attempt(
        self,
        call: Call,
        n: int,
        *,
        now: datetime | None = None,
        waited_ms: int = 0,
        cause: str = "",
    ) -> None:
        """Attempt ``n`` (1-based) of ``call`` starts: record the row as in flight, and the
        request (sent, not yet answered; after ``waited_ms`` for ``cause``), durably."""
        row = call.row
        prior, started = self._prior.get(row, (0, None))
        # The wall clock in microseconds, read directly (a datetime costs four times more).
        sent = time.time_ns() // 1000 if now is None else rowrecords.stamp(now)
        assert sent is not None
        if started is None:
            started = sent
            self._prior[row] = (prior, started)
        routing_id = str(call.routing_id)
        record = rowrecords.in_flight(row, routing_id, prior + n, call.body, started)
        request = Attempt(row=row, routing_id=routing_id, attempt=prior + n, segment=self.segment,
                          sent_at=sent, waited_ms=waited_ms, wait_cause=cause)  # fmt: skip
        self._sent[row] = request
        self._backlog.add(row, record, loglines.in_flight(record, request), request)

    def answered(
        self,
        call: Call,
        status: int | None,
        code: str,
        retry_after: float | None,
        *,
        final: bool = False,
    ) -> None:
        """The request in flight for ``call`` has its answer (``status``, or None for a
        transport error, with its ``code``). ``final``: the row's last (a success): the record
        goes to SQLite with the others, but is not logged, since the row's final record (which
        follows without a pause) says when and how it was answered."""
        request = self._sent.pop(call.row, None)
        if request is None:
            return
        answer = request._replace(answered_at=time.time_ns() // 1000, http_status=status,
                                  error_code=code, retry_after=retry_after)  # fmt: skip
        # A success's line is left out: the row's final record says it all (loglines).
        self._backlog.answer(answer, None if final else loglines.answer(answer))

    def finish(self, result: RowResult) -> RowResult:
        """Record the final result of a row; returns it with attempts of earlier runs added."""
        prior, first = self._prior.pop(result.row, (0, None))
        if prior:
            started = rowrecords.when(first)
            if started is not None and result.finished_at is not None:
                # The first send was an earlier invocation's: times run from it.
                duration = (result.finished_at - started) // timedelta(milliseconds=1)
                result = result._replace(started_at=started, duration_ms=duration)
            result = result._replace(attempts=result.attempts + prior)
        self._write(result)
        return result

    def abandon(self, call: Call) -> RowResult | None:
        """The row was cancelled before its answer: its record (``unknown``) stays as it is.

        Returns that record, or None when no request was ever sent for it (``not_attempted``).
        """
        self._prior.pop(call.row, None)
        self._sent.pop(call.row, None)  # its request stays sent, never answered
        return self.get(call.row)

    def _write(self, result: RowResult) -> None:
        record = rowrecords.encode(result)
        self._backlog.add(result.row, record, loglines.line(record))
