"""Row-level memory: which body was last applied, per routing id and target, and when.

Kept in the journal of a results path (table ``applied``), written in the same transaction as
the rows it comes from, so it is exactly as durable as they are. A new input at the same results
path (tonight's export, a fixed sheet) is judged against it: a row whose routing id already took
the very same body on the same target, successfully, is not sent again ("already applied").
Bodies are compared by the first 8 bytes of their sha256 (a collision is a 2^-64 chance).

The memory vouches only for what is known: a body stays remembered only while no later request
with another body for the same record (routing id, target) could have changed it. A row sent
with another body whose answer never came (``unknown``) or was not a success (``failed``: the
request before a 500 may have been stored, its answer lost) makes the memory forget the record,
so the next run sends it rather than trusting a state the server may no longer hold.
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
# Records a row of the journal sent another body for, without a success: what the server holds
# is not known. Looked up through the rows sent (few fail) and the memory's primary key.
_FORGET: Final = """
DELETE FROM applied WHERE target = :target AND routing_id IN (
    SELECT r.routing_id FROM rows AS r
    JOIN applied AS a ON a.target = :target AND a.routing_id = r.routing_id
    WHERE r.outcome <> :succeeded AND r.attempts > 0 AND a.body <> body_key(r.request)
)
"""


def body_key(body: str) -> int:
    """The body's fingerprint: the first 8 bytes of its sha256, as a signed 64-bit integer."""
    return int.from_bytes(hashlib.sha256(body.encode()).digest()[:8], "big", signed=True)


def remember(db: sqlite3.Connection, target: str) -> None:
    """Fold the journal's rows into the memory, in one transaction: a succeeded row's body is
    remembered; a row sent with another body and not succeeded makes the memory forget its
    record (see the module docstring). Called when an invocation ends and before a new run
    replaces the rows, not per row: the fingerprint and the insert would cost about a tenth of
    our per-row work while rows are sent (the rows table holds the same facts durably until
    then). Folding the same rows again changes nothing."""
    db.create_function("body_key", 1, body_key, deterministic=True)
    with db:
        db.execute(
            "INSERT OR REPLACE INTO applied (target, routing_id, body, at) "
            "SELECT ?, routing_id, body_key(request), finished_at FROM rows "
            "WHERE outcome = ?",
            (target, _SUCCEEDED),
        )
        db.execute(_FORGET, {"target": target, "succeeded": _SUCCEEDED})


def applied_at(db: sqlite3.Connection, target: str, routing_id: str, body: str) -> int | None:
    """When this body was applied to this routing id on this target (microseconds since the
    epoch), or None when it was not (another body, or never)."""
    found = db.execute(
        "SELECT at, body FROM applied WHERE target = ? AND routing_id = ?", (target, routing_id)
    ).fetchone()
    if found is None:
        return None
    at, remembered = found
    if remembered != body_key(body):
        return None
    return int(at) if at is not None else 0


def count_applied(results: Path, bodies: Iterable[tuple[int, str]]) -> tuple[int, str]:
    """How many of ``bodies`` (routing id, body) the journal of the results path ``results``
    remembers as applied on its target, and that target; read-only, (0, "") without one."""
    from batch.journal.db import journal_path

    journal = journal_path(results)
    if not journal.is_file():
        return 0, ""
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0, ""
    try:
        target = ""
        for (value,) in db.execute("SELECT value FROM meta WHERE key = 'base_url'"):
            target = str(value)
        _fold_in_memory(db, target)
        n = sum(
            applied_at(db, target, str(routing_id), body) is not None for routing_id, body in bodies
        )
    except sqlite3.Error:
        return 0, ""
    finally:
        db.close()
    return n, target


def _fold_in_memory(db: sqlite3.Connection, target: str) -> None:
    """Make ``applied`` read, on this read-only connection, as the next run will fold it: a
    temporary copy of the target's memory (it hides the stored one) with the journal's rows
    folded in, since a run that was killed never folded them (``remember``)."""
    db.execute(SCHEMA.replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE"))
    db.execute("INSERT INTO temp.applied SELECT * FROM main.applied WHERE target = ?", (target,))
    remember(db, target)
