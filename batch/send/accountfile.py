"""The account's lists kept with the run that read them: ``<results>.account.json`` beside the
journal, so a resumed run, or a retry continuing it, judges its rows by the lists it started
with (``--recheck-account`` reads them again)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Final

from batch.send.account import Account, Bot, Connection

SUFFIX: Final = ".account.json"  # beside the results file, as the journal is


def account_path(results: Path) -> Path:
    """Where a run at ``results`` keeps the lists it read: ``<name>.account.json`` beside it."""
    return results.with_name(results.name + SUFFIX)


def save_account(path: Path, account: Account) -> None:
    """Write the lists (and when they were read) atomically beside the journal."""
    data = {
        "read_at": account.read_at.isoformat(),
        "host": account.host,
        "bots": [[b.id, b.name, b.status] for b in account.bots],
        "connections": [
            {"connection_id": c.connection_id, "name": c.name, "status": c.status,
             "is_default": c.is_default}
            for c in account.connections
        ],
    }  # fmt: skip
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    partial.replace(path)


def load_account(path: Path) -> Account | None:
    """The lists a run kept, or None when there are none (or they cannot be read: read again)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Account(
            bots=tuple(Bot(int(i), str(n), int(s)) for i, n, s in data["bots"]),
            connections=tuple(
                Connection(c["connection_id"], c["name"], c["status"], bool(c["is_default"]))
                for c in data["connections"]
            ),
            read_at=datetime.fromisoformat(data["read_at"]),
            host=str(data.get("host", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
