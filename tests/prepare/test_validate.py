"""Row validation: every rule and code, the messages, the bodies, and a per-row reference."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch import voicelink as vl
from batch.errors import UsageError
from batch.model import Outcome
from batch.prepare.rules import Code
from batch.prepare.validate import validate
from batch.sheets.load import KNOWN_COLUMNS, Table
from tests.fakes import targets_used

UUID_A = "123e4567-e89b-12d3-a456-426614174000"
UUID_B = "9b2c1d3e-0000-4abc-8def-0123456789ab"

Row = dict[str, str | None]


def table(*rows: Row, passthrough: dict[str, list[str | None]] | None = None) -> Table:
    """A Table as load_table makes it: every known column as text, absent cells null."""
    columns: dict[str, list[str | None]] = {
        name: [row.get(name) for row in rows] for name in KNOWN_COLUMNS
    }
    extra = passthrough or {}
    frame = pl.DataFrame({**columns, **extra}, schema=dict.fromkeys([*columns, *extra], pl.String))
    return Table(path=Path("changes.csv"), frame=frame, passthrough=tuple(extra))


def row(**cells: str | None) -> Row:
    base: Row = {"routing_id": "93", "for_inbound_call": "1", "for_outbound_call": "4"}
    base["status"] = "1"
    base.update(cells)
    return base


def codes_of(*rows: Row, connection_id: str | None = None) -> list[str]:
    v = validate(table(*rows), connection_id=connection_id)
    return v.verdicts.get_column("error_code").to_list()


# --- the reference: a small, obviously-correct per-row validator -----------------------------

WS = " \t\r\n\x0b\x0c\xa0"
INT = re.compile(r"[+-]?[0-9]+(\.0*)?")
UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
I64_MAX = 2**63 - 1


def ref_cell(value: str | None) -> str | None:
    if value is None or value.strip(WS) == "":
        return None
    return value.strip(WS)


def ref_int(text: str | None) -> int | None:
    """The integer a cell holds, None if empty, not an integer, or beyond 64 bits."""
    if text is None or not INT.fullmatch(text):
        return None
    number = int(text.split(".")[0])
    return number if -I64_MAX - 1 <= number <= I64_MAX else None


def reference(rows: list[Row], default: str | None = None) -> list[tuple[set[str], str]]:
    """(codes, body) per row, judged one row at a time; body "" for invalid rows."""
    cells = [{name: ref_cell(r.get(name)) for name in KNOWN_COLUMNS} for r in rows]
    ids = [ref_int(c["routing_id"]) for c in cells]
    usable = [i for i in ids if i is not None and i >= 1]
    out: list[tuple[set[str], str]] = []
    for c, rid in zip(cells, ids, strict=True):
        codes: set[str] = set()
        nums = {name: ref_int(c[name]) for name in vl.INTEGER_FIELDS}
        for name in vl.REQUIRED_FIELDS:
            text = c[name]
            if text is None:
                codes.add("MISSING_FIELD")
            elif not INT.fullmatch(text):
                codes.add("NOT_AN_INTEGER")
            elif name in vl.ALLOWED:
                if nums[name] not in vl.ALLOWED[name]:
                    codes.add("UNKNOWN_MODE")
            elif nums[name] is None or nums[name] < 1:  # type: ignore[operator]
                codes.add("OUT_OF_RANGE")
        if rid is not None and rid >= 1 and usable.count(rid) > 1:
            codes.add("DUPLICATE_ROUTING_ID")
        inbound, outbound = nums[vl.FOR_INBOUND_CALL], nums[vl.FOR_OUTBOUND_CALL]
        modes = {vl.FOR_INBOUND_CALL: inbound, vl.FOR_OUTBOUND_CALL: outbound}
        for target in vl.TARGET_FIELDS:
            mode_field, wanted = vl.MODE_FOR_TARGET[target]
            mode = modes[mode_field]
            known = mode in vl.ALLOWED[mode_field]
            text = c[target]
            if known and mode == wanted and text is None:
                codes.add("MISSING_TARGET")
            if known and mode != wanted:
                if text is not None:
                    codes.add("UNUSED_TARGET")
                continue
            if text is not None and not INT.fullmatch(text):
                codes.add("NOT_AN_INTEGER")
            elif text is not None and (nums[target] is None or nums[target] < 1):  # type: ignore[operator]
                codes.add("OUT_OF_RANGE")
        new, old = c[vl.CONNECTION_ID], c[vl.CONNECTION_ID_OLD]
        for value in (new, old):
            if value is not None and not UUID.fullmatch(value):
                codes.add("BAD_UUID")
        if new is not None and old is not None and new.lower() != old.lower():
            codes.add("CONFLICTING_CONNECTION_ID")
        body = ""
        if not codes:
            assert inbound is not None
            assert outbound is not None
            fields: dict[str, int | str] = {
                vl.FOR_INBOUND_CALL: inbound,
                vl.FOR_OUTBOUND_CALL: outbound,
                vl.STATUS: nums[vl.STATUS],  # type: ignore[dict-item]
            }
            connection = new or old or default
            if connection:
                fields[vl.CONNECTION_ID] = connection
            for target in sorted(targets_used(inbound, outbound), key=vl.BODY_FIELDS.index):
                fields[target] = nums[target]  # type: ignore[assignment]
            body = vl.encode_body(fields)
        out.append((codes, body))
    return out


def assert_agrees(rows: list[Row], default: str | None = None) -> None:
    v = validate(table(*rows), connection_id=default)
    expected = reference(rows, default)
    got = v.verdicts.select("error_code", "request").iter_rows()
    for number, ((codes, body), (code_text, request)) in enumerate(
        zip(expected, got, strict=True), start=1
    ):
        assert set(filter(None, code_text.split(";"))) == codes, (number, rows[number - 1])
        assert request == body, (number, rows[number - 1])


# --- each rule and code ---------------------------------------------------------------------


def test_a_plain_valid_row_has_no_code_and_a_body() -> None:
    """A complete mobile/only-answer row is valid and its body holds exactly the mode fields."""
    v = validate(table(row()))
    assert v.verdicts.row(0, named=True) == {
        "row": 1,
        "routing_id": "93",
        "error_code": "",
        "error_message": "",
        "request": '{"for_inbound_call":1,"for_outbound_call":4,"status":1}',
        "id": 93,
    }
    assert (v.total, v.valid, v.invalid) == (1, 1, 0)


@pytest.mark.parametrize("field", vl.REQUIRED_FIELDS)
def test_each_required_field_empty_is_missing_field(field: str) -> None:
    """An empty (or blank) required cell is MISSING_FIELD, and the message names the field."""
    for empty in (None, "", "   "):
        v = validate(table(row(**{field: empty})))
        assert v.verdicts.get_column("error_code").to_list() == ["MISSING_FIELD"]
        assert f"row 1, field {field}: the cell is empty" in v.verdicts["error_message"][0]


@pytest.mark.parametrize("text", ["93.0", "93.", "093", " 93 ", "+93", "\xa093"])
def test_integer_spellings_that_count_as_93(text: str) -> None:
    """`93.0`, leading zeros, a plus sign and surrounding blanks all mean 93."""
    v = validate(table(row(routing_id=text)))
    assert v.verdicts["error_code"][0] == ""
    assert v.verdicts["id"][0] == 93
    assert v.verdicts["routing_id"][0] == text  # as read, not as understood


@pytest.mark.parametrize(
    "text", ["93.5", "abc", "1e3", "9,300", "NaN", "inf", "٩٣", "0x5d", "true"]
)
def test_not_an_integer(text: str) -> None:
    """Fractions, text, exponents, separators, non-finite and non-ASCII digits are rejected."""
    assert codes_of(row(routing_id=text)) == ["NOT_AN_INTEGER"]
    v = validate(table(row(status=text)))
    assert v.verdicts["error_code"][0] == "NOT_AN_INTEGER"
    assert f"field status: value '{text}' is not an integer" in v.verdicts["error_message"][0]


@pytest.mark.parametrize("text", ["0", "-1", "-0", "99999999999999999999"])
def test_ids_below_one_or_beyond_64_bits_are_out_of_range(text: str) -> None:
    """routing_id and target ids must be 1 or more (and fit an integer the API can take)."""
    assert codes_of(row(routing_id=text)) == ["OUT_OF_RANGE"]
    bot = row(for_inbound_call="3", inbound_websocket_bot_id=text)
    assert codes_of(bot) == ["OUT_OF_RANGE"]


@pytest.mark.parametrize(
    ("field", "value", "choices"),
    [
        ("for_inbound_call", "4", "1 mobile, 2 SIP, 3 WebSocket bot"),
        ("for_inbound_call", "0", "1 mobile, 2 SIP, 3 WebSocket bot"),
        ("for_outbound_call", "1", "2 SIP, 3 WebSocket bot, 4 only-answer"),
        ("status", "2", "0 inactive, 1 active"),
        ("status", "-1", "0 inactive, 1 active"),
    ],
)
def test_unknown_mode_lists_the_choices(field: str, value: str, choices: str) -> None:
    """A mode or status outside its values is UNKNOWN_MODE, the message listing the choices."""
    v = validate(table(row(**{field: value})))
    assert v.verdicts["error_code"][0] == "UNKNOWN_MODE"
    assert f"field {field}: value '{value}' is not " in v.verdicts["error_message"][0]
    assert f"({choices}); fix the cell" in v.verdicts["error_message"][0]


def test_outbound_message_matches_the_documented_wording() -> None:
    """The outbound-mode message reads exactly as the brief's example."""
    rows = [row(routing_id=str(n)) for n in range(1, 8)]
    rows[6] = row(routing_id="7", for_outbound_call="5")
    v = validate(table(*rows))
    assert v.verdicts["error_message"][6] == (
        "row 7, field for_outbound_call: value '5' is not an outbound mode "
        "(2 SIP, 3 WebSocket bot, 4 only-answer); fix the cell"
    )


