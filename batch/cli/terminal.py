"""The person at the terminal, as the engine sees them: notes, questions, progress, the summary.

:class:`TerminalOperator` is the command line's side of ``batch.engine.invocation.Operator``;
:func:`show_result` prints what an invocation did and picks the exit status. Shared by `run`
and `retry`, with the helpers that read the key and spell the resume and retry commands.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.from_thread
import anyio.lowlevel
import typer

from batch.cli.app import Exit, console, err_console, fail
from batch.cli.options import LogFormat
from batch.cli.progress import RunProgress, stamp, summary_lines
from batch.engine import signals
from batch.engine.ending import Result, Status
from batch.engine.invocation import Invocation, run_invocation
from batch.engine.replacing import Confirmation
from batch.engine.stop import Observer, Observers
from batch.errors import RerouteError, RunStopped, UsageError
from batch.invoked import INSTALLED, command, started_as
from batch.secrets import is_api_key, not_a_key
from batch.send.client import Network
from batch.settings import RunSettings

# The contract's exit statuses, as the engine defines them (run.json records the same).
EXIT_FOR: dict[Status, int] = {status: Exit(status.exit_status) for status in Status}


def style(log_format: LogFormat) -> str:
    if log_format is LogFormat.JSON:
        return "json"
    return "bar" if err_console.is_terminal else "plain"


def note(log_format: LogFormat, text: str) -> None:
    """One line on stderr: plain text, or a JSON ``note`` event."""
    if log_format is LogFormat.JSON:
        record = {"time": stamp(), "event": "note", "message": text}
        print(json.dumps(record), file=sys.stderr, flush=True)
    else:
        err_console.print(f"reroute: {text}", markup=False, highlight=False, soft_wrap=True)


class _EndCountdown(Observer):
    def __init__(self, operator: TerminalOperator) -> None:
        self._operator = operator

    def run_started(self, total: int, done: int) -> None:
        if self._operator.counting_down:
            err_console.file.write("\n")  # end the countdown line
            self._operator.counting_down = False


class TerminalOperator:
    """Notes and progress on stderr; questions on the terminal."""

    def __init__(self, log_format: LogFormat) -> None:
        self.log_format = log_format
        self.progress = RunProgress(style=style(log_format), err=err_console)
        self.observer: Observer = Observers(_EndCountdown(self), self.progress)
        self.wait_every = 1.0 if style(log_format) == "bar" else 60.0
        self.counting_down = False

    def note(self, text: str) -> None:
        note(self.log_format, text)

    def confirm(self, sending: Confirmation) -> bool:
        err_console.print(
            f"reroute: {sending.describe()}", markup=False, highlight=False, soft_wrap=True
        )
        try:
            return typer.confirm("Send them?", default=False, err=True)
        except typer.Abort:  # Ctrl-C or end of input at the question: a no
            return False

    async def go_on(self, succeeded: int) -> bool:
        self.progress.pause()
        try:
            err_console.print(
                f"reroute: canary: the first {succeeded} rows succeeded.", markup=False
            )
            return await ask_yes_no("Send the rest? [y/N]: ")
        finally:
            self.progress.resume()

    def waiting(self, text: str) -> None:
        if style(self.log_format) == "bar":  # a countdown redrawn in place on a terminal
            # Straight to the stream: rich drops the carriage return that redraws the line.
            err_console.file.write(f"\rreroute: {text}  ")
            err_console.file.flush()
            self.counting_down = True
        else:
            self.note(text)

    def tick(self) -> None:
        self.progress.tick()

    def close(self) -> None:
        self.progress.close()


async def ask_yes_no(prompt: str) -> bool:
    """Ask on the terminal while the event loop runs: the answer is read by a daemon thread,
    straight from the file descriptor, so a Ctrl-C (the run's stop, which cancels this wait)
    never waits for Enter and the blocked read holds no lock the interpreter needs at exit."""
    answer: list[str] = []
    done = anyio.Event()
    token = anyio.lowlevel.current_token()

    def read() -> None:
        try:
            answer.append(_read_line())
        finally:
            with contextlib.suppress(RuntimeError):  # the event loop has ended: nobody waits
                anyio.from_thread.run_sync(done.set, token=token)

    err_console.file.write(prompt)
    err_console.file.flush()
    threading.Thread(target=read, name="reroute-question", daemon=True).start()
    await done.wait()
    return bool(answer) and answer[0].strip().lower() in ("y", "yes")


def _read_line() -> str:
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return sys.stdin.readline()  # not a real file (tests): its own readline
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 256)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def show_result(
    result: Result,
    log_format: LogFormat,
    *,
    resume_command: str,
    retry_command: str,
) -> int:
    """Print what happened (the summary on stdout; a refusal or a failed write on stderr) and
    return the exit status."""
    refused(result, log_format)
    report = result.report
    details: dict[str, Any] = {
        "elapsed": report.elapsed if report else 0.0,
        "stopped": report.stopped if report else None,
        "requests": result.requests,
        "results": str(result.results),
        "resume_command": resume_command if result.status is Status.STOPPED else None,
        "retry_command": retry_command if result.summary.retryable else None,
        "error_budget": result.error_budget,
    }
    for line in summary_lines(result.summary, **details, row_names=result.row_names):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if result.message:
        err_console.print(f"reroute: {result.message}", markup=False, soft_wrap=True)
    return EXIT_FOR[result.status]


def refused(result: Result, log_format: LogFormat) -> None:
    """Nothing was sent (the operator said no, the account check refused rows): one line on
    stderr and exit 2, no summary (and no JSON document)."""
    if result.status in (Status.NOT_CONFIRMED, Status.REFUSED):
        fail(result.message, Exit.NOTHING_SENT, as_json=log_format is LogFormat.JSON)


def send(
    inv: Invocation,
    log_format: LogFormat,
    *,
    command: str,
    target: Path,
    again: dict[str, object],
    report: bool = True,
    as_json: bool = False,
) -> int:
    """Run ``inv`` with the terminal as its operator, show the result, return the exit status.

    ``command`` ``target`` ``again`` spell the resume command (the same command; --log-format
    and --json kept); the retry command needs no flags (the run's journal lends its target and
    pace). ``report``: write the run's report when something may have been sent
    (:func:`write_report`). ``as_json`` (``--json``, or ``--log-format json``): the summary is
    one JSON document on stdout (batch.cli.documents), printed once the report is written.
    """
    operator = TerminalOperator(log_format)
    try:
        result = run_invocation(inv, operator)
    finally:
        operator.close()
    _outcome_decided()
    as_json = as_json or log_format is LogFormat.JSON
    if log_format is LogFormat.JSON:
        again = {**again, "log_format": log_format.value}
    elif as_json:
        again = {**again, "json": True}
    started = inv.started  # the lines it prints start as this process did
    resume = command_line(command, target, again, started)
    retry = command_line("retry", result.results, {}, started)
    wants_report = report and result.journaled
    if as_json:
        from batch.cli import documents

        refused(result, log_format)
        code = EXIT_FOR[result.status]
        path = write_report(result.results, log_format, on_stdout=False) if wants_report else None
        documents.emit(
            documents.run(command, result, code, budget=inv.settings.error_budget,
                          resume_command=resume, retry_command=retry, report=path)
        )  # fmt: skip
        if result.message:
            note(log_format, result.message)
        return code
    code = show_result(result, log_format, resume_command=resume, retry_command=retry)
    if wants_report:
        write_report(result.results, log_format)
    return code


def _outcome_decided() -> None:
    """From here on (the summary, the report, the exit) Ctrl-C changes nothing
    (:func:`batch.engine.signals.ignore_interrupts`; the engine has already said so where it ran the
    sending in this thread)."""
    signals.ignore_interrupts()


def write_report(results: Path, log_format: LogFormat, *, on_stdout: bool = True) -> Path | None:
    """Write the run's report and say where (a line on stdout; a note on stderr with
    ``--log-format json`` or when stdout holds the JSON document, ``on_stdout=False``), and
    return where, or None. A report that cannot be written is a note: the exit status stands.
    Ctrl-C does not cut it short (it is ignored from the end of the sending on: a report takes
    seconds even for a large run, and an interrupt raised in the middle of it left the process
    to end by the signal, exit -2, after the summary had said 3); ``reroute report`` writes it
    again at any time."""
    from batch.report import write_report as write

    try:
        path = write(results, started=started_as(os.environ))
    except (OSError, RerouteError) as exc:
        note(log_format, f"report not written: {exc}")
        return None
    if log_format is LogFormat.JSON or not on_stdout:
        note(log_format, f"report: {path}")
    else:
        console.print(f"report: {path}", markup=False, highlight=False, soft_wrap=True)
    return path


def remembered_key_file(earlier: object) -> Path | None:
    """The key file the run being continued read its key from, if it used one."""
    path = getattr(earlier, "api_key_file", None)
    return Path(path) if path else None


def key_for(
    settings: RunSettings, *, sandbox: bool, key_file: Path | None, earlier: object
) -> str | None:
    """The API key for this invocation: none for the embedded sandbox; else from --api-key-file
    (or the key file the run being continued used), else the key variable."""
    if sandbox:
        return None
    return read_api_key(settings, key_file or remembered_key_file(earlier), os.environ)


def read_api_key(settings: RunSettings, key_file: Path | None, env: Mapping[str, str]) -> str:
    """The key from --api-key-file, else the environment; never echoed in any message."""
    if key_file is not None:
        try:
            key = key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise UsageError(f"--api-key-file {key_file}: cannot read it ({reason})") from None
        if not key:
            raise UsageError(f"--api-key-file {key_file} is empty: put the API key in it")
        return _shaped(key, f"--api-key-file {key_file}")
    key = env.get(settings.api_key_env, "").strip()
    if not key:
        raise UsageError(
            f"no API key: set {settings.api_key_env} (or use --api-key-file PATH); "
            "to rehearse without a key use --sandbox"
        )
    return _shaped(key, settings.api_key_env)


def _shaped(key: str, source: str) -> str:
    """``key`` when it has an API key's shape; else refused before any request, naming
    ``source`` (whatever a variable holds would otherwise go out as the bearer)."""
    if not is_api_key(key):
        raise UsageError(not_a_key(source))
    return key


def pace_dir(env: Mapping[str, str]) -> Path:
    """Where runs on this machine share their API key's pace (batch.send.keyshare)."""
    from batch.send.keyshare import pace_root

    return pace_root(env, sys.platform, Path.home())


