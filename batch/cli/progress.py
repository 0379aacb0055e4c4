"""What a run shows while it works and when it ends: progress bar, log lines, summary.

Three faces of one observer: a rich progress bar on a terminal; a plain line every few seconds
when nobody watches (cron, CI, ``nohup``); JSON lines for log collectors (``--log-format json``).
Progress goes to stderr so stdout keeps only the summary a script may want to read.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

import batch
from batch.engine import window
from batch.engine.merge import Summary
from batch.engine.stop import Observer, StopRequest
from batch.model import Call, Outcome, RowResult
from batch.sheets.rownames import BY_NUMBER, RowNames

RATE_WINDOW = 30.0  # seconds of recent requests the "current rate" is measured over


def stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class RunProgress(Observer):
    """Counts rows as they move and shows them. ``tick()`` is called about once a second."""

    def __init__(
        self,
        *,
        style: str,  # "bar", "plain" or "json"
        err: Console,
        stream: TextIO | None = None,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.style = style
        self._err = err
        self._stream = stream or sys.stderr
        self._every = every
        self._clock = clock
        self.total = 0
        self.requests = 0  # requests started by this invocation
        self.done = 0  # decided rows, earlier invocations included
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self.retrying_rows: set[int] = set()
        # (clock, requests so far) at each reading of the rate, the oldest at or just before
        # RATE_WINDOW ago: the rate is read once a second, requests come hundreds a second.
        self._samples: deque[tuple[float, int]] = deque()
        self._first: float | None = None  # when this invocation's first request started
        self._last_line = -float("inf")
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._started = False  # run_started was called: there is something to show
        self.down: tuple[datetime, datetime] | None = None  # host down: since, next probe

    # -- Observer hooks ----------------------------------------------------------------------

    def run_started(self, total: int, done: int) -> None:
        self.total, self.done = total, done
        self._started = True
        if self.style == "bar":
            self._bar = Progress(
                TextColumn("sending"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self._err,
                transient=False,
            )
            self._task = self._bar.add_task("run", total=total, completed=done, status="")
            self._bar.start()
        elif self.style == "json":
            self._json("run_started", version=batch.__version__, total=total, already_done=done)
        else:
            self._line(f"sending {total - done} of {total} rows ({done} already done)")

    def attempt(self, call: Call, n: int) -> None:
        # Per request: a count, no clock (the rate is worked out from samples, see current_rate).
        if self._first is None:
            self._first = self._clock()
            self._samples.append((self._first, self.requests))
        self.requests += 1
        if self.retrying_rows:
            self.retrying_rows.discard(call.row)

    def retrying(self, call: Call, n: int, code: str) -> None:
        self.retrying_rows.add(call.row)

    def row_finished(self, result: RowResult) -> None:
        self.done += 1
        self.counts[result.outcome] += 1
        if self.retrying_rows:
            self.retrying_rows.discard(result.row)
        if self.style == "json" and result.outcome is not Outcome.SUCCEEDED:
            self._json(
                "row_failed",
                row=result.row,
                routing_id=result.routing_id,
                http_status=result.http_status,
                attempts=result.attempts,
                error_code=result.error_code,
                error_message=result.error_message,
            )
        # The display itself is refreshed by tick(), once a second, not per row.

    def row_cancelled(self, call: Call, record: RowResult | None) -> None:
        self.retrying_rows.discard(call.row)
        self.counts[record.outcome if record else Outcome.NOT_ATTEMPTED] += 1

    def host_down(self, since: datetime, next_probe: datetime, cause: str) -> None:
        self.down = (since, next_probe)
        text = self.outage_text()
        if self.style == "json":
            self._json("host_down", since=since.isoformat(timespec="seconds"),
                       next_probe_in_s=self._probe_in(), cause=cause, message=text)  # fmt: skip
        else:
            self._print(f"reroute: {text} ({cause}); rows wait, their attempts are not spent")

    def host_back(self, down_for: float, probes: int) -> None:
        self.down = None
        text = f"the host answers again after {_duration(down_for)} ({probes} probes)"
        if self.style == "json":
            self._json("host_back", down_for_s=round(down_for, 3), probes=probes, message=text)
        else:
            self._print(f"reroute: {text}; sending again, gently")

    def outage_text(self) -> str:
        """``host unreachable since 14:03:07 UTC, next probe in 8 s`` while the host is down."""
        if self.down is None:
            return ""
        since = self.down[0].astimezone(UTC).strftime("%H:%M:%S UTC")
        return f"host unreachable since {since}, next probe in {self._probe_in()} s"

    def _probe_in(self) -> int:
        if self.down is None:
            return 0
        return max(0, round((self.down[1] - _utc_now()).total_seconds()))

    def stopping(self, stop: StopRequest) -> None:
        if self.style == "json":
            self._json("stopping", reason=stop.reason, hard=stop.hard, message=stop.message)
        else:
            self._print(f"reroute: stopping: {stop.message}")

    # -- display ---------------------------------------------------------------------------

    @property
    def current_rate(self) -> float:
        """Requests per second over about the last RATE_WINDOW seconds: since the newest
        reading at least that old (readings come once a second, from tick), or since the first
        request while the run is younger than that."""
        if self._first is None:
            return 0.0
        now = self._clock()
        samples = self._samples
        samples.append((now, self.requests))
        while samples[1][0] <= now - RATE_WINDOW:
            samples.popleft()
        since, before = samples[0]
        # At least a second: two requests a millisecond apart are not 2,000/s.
        return (self.requests - before) / max(1.0, now - since)

    def status(self) -> str:
        if self.down is not None:
            return f"ok {self.counts[Outcome.SUCCEEDED]}  {self.outage_text()}"
        return (
            f"ok {self.counts[Outcome.SUCCEEDED]}  failed {self.counts[Outcome.FAILED]}  "
            f"retrying {len(self.retrying_rows)}  {self.current_rate:.2f} req/s"
        )

    def tick(self) -> None:
        """Called about once a second: refresh the bar, or log a line every few seconds."""
        self._refresh(force_line=False)

    def _refresh(self, force_line: bool = False) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done, status=self.status())
            return
        now = self._clock()
        if not force_line and now - self._last_line < self._every:
            return
        self._last_line = now
        if self.style == "json":
            self._json(
                "progress",
                done=self.done,
                total=self.total,
                succeeded=self.counts[Outcome.SUCCEEDED],
                failed=self.counts[Outcome.FAILED],
                retrying=len(self.retrying_rows),
                rate_per_s=round(self.current_rate, 3),
                eta_s=self.eta(),
                **({"host": self.outage_text()} if self.down is not None else {}),
            )
        else:
            eta = self.eta()
            shown = "?" if eta is None else _duration(eta)
            self._line(f"{self.done}/{self.total} done  {self.status()}  ETA {shown}")

    def eta(self) -> float | None:
        rate = self.current_rate
        left = self.total - self.done
        if left <= 0:
            return 0.0
        return None if rate <= 0 else round(left / rate, 1)

    def pause(self) -> None:
        """Take the bar off the terminal while a question is asked (the canary's)."""
        if self._bar is not None:
            self._bar.stop()

    def resume(self) -> None:
        if self._bar is not None:
            self._bar.start()

    def close(self) -> None:
        """The last word of the display: the bar at its final state, or a last log line."""
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done, status=self.status())
            self._bar.stop()
            self._bar = None
        elif self._started:
            self._refresh(force_line=True)

    def _line(self, text: str) -> None:
        self._print(f"{stamp()} reroute: {text}")

    def _print(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self._stream, flush=True)

    def _json(self, event: str, **fields: Any) -> None:
        record = {"time": stamp(), "event": event, **fields}
        print(json.dumps(record, ensure_ascii=False), file=self._stream, flush=True)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _duration(seconds: float) -> str:
    return window.format_duration(timedelta(seconds=seconds))


