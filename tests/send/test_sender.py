"""The sender over httpx.MockTransport, in trio's virtual time: classification, retries, pacing."""

from __future__ import annotations

import functools
import json
import ssl
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from batch import voicelink
from batch.engine.rowloop import run_calls
from batch.errors import UsageError
from batch.journal.journal import Journal
from batch.journal.record import RunIdentity
from batch.model import Call, Outcome, RowResult
from batch.send.answers import _parse
from batch.send.bounded import Body
from batch.send.client import USER_AGENT, SendPolicy, build_client
from batch.send.events import SendEvents
from batch.send.limiter import Limiter
from batch.send.retry import STOP_RUN_STATUSES
from batch.send.sender import Sender
from batch.settings import Rate
from tests.fakes import Sink

KEY = "rg_live_S3cretKeyThatMustNeverLeak42"
EPOCH = datetime(2026, 11, 30, tzinfo=UTC)
BODY = voicelink.encode_body({"for_inbound_call": 1, "for_outbound_call": 4, "status": 1})
CALL = Call(row=7, routing_id=93, body=BODY)
OK_BODY = {"success": True, "data": {"id": 93}}

Handler = Callable[[httpx.Request], Any]


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


def virtual_now() -> datetime:
    """Wall time that moves with the mock clock, so timestamps and HTTP dates are exact."""
    return EPOCH + timedelta(seconds=anyio.current_time())


def error(status: int, code: str, message: str = "nope") -> httpx.Response:
    body = {"success": False, "error": {"code": code, "message": message}}
    return httpx.Response(status, json=body)


class Script:
    """A fake API: answers from a list, one per request, recording when each came."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers: Iterator[httpx.Response | Exception | Handler] = iter(answers)
        self.times: list[float] = []
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(anyio.current_time())
        self.requests.append(request)
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            result = answer(request)
            if hasattr(result, "__await__"):
                result = await result
            assert isinstance(result, httpx.Response)
            return result
        return answer


def make_sender(
    script: Script,
    *,
    rate: str = "100/s",
    events: SendEvents | None = None,
    **policy: Any,
) -> tuple[Sender, Limiter]:
    client = build_client(
        "https://api.example.test/api/v2",
        KEY,
        timeout=30,
        concurrency=4,
        transport=httpx.MockTransport(script),
    )
    limiter = Limiter(Rate.parse(rate))
    sender = Sender(
        client,
        limiter,
        SendPolicy(**policy),
        now=virtual_now,
        random=lambda: 0.0,  # no jitter: backoff waits are exact
        events=events,
    )
    return sender, limiter


async def send(script: Script, **kwargs: Any) -> RowResult:
    sender, _ = make_sender(script, **kwargs)
    return await sender.send(CALL)


def assert_no_key(*things: object) -> None:
    for thing in things:
        assert KEY not in str(thing)
        assert KEY not in repr(thing)


async def test_success_records_everything() -> None:
    """A 2xx success envelope: succeeded, one attempt, body sent as is, envelope kept compact."""
    script = Script(httpx.Response(200, json=OK_BODY))
    result = await send(script)
    assert result.outcome is Outcome.SUCCEEDED
    assert (result.http_status, result.attempts, result.error_code) == (200, 1, "")
    assert result.request == BODY
    assert json.loads(result.response) == OK_BODY
    assert " " not in result.response
    assert result.row == 7
    assert result.routing_id == "93"
    assert result.started_at == EPOCH
    assert result.finished_at == EPOCH
    assert result.duration_ms == 0
    request = script.requests[0]
    assert request.method == "POST"
    assert request.url == "https://api.example.test/api/v2/voicelink/call-routing/93"
    assert request.content == BODY.encode()
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT


async def test_retries_then_success_with_exponential_backoff() -> None:
    """503, 500, timeout then 200: succeeded after 4 attempts, waiting 1, 2, 4 s between them;
    the sink is told each attempt, its answer, and each retry, in that order."""
    sink = Sink()
    script = Script(
        error(503, "UNAVAILABLE"),
        error(500, "INTERNAL"),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json=OK_BODY),
    )
    result = await send(script, events=sink)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.attempts == 4
    assert sink.told == [
        ("attempt", 7, 1), ("answered", 7, 503, "UNAVAILABLE"), ("retrying", 7, 1, "UNAVAILABLE"),
        ("attempt", 7, 2), ("answered", 7, 500, "INTERNAL"), ("retrying", 7, 2, "INTERNAL"),
        ("attempt", 7, 3), ("answered", 7, None, "TIMEOUT"), ("retrying", 7, 3, "TIMEOUT"),
        ("attempt", 7, 4), ("answered", 7, 200, ""),
    ]  # fmt: skip
    assert script.times == [0, 1, 3, 7]
    assert result.duration_ms == 7000
    assert result.finished_at == EPOCH + timedelta(seconds=7)


async def test_jitter_shortens_backoff() -> None:
    """Jitter takes up to its share off each backoff (random injected: 0.5 * 0.5 off 1 s)."""
    script = Script(error(503, "UNAVAILABLE"), httpx.Response(200, json=OK_BODY))
    client = build_client("https://x.test", None, timeout=5, concurrency=1,
                          transport=httpx.MockTransport(script))  # fmt: skip
    sender = Sender(client, Limiter(Rate.parse("100/s")), SendPolicy(), random=lambda: 0.5)
    await sender.send(CALL)
    assert script.times == [0, 0.75]


async def test_retries_run_out() -> None:
    """Transient failures up to --max-attempts: failed with the last code and the attempt count."""
    script = Script(*[httpx.Response(502, text="<html>Bad Gateway</html>")] * 3)
    result = await send(script, max_attempts=3)
    assert result.outcome is Outcome.FAILED
    assert (result.http_status, result.attempts, result.error_code) == (502, 3, "HTTP_502")
    assert "gave up after 3 attempts" in result.error_message
    assert result.response == "<html>Bad Gateway</html>"
    assert len(script.times) == 3


async def test_html_502_page_is_retried() -> None:
    """A gateway's HTML 502 page is transient: retried, then the success counts."""
    page = "<html>\n<body>\n<h1>502 Bad Gateway</h1>\n</body>\n</html>\n" + "x" * 500
    script = Script(
        httpx.Response(502, text=page, headers={"content-type": "text/html"}),
        httpx.Response(200, json=OK_BODY),
    )
    result = await send(script)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.attempts == 2


