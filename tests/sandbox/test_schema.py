"""The sandbox's own body check: every rule of the API doc, a message naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch.sandbox.schema import UpdateBody, check_body

CONN = "6f1c1d56-0c1e-4d4f-9a52-5b3a1c2f0e77"


def body(**fields: Any) -> bytes:
    base: dict[str, Any] = {"for_inbound_call": 1, "for_outbound_call": 4, "status": 1}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    "raw",
    [
        body(),
        body(for_inbound_call=3, inbound_websocket_bot_id=7),
        body(for_inbound_call=2, inbound_sip_trunk_id=1),
        body(for_outbound_call=3, outbound_websocket_bot_id=9),
        body(for_outbound_call=2, outbound_sip_trunk_id=2, status=0),
        body(connection_id=CONN),
        body(connectionId=CONN),
        body(connection_id=CONN, connectionId=CONN.upper()),
    ],
)
def test_valid_bodies_pass(raw: bytes) -> None:
    """Every combination the doc allows is accepted."""
    assert isinstance(check_body(raw), UpdateBody)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (body(for_inbound_call=...), "for_inbound_call: required"),
        (body(for_outbound_call=...), "for_outbound_call: required"),
        (body(status=...), "status: required"),
        (body(for_inbound_call=0), "for_inbound_call: must be one of"),
        (body(for_inbound_call=4), "for_inbound_call: must be one of"),
        (body(for_outbound_call=1), "for_outbound_call: must be one of"),
        (body(status=2), "status: must be one of"),
        (body(status=-1), "status: must be one of"),
        (body(for_inbound_call=True), "for_inbound_call: Input should be a valid integer"),
        (body(for_inbound_call=1.0), "for_inbound_call: Input should be a valid integer"),
        (body(for_inbound_call="1"), "for_inbound_call: Input should be a valid integer"),
        (body(for_inbound_call=3, inbound_websocket_bot_id=0), "inbound_websocket_bot_id: "),
        (body(for_inbound_call=3, inbound_websocket_bot_id=1.5), "inbound_websocket_bot_id: "),
        (body(for_inbound_call=3), "inbound_websocket_bot_id: required when for_inbound_call"),
        (body(for_inbound_call=2), "inbound_sip_trunk_id: required when for_inbound_call"),
        (body(for_outbound_call=3), "outbound_websocket_bot_id: required when for_outbound"),
        (body(for_outbound_call=2), "outbound_sip_trunk_id: required when for_outbound_call"),
        (body(inbound_sip_trunk_id=5), "inbound_sip_trunk_id: not used when for_inbound_call"),
        (body(outbound_websocket_bot_id=5), "outbound_websocket_bot_id: not used when"),
        (body(connection_id="not-a-uuid"), "connection_id: must be a UUID"),
        (body(connectionId="nope"), "connectionId: must be a UUID"),
        (
            body(connection_id=CONN, connectionId="11111111-2222-3333-4444-555555555555"),
            "connection_id: connection_id and connectionId differ",
        ),
        (body(note="ticket 12"), "note: not a field of this endpoint"),
        (body(routing_id=5), "routing_id: not a field of this endpoint"),
        (b"[1, 2]", "body: must be a JSON object"),
        (b"{not json", "body: not valid JSON"),
        (b"", "body: not valid JSON"),
    ],
)
def test_each_rule_names_its_field(raw: bytes, field: str) -> None:
    """A body breaking one rule of the doc gets a message that starts with the field's name."""
    problem = check_body(raw)
    assert isinstance(problem, str)
    assert field in problem


def test_non_finite_numbers_are_refused() -> None:
    """NaN and infinity are not integers (the doc: non-finite numbers are rejected)."""
    for text in (b"NaN", b"Infinity", b"1e400"):
        raw = b'{"for_inbound_call":3,"for_outbound_call":4,"status":1,"inbound_websocket_bot_id":'
        problem = check_body(raw + text + b"}")
        assert isinstance(problem, str)
        assert problem.startswith("inbound_websocket_bot_id:")


def test_record_keeps_only_what_was_sent_under_the_new_spelling() -> None:
    """The stored record is the body as sent, nulls dropped, connectionId as connection_id."""
    parsed = check_body(body(connectionId=CONN, for_outbound_call=3, outbound_websocket_bot_id=4))
    assert isinstance(parsed, UpdateBody)
    assert parsed.record() == {
        "for_inbound_call": 1,
        "for_outbound_call": 3,
        "status": 1,
        "outbound_websocket_bot_id": 4,
        "connection_id": CONN,
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
FIELD_NAMES = (
    "for_inbound_call",
    "for_outbound_call",
    "status",
    "connection_id",
    "connectionId",
    "inbound_websocket_bot_id",
    "inbound_sip_trunk_id",
    "outbound_websocket_bot_id",
    "outbound_sip_trunk_id",
)


@given(st.dictionaries(st.sampled_from(FIELD_NAMES), json_values | st.integers(-2, 5)))
def test_any_object_gets_a_verdict(candidate: dict[str, Any]) -> None:
    """Any JSON object is either accepted or refused with a field-named message, never a crash."""
    verdict = check_body(json.dumps(candidate).encode())
    if isinstance(verdict, str):
        assert verdict.split(":", 1)[0] in {"body", *FIELD_NAMES}
    else:
        assert verdict.for_inbound_call in (1, 2, 3)


@given(st.binary(max_size=64))
def test_any_bytes_get_a_verdict(raw: bytes) -> None:
    """Arbitrary bytes never raise: a parsed body or a one-line message."""
    verdict = check_body(raw)
    assert isinstance(verdict, UpdateBody) or "\n" not in verdict
