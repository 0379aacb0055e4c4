"""The journal's SQLite database: where it lives, opening it (created, checked against the run,
what a dead run left in the log copied in), and the one transaction that copies records in.
``batch.journal.journal`` is the journal as the run uses it."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from batch.errors import JournalError
from batch.journal import applied, audit, rowrecords
from batch.journal.audit import Attempt
from batch.journal.loglines import read_log, success_of
from batch.journal.maplog import zero_records
from batch.journal.record import RunIdentity
from batch.model import RowResult

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
        upsert(db, [rowrecords.encode(r) for r in logged.rows], logged.attempts)
        _answered_by_success(db, logged.rows)
    zero_records(log, logged.used)


def _answered_by_success(db: sqlite3.Connection, rows: list[RowResult]) -> None:
    """A success's own answer is not logged (loglines.success_of): the row's final record says
    it all. A request left "sent, never answered" by the log is then the row's last one,
    answered when the row finished, with its status."""
    answered = [
        (rowrecords.stamp(r.finished_at), r.http_status, r.row, r.attempts)
        for r in rows
        if success_of(r)
    ]
    if answered:
        with db:
            db.executemany(
                "UPDATE attempts SET answered_at = ?, http_status = ?, error_code = '' "
                "WHERE row = ? AND attempt = ? AND answered_at IS NULL",
                answered,
            )


def upsert(
    db: sqlite3.Connection, records: Sequence[tuple[Any, ...]], attempts: Sequence[Attempt]
) -> None:
    """Write ``records`` (rows, as ``rowrecords.encode`` stores them) and ``attempts`` in one
    transaction (the connection autocommits otherwise)."""
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