async def test_non_json_error_page_excerpt_is_one_short_line() -> None:
    """A final non-JSON page is kept as a one-line excerpt of at most 200 characters."""
    page = "<html>\n<body>\n<h1>502 Bad Gateway</h1>\n" + "x" * 500
    result = await send(Script(httpx.Response(502, text=page)), max_attempts=1)
    assert result.error_code == "HTTP_502"
    assert "\n" not in result.response
    assert len(result.response) <= 200
    assert result.response.startswith("<html> <body> <h1>502 Bad Gateway</h1>")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "VALIDATION_ERROR"),
        (401, "UNAUTHORIZED"),
        (403, "FORBIDDEN"),
        (404, "NOT_FOUND"),
        (409, "CONFLICT"),
        (422, "UNPROCESSABLE"),
    ],
)
async def test_final_errors_are_not_retried(status: int, code: str) -> None:
    """An error envelope with a final status: failed at once with the API's code and message."""
    script = Script(error(status, code, "field status: must be 0 or 1"))
    result = await send(script)
    assert result.outcome is Outcome.FAILED
    assert (result.http_status, result.attempts, result.error_code) == (status, 1, code)
    assert result.error_message == "field status: must be 0 or 1"
    assert json.loads(result.response)["error"]["code"] == code
    assert (result.http_status in STOP_RUN_STATUSES) is (status in (401, 403))


async def test_two_xx_without_envelope_is_bad_response() -> None:
    """A 2xx whose JSON is not the success envelope is failed BAD_RESPONSE, not retried."""
    result = await send(Script(httpx.Response(200, json={"ok": 1})))
    assert result.outcome is Outcome.FAILED
    assert (result.http_status, result.attempts, result.error_code) == (200, 1, "BAD_RESPONSE")
    assert result.response == '{"ok":1}'


