"""The run's record (batch.journal.record.RunRecord): journals written before the table of
settings still read, and the JSON written is the same, key for key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch.config.precedence import resolve_run_settings
from batch.config.resolve import record_of
from batch.journal.record import RunRecord

# Written by reroute before the table of settings (7f2b932): a retry's record, every kept
# setting set, and the default record.
OLD_RETRY = (
    '{"allow_wipe": false, "api_key_env": "VOCOBASE_API_KEY", "api_key_file": "/k", '
    '"base_url": "https://x.example/api/v2", "concurrency": 2, "connection_id": '
    '"9b7f1c44-c87f-4f0c-9124-3c802a9c1a20", "current": "now.csv", "encoding": "cp1252", '
    '"fill_from_current": false, "input": "a.csv", "job": "j.toml", "kind": "retry", '
    '"max_attempts": 5, "max_outage": 60.0, "max_retry_after": 300.0, "rate": "30/min", '
    '"sandbox": false, "separator": ";", "sheet": "changes", "skip_unchanged": true, '
    '"timeout": 30.0}'
)
OLD_DEFAULT = (
    '{"allow_wipe": false, "api_key_env": "VOCOBASE_API_KEY", "api_key_file": null, '
    '"base_url": null, "concurrency": 4, "connection_id": null, "current": null, '
    '"encoding": null, "fill_from_current": false, "input": "", "job": null, "kind": "run", '
    '"max_attempts": 5, "max_outage": 900.0, "max_retry_after": 300.0, "rate": "60/min", '
    '"sandbox": false, "separator": null, "sheet": null, "skip_unchanged": false, '
    '"timeout": 30.0}'
)
# What record_of wrote for FLAGS before the table (on a real host, then on the sandbox with a
# key file).
FLAGS = {
    "input": "in.csv", "rate": "2/s", "max_outage": "90s", "canary": 3, "sheet": "Changes",
    "connection_id": "9b7f1c44-c87f-4f0c-9124-3c802a9c1a20", "current": "now.csv",
    "skip_unchanged": True,
}  # fmt: skip
OLD_OF_FLAGS = (
    '{"allow_wipe": false, "api_key_env": "VOCOBASE_API_KEY", "api_key_file": null, '
    '"base_url": "https://api.vocobase.com/api/v2", "concurrency": 4, "connection_id": '
    '"9b7f1c44-c87f-4f0c-9124-3c802a9c1a20", "current": "now.csv", "encoding": null, '
    '"fill_from_current": false, "input": "in.csv", "job": null, "kind": "run", '
    '"max_attempts": 5, "max_outage": 90.0, "max_retry_after": 300.0, "rate": "2/s", '
    '"sandbox": false, "separator": null, "sheet": "Changes", "skip_unchanged": true, '
    '"timeout": 30.0}'
)
OLD_OF_FLAGS_SANDBOX = OLD_OF_FLAGS.replace(
    '"api_key_file": null, "base_url": "https://api.vocobase.com/api/v2"',
    '"api_key_file": "/k/key.txt", "base_url": null',
).replace('"sandbox": false', '"sandbox": true')


def since(text: str) -> str:
    """A record as written before the table, with the settings kept since at their defaults
    (issue 25: ``rows_are_complete``)."""
    return text.replace('"sandbox":', '"rows_are_complete": false, "sandbox":')


@pytest.mark.parametrize("text", [OLD_RETRY, OLD_DEFAULT])
def test_a_record_written_before_the_table_reads_and_writes_back_the_same(text: str) -> None:
    """An older journal's record reads into the same facts and settings and writes the same JSON
    (plus the settings kept since, at their defaults)."""
    record = RunRecord.from_json(text)
    assert record is not None
    assert record.to_json() == since(text)
    assert record.as_dict() == json.loads(text) | {"rows_are_complete": False}


def test_the_old_records_settings_are_reused_as_before() -> None:
    """A retry's record lends its target, key variable and pace; content settings are kept."""
    record = RunRecord.from_json(OLD_RETRY)
    assert record is not None
    assert (record.kind, record.input, record.job, record.api_key_file) == (
        "retry", "a.csv", "j.toml", "/k",
    )  # fmt: skip
    assert record.reused() == {
        "base_url": "https://x.example/api/v2", "api_key_env": "VOCOBASE_API_KEY",
        "rate": "30/min", "concurrency": 2, "max_attempts": 5, "timeout": 30.0,
        "max_retry_after": 300.0, "max_outage": 60.0,
    }  # fmt: skip
    assert record.key_source == "--api-key-file /k"
    default = RunRecord.from_json(OLD_DEFAULT)
    assert default is not None
    assert default.changed_content(record) == ["--connection-id", "--skip-unchanged"]


@pytest.mark.parametrize(
    ("sandbox", "key_file", "expected"),
    [(False, None, OLD_OF_FLAGS), (True, Path("/k/key.txt"), OLD_OF_FLAGS_SANDBOX)],
)
def test_record_of_writes_what_it_wrote_before_the_table(
    sandbox: bool, key_file: Path | None, expected: str
) -> None:
    """The same settings make the same record JSON, key for key (the sandbox's URL not kept)."""
    settings = resolve_run_settings(FLAGS, None, {})
    record = record_of(settings, kind="run", sandbox=sandbox, api_key_file=key_file)
    assert record.to_json() == since(expected)


def test_an_older_record_without_some_keys_takes_the_defaults() -> None:
    """Keys a record lacks take the table's defaults; keys it does not know are left out."""
    record = RunRecord.from_json('{"kind": "run", "rate": "30/min", "newer_setting": 1}')
    assert record is not None
    assert record.settings["rate"] == "30/min"
    assert record.settings["concurrency"] == 4
    assert record.settings["base_url"] is None
    assert "newer_setting" not in record.as_dict()


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", "null"])
def test_text_that_is_not_a_record_reads_as_none(text: str) -> None:
    """A journal of an older reroute (no record, or something else) has no record."""
    assert RunRecord.from_json(text) is None


def test_a_retry_into_a_runs_journal_takes_its_target_and_pace_only() -> None:
    """retargeted: target, key and pace from the retry; the run's own settings stay."""
    run = RunRecord.from_json(OLD_RETRY.replace('"kind": "retry"', '"kind": "run"'))
    assert run is not None
    retry = RunRecord(
        kind="retry", input="out.csv", sandbox=True,
        settings={"base_url": None, "rate": "10/s", "max_outage": 30.0, "connection_id": None,
                  "sheet": None},
    )  # fmt: skip
    merged = run.retargeted(retry)
    assert (merged.kind, merged.input, merged.sandbox, merged.api_key_file) == (
        "run", "a.csv", True, None,
    )  # fmt: skip
    assert merged.settings["rate"] == "10/s"
    assert merged.settings["max_outage"] == 30.0
    assert merged.settings["base_url"] is None
    assert merged.settings["connection_id"] == "9b7f1c44-c87f-4f0c-9124-3c802a9c1a20"
    assert merged.settings["sheet"] == "changes"
