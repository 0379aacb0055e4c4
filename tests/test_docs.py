"""The documentation: links and anchors resolve, cited paths exist, the README's commands run.

The README is the entry point and `docs/` holds the rest (issue 25). These tests keep the two
honest: every relative link and `#anchor` in `README.md`, `CONTRIBUTING.md` and `docs/**/*.md`
resolves under GitHub's anchor rules, every repository path the pages cite exists, the README's
two commands are the contract's (and CI runs the second), and the README's tour runs as written
against a sandbox, each command with the exit status the README gives it.
"""

from __future__ import annotations

import csv
import importlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted([README, ROOT / "CONTRIBUTING.md", *(ROOT / "docs").rglob("*.md")])

# The contract's "README's two commands" (the main job on the embedded sandbox; the tests).
MAIN_JOB = "uv run reroute run samples/routing-changes.csv --sandbox"
TEST_SUITE = "uv run pytest"

FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`[^`\n]*`")
# A path in the repository, as the pages cite them (in prose or in a command).
REPO_PATH = re.compile(
    r"(?<![\w./\\-])((?:batch|tests|samples|jobs|tools|docs|\.ci)/[\w./-]*[\w/])"
)
DOTTED = re.compile(r"`(batch(?:\.\w+)+)`")
# Written by runs and benchmarks, never committed (.gitignore): cited, but absent from a clone.
GENERATED = {"tests/benchmarks/data/"}


def _prose(text: str) -> Iterator[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1."""
    fenced = False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            yield n, line


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: its text (code spans and links keep their words),
    lowercase, punctuation dropped, each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor of a page's headings; a repeated one gets -1, -2... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in _prose(page.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match.group(2))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """The relative links of a page (outside code) whose file (inside ``root``) or anchor does
    not exist."""
    broken = []
    for n, line in _prose(page.read_text(encoding="utf-8")):
        for target in LINK.findall(CODE_SPAN.sub("``", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(root)}:{n}: {target}"
            if not file.exists() or root not in (file, *file.parents):
                broken.append(f"{where}: no such file")
            elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
                broken.append(f"{where}: no heading with that anchor in {file.name}")
    return broken


def test_github_anchor_follows_githubs_rules() -> None:
    """Lowercase, punctuation dropped, spaces to hyphens; code spans and links keep their text."""
    assert github_anchor("Sending changes: `reroute run`") == "sending-changes-reroute-run"
    assert github_anchor("The run's report: `reroute report`") == "the-runs-report-reroute-report"
    assert github_anchor("Workbooks: 100,000 rows in and out") == "workbooks-100000-rows-in-and-out"
    assert github_anchor("`reroute retry RESULTS`") == "reroute-retry-results"
    assert github_anchor("See [the docs](docs/README.md) now") == "see-the-docs-now"
    assert github_anchor("Exit statuses of `run` and `retry`") == "exit-statuses-of-run-and-retry"


def test_broken_links_names_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    """The checker itself: a link to no file and a link to no heading are both reported."""
    (tmp_path / "README.md").write_text("# reroute\n\n## Install\n", encoding="utf-8")
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text(
        "# Title\n\n[ok](#title) [gone](nowhere.md) [bad](../README.md#no-such-heading)\n"
        "[fine](../README.md#install) [outside](../../elsewhere.md)\n"
        "```\n[in code](ignored.md)\n```\n`[span](ignored.md)` [web](https://example.com)\n",
        encoding="utf-8",
    )
    broken = broken_links(page, tmp_path)
    assert len(broken) == 3, broken
    assert "nowhere.md: no such file" in broken[0]
    assert "no heading with that anchor in README.md" in broken[1]
    assert "elsewhere.md: no such file" in broken[2]


def test_every_relative_link_and_anchor_resolves() -> None:
    """Every relative link and #anchor in README.md, CONTRIBUTING.md and docs/ resolves."""
    assert len(PAGES) > 10, PAGES
    broken = [problem for page in PAGES for problem in broken_links(page)]
    assert not broken, "\n".join(broken)


def test_every_cited_repository_path_exists() -> None:
    """A path the pages cite (batch/..., tests/..., samples/...) exists, and a dotted
    `batch.x.y` names a module or an attribute of one: no page points at code that moved."""
    missing = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for path in REPO_PATH.findall(text):
            if path in GENERATED or any(c in path for c in "<>*{}") or "NAME" in path:
                continue
            if not (ROOT / path).exists():
                missing.append(f"{page.relative_to(ROOT)}: {path}")
        for dotted in DOTTED.findall(text):
            if not _resolves(dotted):
                missing.append(f"{page.relative_to(ROOT)}: {dotted}")
    assert not missing, "\n".join(missing)


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def test_readme_is_an_entry_point_and_the_index_starts_with_the_cutover() -> None:
    """The README stays short (about 200 lines at most); docs/README.md lists the cutover first."""
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    links = [target for _, line in _prose(index) for target in LINK.findall(line)]
    assert next(t for t in links if not t.startswith("..")) == "cutover.md", links


def _block(marker: str) -> str:
    """The README's text between <!-- marker --> and <!-- /marker -->."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\n(.*?)<!-- /{marker} -->", text, re.DOTALL)
    assert match, f"README.md has no <!-- {marker} --> block"
    return match.group(1)


def _commands(block: str) -> list[tuple[str, int]]:
    """The shell commands of a block's ```sh fences (continued lines joined), each with the exit
    status its trailing comment gives (`# exit 1`), else 0."""
    commands = []
    for fence in re.findall(r"```sh\n(.*?)```", block, re.DOTALL):
        for line in fence.replace("\\\n", " ").splitlines():
            command, _, comment = line.partition("  #")
            if command.strip():
                status = re.search(r"\bexit (\d)", comment)
                commands.append((" ".join(command.split()), int(status[1]) if status else 0))
    return commands


def test_the_readme_two_commands_are_the_contracts_and_ci_runs_the_tests() -> None:
    """The README's two commands are the main job on the sandbox and the test suite, and
    .ci/run runs the test suite (the main job is run by the slow test below)."""
    assert [c for c, _ in _commands(_block("two-commands"))] == [MAIN_JOB, TEST_SUITE]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    runs = re.findall(r'^[^#\n]*"\$\{UV\[@\]\}" run pytest\b.*$', ci, re.MULTILINE)
    assert runs, ci


def _reroute(command: str) -> list[str]:
    """`uv run reroute ARGS` as this interpreter runs it (the environment is already synced)."""
    words = shlex.split(command)
    assert words[:3] == ["uv", "run", "reroute"], command
    return [sys.executable, "-m", "batch", *words[3:]]


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A folder that looks like the clone's root to the README's commands: the samples, and
    none of the developer's own key or target in the environment."""
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VOCOBASE_API_KEY", "REROUTE_BASE_URL")}
    return {**env, **extra}