async def test_two_xx_not_json_is_bad_response() -> None:
    """A 2xx HTML page (a captive portal) is failed BAD_RESPONSE with an excerpt."""
    result = await send(Script(httpx.Response(200, text="<html>login</html>")))
    assert (result.outcome, result.error_code) == (Outcome.FAILED, "BAD_RESPONSE")
    assert result.response == "<html>login</html>"


async def test_5xx_without_envelope_code_is_http_status() -> None:
    """A JSON 5xx that is not an error envelope is HTTP_<status>, and retried."""
    script = Script(
        httpx.Response(503, json={"message": "down"}), httpx.Response(200, json=OK_BODY)
    )
    result = await send(script)
    assert result.attempts == 2
    failed = await send(Script(httpx.Response(503, json={"message": "down"})), max_attempts=1)
    assert failed.error_code == "HTTP_503"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ConnectTimeout("t"), "TIMEOUT"),
        (httpx.ReadTimeout("t"), "TIMEOUT"),
        (httpx.PoolTimeout("t"), "TIMEOUT"),
        (httpx.ConnectError("refused"), "CONNECTION_ERROR"),
        (httpx.ReadError("reset"), "CONNECTION_ERROR"),
        (httpx.RemoteProtocolError("peer closed"), "CONNECTION_ERROR"),
    ],
)
async def test_transport_errors_retried_then_failed(exc: Exception, code: str) -> None:
    """Each transport error is retried; if it lasts, the row fails with its transport code."""
    result = await send(Script(exc, exc), max_attempts=2)
    assert result.outcome is Outcome.FAILED
    assert (result.http_status, result.attempts, result.error_code) == (None, 2, code)
    assert result.response == ""
    assert "\n" not in result.error_message


async def test_slow_answer_times_out_on_the_whole_deadline() -> None:
    """An answer slower than --timeout is a TIMEOUT after exactly that long, then retried."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(100)
        return httpx.Response(200, json=OK_BODY)

    script = Script(slow, httpx.Response(200, json=OK_BODY))
    result = await send(script, timeout=5)
    assert result.outcome is Outcome.SUCCEEDED
    assert script.times == [0, 6]  # 5 s timeout, then 1 s backoff


async def test_with_the_watchdog_a_request_times_out_at_its_first_tick_after_the_deadline() -> None:
    """While watch_deadlines runs, requests carry no timer of their own: the watchdog cancels
    them at its first tick (a tenth of --timeout here) at or after their deadline. A request
    sent at t=0.3 with a 5 s timeout is cut at t=5.5, not 5.3; the row then retries as usual."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(100)
        return httpx.Response(200, json=OK_BODY)

    script = Script(slow, httpx.Response(200, json=OK_BODY))
    sender, _ = make_sender(script, timeout=5)
    async with anyio.create_task_group() as tg:
        await tg.start(sender.watch_deadlines)
        await anyio.sleep(0.3)
        result = await sender.send(CALL)
        tg.cancel_scope.cancel()
    assert result.outcome is Outcome.SUCCEEDED
    assert result.attempts == 2
    assert script.times == [0.3, 6.5]  # cut at the tick at 5.5, then 1 s backoff


