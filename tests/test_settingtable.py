"""The table of settings: one entry per setting, and every layer made from it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from batch.config.coerce import COERCE, converters
from batch.config.jobs import ENV_VARS, schema
from batch.journal.record import CONTENT_SETTINGS, REUSED_SETTINGS, RunRecord, kept, kept_of
from batch.settings import SETTINGS, RunSettings
from batch.settingtable import Kind, Memory, about, table_of


@dataclass(frozen=True, slots=True)
class Wider(RunSettings):
    """RunSettings with one setting more, declared as a new setting is: one field."""

    max_detour: float = field(
        default=120.0,
        metadata=about(
            Kind.DURATION,
            job="pace",
            memory=Memory.REUSE,
            help="How long a detour may last ({default}).",
        ),
    )


def test_a_new_entry_reaches_the_job_file_the_converters_the_record_and_the_help() -> None:
    """One field more: a [pace] key, its kind's converter, a kept value and default, its help."""
    table = table_of(Wider)
    top, tables = schema(table)
    real_top, real_tables = schema(SETTINGS)
    assert top == real_top
    assert tables == {**real_tables, "pace": (*real_tables["pace"], "max_detour")}
    assert converters(table)["max_detour"]("3m") == 180.0
    assert table["max_detour"].flag == "--max-detour"
    assert table["max_detour"].help_text == "How long a detour may last (2m)."
    assert kept(table)["max_detour"] == 120.0
    wide = Wider(input=Path("in.csv"), results=Path("out.csv"), max_detour=30.0)
    record = RunRecord(settings=kept_of(wide, sandbox=False, table=table))
    assert json.loads(record.to_json())["max_detour"] == 30.0
    back = RunRecord.from_json(record.to_json(), table=table)
    assert back is not None
    assert back.settings["max_detour"] == 30.0
    assert "max_detour" not in kept(SETTINGS)  # the real table is untouched


def test_a_field_outside_the_table_is_refused() -> None:
    """A RunSettings field declared without its entry is a TypeError naming the fix."""

    @dataclass(frozen=True, slots=True)
    class Bare(RunSettings):
        undeclared: int = 3

    with pytest.raises(TypeError, match=r"Bare.undeclared is not in the table.*about"):
        table_of(Bare)


def test_the_table_says_what_the_layers_used_to_spell_out() -> None:
    """The derived layers hold what they held when each spelled its own list (issue 27)."""
    top, tables = schema(SETTINGS)
    assert top == ("description", "input", "results", "sheet", "separator", "encoding", "report")
    assert tables == {
        "target": ("base_url", "api_key_env", "connection_id"),
        "pace": ("rate", "concurrency", "max_attempts", "timeout", "max_retry_after",
                 "max_outage"),
        "window": ("not_before", "not_after"),
        "safety": ("skip_invalid", "current", "rows_are_complete", "fill_from_current",
                   "allow_wipe", "skip_unchanged", "rollback", "canary", "error_budget",
                   "keep_runs", "account_check", "approved_plan"),
    }  # fmt: skip
    assert set(COERCE) == set(SETTINGS)
    assert ENV_VARS == {"base_url": "REROUTE_BASE_URL"}
    assert REUSED_SETTINGS == (
        "base_url", "api_key_env", "rate", "concurrency", "max_attempts", "timeout",
        "max_retry_after", "max_outage",
    )  # fmt: skip
    assert CONTENT_SETTINGS == {
        "connection_id": "--connection-id",
        "fill_from_current": "--fill-from-current",
        "allow_wipe": "--allow-wipe",
        "skip_unchanged": "--skip-unchanged",
    }


@pytest.mark.parametrize(
    ("name", "shown"),
    [("rate", "60/min"), ("concurrency", "4"), ("timeout", "30"), ("max_outage", "15m"),
     ("keep_runs", "30"), ("base_url", "https://api.vocobase.com/api/v2")],
)  # fmt: skip
def test_help_shows_the_default_the_table_holds(name: str, shown: str) -> None:
    """Each flag's help names the default as a user writes it, taken from the field."""
    setting = SETTINGS[name]
    assert setting.shown_default == shown
    assert f"{shown})" in setting.help_text or f"{shown};" in setting.help_text
    assert "{" not in setting.help_text


@pytest.mark.parametrize(("seconds", "shown"), [(900.0, "15m"), (3600.0, "1h"), (90.0, "90s")])
def test_a_duration_default_is_shown_in_its_largest_whole_unit(seconds: float, shown: str) -> None:
    """900 s shows as 15m, 3600 s as 1h, 90 s as 90s (not 1.5m)."""

    @dataclass(frozen=True, slots=True)
    class Other(RunSettings):
        span: float = field(default=seconds, metadata=about(Kind.DURATION))

    assert table_of(Other)["span"].shown_default == shown
