"""The run's journal: every row's outcome, written durably the moment it is known.

A long run (10,000 rows at 60/min is almost three hours) must survive ``kill -9``, a reboot or a
Ctrl-C and continue where it stopped. The journal is a SQLite database in WAL mode beside the
results file (``<results>.journal``), with an append-only log beside it (``<results>.journal-log``)
that makes each record durable the moment it is known:

- Every record is first copied into the log as one JSON line. The log is a file mapped into
  memory (``_MappedLog``): once the copy ends, the line is in the operating system's page cache,
  as a ``write`` would put it, so it survives the death of the process (not of the machine's
  power, which an fsync per row could add at a large cost), with no system call per record.
- Records are copied into SQLite in batches (one transaction per ``BATCH`` records, and before any
  read; a row's latest record only), and the log is then zeroed. Opening a journal first copies
  in whatever the log still holds, up to its first zero byte (a crash between the two steps
  copies a record twice: the same upsert, harmless).

So a row costs two small copied lines instead of two SQLite transactions. Every record is in
the log before reroute sends anything or waits for anything: an in-flight mark before its request
goes out, a final record at once, or (for the orchestrator, which asks for it with
``finish(..., commit=False)``) in the same copy as the next row's in-flight mark, which the same
task makes without yielding in between: nothing else runs while a final is not yet written.

What it holds, per input row that was ever sent:
- while a row is in flight, an ``unknown`` record with the attempts started so far (written when
  each attempt starts), so a crash leaves at most ``--concurrency`` unknowns;
- once the answer is known, the final record (``succeeded`` / ``failed``), replacing it.
Rows never sent have no record (they are ``not_attempted``). A meta table names the run: sha256
of the input's content, the base URL and the resolved results path. The API key is never
stored here.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import orjson

from batch.errors import JournalError
from batch.model import Call, Outcome, RowResult, build_row_result

SUFFIX: Final = ".journal"
RETRY_SUFFIX: Final = ".retry.journal"
_FORMAT: Final = "3"  # 3: times as integer microseconds since the epoch, the log beside it
# A row rejected with 401/403 failed because of the key or account, not because of the row: a
# resumed run (after the key is fixed) sends it again instead of treating it as decided.
KEY_REJECTED_STATUSES: Final = frozenset({401, 403})
IN_FLIGHT_MESSAGE: Final = (
    "sent, but the run stopped before an answer arrived; running the same command again "
    "resends it (safe: the update replaces the whole record)"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    row INTEGER PRIMARY KEY,
    routing_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    attempts INTEGER NOT NULL,
    error_code TEXT NOT NULL,
    error_message TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    duration_ms INTEGER
);
"""
_COLUMNS = (
    "row, routing_id, outcome, http_status, attempts, error_code, error_message, request, "
    "response, started_at, finished_at, duration_ms"
)
_UNKNOWN: Final = str(Outcome.UNKNOWN)
# Records copied from the log into SQLite per transaction (the log never holds many more).
BATCH: Final = 256
LOG_SUFFIX: Final = "-log"
# The log's size on disk while a run writes it (zeros after the last record): room for many
# batches of ordinary records; it grows for a record that does not fit.
LOG_SIZE: Final = 1 << 20
_WIDTH: Final = len(_COLUMNS.split(","))  # values in a record, a line of the log
_UPSERT: Final = f"INSERT OR REPLACE INTO rows ({_COLUMNS}) VALUES ({', '.join('?' * _WIDTH)})"