async def test_a_row_in_run_calls_times_out_on_its_deadline() -> None:
    """run_calls runs the watchdog: a request that never answers is a TIMEOUT within a tick
    of --timeout, and the run goes on to the next row."""

    async def never(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(1000)
        return httpx.Response(200, json=OK_BODY)

    script = Script(never, httpx.Response(200, json=OK_BODY))
    client = build_client(
        "https://api.example.test/api/v2", KEY, timeout=30, concurrency=1,
        transport=httpx.MockTransport(script),
    )  # fmt: skip
    calls = [CALL, Call(row=8, routing_id=94, body=BODY)]
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "out.csv"
        identity = RunIdentity("sha", "https://api.example.test/api/v2", str(results))
        with Journal.open(Path(tmp) / "out.csv.journal", identity) as journal:
            sender = Sender(
                client, Limiter(Rate.parse("100/s")), SendPolicy(timeout=4, max_attempts=1),
                events=Sink(journal),
            )  # fmt: skip
            await run_calls(calls, sender=sender, concurrency=1, journal=journal)
            first, second = journal.get(7), journal.get(8)
    assert first is not None
    assert second is not None
    assert (first.outcome, first.error_code) == (Outcome.FAILED, "TIMEOUT")
    assert second.outcome is Outcome.SUCCEEDED
    assert 4.0 <= script.times[1] <= 4.0 + 0.4 + 0.01  # the timeout, at most a tick late


async def test_429_retry_after_seconds_pauses_everyone() -> None:
    """A 429 with Retry-After: 7 resends at exactly t=7 and pauses the shared limiter too."""
    script = Script(
        httpx.Response(429, headers={"Retry-After": "7"}, json={"success": False}),
        httpx.Response(200, json=OK_BODY),
    )
    sink = Sink()
    sender, limiter = make_sender(script, events=sink)
    result = await sender.send(CALL)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.attempts == 2
    assert script.times == [0, 7]
    assert limiter.paused_until == 7
    assert [told for told in sink.told if told[0] == "retrying"] == [
        ("retrying", 7, 1, "RATE_LIMITED")
    ]


async def test_429_pause_holds_other_rows() -> None:
    """While one row's 429 pause lasts, another row's request waits for it to end."""
    script = Script(
        httpx.Response(429, headers={"Retry-After": "10"}),
        httpx.Response(200, json=OK_BODY),
        httpx.Response(200, json=OK_BODY),
    )
    sender, _ = make_sender(script, rate="1/s")
    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.send, CALL)
        await anyio.sleep(0.5)
        tg.start_soon(sender.send, Call(row=8, routing_id=94, body=BODY))
    assert script.times[0] == 0
    assert min(script.times[1:]) >= 10


async def test_429_retry_after_http_date() -> None:
    """A Retry-After HTTP date is honoured exactly (virtual wall clock)."""
    when = format_datetime(EPOCH + timedelta(seconds=12), usegmt=True)
    script = Script(
        httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200, json=OK_BODY)
    )
    result = await send(script)
    assert result.outcome is Outcome.SUCCEEDED
    assert script.times == [0, 12]


async def test_429_without_retry_after_backs_off_and_slows_down() -> None:
    """A bare 429 backs off exponentially (1 s, 2 s) and halves the limiter's pace."""
    script = Script(
        httpx.Response(429),
        httpx.Response(429),
        httpx.Response(200, json=OK_BODY),
    )
    sender, limiter = make_sender(script, rate="10/s")
    result = await sender.send(CALL)
    assert result.attempts == 3
    assert script.times == [0, 1, 3]
    assert limiter.current_rate.per_second < 10


async def test_retry_after_above_cap_ends_the_row_not_attempted() -> None:
    """A Retry-After beyond --max-retry-after ends the row at once, saying so: not_attempted
    (a 429 never fails a row; the same command sends it again), its request counted."""
    script = Script(httpx.Response(429, headers={"Retry-After": "3600"}))
    result = await send(script)
    assert result.outcome is Outcome.NOT_ATTEMPTED
    assert (result.http_status, result.attempts, result.error_code) == (429, 1, "RATE_LIMITED")
    assert "3600 s" in result.error_message
    assert "--max-retry-after 300 s" in result.error_message


async def test_retry_after_above_cap_does_not_stall_the_run() -> None:
    """A too-long Retry-After pauses the run only for a backoff, not for what the server asked."""
    script = Script(httpx.Response(429, headers={"Retry-After": "3600"}))
    sender, limiter = make_sender(script)
    await sender.send(CALL)
    assert limiter.paused_until == 1


async def test_every_attempt_goes_through_the_limiter() -> None:
    """Retries are paced too: at 1/s, a retry after a 0.1 s backoff waits for its slot."""
    script = Script(error(503, "UNAVAILABLE"), httpx.Response(200, json=OK_BODY))
    result = await send(script, rate="1/s", backoff_initial=0.1)
    assert result.attempts == 2
    assert script.times == [0, 1]


async def test_key_never_leaks_even_when_echoed() -> None:
    """A server echoing the Authorization header: the key is in no result field or message."""

    def echo(request: httpx.Request) -> httpx.Response:
        auth = request.headers["authorization"]
        return httpx.Response(500, text=f"<html>bad header {auth}\n{KEY}</html>")

    def echo_json(request: httpx.Request) -> httpx.Response:
        return error(400, "VALIDATION_ERROR", f"bad key {KEY}")

    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused for {request.headers['authorization']}")

    for answer in (echo, echo_json, drop):
        result = await send(Script(answer), max_attempts=1)
        assert result.outcome is Outcome.FAILED
        assert_no_key(*(getattr(result, f) for f in result.__slots__), result)


