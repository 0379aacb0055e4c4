"""A run's journal read by someone else (the report), while the run goes on or after it.

Read-only: without a ``-wal`` file no process has the journal open (a writer in WAL mode always
has one), so it is read as immutable, which leaves no ``-wal``/``-shm`` files behind as a WAL
reader would; else as a WAL reader beside the run (``audit.read_only``). Every question is one
query; a database that cannot answer raises JournalError (sqlite3 stays in this stage).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from functools import wraps
from pathlib import Path
from typing import Any, Final, ParamSpec, TypeVar

import polars as pl

from batch.errors import JournalError
from batch.journal import audit
from batch.model import RESULT_COLUMNS

_CHUNK: Final = 20_000  # records turned into Python values at a time
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _answers(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """A question the database cannot answer is a JournalError naming the journal."""

    @wraps(method)
    def asked(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            view = args[0]
            assert isinstance(view, JournalView)
            raise JournalError(f"{view.path}: not a readable run journal ({exc})") from exc

    return asked


class JournalView:
    """One journal, open read-only; use as a context (closed at its end)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            if Path(f"{path}-wal").exists():
                self._db = audit.read_only(path)
            else:
                uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
                self._db = sqlite3.connect(uri, uri=True)
        except sqlite3.Error as exc:
            raise JournalError(f"{path}: cannot open the run journal ({exc})") from exc

    def __enter__(self) -> JournalView:
        return self

    def __exit__(self, *exc: object) -> None:
        self._db.close()

    @_answers
    def tables(self) -> set[str]:
        return {n for (n,) in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    @_answers
    def has_trail(self) -> bool:
        return audit.has_trail(self._db)

    @_answers
    def meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    @_answers
    def segments(self) -> list[dict[str, Any]]:
        return audit.segments(self._db)

    @_answers
    def events(self) -> list[dict[str, Any]]:
        return audit.events(self._db)

    @_answers
    def pauses(self) -> list[tuple[int, int]]:
        """The run's pauses after a 429 (every request waits them out, ``wait_cause`` pause):
        each paused request's wait, overlapping waits merged into one span (microseconds)."""
        cursor = self._db.execute(
            "SELECT sent_at - waited_ms * 1000, sent_at FROM attempts "
            "WHERE wait_cause = ? AND waited_ms > 0 ORDER BY 1",
            (audit.PAUSE,),
        )
        merged: list[tuple[int, int]] = []
        for start, end in cursor:
            if merged:
                began, ended = merged[-1]
                if start <= ended:
                    merged[-1] = (began, max(end, ended))
                    continue
            merged.append((start, end))
        return merged

    @_answers
    def attempts(self, schema: Mapping[str, Any]) -> pl.DataFrame:
        """Every request, the ``schema``'s columns only."""
        return _frame(self._db.execute(f"SELECT {', '.join(schema)} FROM attempts"), schema)

    @_answers
    def rows(self, schema: Mapping[str, Any]) -> pl.DataFrame:
        """Every row record (RESULT_COLUMNS, typed as ``schema``), by row."""
        cursor = self._db.execute(f"SELECT {', '.join(RESULT_COLUMNS)} FROM rows ORDER BY row")
        return _frame(cursor, schema)

    @_answers
    def bodies(self, rows: list[int]) -> dict[int, tuple[str | None, str | None]]:
        """The request and response the journal holds for ``rows``."""
        cursor = self._db.execute(
            "SELECT row, request, response FROM rows WHERE row IN (SELECT value FROM json_each(?))",
            (json.dumps(rows),),
        )
        return {row: (request, response) for row, request, response in cursor}

    @_answers
    def history(self, rows: list[int], columns: tuple[str, ...]) -> dict[int, list[dict[str, Any]]]:
        """Every request of ``rows``, by row then attempt (one query: the rows as a JSON array,
        since a read-only connection can make no temporary table)."""
        cursor = self._db.execute(
            f"SELECT {', '.join(columns)} FROM attempts WHERE row IN "
            "(SELECT value FROM json_each(?)) ORDER BY row, attempt",
            (json.dumps(rows),),
        )
        found: dict[int, list[dict[str, Any]]] = {}
        for values in cursor:
            request = dict(zip(columns, values, strict=True))
            found.setdefault(request["row"], []).append(request)
        return found


def _frame(cursor: sqlite3.Cursor, schema: Mapping[str, Any]) -> pl.DataFrame:
    """What ``cursor`` selects, as one frame built a chunk at a time: memory holds the frame
    and one chunk of Python values, never every record as Python values at once."""
    frames = [
        pl.DataFrame(chunk, schema=dict(schema), orient="row")
        for chunk in iter(lambda: cursor.fetchmany(_CHUNK), [])
    ]
    return pl.concat(frames) if frames else pl.DataFrame(schema=dict(schema))