def network_from(env: Mapping[str, str]) -> Network:
    """Proxies and extra CAs from the environment, as curl and pip read them (the lower-case
    spelling first); values flow down from here, httpx reads no environment itself."""

    def first(*names: str) -> str | None:
        for name in names:
            for spelling in (name.lower(), name):
                if env.get(spelling, "").strip():
                    return env[spelling].strip()
        return None

    return Network(
        https_proxy=first("HTTPS_PROXY", "ALL_PROXY"),
        http_proxy=first("HTTP_PROXY", "ALL_PROXY"),
        no_proxy=first("NO_PROXY") or "",
        ca_file=first("SSL_CERT_FILE"),
        ca_dir=first("SSL_CERT_DIR"),
    )


def given(**flags: Any) -> dict[str, object | None]:
    """Flags as settings layers want them: booleans pass None when off, so a job file's value
    can win (batch.config.precedence)."""
    return {k: (None if v is False else v) for k, v in flags.items()}


# Flags whose "no" is a choice (False given, not absent): the command that repeats the
# invocation spells it, else a resume would run what the operator had switched off.
_NEGATABLE: Final = {"account_check": "--no-account-check"}


def command_line(
    name: str,
    target: Path | str,
    flags: Mapping[str, object | None],
    started: Sequence[str] = INSTALLED,
) -> str:
    """The shell command that repeats an invocation (resume) or retries its failures, started
    as ``started`` (batch.invoked.started_as) and quoted for the shell."""
    words = [name, str(target)]
    for key, value in flags.items():
        if key in _NEGATABLE and value is False:  # said on purpose: the resume says it too
            words.append(_NEGATABLE[key])
            continue
        if value is None or value is False or key == "input":
            continue
        option = "--" + key.replace("_", "-")
        words += [option] if value is True else [option, str(value)]
    return command(started, *words)


@contextmanager
def reporting_errors_and_interrupts(log_format: LogFormat = LogFormat.TEXT) -> Iterator[None]:
    """A RerouteError is one line and exit 2; a Ctrl-C outside the sending phase is exit 3.
    With ``--log-format json`` that line is a JSON object (:func:`batch.cli.app.fail`)."""
    as_json = log_format is LogFormat.JSON
    try:
        yield
    except RunStopped as exc:
        fail(str(exc), Exit.STOPPED, as_json=as_json)
    except RerouteError as exc:
        fail(str(exc), as_json=as_json)
    except KeyboardInterrupt:
        # While rows are being sent, Ctrl-C is a stop request (a signal receiver), not this:
        # here it came before sending began. Its outcome is decided: another press is ignored.
        signals.ignore_interrupts()
        fail(
            "interrupted; nothing more was sent: run the same command again",
            Exit.STOPPED,
            as_json=as_json,
        )