async def test_a_key_spelled_with_json_escapes_is_still_scrubbed() -> None:
    """An echo that escapes characters of the key (``\\u0053`` for ``S``) is decoded before it
    is scrubbed: the results file never holds the key, in any spelling."""
    escaped = KEY.replace("S", "\\u0053").replace("_", "\\u005f")
    body = '{"success":false,"error":{"code":"VALIDATION_ERROR","message":"bad key %s"}}'
    script = Script(httpx.Response(400, content=(body % escaped).encode()))
    result = await send(script, max_attempts=1)
    assert escaped not in result.response
    assert_no_key(result.response, result.error_message)
    assert "[redacted]" in result.response


@pytest.mark.parametrize(
    ("body", "kept"),
    [
        (b'{"success": true, "data": {"id": 93, "name": "Caf\xc3\xa9"}}', True),
        (b'{\n  "success": true,\n  "data": {"id": 93}\n}', False),  # one line in the file
        (b'{"success":true,"data":{"id":93,"note":"a\\/b"}}', False),  # an escape: decoded
        ('{"success":true,"data":{"id":93}}'.encode("utf-16"), False),  # not UTF-8
    ],
)
async def test_the_envelope_is_kept_as_received_when_it_is_one_plain_line(
    body: bytes, kept: bool
) -> None:
    """The results file's ``response`` is the body as received (spaces and all) when it is one
    line of plain UTF-8; otherwise the parsed envelope, re-serialised on one line."""
    result = await send(Script(httpx.Response(200, content=body)))
    assert result.outcome is Outcome.SUCCEEDED
    assert "\n" not in result.response
    assert json.loads(result.response) == json.loads(body)
    assert (result.response == body.decode("utf-8", errors="replace")) is kept


async def test_a_lone_surrogate_in_an_answer_is_replaced_not_a_crash(tmp_path: Path) -> None:
    """``\\ud800`` is valid JSON but no UTF-8 file can hold it: the row's message and envelope
    get a "?" instead, and the journal takes them (it used to fail with a traceback)."""
    body = b'{"success":false,"error":{"code":"VALIDATION_ERROR","message":"bad \\ud800 id"}}'
    result = await send(Script(httpx.Response(400, content=body)), max_attempts=1)
    assert (result.error_code, result.error_message) == ("VALIDATION_ERROR", "bad ? id")
    assert json.loads(result.response)["error"]["message"] == "bad ? id"
    identity = RunIdentity("x" * 64, "https://api.example.test/api/v2", str(tmp_path / "out"))
    with Journal.open(tmp_path / "out.journal", identity) as journal:
        journal.finish(result)
    with Journal.open(tmp_path / "out.journal", identity) as journal:
        assert journal.get(result.row) == result


def test_client_repr_and_headers_hide_the_key() -> None:
    """The client's headers print redacted; the key shows in no repr."""
    client = build_client("https://x.test/api/v2", KEY, timeout=3, concurrency=2)
    assert_no_key(client, client.headers)


@pytest.mark.parametrize("bad", ["", "  ", "rg live", "rg_live_\n", "rg_livé"])
def test_bad_key_rejected_without_echo(bad: str) -> None:
    """An unusable key is a UsageError that says what to check and does not print the key."""
    with pytest.raises(UsageError, match="VOCOBASE_API_KEY") as info:
        build_client("https://x.test", bad + KEY if bad.strip() else bad, timeout=3, concurrency=1)
    assert KEY not in str(info.value)


def test_client_without_key_sends_no_authorization() -> None:
    """No key (the embedded sandbox): no Authorization header at all."""
    client = build_client("http://127.0.0.1:1", None, timeout=3, concurrency=1)
    assert "authorization" not in client.headers


def test_policy_rejects_nonsense() -> None:
    """A policy with zero attempts or a negative timeout is a UsageError saying what to use."""
    with pytest.raises(UsageError, match="1 or more"):
        SendPolicy(max_attempts=0)
    with pytest.raises(UsageError, match="positive"):
        SendPolicy(timeout=-1)


