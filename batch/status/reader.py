"""Reading a run's journal for ``reroute status`` (batch.status.state): one snapshot, read only.

The journal is opened as a WAL reader (``audit.read_only``) inside one read transaction, so every
query sees the same moment and the run writes on undisturbed. Its log of records not yet copied
into SQLite is read first (a record copied in and zeroed meanwhile is then in SQLite) and laid
over SQLite's rows: the later of two records of a row is the one with more attempts, or as many
and a final outcome. Counts are SQL aggregates: a refresh costs one scan of the rows table, and
the log's few hundred records, whatever the run's size.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from batch.config.jobs import Job, load_job
from batch.engine import window
from batch.errors import JobFileError, JournalError, UsageError
from batch.journal import audit, rowrecords
from batch.journal import counts as runcounts
from batch.journal.audit import Attempt
from batch.journal.counts import Tally, count, later, others_of
from batch.journal.db import journal_path, log_path
from batch.journal.lock import Holder, peek
from batch.journal.loglines import Logged, read_log
from batch.journal.record import RECORD_KEY, RunRecord
from batch.model import RESEND_CODES, RESEND_STATUSES, Outcome, RowResult
from batch.send.keyshare import sharing
from batch.sheets.rownames import META_KEY, RowNames
from batch.status import values
from batch.status.state import (
    SHOWN,
    Event,
    Failure,
    RunStatus,
    Window,
    lock_notes,
    missing,
    state_of,
    window_at,
)

RECENT: Final = timedelta(seconds=60)  # the current rate is measured over this much time
_NEVER: Final = 1 << 62  # a threshold no time reaches (a rate not measured)
_UNKNOWN: Final = Outcome.UNKNOWN.value


def read_status(
    results: Path,
    *,
    job: Job | None = None,
    now: datetime | None = None,
    lock_table: Path = Path("/proc/locks"),
    pace_dir: Path | None = None,
) -> RunStatus:
    """The state of the run writing ``results``, from its journal, log and lock (read only);
    with ``pace_dir``, the other runs on this machine that share its API key's pace."""
    path = journal_path(results)
    if not path.is_file():
        raise JournalError(missing(results, results, path, job))
    now = now or datetime.now(UTC)
    try:
        status = _read(path, results, now, job, lock_table)
    except sqlite3.Error:
        # A run opening (or closing) the journal at that very moment: its first transaction,
        # or the checkpoint of the last, under a reader of a journal no run had open. Once
        # more, then say so.
        try:
            status = _read(path, results, now, job, lock_table)
        except sqlite3.Error as exc:
            raise JournalError(f"{path}: not a readable run journal ({exc})") from exc
    if pace_dir is not None and status.running:
        others = sharing(pace_dir, results)
        status = replace(status, sharing=None if others is None else tuple(others))
    return status


def _read(path: Path, results: Path, now: datetime, job: Job | None, lock_table: Path) -> RunStatus:
    look = peek(results, lock_table=lock_table)
    # The log first, then SQLite: a record copied in and zeroed in between is then in SQLite.
    try:
        logged = read_log(log_path(path))
    except JournalError:
        logged = Logged([], [], 0)  # caught mid-write: what SQLite holds is a batch behind at most
    db = audit.read_only(path)
    try:
        db.execute("BEGIN")  # one snapshot for every query
        return _Reader(db, path, results, now, look.held, look.holder, job, logged).status()
    finally:
        db.close()


@dataclass(frozen=True, slots=True)
class _Requests:
    active: datetime  # when the segment sent its first request (else its start)
    recent: int  # requests sent over the last RECENT
    in_flight: int  # requests of the running invocation not yet answered
    in_trail: int  # every request of the trail (the lines of the attempts file)


