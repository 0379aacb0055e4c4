"""The stages' records: the result row's one definition and what counts as decided."""

from __future__ import annotations

from datetime import UTC

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch.model import RESULT_COLUMNS, Outcome, RowResult

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


def test_result_columns_are_the_row_fields_in_order() -> None:
    """The results file's columns come from RowResult itself: one definition."""
    assert RowResult._fields == RESULT_COLUMNS
    assert RESULT_COLUMNS[:3] == ("row", "routing_id", "outcome")
    assert RESULT_COLUMNS[-1] == "duration_ms"


@given(row_values)
def test_values_round_trip_through_the_constructor(values: tuple[object, ...]) -> None:
    """A RowResult's values are its fields in column order: the constructor takes them back."""
    result = RowResult._make(values)
    assert tuple(result) == values
    assert dict(zip(RESULT_COLUMNS, values, strict=True)) == result._asdict()


@pytest.mark.parametrize(
    ("outcome", "status", "decided"),
    [
        (Outcome.SUCCEEDED, 200, True),
        (Outcome.SKIPPED, None, True),
        (Outcome.FAILED, 400, True),
        (Outcome.FAILED, None, True),  # a transport error after every attempt: decided
        (Outcome.FAILED, 401, False),  # the key, not the row
        (Outcome.FAILED, 403, False),
        (Outcome.FAILED, 429, False),  # the server asked the whole run to wait
        (Outcome.UNKNOWN, None, False),
        (Outcome.NOT_ATTEMPTED, None, False),
        (Outcome.INVALID, None, False),
    ],
)
def test_decided_rows_are_never_sent_again(
    outcome: Outcome, status: int | None, decided: bool
) -> None:
    """Succeeded, skipped and failed-on-its-merits are decided; the rest a resume sends."""
    assert RowResult(1, "7", outcome, http_status=status).decided is decided


def test_records_are_frozen() -> None:
    """A result cannot be changed after it is made (stages hand each other values)."""
    result = RowResult(1, "7", Outcome.SUCCEEDED, 200, 1, "", "", "{}", "{}", None, None, 3)
    with pytest.raises(AttributeError):
        result.row = 2  # type: ignore[misc]
