"""The sandbox's account lists: its WebSocket bots and VoiceLink connections, served as the docs
describe them (``GET /voicelink/bots`` paged and validated, nested under ``data.data``;
``GET /telephony/connections?provider=voicelink``).

Bots come from a file (``--bots FILE``: a JSON list of bot records, or the API's envelope, or a
CSV with ``id``/``bot_name``/``status`` columns), else they are made up to fit the seeded state
(every bot id its records name, active). Connections are the account's (``--connections``).
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from batch.errors import InputFileError

BOTS_ROUTE: Final = "/api/v2/voicelink/bots"
CONNECTIONS_ROUTE: Final = "/api/v2/telephony/connections"
DEFAULT_PER_PAGE: Final = 20  # the docs give no default; any value 1..1000 is served
MAX_PER_PAGE: Final = 1000


@dataclass(frozen=True, slots=True)
class SandboxBot:
    """One bot of the sandbox's account, as the bots list shows it."""

    id: int
    bot_name: str = ""
    status: int = 1
    client_id: int = 1

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "bot_name": self.bot_name,
            "client_id": self.client_id,
            "websocket_url": f"wss://bots.example.invalid/{self.id}",
            "status": self.status,
        }


def load_bots(path: Path) -> tuple[SandboxBot, ...]:
    """The bots of a ``--bots`` file (.json or .csv); InputFileError names what is wrong."""
    if not path.is_file():
        raise InputFileError(path, "no such bots file")
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as f:
                records: list[Any] = list(csv.DictReader(f))
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                data = data.get("data", {})
                data = data.get("data") if isinstance(data, dict) else data
            if not isinstance(data, list):
                raise InputFileError(path, "give a JSON list of bot records (id, bot_name, status)")
            records = data
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(path, f"cannot read the bots file ({exc})") from None
    bots: list[SandboxBot] = []
    for number, record in enumerate(records, start=1):
        try:
            bot = SandboxBot(
                id=int(record["id"]),
                bot_name=str(record.get("bot_name") or ""),
                status=int(record.get("status", 1)),
                client_id=int(record.get("client_id") or 1),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InputFileError(
                path, f"bot {number}: give an integer id, and status 0 or 1"
            ) from None
        if bot.id < 1 or bot.status not in (0, 1):
            raise InputFileError(path, f"bot {number}: give an id >= 1 and status 0 or 1")
        bots.append(bot)
    return tuple(bots)


def bots_for_state(records: Iterable[dict[str, Any]]) -> tuple[SandboxBot, ...]:
    """Bots made up to fit seeded records: every bot id they name, active."""
    ids = {
        record[name]
        for record in records
        for name in ("inbound_websocket_bot_id", "outbound_websocket_bot_id")
        if record.get(name) is not None
    }
    return tuple(SandboxBot(i, f"bot {i}") for i in sorted(ids))


def bots_page(bots: tuple[SandboxBot, ...], query: dict[str, str]) -> list[dict[str, Any]] | str:
    """One page of the bots list, or the VALIDATION_ERROR message naming the bad field."""
    numbers: dict[str, int] = {}
    for name, low, high, default in (
        ("per_page", 1, MAX_PER_PAGE, DEFAULT_PER_PAGE),
        ("page", 1, None, 1),
        ("status", 0, 1, None),
        ("client_id", 1, None, None),
        ("reseller_id", 1, None, None),
    ):
        raw = query.get(name)
        if raw is None:
            if default is not None:
                numbers[name] = default
            continue
        if (
            not (raw.isascii() and raw.isdigit())
            or int(raw) < low
            or (high is not None and int(raw) > high)
        ):
            upper = f" and <= {high}" if high is not None else ""
            return f"{name}: must be an integer >= {low}{upper} (got {raw!r})"
        numbers[name] = int(raw)
    connection = query.get("connection_id")
    if connection is not None:
        try:
            uuid.UUID(connection)
        except ValueError:
            return f"connection_id: must be a UUID (got {connection!r})"
    chosen = [
        bot
        for bot in bots
        if ("status" not in numbers or bot.status == numbers["status"])
        and ("client_id" not in numbers or bot.client_id == numbers["client_id"])
    ]
    per_page, page = numbers["per_page"], numbers["page"]
    return [bot.record() for bot in chosen[(page - 1) * per_page : page * per_page]]


def connection_records(active: Iterable[str], inactive: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The connections list: the account's active connections, then any inactive ones."""
    found = [(c, "ACTIVE") for c in active] + [(c, "INACTIVE") for c in inactive]
    return [
        {
            "id": number,
            "connection_id": ident,
            "provider": "voicelink",
            "name": f"VoiceLink {number}",
            "status": status,
            "is_default": number == 1,
        }
        for number, (ident, status) in enumerate(found, start=1)
    ]
