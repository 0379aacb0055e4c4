"""Journals for the report's tests, written straight into SQLite (no engine, no network).

``make_run`` writes ``<results>.journal`` as a run leaves it: meta, one record per row sent, and
the audit trail (every request, each segment, the events), plus the results file when asked;
with ``snapshot``, the snapshot a run with ``--current`` keeps beside its results, and with
``rollback`` the rollback file it writes.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import polars as pl

from batch.journal import audit, rowrecords
from batch.journal.journal import journal_path
from batch.model import Outcome, RowResult
from batch.sheets.results import write_results

START = 1_764_522_000_000_000  # 2025-11-30T17:00:00Z in microseconds
SECOND = 1_000_000
HOSTILE = "<script>alert('x')</script>&<b>"


@dataclass
class Made:
    results: Path
    journal: Path
    rows: int
    failed: list[int]


# Every row sends this record (mobile in, answer only, active); a snapshot's record differs in
# its status for the rows given as ``snapshot``.
BODY: Final = {"for_inbound_call": 1, "for_outbound_call": 4, "status": 1}
SNAPSHOT_NAME: Final = "current.csv"


def _body(routing_id: int) -> str:
    return json.dumps(BODY, separators=(",", ":"))


def make_run(
    results: Path,
    *,
    rows: int = 40,
    failed: frozenset[int] = frozenset({5, 17}),
    unknown: frozenset[int] = frozenset(),
    invalid: frozenset[int] = frozenset({3}),
    not_attempted: frozenset[int] = frozenset(),
    segments: int = 1,
    finished: bool = True,
    write_results_file: bool = True,
    trail: bool = True,
    rate: str = "20/s",
    seed: int = 7,
    snapshot: frozenset[int] | None = None,
    rollback: bool = False,
) -> Made:
    """A run of ``rows`` rows at ``rate``, split in ``segments`` segments a night apart; with
    ``snapshot``, judged against one where those rows' records were inactive (status 0), and
    with ``rollback`` writing ``rollback.csv`` beside the results."""
    rnd = random.Random(seed)
    journal = journal_path(results)
    db = sqlite3.connect(journal)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(rowrecords.SCHEMA + (audit.SCHEMA if trail else ""))
    record: dict[str, object] = {
        "kind": "run", "input": "changes.csv", "rate": rate, "concurrency": 4,
        "base_url": "http://127.0.0.1:9/api/v2",
    }  # fmt: skip
    seg_settings: dict[str, object] = {"rate": rate, "concurrency": 4, "max_attempts": 5}
    sha = ""
    if snapshot is not None:
        sha = _write_snapshot(results, rows, snapshot)
        record |= {"current": SNAPSHOT_NAME, "fill_from_current": True}
        if rollback:
            seg_settings["rollback"] = str(_write_rollback(results, snapshot))
    meta = {
        "format": "3",
        "input_sha256": "ab" * 32,
        "base_url": "http://127.0.0.1:9/api/v2",
        "results": str(results),
        "snapshot": sha,
        "settings": json.dumps(record),
    }
    db.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
    interval = SECOND // 20
    sent = [r for r in range(1, rows + 1) if r not in invalid | not_attempted]
    per_segment = -(-len(sent) // segments)
    results_of: list[RowResult] = []
    attempt_records = []
    for index, start in enumerate(range(0, len(sent), per_segment)):
        segment = index + 1
        began = START + index * 86_400 * SECOND
        clock = began
        for row in sent[start : start + per_segment]:
            tries = 3 if row in failed else (2 if row % 7 == 0 else 1)
            first = clock
            for n in range(1, tries + 1):
                latency = rnd.randint(20_000, 400_000)
                last = n == tries
                cut = row in unknown and last
                status = (
                    None
                    if cut
                    else (
                        (503 if n < tries else 422)
                        if row in failed
                        else (429 if n < tries else 200)
                    )
                )
                code = (
                    ""
                    if status in (200, None)
                    else (
                        "HTTP_503"
                        if status == 503
                        else ("RATE_LIMITED" if status == 429 else "VALIDATION_ERROR")
                    )
                )
                attempt_records.append(
                    (
                        row,
                        str(1000 + row),
                        n,
                        segment,
                        clock,
                        None if cut else clock + latency,
                        status,
                        code,
                        0 if n == 1 else (50 if row in failed else 200),
                        "pace" if n == 1 else ("backoff" if row in failed else "pause"),
                        1.0 if status == 429 else None,
                    )
                )
                clock += interval
            outcome = (
                Outcome.UNKNOWN
                if row in unknown
                else Outcome.FAILED
                if row in failed
                else Outcome.SUCCEEDED
            )
            response = (
                json.dumps(
                    {
                        "success": False,
                        "error": {"code": "VALIDATION_ERROR", "message": f"bad bot {HOSTILE}"},
                    }
                )
                if outcome is Outcome.FAILED
                else ('{"success":true}' if outcome is Outcome.SUCCEEDED else "")
            )
            at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=first)
            done = at + timedelta(microseconds=clock - first)
            results_of.append(
                RowResult(
                    row,
                    str(1000 + row),
                    outcome,
                    http_status=422
                    if outcome is Outcome.FAILED
                    else (200 if outcome is Outcome.SUCCEEDED else None),
                    attempts=tries,
                    error_code="VALIDATION_ERROR" if outcome is Outcome.FAILED else "",
                    error_message=f"row {row}: the API said {HOSTILE}"
                    if outcome is Outcome.FAILED
                    else "",
                    request=_body(1000 + row),
                    response=response,
                    started_at=at,
                    finished_at=None if outcome is Outcome.UNKNOWN else done,
                    duration_ms=None if outcome is Outcome.UNKNOWN else (clock - first) // 1000,
                )
            )
        if trail:
            last_segment = segment == -(-len(sent) // per_segment)
            db.execute(
                "INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    segment,
                    "run" if segment == 1 else "resume",
                    "0.1.0",
                    "ops@jump-1",
                    began,
                    None if (last_segment and not finished) else clock,
                    "" if last_segment else "window_closed: the change window closed",
                    None if (last_segment and not finished) else (1 if last_segment else 3),
                    "ab" * 32,
                    "cd" * 32,
                    "127.0.0.1:9",
                    "VOCOBASE_API_KEY",
                    json.dumps(seg_settings),
                ),
            )
            db.executemany(
                "INSERT INTO events VALUES (?, ?, ?, ?)",
                [
                    (segment, began, audit.WINDOW_OPEN, "window 01:00-05:00"),
                    (segment, began + 3 * SECOND, audit.SERVER_PAUSE, f"429 for {HOSTILE}"),
                ],
            )
    if trail:
        db.executemany(audit.UPSERT_ATTEMPT, attempt_records)
    db.executemany(rowrecords.UPSERT, [rowrecords.encode(r) for r in results_of])
    db.commit()
    db.close()
    if write_results_file:
        everything = results_of + [
            RowResult(
                r,
                str(1000 + r),
                Outcome.INVALID,
                error_code="MISSING_FIELD;BAD_UUID",
                error_message=f"row {r}: status is empty",
            )
            for r in invalid
        ]
        everything += [
            RowResult(r, str(1000 + r), Outcome.NOT_ATTEMPTED, request=_body(1000 + r))
            for r in not_attempted
        ]
        everything.sort(key=lambda r: r.row)
        passthrough = pl.DataFrame(
            {
                "did_number": [f"+4420{r.row:07d}" for r in everything],
                "ticket": [f"T-{r.row}" for r in everything],
            }
        )
        write_results(results, everything, passthrough)
    return Made(results, journal, rows, sorted(failed))


def _records(rows: list[int], inactive: frozenset[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "routing_id": [1000 + r for r in rows],
            "for_inbound_call": [BODY["for_inbound_call"]] * len(rows),
            "for_outbound_call": [BODY["for_outbound_call"]] * len(rows),
            "status": [0 if r in inactive else 1 for r in rows],
        }
    )


def _write_snapshot(results: Path, rows: int, inactive: frozenset[int]) -> str:
    """The snapshot kept beside the results, as a run with --current keeps it; its sha256."""
    kept = results.with_name(f"{results.name}.snapshot.csv")
    _records(list(range(1, rows + 1)), inactive).write_csv(kept)
    return hashlib.sha256(kept.read_bytes()).hexdigest()


def _write_rollback(results: Path, inactive: frozenset[int]) -> Path:
    """The rollback file: the records the run changes, as the snapshot had them."""
    path = results.with_name("rollback.csv")
    _records(sorted(inactive), inactive).write_csv(path)
    return path.resolve()
