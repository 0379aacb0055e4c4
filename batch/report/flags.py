"""The run's settings as the operator wrote them: the flag and job-file key, in their forms.

``--rate 60/min``, ``--max-outage 15m``, ``--fill-from-current yes``: not ``max_outage 900.0``
or ``False``. The ones that differ from the default come first (they are what the run chose).

One small mapping, here until the settings table (one row per setting: flag, job key,
converter, default) exists; then it should come from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class Setting:
    flag: str  # "--rate"
    job_key: str  # "[pace] rate"
    value: str  # "60/min"
    default: bool  # the value is the default


def _text(value: Any) -> str:
    return str(value)


def _yes_no(value: Any) -> str:
    return "yes" if value else "no"


def _seconds(value: Any) -> str:
    return f"{float(value):g}"


def _duration(value: Any) -> str:
    """Seconds as the flag takes them: ``15m``, ``1h``, ``90s``."""
    seconds = float(value)
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _budget(value: Any) -> str:
    """The run records the budget in words ("5% of the last 100 finished rows", "10 failed
    rows"); the flag's form is its first word."""
    return str(value).split(" ", 1)[0]


def _check(value: Any) -> str:
    return "auto (a real host only)" if value is None else _yes_no(value)


_Format = Callable[[Any], str]
# name -> (flag, job-file key, default, formatter). A default of None: not set.
SETTINGS: Final[dict[str, tuple[str, str, Any, _Format]]] = {
    "sandbox": ("--sandbox", "", False, _yes_no),
    "base_url": ("--base-url", "[target] base_url", None, _text),
    "api_key_env": ("", "[target] api_key_env", "VOCOBASE_API_KEY", _text),
    "api_key_file": ("--api-key-file", "", None, _text),
    "connection_id": ("--connection-id", "[target] connection_id", None, _text),
    "rate": ("--rate", "[pace] rate", "60/min", _text),
    "concurrency": ("--concurrency", "[pace] concurrency", 4, _text),
    "max_attempts": ("--max-attempts", "[pace] max_attempts", 5, _text),
    "timeout": ("--timeout", "[pace] timeout", 30.0, _seconds),
    "max_retry_after": ("--max-retry-after", "[pace] max_retry_after", 300.0, _seconds),
    "max_outage": ("--max-outage", "[pace] max_outage", 900.0, _duration),
    "not_before": ("--not-before", "[window] not_before", None, _text),
    "not_after": ("--not-after", "[window] not_after", None, _text),
    "skip_invalid": ("--skip-invalid", "[safety] skip_invalid", False, _yes_no),
    "current": ("--current", "[safety] current", None, _text),
    "fill_from_current": ("--fill-from-current", "[safety] fill_from_current", False, _yes_no),
    "allow_wipe": ("--allow-wipe", "[safety] allow_wipe", False, _yes_no),
    "skip_unchanged": ("--skip-unchanged", "[safety] skip_unchanged", False, _yes_no),
    "rollback": ("--rollback", "[safety] rollback", None, _text),
    "canary": ("--canary", "[safety] canary", None, _text),
    "error_budget": ("--error-budget", "[safety] error_budget", None, _budget),
    "account_check": ("--account-check", "[safety] account_check", None, _check),
    "approved_plan": ("--approved-plan", "[safety] approved_plan", None, _text),
    "sheet": ("--sheet", "sheet", None, _text),
    "separator": ("--separator", "separator", None, _text),
    "encoding": ("--encoding", "encoding", None, _text),
}


def shown(settings: dict[str, Any]) -> list[Setting]:
    """Every setting the run records that the table knows, those not at their default
    first (each group in the table's order)."""
    found = []
    for name, (flag, key, default, form) in SETTINGS.items():
        if name not in settings:
            continue
        value = settings[name]
        at_default = value == default or (value in (None, "") and default is None)
        unset = value in (None, "") and form is not _check  # the check's None is "auto"
        found.append(Setting(flag, key, "(not set)" if unset else form(value), at_default))
    return sorted(found, key=lambda s: s.default)  # stable: the table's order in each group


def chosen(settings: dict[str, Any]) -> str:
    """The settings not at their default, as flags on one line (``--rate 20/s
    --fill-from-current``); a setting with no flag as its job key."""
    words = []
    for s in shown(settings):
        if s.default:
            break
        name = s.flag or s.job_key
        words.append(name if s.value == "yes" and s.flag else f"{name} {s.value}")
    return ", ".join(words) or "every setting at its default"