@pytest.mark.slow
def test_the_readme_main_job_runs_as_written(clone: Path) -> None:
    """The README's first command sends the 40 sample rows to the embedded sandbox: exit 0."""
    done = subprocess.run(
        _reroute(MAIN_JOB), cwd=clone, env=_env(), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "succeeded           40" in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_readme_tour_runs_as_written(clone: Path) -> None:
    """Every command of the README's tour runs as written, in order, with the exit status the
    README gives it; at its end the rollback has put every record back as the snapshot has it."""
    commands = _commands(_block("tour"))
    assert any("--canary" in c for c, _ in commands), commands  # the tour is the one we mean
    env = _env()
    sandbox: subprocess.Popen[str] | None = None
    base_url = ""
    try:
        for command, status in commands:
            if command.startswith("uv run reroute sandbox"):
                # Any free port rather than 8787, which a developer's own sandbox may hold.
                sandbox = subprocess.Popen(
                    [*_reroute(command), "--port", "0"], cwd=clone, env=env,
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    text=True,
                )  # fmt: skip
                base_url = _served_at(sandbox)
            elif command.startswith("export "):
                for word in shlex.split(command)[1:]:
                    name, _, value = word.partition("=")
                    env[name] = value.replace("http://127.0.0.1:8787/api/v2", base_url)
            elif command.startswith("curl ") and shutil.which("curl") is None:
                continue  # the record is read back below, without curl
            elif command.startswith("curl "):
                done = subprocess.run(
                    ["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                    timeout=30,
                )  # fmt: skip
                assert done.returncode == status, (command, done.stderr)
                assert '"success":true' in done.stdout, done.stdout
            elif command.startswith("uv run reroute "):
                done = subprocess.run(
                    _reroute(command), cwd=clone, env=env, stdin=subprocess.DEVNULL,
                    capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                assert done.returncode == status, (command, done.stdout, done.stderr)
            else:
                pytest.fail(f"the tour has a command this test does not know how to run: {command}")
        assert sandbox is not None, "the tour starts no sandbox"
        _assert_records_are_the_snapshot(base_url, env["VOCOBASE_API_KEY"], clone)
    finally:
        if sandbox is not None:
            sandbox.send_signal(signal.SIGINT)
            try:
                sandbox.wait(timeout=15)
            except subprocess.TimeoutExpired:
                sandbox.kill()
                sandbox.wait()
            if sandbox.stdout is not None:
                sandbox.stdout.close()


def _served_at(sandbox: subprocess.Popen[str]) -> str:
    """The base URL a `reroute sandbox` process prints, once it serves."""
    assert sandbox.stdout is not None
    deadline = time.monotonic() + 60
    printed = []
    while time.monotonic() < deadline:
        line = sandbox.stdout.readline()
        if not line:
            break
        printed.append(line)
        if match := re.search(r"base URL\s+(http://\S+)", line):
            url = match.group(1)
        if "Press Ctrl-C" in line:
            return url
    pytest.fail("the sandbox did not start:\n" + "".join(printed))


def _assert_records_are_the_snapshot(base_url: str, key: str, clone: Path) -> None:
    """The sandbox's records (read back through its sandbox-only GET) equal the snapshot's."""
    fields = [
        "for_inbound_call", "for_outbound_call", "status", "connection_id",
        "inbound_websocket_bot_id", "inbound_sip_trunk_id",
        "outbound_websocket_bot_id", "outbound_sip_trunk_id",
    ]  # fmt: skip
    with (clone / "samples" / "routing-current.csv").open(encoding="utf-8") as f:
        snapshot = list(csv.DictReader(f))
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        for row in snapshot:
            stored = client.get(f"/voicelink/call-routing/{row['routing_id']}").json()["data"]
            want = {f: row[f] for f in fields if row[f]}
            got = {f: str(stored[f]) for f in fields if stored.get(f) is not None}
            assert got == want, (row["routing_id"], got, want)
