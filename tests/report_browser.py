"""Open a report in headless Chromium (Debian's, driven by Playwright) with the network blocked.

Shared by ``tests/report/test_browser.py`` and ``tools/report_screenshot.py``. Playwright's own
browser download is not used: the system's ``chromium`` is (``.ci/run`` installs it).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from batch.cli import app
from batch.sandbox import RunningSandbox
from batch.sandbox.config import Faults
from batch.settings import Rate

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "routing-changes.csv"
SNAPSHOT = SAMPLE.with_name("routing-current.csv")
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium() -> str | None:
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


@dataclass
class Seen:
    """What the page did: errors, blocked requests, charts and their marks, the table."""

    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    charts: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows_before: int = 0
    rows_after: int = 0
    count_text: str = ""
    rows_descending: list[str] = field(default_factory=list)  # row numbers, "row" clicked twice
    # verdict, counts, first_failed, changes, undo, next: top, bottom (px), text (None: absent)
    layout: dict[str, Any] = field(default_factory=dict)


_CHARTS_JS = """() => Object.fromEntries([...document.querySelectorAll('[data-chart]')].map(el => [
    el.dataset.chart,
    {drawn: el.dataset.drawn || '', marks: el.querySelectorAll('svg .mark').length}]))"""
# Where things are on the page (pixels from its top) and what they say.
_LAYOUT_JS = """() => Object.fromEntries(Object.entries({
    verdict: '#verdict', counts: '#outcomes .badges', first_failed: '#failures > tbody > tr',
    changes: '#changes', undo: '#undo', next: '#next'}).map(([name, selector]) => {
        const el = document.querySelector(selector);
        if (!el) { return [name, null]; }
        const box = el.getBoundingClientRect();
        return [name, {top: box.top + scrollY, bottom: box.bottom + scrollY,
                       text: el.innerText}];
    }))"""
_VISIBLE_JS = (
    "() => [...document.querySelectorAll('#failures > tbody > tr')].filter(r => !r.hidden).length"
)  # fmt: skip


def open_report(
    report: Path, *, screenshot: Path | None = None, query: str = "", width: int = 1400
) -> Seen:
    """Load ``report`` from disk, note where its sections are, type ``query`` into the failure
    table's filter, and take a full-page ``screenshot``; every request but the file itself is
    blocked (and recorded)."""
    from playwright.sync_api import sync_playwright

    seen = Seen()
    url = report.resolve().as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": 1000})

            def route(r: Any) -> None:
                if r.request.url == url:
                    r.continue_()
                else:
                    seen.blocked.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on(
                "console",
                lambda m: seen.errors.append(m.text) if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda exc: seen.errors.append(f"page error: {exc}"))
            page.goto(url, wait_until="load")
            seen.charts = page.evaluate(_CHARTS_JS)
            seen.layout = page.evaluate(_LAYOUT_JS)
            if page.query_selector("#failures"):
                seen.rows_before = page.evaluate(_VISIBLE_JS)
                if query:
                    page.fill("#failure-filter", query)
                    seen.rows_after = page.evaluate(_VISIBLE_JS)
                    seen.count_text = page.inner_text("#failure-count")
                page.fill("#failure-filter", "")
                page.click("#failures th:first-child")
                page.click("#failures th:first-child")
                seen.rows_descending = page.evaluate(
                    "() => [...document.querySelectorAll('#failures > tbody > tr')]"
                    ".map(r => r.cells[0].textContent)"
                )
                page.click("#failures th:first-child")  # ascending again, for the screenshot
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return seen


def sandbox_run_with_faults(
    start_sandbox: Callable[..., RunningSandbox], folder: Path
) -> tuple[Path, str]:
    """`reroute run` of the sample sheet against a sandbox with faults: 5xx answers, HTML error
    pages, dropped connections, 404s, scripted 429s and a rate limit; judged against the
    sample snapshot (filled from it), writing a rollback file (``folder/rollback.csv``).
    Returns the results file and what the run printed."""
    sandbox = start_sandbox(
        faults=Faults(error_rate=0.1, html_rate=0.05, drop_rate=0.05, latency=0.02, jitter=0.01),
        seed=7,
        not_found_ids=frozenset({4105, 4120}),
        script={4110: ("429", "429", "ok"), 4111: ("503", "503", "503"), 4112: ("html",) * 3},
        rate_limit=Rate.parse("30/s"),
    )
    results = folder / "night.results.csv"
    args = ["run", str(SAMPLE), "--base-url", sandbox.base_url, "--rate", "40/s"]
    args += ["--results", str(results), "--max-attempts", "3", "--yes", "--timeout", "2"]
    args += ["--current", str(SNAPSHOT), "--fill-from-current"]
    args += ["--rollback", str(folder / "rollback.csv")]
    done = CliRunner().invoke(app, args, env={"VOCOBASE_API_KEY": sandbox.api_key})
    assert done.exit_code == 1, done.output
    return results, done.stdout