async def test_cancellation_propagates() -> None:
    """Cancelling a send mid-request raises out of it (the orchestrator marks the row unknown)."""
    started = anyio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError

    sender, _ = make_sender(Script(hang), timeout=1000)
    done: list[RowResult] = []

    async def run() -> None:
        done.append(await sender.send(CALL))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await started.wait()
        tg.cancel_scope.cancel()
    assert done == []


async def test_cancellation_during_backoff_propagates() -> None:
    """Cancelling while a row sleeps between attempts does not turn into a result."""
    sender, _ = make_sender(Script(error(503, "UNAVAILABLE")), backoff_initial=50)
    with anyio.move_on_after(10) as scope:
        await sender.send(CALL)
        raise AssertionError("send returned despite the cancellation")
    assert scope.cancelled_caught


async def test_two_xx_with_error_envelope_is_bad_response_saying_what_it_said() -> None:
    """A 2xx carrying an error envelope is BAD_RESPONSE; the API's words go in the message."""
    result = await send(Script(error(200, "NOT_FOUND", "no such record")))
    assert (result.outcome, result.error_code, result.attempts) == (
        Outcome.FAILED,
        "BAD_RESPONSE",
        1,
    )
    assert "NOT_FOUND: no such record" in result.error_message


async def test_certificate_failure_is_final_and_says_so() -> None:
    """A TLS certificate that does not verify fails the row at once: retrying cannot fix it."""

    def reject(request: httpx.Request) -> httpx.Response:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed")
        except ssl.SSLError as exc:
            raise httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]") from exc

    result = await send(Script(reject, reject))
    assert (result.outcome, result.error_code, result.attempts) == (
        Outcome.FAILED,
        "CONNECTION_ERROR",
        1,
    )
    assert "TLS certificate did not verify" in result.error_message


async def test_connection_error_message_is_never_empty() -> None:
    """httpx errors with no text still give a message saying what happened."""
    result = await send(Script(httpx.ReadError("")), max_attempts=1)
    assert result.error_message.startswith("the connection dropped before the answer")
    assert "ReadError" in result.error_message


@functools.cache
def classifier() -> Sender:
    # One for all examples: building a client (its TLS context) costs tens of milliseconds.
    client = build_client("https://x.test", KEY, timeout=3, concurrency=1)
    return Sender(client, Limiter(Rate.parse("1/s"), clock=lambda: 0.0), SendPolicy())


@settings(max_examples=200, deadline=None)
@given(
    status=st.integers(min_value=100, max_value=599),
    body=st.one_of(
        st.binary(max_size=600),
        st.builds(lambda t: t.encode(), st.text(max_size=600)),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
            max_leaves=12,
        ).map(lambda v: json.dumps({"success": False, "error": v}).encode()),
    ),
)
def test_any_answer_is_classified_without_raising(status: int, body: bytes) -> None:
    """Any status and any body: a code, a one-line message, a short excerpt; never a crash."""
    answer = classifier()._requests._reader.read(
        httpx.Response(status, content=body), Body(body, len(body), False)
    )
    assert answer.status == status
    assert answer.success or answer.error_code
    assert "\n" not in answer.error_message
    if not answer.is_json:
        assert len(answer.response) <= 200
        assert "\n" not in answer.response


def test_deeply_nested_json_is_not_json_to_us() -> None:
    """A body nested deeper than Python can parse is read as a non-JSON page, not a crash."""
    body = b"[" * 100_000
    answer = classifier()._requests._reader.read(
        httpx.Response(502, content=body), Body(body, len(body), False)
    )
    assert (answer.error_code, answer.is_json) == ("HTTP_502", False)


async def test_503_retry_after_is_honoured_for_that_row_only() -> None:
    """A 503 with Retry-After: 9 resends at t=9, without pausing the other rows."""
    script = Script(
        httpx.Response(503, headers={"Retry-After": "9"}, json={"success": False}),
        httpx.Response(200, json=OK_BODY),
    )
    sender, limiter = make_sender(script)
    result = await sender.send(CALL)
    assert (result.outcome, result.attempts) == (Outcome.SUCCEEDED, 2)
    assert script.times == [0, 9]
    assert limiter.paused_until == float("-inf")


