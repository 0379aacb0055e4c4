"""`reroute sandbox`: serve the stand-in VoiceLink API on loopback until Ctrl-C.

For rehearsing a cutover before the real run, and for trying reroute without a key. The key it
prints is the sandbox's own test key (printing it is the point); a live key is refused.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from batch.cli.app import app, examples, fail, reporting_errors, say
from batch.errors import UsageError
from batch.invoked import command, started_as, with_env

if TYPE_CHECKING:
    from batch.sandbox import Faults, RunningSandbox
    from batch.sandbox.limits import RateLimitMode
    from batch.settings import Rate

_OFF = ("off", "none", "0")


def _rate_limit(text: str) -> Rate | None:
    from batch.settings import Rate

    return None if text.strip().lower() in _OFF else Rate.parse(text)


def _rate_limit_mode(text: str) -> RateLimitMode:
    from batch.sandbox.limits import RateLimitMode  # with the sandbox: see sandbox() below

    try:
        return RateLimitMode(text.strip().lower())
    except ValueError:
        kinds = ", ".join(mode.value for mode in RateLimitMode)
        raise UsageError(f"--rate-limit-mode {text!r}: give one of {kinds}") from None


def _max_concurrent(text: str) -> int | None:
    if text.strip().lower() in _OFF:
        return None
    if not text.strip().isdigit():
        raise UsageError(f"--max-concurrent {text!r}: give a whole number >= 1, or off")
    return int(text)


def _describe_faults(faults: Faults) -> str:
    parts = [
        f"{label} {share:.0%}"
        for label, share in (
            ("5xx", faults.error_rate),
            ("HTML 502", faults.html_rate),
            ("dropped", faults.drop_rate),
            (f"slow ({faults.slow_seconds:g} s)", faults.slow_rate),
        )
        if share
    ]
    if faults.latency or faults.jitter:
        parts.append(f"latency {faults.latency:g} s +- {faults.jitter:g} s")
    return ", ".join(parts) or "none"


def _try_line(sandbox: RunningSandbox) -> str:
    """A run against this sandbox, started the way this process was (batch.invoked)."""
    variables = {"REROUTE_BASE_URL": sandbox.base_url, "VOCOBASE_API_KEY": sandbox.api_key}
    return with_env(variables, command(started_as(os.environ), "run", "FILE"))


def _announce(sandbox: RunningSandbox) -> None:
    config = sandbox.config
    rate = (
        f"{config.rate_limit} per key ({config.rate_limit_mode})"
        if config.rate_limit
        else "no rate limit"
    )
    inflight = f"{config.max_concurrent} in flight per key" if config.max_concurrent else "no limit"
    lines = [
        "reroute sandbox: a stand-in VoiceLink API (not the real service)",
        f"  base URL      {sandbox.base_url}",
        f"  API key       {sandbox.api_key}   (the sandbox's own test key)",
        f"  limits        {rate}, {inflight}"
        + ("" if config.retry_after else ", no Retry-After header")
        + (f", arrival jitter {config.arrival_jitter:g} s" if config.arrival_jitter else ""),
        f"  faults        {_describe_faults(config.faults)}"
        + (f" (seed {config.seed})" if config.seed is not None else ""),
    ]
    if config.connections > 1:
        lines.append(f"  connections   {', '.join(sandbox.connection_ids)}")
    if config.state is not None:
        lines.append(
            f"  state         {sandbox.stats()['records']} records from {config.state}"
            " (other routing ids answer 404)"
        )
    if config.bots_file is not None:
        lines.append(
            f"  bots          from {config.bots_file}"
            + (", updates naming another bot answer 400" if config.reject_unknown_bots else "")
        )
    lines += [
        f"  sandbox-only  GET {sandbox.base_url}/voicelink/call-routing/{{id}} (stored record),",
        f"                GET {sandbox.root_url}/sandbox/stats (request counts)",
        f"  try           {_try_line(sandbox)}",
        "Press Ctrl-C to stop.",
    ]
    say("\n".join(lines))


@app.command(
    epilog=examples(
        "reroute sandbox",
        "reroute sandbox --port 8787 --error-rate 0.1 --latency 0.2",
    )
)
def sandbox(
    host: Annotated[
        str, typer.Option(help="Address to listen on; non-loopback needs --public.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8787,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="The test key to accept (a sandbox key, printed at start). Default: a new one.",
            show_default=False,
        ),
    ] = None,
    public: Annotated[
        bool,
        typer.Option(
            "--public", help="Allow a non-loopback --host (anyone who can reach it may use it)."
        ),
    ] = False,
    rate_limit: Annotated[
        str,
        typer.Option(
            help="Requests per key: N/s, N/min, N/h, or off. Beyond it: 429.",
        ),
    ] = "60/min",
    rate_limit_mode: Annotated[
        str,
        typer.Option(
            help="Which kind of limiter enforces --rate-limit: bucket (a burst of the rate's "
            "count, refilled evenly), strict (no burst: a request a millisecond early is "
            "refused, as nginx's limit_req without burst), or window (fixed windows of the "
            "rate's period, count per window).",
        ),
    ] = "bucket",
    arrival_jitter: Annotated[
        float,
        typer.Option(
            help="Requests reach the rate limiter up to this many seconds late (uniform), as "
            "over the internet.",
        ),
    ] = 0.0,
    max_concurrent: Annotated[
        str,
        typer.Option(help="Requests in flight per key, or off. Beyond it: 429."),
    ] = "5",
    connections: Annotated[
        int,
        typer.Option(
            help="Active VoiceLink connections of the account; above 1, connection_id is required "
            "and checked (the ids are printed at start).",
        ),
    ] = 1,
    no_retry_after: Annotated[
        bool,
        typer.Option(
            "--no-retry-after",
            help="Leave the Retry-After header out of 429s (the API docs do not promise it).",
        ),
    ] = False,
    error_rate: Annotated[
        float,
        typer.Option(help="Share of answers that are 500/502/503 errors."),
    ] = 0.0,
    html_rate: Annotated[
        float,
        typer.Option(help="Share of answers that are a proxy's HTML 502 page."),
    ] = 0.0,
    drop_rate: Annotated[
        float,
        typer.Option(
            help="Share of connections closed without an answer (after the update is stored).",
        ),
    ] = 0.0,
    slow_rate: Annotated[
        float,
        typer.Option(
            help="Share of answers held back --slow-seconds (after the update is stored).",
        ),
    ] = 0.0,
    slow_seconds: Annotated[float, typer.Option(help="Delay of a slow answer, seconds.")] = 60.0,
    latency: Annotated[float, typer.Option(help="Seconds added to every answer.")] = 0.0,
    jitter: Annotated[
        float,
        typer.Option(help="Latency varies by +- this many seconds."),
    ] = 0.0,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Make the faults reproducible: the n-th request for a routing id always meets "
            "the same fate.",
            show_default=False,
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            help="[sandbox-only] Seed the records from a .csv/.parquet/.jsonl of the input "
            "columns; other routing ids then answer 404.",
            show_default=False,
        ),
    ] = None,
    bots: Annotated[
        Path | None,
        typer.Option(
            "--bots",
            help="The account's WebSocket bots (GET /voicelink/bots): a .json list of records "
            "(id, bot_name, status) or a .csv with those columns. Default: every bot id the "
            "--state records name, active.",
            show_default=False,
        ),
    ] = None,
    reject_unknown_bots: Annotated[
        bool,
        typer.Option(
            "--reject-unknown-bots",
            help="Answer 400 to an update naming a bot that is not on the account.",
        ),
    ] = False,
    access_log: Annotated[
        bool,
        typer.Option("--access-log", help="[sandbox-only] Log every request."),
    ] = False,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            help="[sandbox-only] Serve HTTPS with this certificate (PEM; with --tls-key): to "
            "rehearse a private CA (SSL_CERT_FILE) or an untrusted certificate.",
            dir_okay=False,
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option("--tls-key", help="The certificate's private key (PEM).", dir_okay=False),
    ] = None,
) -> None:
    """Serve a stand-in of the VoiceLink call-routing API on loopback, until Ctrl-C.

    Same endpoint, key check, validation, error envelopes and per-key limits as the real API
    (--rate-limit, --max-concurrent, --connections), the account's bots and connections lists
    (--bots, --reject-unknown-bots), plus faults to rehearse against
    (--error-rate, --html-rate, --drop-rate, --slow-rate, --latency, --jitter, --seed).

    [sandbox-only] extras, not in the real API: GET .../call-routing/{id} returns the stored
    record; GET /sandbox/stats counts requests per routing id and per status; --state seeds
    the records from a file.
    """
    with reporting_errors():
        from batch.settings import is_loopback_host

        if not is_loopback_host(host) and not public:
            fail(
                f"refusing to serve on non-loopback host {host}: the sandbox speaks plain http "
                "and prints its key; pass --public to do it anyway"
            )
        # Imported here: starlette and uvicorn cost half a second that every other command
        # would pay at start-up.
        from batch.sandbox import Faults, SandboxConfig, generate_api_key, serve_forever
        from batch.sandbox.server import Tls

        if (tls_cert is None) != (tls_key is None):
            fail("--tls-cert and --tls-key go together: give both, or neither")
        tls = Tls(tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None

        config = SandboxConfig(
            api_key=api_key if api_key is not None else generate_api_key(),
            rate_limit=_rate_limit(rate_limit),
            rate_limit_mode=_rate_limit_mode(rate_limit_mode),
            arrival_jitter=arrival_jitter,
            max_concurrent=_max_concurrent(max_concurrent),
            connections=connections,
            retry_after=not no_retry_after,
            faults=Faults(
                error_rate=error_rate,
                html_rate=html_rate,
                drop_rate=drop_rate,
                slow_rate=slow_rate,
                slow_seconds=slow_seconds,
                latency=latency,
                jitter=jitter,
            ),
            seed=seed,
            state=state,
            bots_file=bots,
            reject_unknown_bots=reject_unknown_bots,
        )
        # uvicorn has shut down cleanly before it re-raises Ctrl-C: that is how this ends.
        with contextlib.suppress(KeyboardInterrupt):
            serve_forever(config, host, port, on_ready=_announce, access_log=access_log, tls=tls)
        say("reroute sandbox: stopped")
