"""What the VoiceLink call-routing API *is*: fields, modes, rules, path and answers.

Everything the API defines lives here, apart from the engine that loads, paces, retries and
records (style.md). Source: ``shared/spec/voicelink-api.md``. Adding the create endpoint later
means one new module beside this one, not edits across the engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

DEFAULT_BASE_URL: Final = "https://api.vocobase.com/api/v2"
METHOD: Final = "POST"


class Inbound(IntEnum):
    """`for_inbound_call`: where an inbound call goes."""

    MOBILE = 1
    SIP = 2
    WEBSOCKET_BOT = 3


class Outbound(IntEnum):
    """`for_outbound_call`: how outbound calls leave."""

    SIP = 2
    WEBSOCKET_BOT = 3
    ONLY_ANSWER = 4


class Status(IntEnum):
    """`status` of the routing record."""

    INACTIVE = 0
    ACTIVE = 1


# Field names, in the order a request body lists them.
ROUTING_ID: Final = "routing_id"
FOR_INBOUND_CALL: Final = "for_inbound_call"
FOR_OUTBOUND_CALL: Final = "for_outbound_call"
STATUS: Final = "status"
CONNECTION_ID: Final = "connection_id"
CONNECTION_ID_OLD: Final = (
    "connectionId"  # older spelling the server still accepts; we send the new
)
INBOUND_WEBSOCKET_BOT_ID: Final = "inbound_websocket_bot_id"
INBOUND_SIP_TRUNK_ID: Final = "inbound_sip_trunk_id"
OUTBOUND_WEBSOCKET_BOT_ID: Final = "outbound_websocket_bot_id"
OUTBOUND_SIP_TRUNK_ID: Final = "outbound_sip_trunk_id"

MODE_FIELDS: Final = (FOR_INBOUND_CALL, FOR_OUTBOUND_CALL, STATUS)
REQUIRED_FIELDS: Final = (ROUTING_ID, *MODE_FIELDS)
TARGET_FIELDS: Final = (
    INBOUND_WEBSOCKET_BOT_ID,
    INBOUND_SIP_TRUNK_ID,
    OUTBOUND_WEBSOCKET_BOT_ID,
    OUTBOUND_SIP_TRUNK_ID,
)
INTEGER_FIELDS: Final = (ROUTING_ID, *MODE_FIELDS, *TARGET_FIELDS)
BODY_FIELDS: Final = (*MODE_FIELDS, CONNECTION_ID, *TARGET_FIELDS)
# Every input column the API knows (matched case-insensitively after trimming).
INPUT_COLUMNS: Final = (ROUTING_ID, *MODE_FIELDS, CONNECTION_ID, *TARGET_FIELDS)

ALLOWED: Final[dict[str, frozenset[int]]] = {
    FOR_INBOUND_CALL: frozenset(int(m) for m in Inbound),
    FOR_OUTBOUND_CALL: frozenset(int(m) for m in Outbound),
    STATUS: frozenset(int(s) for s in Status),
}

# Which mode value needs which target id: (mode field, mode value) -> target field.
TARGET_FOR_MODE: Final[dict[tuple[str, int], str]] = {
    (FOR_INBOUND_CALL, Inbound.WEBSOCKET_BOT): INBOUND_WEBSOCKET_BOT_ID,
    (FOR_INBOUND_CALL, Inbound.SIP): INBOUND_SIP_TRUNK_ID,
    (FOR_OUTBOUND_CALL, Outbound.WEBSOCKET_BOT): OUTBOUND_WEBSOCKET_BOT_ID,
    (FOR_OUTBOUND_CALL, Outbound.SIP): OUTBOUND_SIP_TRUNK_ID,
}
# The mode field that decides whether a target field is used, and the value that uses it.
MODE_FOR_TARGET: Final[dict[str, tuple[str, int]]] = {
    target: key for key, target in TARGET_FOR_MODE.items()
}


def update_path(routing_id: int) -> str:
    """Path of the update call, relative to the base URL (which ends in ``/api/v2``)."""
    return f"/voicelink/call-routing/{routing_id}"


def encode_body(body: dict[str, int | str]) -> str:
    """Compact JSON of a request body, as sent and as recorded in results."""
    return json.dumps(body, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class ApiError:
    """The ``error`` object of an error envelope: ``{"success": false, "error": {...}}``."""

    code: str
    message: str


def parse_envelope(payload: Any) -> tuple[bool, ApiError | None]:
    """Read a decoded JSON answer.

    Returns ``(True, None)`` for the success envelope, ``(False, ApiError)`` for the error
    envelope, and ``(False, None)`` for anything else (not an envelope at all).
    """
    if not isinstance(payload, dict):
        return False, None
    if payload.get("success") is True:
        return True, None
    error = payload.get("error")
    if payload.get("success") is False and isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        return False, ApiError(
            code=code if isinstance(code, str) and code else "",
            message=message if isinstance(message, str) else "",
        )
    return False, None


# --- Added for validation (issue 2): the API's rules in the words a fix message needs. ---

# Lowest valid routing id and bot/trunk id.
MIN_ID: Final = 1

# What each allowed mode value means, for messages that list the choices.
VALUE_LABELS: Final[dict[str, dict[int, str]]] = {
    FOR_INBOUND_CALL: {
        Inbound.MOBILE: "mobile",
        Inbound.SIP: "SIP",
        Inbound.WEBSOCKET_BOT: "WebSocket bot",
    },
    FOR_OUTBOUND_CALL: {
        Outbound.SIP: "SIP",
        Outbound.WEBSOCKET_BOT: "WebSocket bot",
        Outbound.ONLY_ANSWER: "only-answer",
    },
    STATUS: {Status.ACTIVE: "active", Status.INACTIVE: "inactive"},
}

# What a mode field's values are called ("is not an outbound mode").
MODE_NOUNS: Final[dict[str, str]] = {
    FOR_INBOUND_CALL: "an inbound mode",
    FOR_OUTBOUND_CALL: "an outbound mode",
    STATUS: "a status",
}

# connection_id: a UUID in its canonical 8-4-4-4-12 hex form (either case).
UUID_PATTERN: Final = (
    r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
)


def allowed_choices(field: str) -> str:
    """The allowed values of a mode field, as a message lists them: ``2 SIP, 3 WebSocket bot``."""
    labels = VALUE_LABELS[field]
    return ", ".join(f"{value} {labels[value]}" for value in sorted(labels))


# --- The lists the product may read (issue 14: the account preflight). ---

# `GET {base}/voicelink/bots`: the account's WebSocket bots, paged (per_page 1..1000, page >= 1).
BOTS_PATH: Final = "/voicelink/bots"
BOTS_MAX_PER_PAGE: Final = 1000
# `GET {base}/telephony/connections?provider=voicelink`: the partner's VoiceLink connections.
CONNECTIONS_PATH: Final = "/telephony/connections"
CONNECTIONS_QUERY: Final[dict[str, str]] = {"provider": "voicelink"}
CONNECTION_ACTIVE: Final = "ACTIVE"  # a connection's ``status`` when it is in use
BOT_ACTIVE: Final = 1  # a bot's ``status``: 1 active, 0 inactive
# The bot id fields a row may point at (SIP trunk ids have no documented list: not checkable).
BOT_FIELDS: Final = (INBOUND_WEBSOCKET_BOT_ID, OUTBOUND_WEBSOCKET_BOT_ID)


def list_records(payload: Any, *, flat_allowed: bool) -> list[Any] | None:
    """The records of a list answer, or None when its shape is not a documented one.

    The bots list nests the upstream body: ``{"success": true, "data": {"data": [...]}}``.
    The connections list's envelope is not shown in the docs: ``flat_allowed`` also accepts
    ``{"success": true, "data": [...]}``. Anything else is refused by the caller, never guessed.
    """
    if not isinstance(payload, dict) or payload.get("success") is not True:
        return None
    data = payload.get("data")
    if flat_allowed and isinstance(data, list):
        return data
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        inner: list[Any] = data["data"]
        return inner
    return None