@pytest.mark.parametrize(
    ("modes", "target"),
    [
        ({"for_inbound_call": "3"}, "inbound_websocket_bot_id"),
        ({"for_inbound_call": "2"}, "inbound_sip_trunk_id"),
        ({"for_outbound_call": "3"}, "outbound_websocket_bot_id"),
        ({"for_outbound_call": "2"}, "outbound_sip_trunk_id"),
    ],
)
def test_a_mode_that_needs_a_target_without_it_is_missing_target(
    modes: dict[str, str], target: str
) -> None:
    """Inbound/outbound 3 need a bot id, 2 a trunk id: an empty one is MISSING_TARGET."""
    v = validate(table(row(**modes)))
    assert v.verdicts["error_code"][0] == "MISSING_TARGET"
    assert f"field {target}: the cell is empty but" in v.verdicts["error_message"][0]
    filled = validate(table(row(**modes, **{target: "12"})))
    assert filled.verdicts["error_code"][0] == ""
    assert json.loads(filled.verdicts["request"][0])[target] == 12


@pytest.mark.parametrize("target", vl.TARGET_FIELDS)
def test_a_target_the_modes_do_not_use_is_unused_target(target: str) -> None:
    """A bot/trunk id set for mobile inbound / only-answer outbound says to clear that cell."""
    v = validate(table(row(**{target: "12"})))
    assert v.verdicts["error_code"][0] == "UNUSED_TARGET"
    message = v.verdicts["error_message"][0]
    assert f"field {target}: value '12' is set but" in message
    assert "clear the cell" in message


