"""`--json` on every command that reports: one document on stdout, checked against its schema in
docs/json/, fields holding values (a sentence only where a field's name says "message")."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from typer.testing import CliRunner

from batch.cli import app
from tests.report_fixtures import make_run

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "json"
SAMPLES = ROOT / "samples"
COMMANDS = ("validate", "plan", "run", "retry", "status", "jobs-check", "report")

# The rule for text: a string field is a value of a declared kind (defs.schema.json); the kind
# `message` (a sentence for a person) only in a field whose name says so.
MESSAGE_FIELDS = frozenset({"message", "detail", "notes", "problems"})
VALUE_KINDS = frozenset(
    {"version", "time", "code", "error_code", "rate", "path", "url", "host", "shell_command",
     "cell", "command"}
)  # fmt: skip


@cache
def _registry() -> Registry[Any]:
    found = [
        (path.name, Resource.from_contents(json.loads(path.read_text())))
        for path in sorted(SCHEMAS.glob("*.schema.json"))
    ]
    return Registry().with_resources(found)


def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return loaded


def problems(document: Any, name: str) -> list[tuple[list[Any], str]]:
    """Where ``document`` is not what docs/json/<name>.schema.json describes, and why."""
    validator = Draft202012Validator(
        _schema(name), registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    found = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    return [(list(e.absolute_path), e.message) for e in found]


def check(document: Any, name: str) -> None:
    """Raise unless ``document`` is what docs/json/<name>.schema.json describes."""
    found = problems(document, name)
    assert not found, "\n".join(f"{where}: {why}" for where, why in found[:5])


def invoke(*args: str, **env: str) -> Any:
    return CliRunner().invoke(
        app, list(args), env={"VOCOBASE_API_KEY": "", "REROUTE_BASE_URL": "", **env}
    )


def one_document(done: Any) -> dict[str, Any]:
    """The whole of stdout is one JSON document, on one line."""
    assert done.stdout.count("\n") == 1, done.stdout
    document: dict[str, Any] = json.loads(done.stdout)
    assert document["exit_status"] == done.exit_code
    return document


# -- the schemas themselves ---------------------------------------------------------------------


def test_every_command_has_a_valid_schema() -> None:
    """docs/json has one schema per command (and the shared kinds), each a valid 2020-12 schema."""
    for name in (*COMMANDS, "defs"):
        Draft202012Validator.check_schema(_schema(name))


def _strings(node: Any, name: str, path: str) -> Iterator[tuple[str, str, str]]:
    """Every place in a schema where a string may stand: (field name, how it is declared, where)."""
    if not isinstance(node, dict):
        return
    ref = node.get("$ref", "")
    if ref.startswith(("defs.schema.json#/$defs/", "#/$defs/")) and ref.rsplit("/", 1)[1] in (
        VALUE_KINDS | {"message"}
    ):
        yield name, ref.rsplit("/", 1)[1], path
        return
    types = node.get("type")
    if types == "string" or (isinstance(types, list) and "string" in types):
        declared = next((k for k in ("enum", "const", "pattern", "format") if k in node), None)
        yield name, declared or "free text", path
    for key, child in (node.get("properties") or {}).items():
        yield from _strings(child, key, f"{path}.{key}")
    for key in ("items", "additionalProperties", "then", "else"):
        yield from _strings(node.get(key), name, f"{path}/{key}")
    for key in ("anyOf", "oneOf", "allOf"):
        for child in node.get(key, []):
            yield from _strings(child, name, path)
    for key, child in (node.get("$defs") or {}).items():
        if key not in VALUE_KINDS | {"message"}:
            yield from _strings(child, key, f"{path}#{key}")


@pytest.mark.parametrize("name", [*COMMANDS, "defs"])
def test_no_string_field_is_a_sentence_where_a_value_belongs(name: str) -> None:
    """Every string a document may hold is a declared value (a code or time by pattern, an
    enum, a path, a command, a cell as read); a sentence only in a field named message,
    *_message, detail, notes or problems."""
    for field, kind, where in _strings(_schema(name), "", name):
        assert kind != "free text", f"{where}: a string with no kind, pattern or enum"
        if kind == "message":
            assert field in MESSAGE_FIELDS or field.endswith("_message"), (
                f"{where}: a sentence in a field not named as one"
            )


def test_the_old_sentences_are_refused_by_the_schemas() -> None:
    """The schemas catch a sentence where a value belongs (the summary's old error budget, a
    status segment's stop reason with its explanation)."""
    out = {"percent": None, "rows": None, "window_rows": 100}
    used = {"finished_rows": 0, "failed_rows": 0, "failed_percent": 0.0, "exceeded": False}
    assert not [p for p in problems({"error_budget": {**out, **used}}, "run") if p[0]]
    for bad in ("error budget: off", {**out, **used, "note": "error budget: off"}):
        assert [p for p in problems({"error_budget": bad}, "run") if p[0] == ["error_budget"]]
    segment = {
        "segment": 1, "kind": "run", "operator": "a@b", "version": "0.1.0",
        "started_at": "2026-01-01T00:00:00Z", "finished_at": None, "stop_message": None,
        "exit_status": 3, "target_host": "h",
    }  # fmt: skip
    validator = Draft202012Validator(
        {"$ref": "defs.schema.json#/$defs/segment"}, registry=_registry()
    )
    assert validator.is_valid({**segment, "stop_reason": "window_closed"})
    assert not validator.is_valid({**segment, "stop_reason": "window_closed: the window closed"})


# -- validate, plan -----------------------------------------------------------------------------


def test_validate_json(tmp_path: Path) -> None:
    """`validate --json`: counts, rows per code and every invalid row with its code; nothing
    else on stdout; exit 1 as without --json."""
    results = tmp_path / "checked.csv"
    done = invoke("validate", str(SAMPLES / "routing-changes-with-errors.csv"), "--json",
                  "--results", str(results))  # fmt: skip
    assert done.exit_code == 1, done.output
    document = one_document(done)
    check(document, "validate")
    assert (document["rows"], document["valid"], document["invalid"]) == (40, 30, 10)
    assert document["codes"]["DUPLICATE_ROUTING_ID"] == 2
    assert len(document["invalid_rows"]) == 10
    assert document["invalid_rows"][0]["error_code"] == "MISSING_FIELD"
    assert document["results_file"] == str(results)
    assert results.is_file()


def test_validate_json_of_a_clean_file_is_exit_0() -> None:
    """Every row valid: exit 0 and no invalid rows."""
    done = invoke("validate", str(SAMPLES / "routing-changes.csv"), "--json")
    assert done.exit_code == 0, done.output
    document = one_document(done)
    check(document, "validate")
    assert document["invalid_rows"] == []


def test_a_command_that_cannot_start_prints_no_document(tmp_path: Path) -> None:
    """Exit 2 (an unreadable input, a usage error): stdout stays empty; the one line is on
    stderr, as without --json."""
    for args in (
        ("validate", str(tmp_path / "missing.csv"), "--json"),
        ("plan", str(tmp_path / "missing.csv"), "--json"),
        ("status", str(tmp_path / "none.csv"), "--json"),
        ("report", str(tmp_path / "none.csv"), "--json"),
        ("run", str(tmp_path / "missing.csv"), "--sandbox", "--json"),
        ("validate", str(SAMPLES / "routing-changes.csv"), "--json", "--encoding", "nope"),
    ):
        done = invoke(*args)
        assert done.exit_code == 2, (args, done.output)
        assert done.stdout == "", args
        assert done.stderr.count("\n") == 1, (args, done.stderr)


def test_plan_json_with_a_snapshot(tmp_path: Path) -> None:
    """`plan --json --current`: requests by mode, the verdicts, each row that would wipe a
    value with the fields, the plan and rollback files written; exit 1 for the wipes."""
    out, rollback = tmp_path / "plan.jsonl", tmp_path / "rollback.csv"
    done = invoke("plan", str(SAMPLES / "routing-changes.csv"), "--json",
                  "--current", str(SAMPLES / "routing-current.csv"),
                  "--out", str(out), "--rollback", str(rollback))  # fmt: skip
    document = one_document(done)
    check(document, "plan")
    assert document["requests"] == 40 == sum(m["rows"] for m in document["by_mode"])
    verdicts = document["current"]["verdicts"]
    assert sum(verdicts.values()) == 40
    assert len(document["current"]["wipes"]) == verdicts["wipes"]
    assert done.exit_code == (1 if verdicts["wipes"] else 0)
    for wipe in document["current"]["wipes"]:
        assert wipe["fields"], wipe
    assert document["already_applied"] is None  # the snapshot is the truth
    assert document["plan_file"] == str(out)
    assert document["rollback"]["path"] == str(rollback)
    assert document["rollback"]["records"] == verdicts["change"] + verdicts["wipes"]


def test_plan_json_without_a_snapshot(tmp_path: Path) -> None:
    """Without --current: no verdicts; what an earlier run at the results path applied."""
    done = invoke("plan", str(SAMPLES / "routing-changes-with-errors.csv"), "--json",
                  "--results", str(tmp_path / "r.csv"))  # fmt: skip
    assert done.exit_code == 1
    document = one_document(done)
    check(document, "plan")
    assert document["current"] is None
    assert document["already_applied"] == 0
    assert document["requests"] == document["valid"] == 30


# -- jobs check ---------------------------------------------------------------------------------


def test_jobs_check_json(tmp_path: Path) -> None:
    """`jobs check --json`: one entry per job, the facts as values; an unusable job is a
    finding (its error beside it), the document is printed and the exit status is 2."""
    broken = tmp_path / "broken.toml"
    broken.write_text('input = "nowhere.csv"\n')
    jobs = sorted((ROOT / "jobs").glob("*.toml"))
    done = invoke("jobs", "check", *map(str, jobs), str(broken), "--json")
    assert done.exit_code == 2, done.output
    document = one_document(done)
    check(document, "jobs-check")
    *fine, unusable = document["jobs"]
    assert [job["status"] for job in fine] == ["ok"] * len(jobs)
    for job in fine:
        assert job["rows"] == 40
        assert job["key_set"] is False
        assert job["window"]["daily"] is True
    cutover = fine[0]
    assert cutover["current"]["verdicts"]["change"] > 0
    assert cutover["canary"] == 5
    assert cutover["error_budget"] == {"percent": 5.0, "rows": None, "window_rows": 100}
    assert unusable["status"] == "unusable"
    assert "nowhere.csv" in unusable["error_message"]
    assert "rows" not in unusable


# -- status, report -----------------------------------------------------------------------------


@pytest.fixture
def stopped_run(tmp_path: Path) -> Path:
    """A run's journal and results file, with failures and two segments."""
    made = make_run(tmp_path / "out.csv", failed=frozenset({5, 17}), segments=2)
    return made.results


def test_status_json(stopped_run: Path) -> None:
    """`status --json` is the documented document; `--log-format json`, its older spelling,
    prints the same keys."""
    done = invoke("status", str(stopped_run), "--json")
    assert done.exit_code == 0, done.output
    document = one_document(done)
    check(document, "status")
    assert document["outcomes"]["failed"] == 2
    assert [s["stop_reason"] for s in document["segments"]] == ["window_closed", None]
    assert document["segments"][0]["stop_message"] == "the change window closed"
    older = one_document(invoke("status", str(stopped_run), "--log-format", "json"))
    assert set(older) == set(document)


def test_report_json(stopped_run: Path, tmp_path: Path) -> None:
    """`report --json` writes the report as without it and prints its facts: the verdict, the
    counts, the causes with a row each, the segments, the command to run next."""
    done = invoke("report", str(stopped_run), "--json", "--format", "md")
    assert done.exit_code == 0, done.output
    document = one_document(done)
    check(document, "report")
    assert Path(document["report"]).is_file()
    assert document["format"] == "md"
    assert document["verdict"] == "bad"
    assert document["outcomes"]["failed"] == 2
    assert document["causes"][0]["example_row"] in (3, 5)
    assert document["retry_command"].endswith(f"retry {stopped_run}")
    assert len(document["segments"]) == 2


def test_report_json_and_out_dash_both_want_stdout(stopped_run: Path) -> None:
    """`--json --out -`: refused (exit 2), nothing on stdout."""
    done = invoke("report", str(stopped_run), "--json", "--out", "-")
    assert done.exit_code == 2
    assert done.stdout == ""
    assert "--out -" in done.stderr


# -- run, retry (a loopback sandbox: slow) --------------------------------------------------------


@pytest.mark.slow
def test_run_and_retry_json(tmp_path: Path, start_sandbox: Any) -> None:
    """`run --json` and `retry --json`: one document each, once sending is over, the report
    written first; progress stays on stderr. A stop by the error budget names its code."""
    sandbox = start_sandbox(not_found_ids=frozenset({4105, 4107}))
    source = tmp_path / "changes.csv"
    shutil.copy(SAMPLES / "routing-changes.csv", source)
    results = tmp_path / "out.csv"
    common = ("--base-url", sandbox.base_url, "--rate", "200/s", "--no-account-check")
    done = invoke("run", str(source), "--results", str(results), "--json", "--concurrency", "1",
                  "--error-budget", "0", *common, VOCOBASE_API_KEY=sandbox.api_key)  # fmt: skip
    document = one_document(done)
    check(document, "run")
    assert done.exit_code == 3, done.output
    assert (document["ending"], document["stop_reason"]) == ("stopped", "error_budget")
    assert document["error_budget"]["rows"] == 0
    assert document["error_budget"]["exceeded"] is True
    assert "--json" in document["resume_command"]
    assert Path(document["report"]).is_file()
    assert document["top_error_codes"][0]["example_routing_id"] in ("4105", "4107")
    done = invoke("retry", str(results), "--json", *common, VOCOBASE_API_KEY=sandbox.api_key)
    document = one_document(done)
    check(document, "retry")
    assert done.exit_code == 1, done.output
    assert document["ending"] == "some_failed"
    assert document["outcomes"]["failed"] == 2
    assert document["retry_command"] is not None
    assert document["error_budget"]["percent"] is None
