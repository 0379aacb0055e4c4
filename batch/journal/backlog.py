"""The journal's backlog: records made durable in the log, copied into SQLite in batches.

Every record is first copied into the log as one line (``batch.journal.loglines``). The log is a
file mapped into memory (``batch.journal.maplog``): once the copy ends, the line is in the
operating system's page cache, as a ``write`` would put it, so it survives the death of the
process (not of the machine's power, which an fsync per row could add at a large cost).
Records are copied into SQLite in batches (one transaction per ``BATCH`` records, and before any
read; a row's latest record only), and the log is then zeroed. Opening a journal first copies in
whatever the log still holds (``batch.journal.db.replay``; a crash between the two steps copies a
record twice: the same upsert, harmless).

So a row costs two small copied lines instead of two SQLite transactions.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Final

from batch.errors import JournalError
from batch.journal import db as journaldb
from batch.journal.audit import Attempt
from batch.journal.maplog import MappedLog

# Records copied from the log into SQLite per transaction (the log never holds many more).
BATCH: Final = 256


class Backlog:
    """The log of one open journal, and the records it holds that SQLite does not yet."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path  # the journal's
        self._log = journaldb.log_path(path)
        try:
            self._mapped = MappedLog(self._log)
        except (OSError, ValueError) as exc:
            raise JournalError(f"{self._log}: cannot open the run journal's log ({exc})") from exc
        # Each row's latest record (as rowrecords.encode stores it): its final record replaces
        # its in-flight mark, so SQLite is written once per row, not twice.
        self._rows: dict[int, tuple[Any, ...]] = {}
        self._attempts: dict[tuple[int, int], Attempt] = {}  # each request's latest
        self._logged = 0  # row records in the log since it was last emptied

    def add(
        self, row: int, record: tuple[Any, ...], line: bytes, request: Attempt | None = None
    ) -> None:
        """Log ``line`` (durable when this returns), which holds ``record``, the stored record
        of ``row``, and, for an in-flight mark, its ``request``."""
        self._rows[row] = record
        if request is not None:
            self._attempts[request.row, request.attempt] = request
        self._logged += 1
        self.append(line)
        if self._logged >= BATCH:
            self.flush()

    def answer(self, request: Attempt, line: bytes | None) -> None:
        """A request's answer, logged as ``line`` (None: the row's final record, which follows
        without a pause, says it: loglines.success_of). Not counted: a batch is so many row
        records, the requests ride along with them."""
        self._attempts[request.row, request.attempt] = request
        if line is not None:
            self.append(line)

    def append(self, line: bytes) -> None:
        """``line`` copied into the log: durable when it returns. When it does not fit, the
        records are copied into SQLite first."""
        if self._mapped.append(line):
            return
        self._copy_in()  # every record in the batch is in SQLite: the log can start over
        if not self._mapped.append(line):
            try:
                self._mapped.grow(len(line))
            except (OSError, ValueError) as exc:
                raise JournalError(f"{self._log}: cannot write the run journal ({exc})") from exc
            self._mapped.append(line)

    def flush(self) -> None:
        """Copy the records written to the log into SQLite, then empty the log."""
        self._copy_in()

    def close(self) -> None:
        """Copy in what is pending and close the log (removed: everything is in SQLite)."""
        try:
            self.flush()
            empty = self._mapped.used == 0
        finally:
            self._mapped.close()
        if empty:
            self._log.unlink(missing_ok=True)

    def _copy_in(self) -> None:
        if self._rows or self._attempts:
            try:
                journaldb.upsert(self._db, list(self._rows.values()), list(self._attempts.values()))
            except sqlite3.Error as exc:
                raise JournalError(f"{self.path}: cannot write the run journal ({exc})") from exc
            self._rows.clear()
            self._attempts.clear()
        self._mapped.empty()
        self._logged = 0