def test_an_unused_target_is_not_also_judged_as_a_number() -> None:
    """A cell the user must clear gets one instruction (clear it), not a number complaint."""
    assert codes_of(row(inbound_sip_trunk_id="abc")) == ["UNUSED_TARGET"]


def test_targets_are_not_judged_against_an_unknown_mode() -> None:
    """With an unknown mode the needed target cannot be known: only UNKNOWN_MODE is reported."""
    assert codes_of(row(for_inbound_call="9", inbound_sip_trunk_id="5")) == ["UNKNOWN_MODE"]


@pytest.mark.parametrize("field", [vl.CONNECTION_ID, vl.CONNECTION_ID_OLD])
def test_a_connection_id_that_is_not_a_uuid_is_bad_uuid(field: str) -> None:
    """Either spelling of the connection id must hold a UUID."""
    v = validate(table(row(**{field: "conn-1"})))
    assert v.verdicts["error_code"][0] == "BAD_UUID"
    assert f"field {field}: value 'conn-1' is not a UUID" in v.verdicts["error_message"][0]


def test_both_spellings_differing_conflict_and_agreeing_do_not() -> None:
    """connection_id and connectionId both set must agree (case aside); the new one is sent."""
    assert codes_of(row(connection_id=UUID_A, connectionId=UUID_B)) == ["CONFLICTING_CONNECTION_ID"]
    v = validate(table(row(connection_id=UUID_A, connectionId=UUID_A.upper())))
    assert json.loads(v.verdicts["request"][0])["connection_id"] == UUID_A