def _skipped(summary: Summary) -> str:
    applied = summary.already_applied
    unchanged = summary.counts[Outcome.SKIPPED] - applied
    parts = [f"{applied} already applied by an earlier run"] if applied else []
    if unchanged:
        parts.append(f"{unchanged} unchanged, left out by --skip-unchanged")
    return "; ".join(parts)


def summary_lines(
    summary: Summary,
    *,
    elapsed: float,
    requests: int,
    results: str,
    stopped: StopRequest | None,
    resume_command: str | None,
    retry_command: str | None,
    error_budget: str | None = None,
    row_names: RowNames = BY_NUMBER,
) -> list[str]:
    """The end-of-run summary, as plain lines (the text log format). ``resume_command`` is
    given when rows are left to send, ``retry_command`` when rows did not succeed; rows are
    named as ``row_names`` finds them in the input."""
    rate = requests / elapsed if elapsed > 0 else 0.0
    head = "stopped early" if resume_command else "finished"
    lines = [
        f"reroute {batch.__version__}: run {head} in {_duration(elapsed)}: {summary.total} rows, "
        f"{requests} requests sent ({rate:.2f}/s effective)"
    ]
    for outcome in Outcome:
        if summary.counts[outcome]:
            lines.append(f"  {outcome.value:<14}{summary.counts[outcome]:>8}")
            if outcome is Outcome.SKIPPED:
                lines[-1] += "  (" + _skipped(summary) + ")"
    top = summary.top_codes()
    if top:
        lines.append("top error codes:")
        for code, count, example in top:
            detail = example.error_message or "-"
            named = row_names.name(example.row, f"routing_id {example.routing_id}")
            lines.append(f"  {code:<26}{count:>6}  e.g. {named}: {detail}")
    if error_budget is not None:
        lines.append(error_budget)
    lines.append(f"results: {results}")
    if stopped is not None and resume_command:
        lines.append(f"why: {stopped.message}")
    if resume_command:
        lines.append(f"to resume, run the same command again: {resume_command}")
    elif retry_command:
        lines.append(f"to send the {summary.retryable} rows that did not succeed again: "
                     f"{retry_command}")  # fmt: skip
    return lines
