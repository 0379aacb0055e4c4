"""`batch.cli.flagvalues`: flags coerced without pydantic, exactly as typer's own adapters do.

Every parameter of every command is coerced both ways, over awkward values and generated
ones: the same value of the same type, or the same error with the same words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.core
import typer.main
from hypothesis import given, settings
from hypothesis import strategies as st
from typer._coercion import build_runtime_param as typer_build
from typer._coercion import resolve_type_descriptor

from batch.cli import app, flagvalues

# fmt: off
AWKWARD = [
    "", " ", "4", "007", "-3", "-0", "0", "1", "+4", " 4", "4 ", "1_000", "1.5", "1.50", "-2.25",
    "1.", ".5", "1e3", "inf", "nan", "99999999999999999999", "abc", "text", "json", "JSON",
    "Json", "a;b", "\u00e4", "\t", "-", "csv", "xlsx", "true", "false", "yes", "no", "5m",
]
# fmt: on


def _parameters() -> list[tuple[str, Any]]:
    group = typer.main.get_command(app)
    found = []
    for name, command in sorted(group.commands.items()):  # type: ignore[attr-defined]
        for param in command.params:
            if hasattr(param, "type_descriptor"):
                found.append((f"{name} {param.name}", (command, param)))
    return found


PARAMETERS = _parameters()


def _outcome(runtime: Any, value: Any, command: Any, param: Any) -> tuple[str, Any]:
    from typer._click import Context

    ctx = Context(command, info_name=command.name)
    try:
        result = runtime.coerce(value, param=param, ctx=ctx)
    except Exception as error:  # the words and kind of a refusal are what is compared
        return ("error", (type(error).__name__, str(error)))
    return ("value", (type(result).__name__, repr(result)))


def _both(command: Any, param: Any, value: Any) -> tuple[Any, Any]:
    descriptor = param.type_descriptor
    quick = typer.core.build_runtime_param(descriptor)
    return _outcome(quick, value, command, param), _outcome(
        typer_build(descriptor), value, command, param
    )


def test_installed_and_covering_the_plain_parameters() -> None:
    assert flagvalues.install() is True
    quick = [
        label
        for label, (_command, param) in PARAMETERS
        if type(typer.core.build_runtime_param(param.type_descriptor)).__name__
        == "QuickRuntimeParam"
    ]
    # --concurrency, --rate, --results, the input file, --log-format...: not one pydantic adapter
    assert len(quick) == len(PARAMETERS) > 40


@pytest.mark.parametrize(("label", "pair"), PARAMETERS, ids=[label for label, _ in PARAMETERS])
def test_every_parameter_coerces_awkward_values_as_typer_does(
    label: str, pair: tuple[Any, Any], tmp_path: Path
) -> None:
    command, param = pair
    a_file = tmp_path / "changes.csv"
    a_file.write_text("routing_id\n")
    values: list[Any] = [*AWKWARD, str(a_file), str(tmp_path), str(tmp_path / "absent.csv"), True]
    values.append(None)
    if param.multiple or param.nargs == -1:
        values = [(value,) for value in values if value is not None] + [(), (str(a_file), "2")]
    for value in values:
        quick, typer_way = _both(command, param, value)
        assert quick == typer_way, (label, value)


NUMBERS = [
    (label, pair)
    for label, pair in PARAMETERS
    if pair[1].type_descriptor.annotation in (int, float, str)
]


@settings(max_examples=60, deadline=None)
@given(
    which=st.integers(min_value=0, max_value=len(NUMBERS) - 1),
    text=st.one_of(
        st.from_regex(r"-?[0-9]{1,20}(\.[0-9]{0,16})?", fullmatch=True),
        st.text(max_size=8),
    ),
)
def test_numbers_and_text_coerce_as_typer_does(which: int, text: str) -> None:
    label, (command, param) = NUMBERS[which]
    quick, typer_way = _both(command, param, text)
    assert quick == typer_way, (label, text)


def test_a_list_of_enums_or_datetimes_is_left_to_typer() -> None:
    from datetime import datetime

    from typer.models import OptionInfo

    descriptor = resolve_type_descriptor(datetime, OptionInfo())
    assert type(typer.core.build_runtime_param(descriptor)).__name__ != "QuickRuntimeParam"


def test_a_refused_value_is_worded_by_typer() -> None:
    from typer.testing import CliRunner

    shown = CliRunner().invoke(app, ["run", "x.csv", "--concurrency", "0"])
    assert shown.exit_code == 2
    assert "--concurrency" in shown.output
    assert "greater than or equal to 1" in shown.output