def test_the_old_spelling_is_sent_under_the_new_name() -> None:
    """A row with only connectionId sends it as connection_id."""
    v = validate(table(row(connectionId=UUID_B)))
    assert json.loads(v.verdicts["request"][0]) == {
        "for_inbound_call": 1,
        "for_outbound_call": 4,
        "status": 1,
        "connection_id": UUID_B,
    }


def test_the_default_connection_id_fills_only_empty_cells() -> None:
    """--connection-id is used where the row has none, never over a row's own."""
    v = validate(table(row(), row(routing_id="94", connection_id=UUID_B)), connection_id=UUID_A)
    bodies = [json.loads(body) for body in v.verdicts["request"]]
    assert [body["connection_id"] for body in bodies] == [UUID_A, UUID_B]


def test_a_bad_default_connection_id_is_a_usage_error() -> None:
    """A --connection-id that is not a UUID stops with the form a UUID takes."""
    with pytest.raises(UsageError, match="--connection-id 'x' is not a UUID"):
        validate(table(row()), connection_id="x")


def test_duplicate_routing_ids_flag_every_row_involved() -> None:
    """Every row of a repeated routing_id is flagged, however it is spelled, with the rows."""
    v = validate(
        table(
            row(routing_id="5"),
            row(routing_id="6"),
            row(routing_id="5.0"),
            row(routing_id="005"),
        )
    )
    assert v.verdicts["error_code"].to_list() == [
        "DUPLICATE_ROUTING_ID",
        "",
        "DUPLICATE_ROUTING_ID",
        "DUPLICATE_ROUTING_ID",
    ]
    assert "is in rows 1, 3, 4; " in v.verdicts["error_message"][0]


def test_empty_and_invalid_routing_ids_are_not_duplicates() -> None:
    """Two empty or two non-numeric routing ids are missing/not integers, not duplicates."""
    assert codes_of(row(routing_id=None), row(routing_id=None)) == ["MISSING_FIELD"] * 2
    assert codes_of(row(routing_id="x"), row(routing_id="x")) == ["NOT_AN_INTEGER"] * 2


def test_every_problem_of_a_row_is_reported() -> None:
    """A row with several problems lists every code and one message part per problem."""
    bad = row(
        routing_id="0",
        for_inbound_call="3",
        for_outbound_call="7",
        status="x",
        outbound_sip_trunk_id="4",
        connection_id="nope",
    )
    v = validate(table(bad))
    assert v.verdicts["error_code"][0].split(";") == [
        "NOT_AN_INTEGER",
        "OUT_OF_RANGE",
        "UNKNOWN_MODE",
        "MISSING_TARGET",
        "BAD_UUID",
    ]
    message = v.verdicts["error_message"][0]
    assert message.count("row 1, field") == 5
    assert "\n" not in message


def test_a_value_in_a_message_stays_on_one_short_line() -> None:
    """Cells with newlines or great length are quoted escaped and cut, keeping one line."""
    v = validate(table(row(status="a\nb" + "x" * 100)))
    message = v.verdicts["error_message"][0]
    assert "\n" not in message
    assert "value 'a\\nb" in message
    assert "x" * 60 not in message


def test_targets_in_the_body_follow_the_modes_in_body_order() -> None:
    """A SIP/WebSocket row sends both its ids as integers, in voicelink.BODY_FIELDS order."""
    v = validate(
        table(
            row(
                for_inbound_call="2",
                for_outbound_call="3",
                status="0",
                inbound_sip_trunk_id="0041",
                outbound_websocket_bot_id="8.0",
                connection_id=f" {UUID_A} ",
            )
        )
    )
    assert v.verdicts["request"][0] == vl.encode_body(
        {
            "for_inbound_call": 2,
            "for_outbound_call": 3,
            "status": 0,
            "connection_id": UUID_A,
            "inbound_sip_trunk_id": 41,
            "outbound_websocket_bot_id": 8,
        }
    )


