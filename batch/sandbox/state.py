"""The sandbox's memory: stored records, request counts, and seeding records from a file.

The app runs on one event loop (uvicorn's thread, or the test's loop under ASGITransport), but a
test or ``reroute run --sandbox`` may read stats from another thread, so every change and every
snapshot goes through one lock (held for microseconds, never across an ``await``).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Final

import polars as pl

from batch.errors import InputFileError

# Columns of a state file the sandbox stores (the API's input columns); others are ignored.
_INT_COLUMNS: Final = (
    "for_inbound_call",
    "for_outbound_call",
    "status",
    "inbound_websocket_bot_id",
    "inbound_sip_trunk_id",
    "outbound_websocket_bot_id",
    "outbound_sip_trunk_id",
)
_OLD_CONNECTION: Final = "connectionid"  # lower-cased older spelling, matched like the rest


class SandboxState:
    """Records by routing id, and counts of update requests (per routing id, per status)."""

    def __init__(self, records: dict[int, dict[str, Any]] | None = None) -> None:
        self._lock = threading.Lock()
        # Seeded: ids that are not in the seed answer 404, as on an account that lacks them.
        self.seeded = records is not None
        self._records: dict[int, dict[str, Any]] = dict(records or {})
        self._total = 0
        self._by_routing_id: Counter[str] = Counter()
        self._by_status: Counter[str] = Counter()
        self._served: Counter[int] = Counter()
        self._in_flight = 0
        self._max_in_flight = 0
        self._peers: set[str] = set()  # client host:port pairs: distinct connections seen
        self._lists: Counter[str] = Counter()  # list GETs answered, by list (bots, connections)

    # -- records -------------------------------------------------------------------------------
    def get(self, routing_id: int) -> dict[str, Any] | None:
        with self._lock:
            record = self._records.get(routing_id)
            return dict(record) if record is not None else None

    def exists(self, routing_id: int) -> bool:
        with self._lock:
            return routing_id in self._records

    def put(self, routing_id: int, record: dict[str, Any]) -> None:
        """Replace the whole record (the API's update semantics)."""
        with self._lock:
            self._records[routing_id] = dict(record)

    def records(self) -> dict[int, dict[str, Any]]:
        """A copy of every stored record."""
        with self._lock:
            return {key: dict(value) for key, value in self._records.items()}

    def connection_ids(self) -> frozenset[str]:
        """Connection ids named by stored records (a seeded account's real connections)."""
        with self._lock:
            return frozenset(
                str(r["connection_id"]) for r in self._records.values() if "connection_id" in r
            )

    # -- counts --------------------------------------------------------------------------------
    def arrived(self, routing_key: str, peer: str = "") -> None:
        """An update request arrived for this path segment (counted even when it is refused),
        from ``peer`` (the client's host:port: one per TCP connection, so keep-alive shows)."""
        with self._lock:
            self._peers.add(peer)
            self._total += 1
            self._by_routing_id[routing_key] += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def answered(self, status: int | None) -> None:
        """The request ended with this status (None: the connection was dropped)."""
        with self._lock:
            self._in_flight -= 1
            self._by_status["dropped" if status is None else str(status)] += 1

    def served(self, routing_id: int) -> int:
        """Count one request that got past the key and the limits; returns its 1-based number
        for this routing id (what fault draws and scripts are keyed on)."""
        with self._lock:
            self._served[routing_id] += 1
            return self._served[routing_id]

    def listed(self, name: str) -> int:
        """A list GET (``bots`` or ``connections``) got past the key and the rate limit: the
        number of list GETs so far (every list counted)."""
        with self._lock:
            self._lists[name] += 1
            return sum(self._lists.values())

    def stats(self) -> dict[str, Any]:
        """JSON-ready counts: ``total``, ``by_routing_id``, ``by_status`` (``"dropped"`` for
        connections closed without an answer), ``in_flight``, ``max_in_flight``,
        ``connections`` (distinct client connections that sent updates), ``records``, ``lists``
        (list GETs answered, by list)."""
        with self._lock:
            return {
                "total": self._total,
                "by_routing_id": dict(self._by_routing_id),
                "by_status": dict(self._by_status),
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "connections": len(self._peers),
                "records": len(self._records),
                "lists": dict(self._lists),
            }


def _integer(value: object) -> int | None:
    """A cell as an integer; None when empty; ValueError when it is not a whole number."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise ValueError
    text = str(value).strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        number = float(text)  # "93.0" counts as 93, as in the input contract
        if math.isfinite(number) and number.is_integer():
            return int(number)
        raise


def _read(path: Path) -> pl.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema=False)  # strings: we judge each cell ourselves
        if suffix == ".parquet":
            return pl.read_parquet(path)
        if suffix in (".jsonl", ".ndjson"):
            return pl.read_ndjson(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(path, f"cannot read the sandbox state file: {problem}") from exc
    raise InputFileError(path, "state file must be .csv, .parquet, .jsonl or .ndjson")


def load_state(path: Path) -> dict[int, dict[str, Any]]:
    """Records to seed the sandbox with, from a file of the input columns.

    Only the API's columns are kept (others, like a ticket number, are ignored); empty cells are
    left out of the record. A routing id that appears twice, or a cell that is not a whole
    number, is an InputFileError naming the row and column.
    """
    if not path.is_file():
        raise InputFileError(path, "no such sandbox state file")
    frame = _read(path)
    names = {name.strip().lower(): name for name in frame.columns}
    if "routing_id" not in names:
        raise InputFileError(path, "the state file has no routing_id column: add one")
    records: dict[int, dict[str, Any]] = {}
    for number, row in enumerate(frame.iter_rows(named=True), start=1):
        record: dict[str, Any] = {}
        for column in ("routing_id", *_INT_COLUMNS):
            if column not in names:
                continue
            cell = row[names[column]]
            try:
                value = _integer(cell)
            except ValueError:
                raise InputFileError(
                    path, f"row {number}, column {column}: {cell!r} is not a whole number; fix it"
                ) from None
            if value is not None:
                record[column] = value
        for column in ("connection_id", _OLD_CONNECTION):
            cell = row.get(names[column]) if column in names else None
            if cell is not None and str(cell).strip() and "connection_id" not in record:
                record["connection_id"] = str(cell).strip()
        routing_id = record.pop("routing_id", None)
        if routing_id is None or routing_id < 1:
            cell = row[names["routing_id"]]
            raise InputFileError(
                path, f"row {number}, column routing_id: give an integer >= 1 (got {cell!r})"
            )
        if routing_id in records:
            raise InputFileError(
                path, f"row {number}, column routing_id: {routing_id} appears twice; keep one row"
            )
        records[routing_id] = record
    return records