async def test_bare_429_pause_and_row_wait_are_one_draw() -> None:
    """With jitter, the row waits exactly as long as everyone is paused (one random draw)."""
    draws = iter([0.9, 0.2, 0.4, 0.7])  # a second draw would make the row wait longer
    script = Script(httpx.Response(429), httpx.Response(200, json=OK_BODY))
    client = build_client("https://x.test", None, timeout=5, concurrency=1,
                          transport=httpx.MockTransport(script))  # fmt: skip
    limiter = Limiter(Rate.parse("100/s"))
    sender = Sender(client, limiter, SendPolicy(), random=lambda: next(draws))
    await sender.send(CALL)
    assert script.times == [0, pytest.approx(0.55)]  # 1 s minus 0.5 * 0.9 of it
    assert limiter.paused_until == pytest.approx(0.55)


async def test_stop_retrying_ends_a_backoff_at_once() -> None:
    """A row waiting 50 s to retry ends the moment the run stops, failed with what it has."""
    script = Script(error(503, "UNAVAILABLE", "down"), httpx.Response(200, json=OK_BODY))
    sender, _ = make_sender(script, backoff_initial=50)
    results: list[RowResult] = []

    async def run() -> None:
        results.append(await sender.send(CALL))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await anyio.sleep(3)
        sender.stop_retrying()
    assert anyio.current_time() == 3
    [result] = results
    assert (result.outcome, result.error_code, result.attempts) == (
        Outcome.FAILED,
        "UNAVAILABLE",
        1,
    )
    assert result.error_message == "down (not tried again after 1 attempt: the run was stopping)"
    assert len(script.times) == 1


async def test_stop_retrying_ends_a_wait_for_the_429_pause() -> None:
    """A row queued behind a 60 s 429 pause ends at the stop instead of sending again."""
    script = Script(httpx.Response(429, headers={"Retry-After": "60"}))
    sender, _ = make_sender(script)
    results: list[RowResult] = []

    async def run() -> None:
        results.append(await sender.send(CALL))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await anyio.sleep(10)
        sender.stop_retrying()
    assert anyio.current_time() == 10
    assert (results[0].error_code, results[0].attempts) == ("RATE_LIMITED", 1)


