"""Row-level memory: which body was last applied, per routing id and target, and when.

Kept in the journal of a results path (table ``applied``), written in the same transaction as
the rows it comes from, so it is exactly as durable as they are. A new input at the same results
path (tonight's export, a fixed sheet) is judged against it: a row whose routing id already took
the very same body on the same target, successfully, is not sent again ("already applied").
Bodies are compared by the first 8 bytes of their sha256 (a collision is a 2^-64 chance).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Final

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS applied (
    target TEXT NOT NULL,
    routing_id TEXT NOT NULL,
    body INTEGER NOT NULL,
    at INTEGER,
    PRIMARY KEY (target, routing_id)
);
"""
_SUCCEEDED: Final = "succeeded"


def body_key(body: str) -> int:
    """The body's fingerprint: the first 8 bytes of its sha256, as a signed 64-bit integer."""
    return int.from_bytes(hashlib.sha256(body.encode()).digest()[:8], "big", signed=True)


def remember(db: sqlite3.Connection, target: str) -> None:
    """Fold the journal's succeeded rows into the memory, in one transaction. Called when an
    invocation ends and before a new run replaces the rows, not per row: the fingerprint and
    the insert would cost about a tenth of our per-row work while rows are sent (the rows
    table holds the same facts durably until then)."""
    db.create_function("body_key", 1, body_key, deterministic=True)
    with db:
        db.execute(
            "INSERT OR REPLACE INTO applied (target, routing_id, body, at) "
            "SELECT ?, routing_id, body_key(request), finished_at FROM rows "
            "WHERE outcome = ?",
            (target, _SUCCEEDED),
        )


def applied_at(db: sqlite3.Connection, target: str, routing_id: str, body: str) -> int | None:
    """When this body was applied to this routing id on this target (microseconds since the
    epoch), or None when it was not (another body, or never)."""
    row = db.execute(
        "SELECT at, body FROM applied WHERE target = ? AND routing_id = ?", (target, routing_id)
    ).fetchone()
    if row is None or row[1] != body_key(body):
        return None
    return int(row[0]) if row[0] is not None else 0


def count_applied(results: Path, bodies: Iterable[tuple[int, str]]) -> tuple[int, str]:
    """How many of ``bodies`` (routing id, body) the journal of the results path ``results``
    remembers as applied on its target, and that target; read-only, (0, "") without one."""
    from batch.journaldb import journal_path

    journal = journal_path(results)
    if not journal.is_file():
        return 0, ""
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0, ""
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'base_url'").fetchone()
        target = str(row[0]) if row else ""
        n = sum(
            applied_at(db, target, str(routing_id), body) is not None for routing_id, body in bodies
        )
    except sqlite3.Error:
        return 0, ""
    finally:
        db.close()
    return n, target
