"""The journal's SQLite database: where it lives, opening it (created, checked against the run,
what a dead run left in the log copied in), and the one transaction that copies records in.
``batch.journal.journal`` is the journal as the run uses it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from batch.errors import JournalError
from batch.journal import applied, audit, rowrecords
from batch.journal.maplog import read_records, zero_records
from batch.journal.record import RunIdentity

SUFFIX: Final = ".journal"
_FORMAT: Final = "3"  # 3: times as integer microseconds since the epoch, the log beside it
LOG_SUFFIX: Final = "-log"


def journal_path(results: Path) -> Path:
    """Where the journal of the runs and retries writing ``results`` lives: beside it,
    ``<name>.journal``. One per results path: a retry in place continues the run's journal."""
    return results.with_name(results.name + SUFFIX)


def discard(path: Path) -> None:
    """Remove a journal and the files beside it (after the operator confirmed --fresh)."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), log_path(path)):
        name.unlink(missing_ok=True)


def log_path(path: Path) -> Path:
    return Path(f"{path}{LOG_SUFFIX}")


def replay(db: sqlite3.Connection, log: Path) -> None:
    """Copy what a log holds into SQLite (one transaction), then empty the log. A crash
    between the two steps copies a record twice: the same upsert, harmless."""
    logged = read_log(log)
    if logged.rows or logged.attempts:
        upsert(db, logged.rows, logged.attempts)
        _answered_by_success(db, logged.rows)
    zero_records(log, logged.used)


@dataclass(frozen=True, slots=True)
class Logged:
    """What a journal's log holds: each row's latest record, each request's latest record
    (ATTEMPT_COLUMNS order), and the bytes they take."""

    rows: list[tuple[Any, ...]]
    attempts: list[tuple[Any, ...]]
    used: int


def read_log(log: Path) -> Logged:
    """The records of a journal's log, as the journal will copy them in (also for readers that
    must not wait for it: ``reroute status`` and ``reroute report``). Raises JournalError for
    a line that is not a journal record (a reader may be looking while it is rewritten)."""
    records, used = read_records(log, rowrecords.WIDTH, audit.ATTEMPT_WIDTH, IN_FLIGHT_WIDTH)
    rows: dict[int, tuple[Any, ...]] = {}
    attempts: dict[tuple[int, int], tuple[Any, ...]] = {}
    for record in records:
        if record[0] == audit.ATTEMPT_MARK:
            attempts[(record[1], record[3])] = record[1:]
            continue
        row = record[: rowrecords.WIDTH]
        rows[row[_ROW]] = row
        if len(record) == IN_FLIGHT_WIDTH:
            sent = _sent(record)
            attempts[(sent[0], sent[2])] = sent
        elif (key := _success(row)) is not None:
            # Answered as its row says (a success's answer is not logged).
            found = attempts.get(key)
            if found is not None and found[audit.COL_ANSWERED_AT] is None:
                attempts[key] = (*found[: audit.COL_ANSWERED_AT], row[_FINISHED], row[_STATUS], "",
                                 *found[audit.COL_WAITED_MS :])  # fmt: skip
    return Logged(list(rows.values()), list(attempts.values()), used)


def _success(row: tuple[Any, ...]) -> tuple[int, int] | None:
    """(row, attempt) of the request that succeeded, for a succeeded row's record."""
    if row[_OUTCOME] == _SUCCEEDED and row[_FINISHED] is not None and row[_ATTEMPTS]:
        return row[_ROW], row[_ATTEMPTS]
    return None


# An in-flight mark's line: the row's record, then its request's segment, sent time (us), wait
# (ms) and the wait's cause (batch.journal.audit): one line for both (Journal.attempt).
IN_FLIGHT_WIDTH: Final = rowrecords.WIDTH + 4


def _sent(line: tuple[Any, ...]) -> tuple[Any, ...]:
    """The request an in-flight mark's line records (ATTEMPT_COLUMNS order): sent, no answer."""
    segment, sent, waited_ms, cause = line[rowrecords.WIDTH :]
    return (line[_ROW], line[rowrecords.ROUTING_ID], line[_ATTEMPTS], segment, sent, None, None,
            "", waited_ms, cause, None)  # fmt: skip


_SUCCEEDED: Final = "succeeded"
# Where a row record (RESULT_COLUMNS order) holds what a success's answer says.
_ROW, _OUTCOME, _STATUS, _ATTEMPTS, _FINISHED = (
    rowrecords.ROW, rowrecords.OUTCOME, rowrecords.HTTP_STATUS, rowrecords.ATTEMPTS,
    rowrecords.FINISHED_AT,
)  # fmt: skip


def _answered_by_success(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """A success's own answer is not logged (speed: a line less per row): the row's final
    record says it all. A request left "sent, never answered" by the log is then the row's
    last one, answered when the row finished, with its status."""
    answered = [(r[_FINISHED], r[_STATUS], r[_ROW], r[_ATTEMPTS]) for r in rows if _success(r)]
    if answered:
        with db:
            db.executemany(
                "UPDATE attempts SET answered_at = ?, http_status = ?, error_code = '' "
                "WHERE row = ? AND attempt = ? AND answered_at IS NULL",
                answered,
            )


def upsert(
    db: sqlite3.Connection, records: list[tuple[Any, ...]], attempts: list[tuple[Any, ...]]
) -> None:
    """Write ``records`` (rows) and ``attempts`` in one transaction (the connection
    autocommits otherwise)."""
    db.execute("BEGIN")
    try:
        db.executemany(rowrecords.UPSERT, records)
        if attempts:
            db.executemany(audit.UPSERT_ATTEMPT, attempts)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def connect(
    path: Path, identity: RunIdentity | None, *, fresh: bool = False
) -> tuple[sqlite3.Connection, bool]:
    """The journal's database at ``path`` for the run ``identity``, and whether it holds rows
    of an earlier invocation (see ``Journal.open``)."""
    if fresh:
        discard(path)
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
        db.executescript(rowrecords.SCHEMA + applied.SCHEMA + audit.SCHEMA)
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if meta and meta.get("format") != _FORMAT:
            raise JournalError(f"{path}: written by another version of reroute; use --fresh")
        if not meta:
            log_path(path).unlink(missing_ok=True)  # not this journal's: never replay it
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
                identity.check(path, meta)
            # What a run that died left in the log.
            replay(db, log_path(path))
            resumed = db.execute("SELECT 1 FROM rows LIMIT 1").fetchone() is not None
    except (sqlite3.Error, OSError) as exc:
        db.close()
        raise JournalError(
            f"{path}: not a usable run journal ({exc}); remove it or use --fresh"
        ) from exc
    except JournalError:
        db.close()
        raise
    return db, resumed