def journal_path(results: Path, *, retry: bool = False) -> Path:
    """Where the journal of a run writing ``results`` lives: beside it, ``<name>.journal``
    (``<name>.retry.journal`` for `reroute retry`, whose input is a results file)."""
    return results.with_name(results.name + (RETRY_SUFFIX if retry else SUFFIX))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks (inputs can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """What makes two invocations "the same run" (contract: input content, target, results)."""

    input_sha256: str
    base_url: str
    results: str  # resolved absolute path of the results file
    # With --current the bodies depend on the snapshot and on --fill-from-current too.
    snapshot: str = ""

    @classmethod
    def of(cls, input_path: Path, base_url: str, results: Path) -> RunIdentity:
        return cls(sha256_file(input_path), base_url.rstrip("/"), str(results.resolve()))

    def as_meta(self) -> dict[str, str]:
        return {
            "input_sha256": self.input_sha256,
            "base_url": self.base_url,
            "results": self.results,
            "snapshot": self.snapshot,
        }


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_OUTCOMES: Final = {outcome.value: outcome for outcome in Outcome}  # cheaper than Outcome(text)
_MICROSECOND: Final = timedelta(microseconds=1)


def _stamp(value: datetime | None) -> int | None:
    """Integer microseconds since the epoch, exact both ways (``_when``): three per row, and an
    integer costs far less to write as text than a float (no shortest-repr search)."""
    return None if value is None else (value - _EPOCH) // _MICROSECOND


def _when(stamp: int | None) -> datetime | None:
    return None if stamp is None else _EPOCH + timedelta(microseconds=stamp)


def _to_result(record: tuple[Any, ...]) -> RowResult:
    """A journal record (a table row or a log line's values) as the RowResult it stands for."""
    (row, routing_id, outcome, status, attempts, code, message, request, response) = record[:9]
    started, finished, duration = record[9:]
    return build_row_result(
        row, routing_id, _OUTCOMES[outcome], status, attempts, code,
        # In-flight marks leave the (always the same) message out of the log and the table.
        message or (IN_FLIGHT_MESSAGE if outcome == _UNKNOWN else ""),
        request, response, _when(started), _when(finished), duration,
    )  # fmt: skip


def _values(result: RowResult) -> tuple[Any, ...]:
    return (
        result.row,
        result.routing_id,
        str(result.outcome),
        result.http_status,
        result.attempts,
        result.error_code,
        result.error_message,
        result.request,
        result.response,
        _stamp(result.started_at),
        _stamp(result.finished_at),
        result.duration_ms,
    )


def _line(values: tuple[Any, ...]) -> bytes:
    """One record as a line of the log: the JSON array of its values, in UTF-8, ending in a
    line break (``json.loads`` reads it back). orjson writes it, at about a fifth of
    ``json.dumps``'s cost (twice per row); json writes what orjson refuses (a lone surrogate,
    an integer beyond 64 bits)."""
    try:
        return orjson.dumps(values, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return json.dumps(values).encode() + b"\n"


def _discard(path: Path) -> None:
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), _log_path(path)):
        name.unlink(missing_ok=True)


def _log_path(path: Path) -> Path:
    return Path(f"{path}{LOG_SUFFIX}")


def _replay(db: sqlite3.Connection, log: Path) -> None:
    """Copy what the log holds into SQLite (one transaction), then empty the log.

    The records end at the first zero byte (no record holds one: JSON escapes it). Every line
    is one record's 12 values. A last line cut short (the process killed while copying it in)
    is skipped: lines are copied in one after another, so only the last can be incomplete.
    """
    try:
        text = log.read_bytes()
    except FileNotFoundError:
        return
    text = text.split(b"\0", 1)[0]
    if not text:
        return
    records = []
    lines = text.split(b"\n")
    for n, line in enumerate(lines):
        if not line:
            continue
        try:
            values = json.loads(line)
        except ValueError:
            values = None
        if not isinstance(values, list) or len(values) != _WIDTH:
            if n >= len(lines) - 2:  # the last line: written only in part
                break
            raise JournalError(f"{log}: line {n + 1} is not a journal record")
        records.append(tuple(values))
    _upsert(db, records)
    # Zeros over the records rather than a shorter file: a file mapped into memory must never
    # shrink under its mapping.
    with log.open("r+b") as handle:
        handle.write(bytes(len(text)))


class _MappedLog:
    """The journal's log: a file mapped into memory (shared with the file, as ``write`` is).

    A record copied in is in the operating system's page cache the moment the copy ends, as
    with ``os.write``, so it survives ``kill -9``; but no system call per record (the call and
    the file-size and time updates it made cost more than the rest of a record's writing).
    The file is written with zeros first, its space allocated: a full disk is an error here, at
    open, never a fault halfway through a run. It only ever grows while mapped.
    """

    def __init__(self, path: Path) -> None:
        self.used = 0  # bytes of records since the log was last emptied
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._map = self._mapped(max(os.fstat(self._fd).st_size, LOG_SIZE))
        except (OSError, ValueError):
            os.close(self._fd)
            raise

    def _mapped(self, size: int) -> mmap.mmap:
        have = os.fstat(self._fd).st_size
        if have < size:
            zeros = bytes(size - have)
            while zeros:  # a regular file takes it whole; a short write is a full disk
                zeros = zeros[os.pwrite(self._fd, zeros, have) :]
                have = size - len(zeros)
        return mmap.mmap(self._fd, size)

    def append(self, data: bytes) -> bool:
        """Copy ``data`` in after the records; False when it does not fit (nothing copied)."""
        end = self.used + len(data)
        if end > len(self._map):
            return False
        self._map[self.used : end] = data
        self.used = end
        return True

    def grow(self, room: int) -> None:
        """Make room for ``room`` more bytes (a record larger than the log)."""
        size = max(2 * len(self._map), self.used + room)
        self._map.close()
        self._map = self._mapped(size)

    def empty(self) -> None:
        """Zeros over the records (all copied into SQLite)."""
        self._map[: self.used] = bytes(self.used)
        self.used = 0

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