async def test_after_stop_retrying_in_flight_requests_finish_but_are_not_retried() -> None:
    """A request in flight at the stop gets its answer; a transient one is not tried again."""

    async def slow_503(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(5)
        return error(503, "UNAVAILABLE")

    script = Script(slow_503, httpx.Response(200, json=OK_BODY))
    sender, _ = make_sender(script)
    results: list[RowResult] = []

    async def run() -> None:
        results.append(await sender.send(CALL))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await anyio.sleep(1)
        sender.stop_retrying()
    assert anyio.current_time() == 5
    assert (results[0].http_status, results[0].attempts) == (503, 1)


async def test_a_request_in_flight_at_the_stop_still_succeeds() -> None:
    """Stopping changes nothing for a request already sent that then succeeds."""

    async def slow_ok(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(2)
        return httpx.Response(200, json=OK_BODY)

    sender, _ = make_sender(Script(slow_ok))
    results: list[RowResult | None] = []

    async def run() -> None:
        results.append(await sender.send(CALL))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await anyio.sleep(1)
        sender.stop_retrying()
    [result] = results
    assert result is not None
    assert (result.outcome, result.attempts) == (Outcome.SUCCEEDED, 1)


async def test_after_hold_back_a_new_row_sends_nothing() -> None:
    """Start nothing new: a row handed to the sender after the stop is not sent (None)."""
    script = Script(httpx.Response(200, json=OK_BODY))
    sender, _ = make_sender(script)
    sender.hold_back()
    assert await sender.send(CALL) is None
    assert script.requests == []


async def test_hold_back_lets_a_row_already_sent_retry() -> None:
    """ "Start nothing new" is about rows: one already sent still retries after the stop (the
    orchestrator's grace bounds it), so a resumed run need not resend a row cut short."""
    script = Script(error(503, "UNAVAILABLE"), httpx.Response(200, json=OK_BODY))
    sender, _ = make_sender(script, backoff_initial=2)
    results: list[RowResult | None] = []

    async def run() -> None:
        results.append(await sender.send(CALL))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await anyio.sleep(1)
        sender.hold_back()
    [result] = results
    assert result is not None
    assert (result.outcome, result.attempts) == (Outcome.SUCCEEDED, 2)
    assert script.times == [0, 2]


async def test_hold_back_frees_a_row_waiting_for_its_first_slot() -> None:
    """A row queued for its first slot (the pace is 1/s) ends at the stop without sending."""
    script = Script(httpx.Response(200, json=OK_BODY), httpx.Response(200, json=OK_BODY))
    sender, _ = make_sender(script, rate="1/s")
    results: list[RowResult | None] = []

    async def run(call: Call) -> None:
        results.append(await sender.send(call))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, Call(row=8, routing_id=94, body=BODY))  # t=0: sent at once
        await anyio.sleep(0.001)
        tg.start_soon(run, CALL)  # its slot is at t=1
        await anyio.sleep(0.5)
        sender.hold_back()
    assert anyio.current_time() == pytest.approx(0.501)
    assert script.times == [0]
    assert len(results) == 2
    assert results[1] is None
    assert results[0] is not None
    assert results[0].outcome is Outcome.SUCCEEDED


async def test_stop_retrying_frees_a_row_queued_for_a_slot() -> None:
    """A row whose retry waits for a slot behind another row's 429 pause ends at the stop."""
    script = Script(
        error(503, "UNAVAILABLE"),  # row 8, at t=0: retries after 1 s, into the pause
        httpx.Response(429, headers={"Retry-After": "60"}),  # row 7, at t=0.01: pauses all
    )
    sender, limiter = make_sender(script)
    results: list[RowResult] = []

    async def run(call: Call) -> None:
        results.append(await sender.send(call))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, Call(row=8, routing_id=94, body=BODY))
        await anyio.sleep(0.001)
        tg.start_soon(run, CALL)
        await anyio.sleep(10)
        sender.stop_retrying()
    assert anyio.current_time() == pytest.approx(10.001)
    assert limiter.paused_until == pytest.approx(60.01)
    assert sorted((r.row, r.error_code, r.attempts) for r in results) == [
        (7, "RATE_LIMITED", 1),
        (8, "UNAVAILABLE", 1),
    ]
    assert len(script.times) == 2


@pytest.mark.parametrize(("concurrency", "timeout"), [(0, 5.0), (4, 0.0), (4, float("nan"))])
def test_client_rejects_nonsense_limits(concurrency: int, timeout: float) -> None:
    """No connections or no time to answer would hang or fail every row: refused up front."""
    with pytest.raises(UsageError, match="use"):
        build_client("https://x.test", None, timeout=timeout, concurrency=concurrency)


def test_client_pool_and_timeouts_follow_the_settings() -> None:
    """The pool holds --concurrency connections; every httpx timeout is --timeout."""
    client = build_client("https://x.test/api/v2", None, timeout=7, concurrency=3)
    assert client.timeout == httpx.Timeout(7)
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert pool._max_connections == 3
    assert pool._max_keepalive_connections == 3
    assert client.follow_redirects is False


_SCALAR = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8)
)
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["success", "error", "code", "message", "data"]), inner)
    ),
    max_leaves=12,
)
# Envelope-like JSON texts, and the same cut short or with a character changed.
_JSONISH = st.builds(
    lambda value, cut, noise: (json.dumps(value, separators=(",", ":")) + noise)[:cut],
    _VALUE,
    st.integers(0, 200),
    st.sampled_from(["", " ", ",", "x", "]", "}", "NaN", "1e999"]),
) | st.text(alphabet='{}[]":,.0123456789-+eEtruefalsnNIyi ', max_size=30)


@given(_JSONISH)
def test_an_answer_parses_as_json_would_read_it(text: str) -> None:
    """The envelope parser (orjson first, json for what it refuses) accepts exactly what
    json.loads accepts, and reads the same envelope from it."""
    try:
        expected: Any = json.loads(text)
    except (ValueError, RecursionError):
        with pytest.raises((ValueError, RecursionError)):
            _parse(text)
        return
    assert voicelink.parse_envelope(_parse(text)) == voicelink.parse_envelope(expected)
