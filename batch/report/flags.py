"""The run's settings as the operator wrote them: the flag and job-file key, in their forms.

``--rate 60/min``, ``--max-outage 15m``, ``--fill-from-current yes``: not ``900.0`` seconds
or ``False``. The ones that differ from the default come first (they are what the run chose).
Flags, job keys and defaults come from the table of settings (batch.settings.SETTINGS); the
form of a value from its kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from batch.settings import SETTINGS as TABLE
from batch.settings import ErrorBudget, Rate
from batch.settingtable import Kind


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
_FORMS: Final[dict[Kind, _Format]] = {
    Kind.SWITCH: _yes_no,
    Kind.SECONDS: _seconds,
    Kind.DURATION: _duration,
    Kind.BUDGET: _budget,
}
# Facts of the invocation a run records beside its settings (flags, but not settings).
_INVOCATION: Final[dict[str, tuple[str, str, Any, _Format]]] = {
    "sandbox": ("--sandbox", "", False, _yes_no),
    "api_key_file": ("--api-key-file", "", None, _text),
}


def _rows() -> dict[str, tuple[str, str, Any, _Format]]:
    """name -> (flag, job-file key, default, form), in the table's order. A default of None:
    not set."""
    rows = dict(_INVOCATION)
    for name, entry in TABLE.items():
        if entry.job is None and entry.flag is None:
            continue  # derived, never written by the operator (window_daily)
        if name in ("input", "results", "fresh", "report"):
            continue  # what the run is, not how it runs (the report names them itself)
        default = entry.default
        form = _check if name == "account_check" else _FORMS.get(entry.kind, _text)
        shown_default = str(default) if isinstance(default, Rate | ErrorBudget) else default
        key = entry.job_key.replace("].", "] ", 1) if entry.job is not None else ""
        rows[name] = (entry.flag or "", key, shown_default, form)
    return rows


SETTINGS: Final = _rows()


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