def test_summary_helpers_count_codes_and_list_results() -> None:
    """code_counts counts rows per code; invalid/preview results carry the verdicts."""
    v = validate(table(row(routing_id="1"), row(routing_id="x", status=None), row(routing_id="3")))
    assert v.code_counts() == {"MISSING_FIELD": 1, "NOT_AN_INTEGER": 1}
    [bad] = v.invalid_results()
    assert (bad.row, bad.routing_id, bad.outcome) == (2, "x", Outcome.INVALID)
    assert bad.error_code == "MISSING_FIELD;NOT_AN_INTEGER"
    assert v.invalid_results(limit=0) == []
    preview = list(v.preview_results())
    assert [r.outcome for r in preview] == [
        Outcome.NOT_ATTEMPTED,
        Outcome.INVALID,
        Outcome.NOT_ATTEMPTED,
    ]
    assert preview[0].request == v.verdicts["request"][0]
    assert [(c.row, c.routing_id) for c in v.calls()] == [(1, 1), (3, 3)]


def test_calls_come_in_input_order_across_chunks() -> None:
    """calls() yields every valid row once, in order, past its internal chunk size."""
    rows = [row(routing_id=str(n)) for n in range(1, 25_001)]
    rows[100] = row(routing_id="bad")
    calls = list(validate(table(*rows)).calls())
    assert len(calls) == 24_999
    assert [c.row for c in calls[99:102]] == [100, 102, 103]
    assert calls[-1].routing_id == 25_000
    assert calls[-1].path == "/voicelink/call-routing/25000"


def test_every_code_of_the_contract_is_known() -> None:
    """The codes are exactly the contract's nine, the two found against a snapshot and the
    five found against the account."""
    assert {c.value for c in Code} == {
        "MISSING_FIELD",
        "NOT_AN_INTEGER",
        "OUT_OF_RANGE",
        "UNKNOWN_MODE",
        "MISSING_TARGET",
        "UNUSED_TARGET",
        "BAD_UUID",
        "CONFLICTING_CONNECTION_ID",
        "DUPLICATE_ROUTING_ID",
        "UNKNOWN_RECORD",  # issue 6: --fill-from-current, record not in the snapshot
        "UNKNOWN_BOT",  # issue 14: the account preflight
        "INACTIVE_BOT",
        "UNKNOWN_CONNECTION",
        "INACTIVE_CONNECTION",
        "MISSING_CONNECTION_ID",
        "WIPES",  # issue 6: run --current refuses a row that would erase a field
    }


def test_an_empty_table_has_no_verdicts() -> None:
    """A table with no rows validates to nothing, with counts of zero."""
    v = validate(table())
    assert (v.total, v.valid, v.invalid, v.code_counts()) == (0, 0, 0, {})
    assert list(v.calls()) == []


# --- property tests: the bulk validator agrees with the reference, row for row ---------------

TYPICAL = [
    None,
    "",
    " ",
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "-1",
    "1.0",
    "2.",
    "3.5",
    "+4",
    "007",
    "abc",
    "1e3",
    "NaN",
    " 2 ",
    "99999999999999999999",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
]
UUIDS = [None, "", UUID_A, UUID_A.upper(), UUID_B, "not-a-uuid", f" {UUID_B}", UUID_A[:-1]]

cell = st.one_of(st.sampled_from(TYPICAL), st.text(max_size=8))
uuid_cell = st.one_of(st.sampled_from(UUIDS), st.text(max_size=6))
routing = st.one_of(st.sampled_from(["1", "2", "3", "2.0", "x", None, "0"]), cell)


@st.composite
def rows_strategy(draw: st.DrawFn) -> list[Row]:
    n = draw(st.integers(min_value=0, max_value=12))
    out: list[Row] = []
    for _ in range(n):
        r: Row = {name: draw(cell) for name in vl.INTEGER_FIELDS}
        r[vl.ROUTING_ID] = draw(routing)
        r[vl.CONNECTION_ID] = draw(uuid_cell)
        r[vl.CONNECTION_ID_OLD] = draw(uuid_cell)
        out.append(r)
    return out


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows_strategy(), default=st.sampled_from([None, UUID_A]))
def test_bulk_validator_agrees_with_the_reference(rows: list[Row], default: str | None) -> None:
    """For random cells, codes and bodies equal the per-row reference's, row for row."""
    assert_agrees(rows, default)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy())
def test_every_invalid_row_has_a_one_line_message_per_problem(rows: list[Row]) -> None:
    """Invalid rows always have a message starting with their row; valid rows have none."""
    v = validate(table(*rows))
    for number, code, message, request in v.verdicts.select(
        "row", "error_code", "error_message", "request"
    ).iter_rows():
        if code:
            assert message.startswith(f"row {number}, field")
            assert "\n" not in message
            assert request == ""
        else:
            assert message == ""
            assert json.loads(request)
