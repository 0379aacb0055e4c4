"""The stages' records: the fast builders make exactly the objects the constructors make."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch.model import Call, Outcome, RowResult, build_call, build_row_result

moments = st.none() | st.datetimes(timezones=st.just(UTC))
row_values = st.tuples(
    st.integers(min_value=1),
    st.text(),
    st.sampled_from(Outcome),
    st.none() | st.integers(min_value=100, max_value=599),
    st.integers(min_value=0, max_value=100),
    st.text(),
    st.text(),
    st.text(),
    st.text(),
    moments,
    moments,
    st.none() | st.integers(min_value=0),
)


@given(row_values)
def test_build_row_result_is_the_constructor(values: tuple[object, ...]) -> None:
    built = build_row_result(*values)
    made = RowResult(*values)  # type: ignore[arg-type]
    assert type(built) is RowResult
    assert built == made
    assert hash(built) == hash(made)
    assert dataclasses.astuple(built) == values


@given(st.integers(min_value=1), st.integers(min_value=1), st.text())
def test_build_call_is_the_constructor(row: int, routing_id: int, body: str) -> None:
    built = build_call(row, routing_id, body)
    assert built == Call(row=row, routing_id=routing_id, body=body)
    assert built.path == f"/voicelink/call-routing/{routing_id}"


def test_built_records_stay_frozen() -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    result = build_row_result(1, "7", Outcome.SUCCEEDED, 200, 1, "", "", "{}", "{}", now, now, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.outcome = Outcome.FAILED  # type: ignore[misc]
    call = build_call(1, 7, "{}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.body = "{}"  # type: ignore[misc]


def test_builders_refuse_a_wrong_number_of_values() -> None:
    with pytest.raises(TypeError, match="Call takes 3 values, got 2"):
        build_call(1, 7)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="RowResult takes 12 values, got 3"):
        build_row_result(1, "7", Outcome.SUCCEEDED)  # type: ignore[call-arg]