def _upsert(db: sqlite3.Connection, records: list[tuple[Any, ...]]) -> None:
    """Write ``records`` in one transaction (the connection autocommits otherwise)."""
    db.execute("BEGIN")
    try:
        db.executemany(_UPSERT, records)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


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
        self._log = _log_path(path)
        try:
            self._mapped = _MappedLog(self._log)
        except (OSError, ValueError) as exc:
            connection.close()
            raise JournalError(f"{self._log}: cannot open the run journal's log ({exc})") from exc
        self._unwritten: list[bytes] = []  # lines held for the next write (commit=False)
        # Records in the log, not yet in SQLite: each row's latest only (its final record
        # replaces its in-flight mark, so SQLite is written once per row, not twice).
        self._batch: dict[int, tuple[Any, ...]] = {}
        self._logged = 0  # lines in the log since it was last emptied
        # Attempts made for in-flight rows by earlier invocations (a resumed `unknown` row),
        # and when the row was first sent (microseconds since the epoch): added to this
        # invocation's, so `attempts` stays the number of requests sent and `started_at` the
        # first. Bounded by --concurrency: only rows in flight are here.
        self._prior: dict[int, tuple[int, int | None]] = {}

    @classmethod
    def open(cls, path: Path, identity: RunIdentity | None, *, fresh: bool = False) -> Journal:
        """Open (or create) the journal at ``path`` for the run ``identity``.

        Raises JournalError when the file is not a journal, or records a different run (the
        message says to use --fresh or another --results). ``fresh`` discards it first.
        ``identity=None`` opens an existing journal whatever run it records (a retry in place
        updates the journal of the run that wrote the results file).
        """
        if fresh:
            _discard(path)
        if identity is None and not path.exists():
            raise JournalError(f"{path}: no such journal")
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise JournalError(f"{path}: cannot open the run journal ({exc})") from exc
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL loses nothing when the process dies (only on power loss).
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if meta and meta.get("format") != _FORMAT:
                raise JournalError(f"{path}: written by another version of reroute; use --fresh")
            if not meta:
                _log_path(path).unlink(missing_ok=True)  # not this journal's: never replay it
                if identity is None:
                    raise JournalError(f"{path}: not a run journal")
                with db:
                    db.executemany(
                        "INSERT INTO meta(key, value) VALUES (?, ?)",
                        [("format", _FORMAT), *identity.as_meta().items()],
                    )
                resumed = False
            else:
                if identity is not None:
                    _check_identity(path, meta, identity)
                _replay(db, _log_path(path))  # what a run that died left in the log
                resumed = db.execute("SELECT 1 FROM rows LIMIT 1").fetchone() is not None
        except (sqlite3.Error, OSError) as exc:
            db.close()
            raise JournalError(
                f"{path}: not a usable run journal ({exc}); remove it or use --fresh"
            ) from exc
        except JournalError:
            db.close()
            raise
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
            self._flush()
            empty = self._mapped.used == 0
        finally:
            self._mapped.close()
            self._db.close()
        if empty:
            self._log.unlink(missing_ok=True)  # everything is in SQLite

    def delete(self) -> None:
        """Close and remove the journal files (when the results file now holds everything)."""
        self.close()
        _discard(self.path)

    # -- reading ---------------------------------------------------------------------------

    def get(self, row: int) -> RowResult | None:
        self._flush()
        record = self._db.execute(f"SELECT {_COLUMNS} FROM rows WHERE row = ?", (row,)).fetchone()
        return None if record is None else _to_result(record)

    def is_final(self, row: int) -> bool:
        """True when the row was decided (succeeded/failed) and must not be sent again."""
        self._flush()
        record = self._db.execute(
            "SELECT outcome, http_status FROM rows WHERE row = ?", (row,)
        ).fetchone()
        if record is None:
            return False
        outcome, status = record
        return outcome in (Outcome.SUCCEEDED, Outcome.FAILED) and (
            status not in KEY_REJECTED_STATUSES
        )

    def results(self) -> Iterator[RowResult]:
        """Every record, in row order (streamed: the cursor is read lazily)."""
        self._flush()
        for record in self._db.execute(f"SELECT {_COLUMNS} FROM rows ORDER BY row"):
            yield _to_result(record)

    def counts(self) -> dict[Outcome, int]:
        self._flush()
        return {
            Outcome(outcome): n
            for outcome, n in self._db.execute("SELECT outcome, count(*) FROM rows GROUP BY 1")
        }

    def final_count(self) -> int:
        """How many rows are decided (skipped by a resumed run)."""
        self._flush()
        (n,) = self._db.execute(
            "SELECT count(*) FROM rows WHERE outcome IN (?, ?) AND "
            "(http_status IS NULL OR http_status NOT IN (401, 403))",
            (Outcome.SUCCEEDED, Outcome.FAILED),
        ).fetchone()
        return int(n)

    # -- writing ---------------------------------------------------------------------------

    def begin(self, call: Call) -> None:
        """The run is about to send ``call``: remember attempts an earlier invocation made."""
        if not self.resumed:  # nothing earlier to remember: skip the lookup
            self._prior[call.row] = (0, None)
            return
        earlier = self.get(call.row)
        if earlier is not None and earlier.outcome is Outcome.UNKNOWN:
            self._prior[call.row] = (earlier.attempts, _stamp(earlier.started_at))
        else:
            self._prior[call.row] = (0, None)

    def attempt(self, call: Call, n: int, *, now: datetime | None = None) -> None:
        """Attempt ``n`` (1-based) of ``call`` starts: record the row as in flight, durably."""
        row = call.row
        prior, started = self._prior.get(row, (0, None))
        if started is None:
            # The wall clock in microseconds, read directly (a datetime costs four times more).
            started = time.time_ns() // 1000 if now is None else _stamp(now)
            self._prior[row] = (prior, started)
        # The values of an `unknown` RowResult, without building one: this runs per request.
        values = (
            row, str(call.routing_id), _UNKNOWN, None, prior + n, "", "", call.body, "",
            started, None, None,
        )  # fmt: skip
        self._batch[row] = values
        self._logged += 1
        self._append(_line(values))
        if self._logged >= BATCH:
            self._flush()

    def finish(self, result: RowResult, *, commit: bool = True) -> RowResult:
        """Record the final result of a row; returns it with attempts of earlier runs added.

        ``commit=False`` holds the record back for the next write (the next row's in-flight
        mark, in the same ``os.write``) or :meth:`commit`. Only for a caller that commits
        before it awaits anything: the orchestrator, whose task goes straight on to its next
        row (see the module docstring).
        """
        prior, _ = self._prior.pop(result.row, (0, None))
        if prior:
            result = replace(result, attempts=result.attempts + prior)
        self._write(_values(result), commit=commit)
        return result

    def commit(self) -> None:
        """Write what ``finish(..., commit=False)`` held back (nothing when nothing is)."""
        if self._unwritten:
            self._append(b"")

    def absorb(self, result: RowResult) -> None:
        """Record a row decided elsewhere (a retry in place updating the run's journal)."""
        self._write(_values(result))

    def abandon(self, call: Call) -> RowResult | None:
        """The row was cancelled before its answer: its record (``unknown``) stays as it is.

        Returns that record, or None when no request was ever sent for it (``not_attempted``).
        """
        self._prior.pop(call.row, None)
        return self.get(call.row)

    def _write(self, values: tuple[Any, ...], *, commit: bool = True) -> None:
        self._batch[values[0]] = values
        self._logged += 1
        if commit:
            self._append(_line(values))
        else:
            self._unwritten.append(_line(values))
        if self._logged >= BATCH:
            self._flush()

    def _append(self, line: bytes) -> None:
        """The held-back lines and ``line``, copied into the log at once: durable when it
        returns. When they do not fit, the records are copied into SQLite first."""
        if self._unwritten:
            line = b"".join((*self._unwritten, line))
            self._unwritten.clear()
        if self._mapped.append(line):
            return
        self._copy_in()  # every record in the batch is in SQLite: the log can start over
        if not self._mapped.append(line):
            try:
                self._mapped.grow(len(line))
            except (OSError, ValueError) as exc:
                raise JournalError(f"{self._log}: cannot write the run journal ({exc})") from exc
            self._mapped.append(line)

    def _flush(self) -> None:
        """Copy the records written to the log into SQLite, then empty the log."""
        if self._unwritten:
            self._append(b"")
        self._copy_in()

    def _copy_in(self) -> None:
        """Copy the batch (the records in the log) into SQLite, then empty the log."""
        if self._batch:
            try:
                _upsert(self._db, list(self._batch.values()))
            except sqlite3.Error as exc:
                raise JournalError(f"{self.path}: cannot write the run journal ({exc})") from exc
            self._batch.clear()
        self._mapped.empty()
        self._logged = 0


def _check_identity(path: Path, meta: dict[str, str], identity: RunIdentity) -> None:
    differs = [
        label
        for key, label in (
            ("input_sha256", "the input file's content"),
            ("base_url", "the base URL"),
            ("results", "the results path"),
            ("snapshot", "the snapshot (--current) or --fill-from-current"),
        )
        if meta.get(key, "") != identity.as_meta()[key]
    ]
    if differs:
        raise JournalError(
            f"{path} belongs to a different run ({' and '.join(differs)} changed since it "
            "started): use --fresh to start over (rows it records as sent are forgotten), or "
            "choose another --results"
        )
