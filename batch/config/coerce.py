"""The converters: a setting's value, as typed on the command line, read from a job file or an
environment variable, or remembered by a run's journal, in its settings type.

One converter per kind of setting (``BY_KIND``); ``COERCE`` maps each RunSettings field to its
kind's, as the table of settings (batch.settings) says. A converter raises UsageError,
ValueError or TypeError with a message that names the bad value (never a key-like secret) and
says what would do, and the caller prefixes where the value came from.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from batch.engine import window
from batch.engine.window import Bound
from batch.secrets import is_uuid, looks_like_api_key
from batch.settings import (
    DEFAULT_API_KEY_ENV,
    SETTINGS,
    ErrorBudget,
    Rate,
    check_base_url,
    parse_duration,
)
from batch.settingtable import Kind, Setting
from batch.sheets.dialect import check_encoding, check_separator, check_sheet

_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def shown(value: object) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, str) else repr(value)


def same(value: object) -> object:
    return value


def _as_path(value: object) -> Path:
    return value if isinstance(value, Path) else Path(str(value))


def _as_rate(value: object) -> Rate:
    return value if isinstance(value, Rate) else Rate.parse(str(value))


def _as_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a whole number >= 1, got {shown(value)}")
    return value


def _as_seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"expected a number of seconds > 0, got {shown(value)}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"expected a number of seconds > 0, got {shown(value)}")
    return number


def _as_duration(value: object) -> float:
    if isinstance(value, str):
        return parse_duration(value)
    return _as_seconds(value)


def _as_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {shown(value)}")
    return value


def _as_uuid(value: object) -> str:
    text = str(value).strip()
    if not is_uuid(text):
        raise ValueError(
            f"{text!r} is not a UUID: copy the connection id from the VoiceLink console"
        )
    return text


def _as_bound(value: object) -> Bound:
    return window.parse_bound(value) if isinstance(value, str) else window.check_bound(value)


def _as_budget(value: object) -> ErrorBudget:
    if isinstance(value, ErrorBudget):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f'expected "5%" or a whole number, got {shown(value)}')
    return ErrorBudget.parse(value)


def _as_canary(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return _as_count(value)


def _as_env_name(value: object) -> str:
    text = str(value)
    if looks_like_api_key(text):  # never echoed
        raise ValueError("not an environment variable name: give the NAME of the variable")
    if not _ENV_NAME.match(text):
        raise ValueError(
            f"{text!r} is not an environment variable name: write the NAME of the variable "
            f'that holds the key, e.g. "{DEFAULT_API_KEY_ENV}"'
        )
    return text


_SHA256: Final = re.compile(r"^[0-9a-f]{64}$")


def _as_sha256(value: object) -> str:
    text = str(value).strip().lower()
    if not _SHA256.match(text):
        raise ValueError(
            f"{str(value)[:80]!r} is not a sha256: copy the 64 hex digits `reroute plan` printed"
        )
    return text


# The converter of each kind of setting (batch.settingtable.Kind).
BY_KIND: Mapping[Kind, Callable[[object], object]] = {
    Kind.PATH: _as_path,
    Kind.URL: lambda v: check_base_url(str(v)),
    Kind.VARIABLE: _as_env_name,
    Kind.UUID: _as_uuid,
    Kind.RATE: _as_rate,
    Kind.COUNT: _as_count,
    Kind.ROWS: _as_canary,
    Kind.SECONDS: _as_seconds,
    Kind.DURATION: _as_duration,
    Kind.SWITCH: _as_bool,
    Kind.MOMENT: _as_bound,
    Kind.BUDGET: _as_budget,
    Kind.SHEET: check_sheet,
    Kind.SEPARATOR: check_separator,
    Kind.ENCODING: check_encoding,
    Kind.SHA256: _as_sha256,
}


def converters(table: Mapping[str, Setting]) -> dict[str, Callable[[object], object]]:
    """Each setting's converter, by its kind."""
    return {name: BY_KIND[setting.kind] for name, setting in table.items()}


COERCE: Final = converters(SETTINGS)
