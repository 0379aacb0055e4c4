"""The report's settings come from the table of settings: a new setting shows up by itself."""

from __future__ import annotations

from batch.report import flags
from batch.settings import SETTINGS


def test_every_setting_the_operator_writes_is_shown_with_its_flag_and_job_key() -> None:
    for name, entry in SETTINGS.items():
        if name in ("input", "results", "fresh", "report") or (
            entry.job is None and not entry.flag
        ):
            assert name not in flags.SETTINGS
            continue
        flag, key, _, _ = flags.SETTINGS[name]
        assert flag == (entry.flag or "")
        assert key.replace("] ", "].") == (entry.job_key if entry.job is not None else "")


def test_values_are_shown_in_the_form_the_flag_takes() -> None:
    shown = {
        s.flag or s.job_key: s
        for s in flags.shown(
            {"max_outage": 900.0, "rows_are_complete": True, "rate": "60/min", "timeout": 12.5}
        )
    }
    assert (shown["--max-outage"].value, shown["--max-outage"].default) == ("15m", True)
    assert (shown["--rows-are-complete"].value, shown["--rows-are-complete"].default) == (
        "yes",
        False,
    )
    assert shown["--rate"].default
    assert shown["--timeout"].value == "12.5"
    assert flags.chosen({"rows_are_complete": True, "timeout": 12.5}) == (
        "--timeout 12.5, --rows-are-complete"
    )
