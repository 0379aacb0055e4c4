"""The sandbox's own check of an update body, written from the API doc alone.

This deliberately does not import ``batch.prepare.validate`` or the rule tables of
``batch.voicelink``: a misreading shared by reroute's validator and its test server would hide in
both (issue 3). Source: ``shared/spec/voicelink-api.md``, "Body fields" and "Notes on the docs".
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Strict: a JSON integer only. Booleans, fractions, 93.0, "93", NaN and infinities are all
# rejected, as the docs say the server rejects "non-integer or non-finite numbers".
Id = Annotated[int, Field(strict=True, ge=1)]

_INBOUND = {1: "mobile", 2: "SIP", 3: "WebSocket bot"}
_OUTBOUND = {2: "SIP", 3: "WebSocket bot", 4: "only-answer"}
_STATUS = {1: "active", 0: "inactive"}

# (mode field, mode value) -> the target id field that mode needs.
_NEEDS = {
    ("for_inbound_call", 3): "inbound_websocket_bot_id",
    ("for_inbound_call", 2): "inbound_sip_trunk_id",
    ("for_outbound_call", 3): "outbound_websocket_bot_id",
    ("for_outbound_call", 2): "outbound_sip_trunk_id",
}


def _one_of(value: int, allowed: dict[int, str]) -> int:
    if value not in allowed:
        listed = ", ".join(f"{k} ({v})" for k, v in allowed.items())
        raise ValueError(f"must be one of {listed}")
    return value


class UpdateBody(BaseModel):
    """``POST /voicelink/call-routing/{id}`` body. Unknown fields are refused (they would be a
    passthrough column leaking into the request)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    for_inbound_call: int
    for_outbound_call: int
    status: int
    connection_id: str | None = None
    connectionId: str | None = None
    inbound_websocket_bot_id: Id | None = None
    inbound_sip_trunk_id: Id | None = None
    outbound_websocket_bot_id: Id | None = None
    outbound_sip_trunk_id: Id | None = None

    @field_validator("for_inbound_call")
    @classmethod
    def _inbound(cls, value: int) -> int:
        return _one_of(value, _INBOUND)

    @field_validator("for_outbound_call")
    @classmethod
    def _outbound(cls, value: int) -> int:
        return _one_of(value, _OUTBOUND)

    @field_validator("status")
    @classmethod
    def _status(cls, value: int) -> int:
        return _one_of(value, _STATUS)

    @field_validator("connection_id", "connectionId")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                uuid.UUID(value)
            except ValueError:
                # pydantic reports our message; the cause adds nothing for the client.
                raise ValueError(
                    "must be a UUID such as 6f1c1d56-0c1e-4d4f-9a52-5b3a1c2f0e77"
                ) from None
        return value

    @property
    def connection(self) -> str | None:
        """The connection id, whichever spelling carried it."""
        return self.connection_id or self.connectionId

    def record(self) -> dict[str, Any]:
        """The stored record: what was sent, under the current spellings, nulls left out
        (the update replaces the whole record, so a field not sent is gone)."""
        data = self.model_dump(exclude_none=True, exclude={"connectionId"})
        if self.connection is not None:
            data["connection_id"] = self.connection
        return data


def _cross_field_problem(body: UpdateBody) -> str | None:
    """Rules that tie fields together; the message names the field to fix."""
    new, old = body.connection_id, body.connectionId
    if new and old and uuid.UUID(new) != uuid.UUID(old):
        return "connection_id: connection_id and connectionId differ; send only connection_id"
    modes = {"for_inbound_call": body.for_inbound_call, "for_outbound_call": body.for_outbound_call}
    for (mode_field, mode_value), target in _NEEDS.items():
        value = getattr(body, target)
        uses = modes[mode_field] == mode_value
        if uses and value is None:
            return f"{target}: required when {mode_field} is {mode_value}"
        if not uses and value is not None:
            return (
                f"{target}: not used when {mode_field} is {modes[mode_field]}; leave it out "
                f"(it is only for {mode_field} {mode_value})"
            )
    return None


def _describe(error: Any) -> str:
    """One pydantic error as ``field: problem (got value)``."""
    loc = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    kind = error["type"]
    if kind == "missing":
        return f"{loc}: required"
    if kind == "extra_forbidden":
        return f"{loc}: not a field of this endpoint; leave it out"
    if kind == "json_invalid":
        return "body: not valid JSON"
    if kind == "model_type" or not loc:
        return f"body: must be a JSON object ({message})"
    got = error.get("input")
    return f"{loc}: {message} (got {got!r})"


def check_body(raw: bytes) -> UpdateBody | str:
    """The parsed body, or a one-line message naming the (first) field that is wrong."""
    try:
        body = UpdateBody.model_validate_json(raw)
    except ValidationError as exc:
        return "; ".join(_describe(error) for error in exc.errors())
    problem = _cross_field_problem(body)
    return problem if problem is not None else body