class _Reader:
    """One snapshot of the journal read into a RunStatus."""

    def __init__(
        self,
        db: sqlite3.Connection,
        path: Path,
        results: Path,
        now: datetime,
        held: bool | None,
        holder: Holder | None,
        job: Job | None,
        logged: Logged,
    ) -> None:
        self.db, self.path, self.results, self.now = db, path, results, now
        self.held, self.holder, self.job = held, holder, job
        self.rows = {result.row: result for result in logged.rows}  # the log's latest per row
        self.requests: dict[tuple[int, int], Attempt] = {  # ... per request
            (request.row, request.attempt): request for request in logged.attempts
        }
        self.notes: list[str] = []

    def status(self) -> RunStatus:
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        record = RunRecord.from_json(meta.get(RECORD_KEY, ""))
        job = self._job_path(record)  # first: its window is the next one, if not running
        trail = audit.has_trail(self.db)
        segments = audit.segments(self.db) if trail else []
        events = audit.events(self.db)[-SHOWN:] if trail else []
        last = segments[-1] if segments else None
        running = self.held
        # The invocation holding the lock starts its segment after taking it: until then the
        # last segment is an earlier invocation's.
        start = max(
            (m for m in (values.seg_time(last, "started_at"), self._held_since()) if m is not None),
            default=None,
        )
        requests = self._requests(start, running) if trail and start is not None else None
        active = requests.active if requests is not None else start
        recent = max(self.now - RECENT, active) if running and active is not None else None
        tally = self._tally(recent, active)
        in_trail = 0
        if trail:
            in_trail = requests.in_trail if requests is not None else self._in_trail()
        candidates = values.int_or_none(meta.get(runcounts.CANDIDATES_KEY))
        others = others_of(meta.get(runcounts.OTHERS_KEY))
        outcomes, total, done = count(tally, candidates, others)
        recorded = sum(tally.outcomes.values())
        if total is None:
            self.notes.append(
                "the journal does not record the rows this run never sends (invalid, unchanged): "
                "the counts cover the rows it sends"
            )
        left = None if candidates is None else max(0, candidates - done)
        end = self.now if running else values.seg_time(last, "finished_at")
        rows_rate = average = requests_rate = None
        if recent is not None and (span := (self.now - recent).total_seconds()) >= 1:
            rows_rate = tally.recent * 60 / span
            if requests is not None:
                requests_rate = requests.recent * 60 / span
        if active is not None and end is not None and (span := (end - active).total_seconds()) >= 1:
            average = tally.active * 60 / span
        eta = None
        if running and left is not None:
            per_min = rows_rate or average
            if left == 0:
                eta = self.now
            elif per_min:
                eta = self.now + timedelta(minutes=left / per_min)
        win = self._window(last, running)
        if eta is not None and win.not_after is not None and eta > win.not_after:
            self.notes.append(
                f"at this rate the window closes ({window.format_moment(win.not_after)}) before "
                "the last row: the same command in the next window resumes"
            )
        finished = meta.get("finished") == "1"
        state = state_of(running, finished, win, sent=bool(recorded or segments))
        self.notes += lock_notes(running, self.holder)
        settings: Mapping[str, Any] = last["settings"] if last else {}
        in_flight = (
            requests.in_flight if running and requests else (0 if running is False else None)
        )
        return RunStatus(
            results=self.results,
            journal=self.path,
            now=self.now,
            state=state,
            running=running,
            holder=self.holder,
            operator=self._operator(last, start),
            kind=values.text_of(last["kind"] if last else (record.kind if record else "")),
            target=values.target_of(meta, record),
            job=job,
            started_at=values.started_of(meta, segments),
            finished=finished,
            total=total,
            candidates=candidates,
            outcomes=outcomes,
            done=done,
            left=left,
            in_flight=in_flight,
            requests=runcounts.requests(meta, in_trail) if trail else tally.attempts,
            requests_trail=in_trail if trail else None,
            requests_carried=runcounts.carried_of(meta) if trail else 0,
            rate=values.text_of(settings.get("rate") or (record.settings["rate"] if record else ""))
            or None,
            concurrency=values.int_or_none(
                settings.get("concurrency") or (record.settings["concurrency"] if record else None)
            ),
            rows_per_min=rows_rate,
            average_rows_per_min=average,
            requests_per_min=requests_rate,
            eta=eta,
            window=win,
            failures=self._failures(),
            segments=tuple(values.segment_of(s) for s in segments[-SHOWN:]),
            events=tuple(
                Event(e["segment"], values.when(e["at"]), e["kind"], e["detail"]) for e in events
            ),
            trail=trail,
            notes=tuple(self.notes),
            row_names=RowNames.from_text(meta.get(META_KEY)),
        )

    def _held_since(self) -> datetime | None:
        return self.holder.started_at if self.held and self.holder else None

    def _tally(self, recent: datetime | None, active: datetime | None) -> Tally:
        """Outcomes, attempts and rows decided lately: SQLite's, with the log's laid over."""
        first, since = (
            values.us(recent) if recent else _NEVER,
            values.us(active) if active else _NEVER,
        )
        codes = ", ".join("?" * len(RESEND_CODES))
        statuses = ", ".join(str(s) for s in sorted(RESEND_STATUSES))
        names = [o.value for o in Outcome]
        # One pass without GROUP BY (a sort of every row: three times slower on 200,000 rows).
        found = self.db.execute(
            "SELECT "
            + "".join("coalesce(sum(outcome = ?), 0), " for _ in names)
            + "coalesce(sum(outcome = 'failed' AND (coalesce(http_status, 0) IN "
            f"({statuses}) OR error_code IN ({codes}))), 0), coalesce(sum(attempts), 0), "
            "coalesce(sum(finished_at >= ? AND outcome != 'unknown'), 0), "
            "coalesce(sum(finished_at >= ? AND outcome != 'unknown'), 0) FROM rows",
            (*names, *sorted(RESEND_CODES), first, since),
        ).fetchone()
        tally = Tally()
        *per_outcome, tally.resend, tally.attempts, tally.recent, tally.active = found
        for name, n in zip(names, per_outcome, strict=True):
            tally.outcomes[name] += n
        for row, logged in self.rows.items():
            stored = self._stored(row)
            if stored is not None:
                tally.add(stored, -1, first, since)
                logged = later(stored, logged)
            self.rows[row] = logged
            tally.add(logged, 1, first, since)
        return tally

    def _in_trail(self) -> int:
        """Requests of the audit trail (the lines of the attempts file): SQLite's, and the
        log's not yet copied in (what _requests counts in its pass, when it runs)."""
        (found,) = self.db.execute("SELECT count(*) FROM attempts").fetchone()
        query = "SELECT 1 FROM attempts WHERE row = ? AND attempt = ?"
        return int(found) + sum(
            self.db.execute(query, key).fetchone() is None for key in self.requests
        )

    def _stored(self, row: int) -> RowResult | None:
        found = self.db.execute(
            f"SELECT {rowrecords.COLUMNS} FROM rows WHERE row = ?", (row,)
        ).fetchone()
        return None if found is None else rowrecords.decode(found)

    def _failures(self) -> tuple[Failure, ...]:
        """The last failed rows, latest first (the log's records replacing SQLite's)."""
        query = (
            f"SELECT {rowrecords.COLUMNS} FROM rows WHERE outcome = 'failed' "
            "ORDER BY finished_at DESC LIMIT ?"
        )
        stored = map(rowrecords.decode, self.db.execute(query, (SHOWN + len(self.rows),)))
        found = [r for r in stored if r.row not in self.rows]
        found += [r for r in self.rows.values() if r.outcome is Outcome.FAILED]
        found.sort(key=lambda r: rowrecords.stamp(r.finished_at) or 0, reverse=True)
        return tuple(
            Failure(row=r.row, routing_id=r.routing_id, http_status=r.http_status,
                    error_code=r.error_code, error_message=r.error_message, attempts=r.attempts,
                    at=r.finished_at)
            for r in found[:SHOWN]
        )  # fmt: skip

    def _requests(self, start: datetime, running: bool | None) -> _Requests:
        """One pass over the attempts (no index on time: one scan, whatever is asked): when
        the segment started sending, requests since ``max(now - RECENT, start)``, and the
        requests of a running invocation not yet answered, and every request; the log's laid
        over."""
        at, recent = values.us(start), values.us(max(self.now - RECENT, start))
        first, count, waiting, every = self.db.execute(
            "SELECT min(CASE WHEN sent_at >= ? THEN sent_at END), "
            "coalesce(sum(sent_at >= ?), 0), "
            "coalesce(sum(sent_at >= ? AND answered_at IS NULL), 0), count(*) FROM attempts",
            (at, recent, at),
        ).fetchone()
        query = "SELECT sent_at, answered_at FROM attempts WHERE row = ? AND attempt = ?"
        for key, request in self.requests.items():
            sent, answered = request.sent_at, request.answered_at
            stored = self.db.execute(query, key).fetchone()
            if sent >= at:
                first = sent if first is None else min(first, sent)
            if stored is None:
                every += 1
                count += sent >= recent
                waiting += sent >= at and answered is None
                continue
            stored_sent, stored_answered = stored
            if stored_answered is None and answered is not None and stored_sent >= at:
                waiting -= 1  # answered since it was copied into SQLite
        active = start if first is None else values.when(first)
        return _Requests(active, count, waiting if running else 0, every)

    def _window(self, last: Mapping[str, Any] | None, running: bool | None) -> Window:
        """The window that applies: the running segment's; else the job's next one (a daily
        window moves on), else the last segment's."""
        settings = last["settings"] if last else {}
        zone = values.zone_of(settings.get("window_zone"))
        bounds = (
            values.moment_of(settings.get("not_before"), zone),
            values.moment_of(settings.get("not_after"), zone),
        )
        if not running and self.job is not None:
            try:
                job_window = window.resolve(
                    self.job.get("not_before"), self.job.get("not_after"), self.now
                )
                bounds = job_window.not_before, job_window.not_after
            except ValueError:
                pass
        return window_at(*bounds, self.now)

    def _operator(self, last: Mapping[str, Any] | None, start: datetime | None) -> str | None:
        if not self.held or last is None or start is None:
            return None
        return str(last["operator"]) if values.seg_time(last, "started_at") == start else None

    def _job_path(self, record: RunRecord | None) -> Path | None:
        if self.job is not None:
            return self.job.path
        if record is None or not record.job:
            return None
        try:
            self.job = load_job(record.job)  # its window, should the run not be running
        except (JobFileError, UsageError, OSError):
            return Path(record.job)
        return self.job.path
