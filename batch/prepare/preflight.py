"""Judge every valid row against what the account has: its bots and its VoiceLink connections.

One polars join per list over whole columns (a 200,000-row sheet pointing at 5,000 bots is a
join, not a loop per row): the result is an errors frame (``row, error_code, error_message``)
for :func:`batch.prepare.validate.add_errors`, like the ``--current`` WIPES gate. Codes:

- ``UNKNOWN_BOT``: an inbound or outbound WebSocket bot id that is not on the account;
- ``INACTIVE_BOT``: the bot has status 0 and the row routes active calls to it (row status 1);
- ``UNKNOWN_CONNECTION``: a connection id that is not one of the account's VoiceLink connections;
- ``INACTIVE_CONNECTION``: it is, but its status is not ``ACTIVE``;
- ``MISSING_CONNECTION_ID``: several active connections, and the row (and --connection-id)
  gives none.

SIP trunk ids have no documented list: they are not checked, and the summary says so once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

import polars as pl

from batch import voicelink as vl
from batch.model import Call, Outcome, RowResult
from batch.prepare.batch import Batch
from batch.prepare.current import sent_connection
from batch.prepare.plan import Plan
from batch.prepare.rulemessages import where
from batch.prepare.rules import Code
from batch.prepare.validate import Validation, add_errors
from batch.send.account import Account, read_account
from batch.send.client import Network, SendPolicy
from batch.settings import RunSettings
from batch.sheets.rownames import BY_NUMBER, RowNames

ERROR_COLUMNS: Final = ("row", "error_code", "error_message")
_SHOWN_CONNECTIONS: Final = 3  # connections a message lists ("the account has: ...")
_TARGET_SCHEMA: Final = {
    "row": pl.Int64,
    vl.STATUS: pl.Int64,
    vl.INBOUND_WEBSOCKET_BOT_ID: pl.Int64,
    vl.OUTBOUND_WEBSOCKET_BOT_ID: pl.Int64,
    vl.INBOUND_SIP_TRUNK_ID: pl.Int64,
    vl.OUTBOUND_SIP_TRUNK_ID: pl.Int64,
    vl.CONNECTION_ID: pl.String,
}


@dataclass(frozen=True)
class Verdict:
    """The preflight's word on a sheet: the errors frame and the lines a summary shows."""

    errors: pl.DataFrame  # ERROR_COLUMNS, rows in input order (several codes per row allowed)
    lines: tuple[str, ...]

    @property
    def rejected(self) -> int:
        """Rows with at least one preflight code."""
        return self.errors.get_column("row").n_unique() if self.errors.height else 0


def targets_of_validation(v: Validation) -> pl.DataFrame:
    """What each valid row points at (``_TARGET_SCHEMA``), from a validation's columns."""
    mask = v.valid_mask()
    numbers = v.numbers.filter(mask)
    connection = v.connections.filter(mask).select(sent_connection(v.default_connection_id))
    return pl.DataFrame(
        [v.judged.get_column("row").filter(mask), *[
            numbers.get_column(name) for name in _TARGET_SCHEMA if name in numbers.columns
        ], connection.get_column(vl.CONNECTION_ID)]
    ).select(list(_TARGET_SCHEMA))  # fmt: skip


def targets_of_calls(calls: Iterable[Call]) -> pl.DataFrame:
    """What each call points at, read from its JSON body (``run``'s batch or ``retry``'s)."""
    rows: list[int] = []
    bodies: list[str] = []
    for call in calls:
        rows.append(call.row)
        bodies.append(call.body)
    struct = pl.Struct({name: dtype for name, dtype in _TARGET_SCHEMA.items() if name != "row"})
    decoded = pl.Series("body", bodies, dtype=pl.String).str.json_decode(struct)
    return pl.DataFrame({"row": pl.Series(rows, dtype=pl.Int64)}).with_columns(
        decoded.struct.unnest()
    )


def judge(targets: pl.DataFrame, account: Account, names: RowNames = BY_NUMBER) -> Verdict:
    """The errors of every row of ``targets`` against ``account``, and the summary's lines;
    the messages name each row as ``names`` finds it in the input (batch.sheets.rownames)."""
    targets = targets.with_columns(where(names).alias("#where"))
    errors = pl.concat([_bot_errors(targets, account), _connection_errors(targets, account)])
    errors = errors.sort("row", "#order", maintain_order=True).select(ERROR_COLUMNS)
    return Verdict(errors, _lines(targets, account, errors))


def _bots_frame(account: Account) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "#bot": [b.id for b in account.bots],
            "#name": [b.name for b in account.bots],
            "#bot_status": [b.status for b in account.bots],
        },
        schema={"#bot": pl.Int64, "#name": pl.String, "#bot_status": pl.Int64},
    )


def _bot_errors(targets: pl.DataFrame, account: Account) -> pl.DataFrame:
    bots = _bots_frame(account)
    pointed = pl.concat(
        [
            targets.select(
                "row", "#where", vl.STATUS, pl.lit(field).alias("#field"),
                pl.lit(i).alias("#order"),
                pl.col(field).alias("#bot"),
            ).filter(pl.col("#bot").is_not_null())
            for i, field in enumerate(vl.BOT_FIELDS)
        ]
    )  # fmt: skip
    judged = pointed.join(bots, on="#bot", how="left")
    unknown = judged.filter(pl.col("#bot_status").is_null())
    inactive = judged.filter((pl.col("#bot_status") == 0) & (pl.col(vl.STATUS) == 1))
    return pl.concat(
        [
            _unknown_bots(unknown.select("row", "#where", "#order", "#field", "#bot"), bots),
            inactive.select(
                "row", "#order",
                pl.lit(Code.INACTIVE_BOT.value).alias("error_code"),
                pl.format(
                    "row {}, field {}: bot {} ({}) is inactive (status 0) on the account, and "
                    "the row routes active calls to it (status 1): activate the bot, point the "
                    "row at an active bot, or set the row's status to 0",
                    "#where", "#field", "#bot", _named("#name"),
                ).alias("error_message"),
            ),
        ]
    )  # fmt: skip


def _named(column: str) -> pl.Expr:
    return (
        pl.when(pl.col(column) != "").then(pl.format('"{}"', column)).otherwise(pl.lit("no name"))
    )


def _unknown_bots(unknown: pl.DataFrame, bots: pl.DataFrame) -> pl.DataFrame:
    """UNKNOWN_BOT, each message naming the account's nearest ids (an as-of join each way over
    the distinct unknown ids: no loop per row)."""
    if not bots.height:
        hint = pl.lit("the account has no WebSocket bots")
        return unknown.select(
            "row", "#order", pl.lit(Code.UNKNOWN_BOT.value).alias("error_code"),
            pl.format(
                "row {}, field {}: bot {} is not on the account ({}): create the bot or change "
                "the row's mode", "#where", "#field", "#bot", hint,
            ).alias("error_message"),
        )  # fmt: skip
    ids = unknown.select("#bot").unique().sort("#bot")
    sorted_bots = bots.sort("#bot").select(
        pl.col("#bot").alias("#near"), pl.format("{} {}", "#bot", _named("#name")).alias("#label")
    )
    below = ids.join_asof(sorted_bots, left_on="#bot", right_on="#near", strategy="backward")
    above = ids.join_asof(sorted_bots, left_on="#bot", right_on="#near", strategy="forward")
    near = below.select("#bot", pl.col("#label").alias("#below")).join(
        above.select("#bot", pl.col("#label").alias("#above")), on="#bot"
    ).select(
        "#bot",
        pl.concat_list("#below", "#above").list.drop_nulls().list.unique(maintain_order=True)
        .list.join(", ").alias("#nearest"),
    )  # fmt: skip
    return unknown.join(near, on="#bot", how="left").select(
        "row", "#order",
        pl.lit(Code.UNKNOWN_BOT.value).alias("error_code"),
        pl.format(
            "row {}, field {}: bot {} is not a WebSocket bot of this account ({} bots; the "
            "nearest ids are {}): it may have been deleted; point the row at a bot the account "
            "has",
            "#where", "#field", "#bot", pl.lit(bots.height), "#nearest",
        ).alias("error_message"),
    )  # fmt: skip


def _connection_errors(targets: pl.DataFrame, account: Account) -> pl.DataFrame:
    connections = pl.DataFrame(
        {
            "#cid": [c.connection_id for c in account.connections],
            "#cname": [c.name for c in account.connections],
            "#cstatus": [c.status for c in account.connections],
        },
        schema={"#cid": pl.String, "#cname": pl.String, "#cstatus": pl.String},
    )
    active = account.active_connections
    listing = _listing(account)
    sent = targets.select(
        "row", "#where", pl.col(vl.CONNECTION_ID).alias("#sent"),
        pl.col(vl.CONNECTION_ID).str.to_lowercase().alias("#cid"),
    ).join(connections, on="#cid", how="left")  # fmt: skip
    given = pl.col("#sent").is_not_null()
    unknown = sent.filter(given & pl.col("#cstatus").is_null())
    inactive = sent.filter(given & (pl.col("#cstatus").str.to_uppercase() != vl.CONNECTION_ACTIVE))
    frames = [
        unknown.select(
            "row", pl.lit(2).alias("#order"),
            pl.lit(Code.UNKNOWN_CONNECTION.value).alias("error_code"),
            pl.format(
                "row {}, field connection_id: {} is not one of this account's VoiceLink "
                "connections (it has: {}): write one of those, or leave the cell empty",
                "#where", "#sent", pl.lit(listing),
            ).alias("error_message"),
        ),
        inactive.select(
            "row", pl.lit(2).alias("#order"),
            pl.lit(Code.INACTIVE_CONNECTION.value).alias("error_code"),
            pl.format(
                "row {}, field connection_id: {} ({}) is {} on the account, not ACTIVE: use an "
                "active connection (it has: {})",
                "#where", "#sent", _named("#cname"), "#cstatus", pl.lit(listing),
            ).alias("error_message"),
        ),
    ]  # fmt: skip
    if len(active) > 1:
        frames.append(
            sent.filter(~given).select(
                "row", pl.lit(2).alias("#order"),
                pl.lit(Code.MISSING_CONNECTION_ID.value).alias("error_code"),
                pl.format(
                    "row {}, field connection_id: empty, and the account has {} active "
                    "VoiceLink connections ({}): write one in the cell or pass --connection-id",
                    "#where", pl.lit(len(active)), pl.lit(listing),
                ).alias("error_message"),
            )
        )  # fmt: skip
    return pl.concat(frames, how="vertical_relaxed")


def _listing(account: Account) -> str:
    """``"Main" 6f1c... ACTIVE, ...``: the account's connections, active ones first."""
    ordered = sorted(account.connections, key=lambda c: (not c.active, c.name))
    shown = [
        f"{c.name and repr(c.name)} {c.connection_id} {c.status}".strip()
        for c in ordered[:_SHOWN_CONNECTIONS]
    ]
    more = len(ordered) - len(shown)
    if more > 0:
        shown.append(f"{more} more")
    return ", ".join(shown) or "none"


def _lines(targets: pl.DataFrame, account: Account, errors: pl.DataFrame) -> tuple[str, ...]:
    inactive_bots = sum(not b.active for b in account.bots)
    active = len(account.active_connections)
    read = account.read_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        f"account check: {len(account.bots)} WebSocket bots ({inactive_bots} inactive) and "
        f"{len(account.connections)} VoiceLink connections ({active} active), read {read}"
    ]
    if errors.height:
        counts = errors.get_column("error_code").value_counts(sort=True)
        listed = ", ".join(f"{code} {n}" for code, n in counts.iter_rows())
        rows = errors.get_column("row").n_unique()
        lines.append(f"account check: {rows} of {targets.height} rows rejected ({listed})")
    else:
        lines.append(
            f"account check: all {targets.height} valid rows point at what the account has"
        )
    trunks = targets.select(
        (pl.col(vl.INBOUND_SIP_TRUNK_ID).is_not_null() | pl.col(vl.OUTBOUND_SIP_TRUNK_ID)
         .is_not_null()).sum()
    ).item()  # fmt: skip
    if trunks:
        lines.append(
            f"account check: SIP trunk ids ({trunks} rows) are not checked: the API documents "
            "no list of trunks"
        )
    return tuple(lines)


def check_validation(
    v: Validation,
    settings: RunSettings,
    key: str | None,
    network: Network,
    *,
    key_source: str | None = None,
) -> tuple[Validation, tuple[str, ...]]:
    """``validate``/``plan --account``: read the lists (a small event loop of its own, paced at
    the run's rate) and judge the valid rows of ``v``; rejected rows become invalid.
    ``key_source``: where the key came from (default: the settings' key variable)."""
    policy = SendPolicy.of(settings)
    source = key_source or settings.api_key_env
    account = read_account(settings.base_url, key, rate=settings.rate, policy=policy,
                           network=network, key_source=source)  # fmt: skip
    verdict = judge(targets_of_validation(v), account, v.table.row_names)
    return add_errors(v, verdict.errors), verdict.lines


# --- what the engine does with the verdict: rejected rows become invalid -------------------


def reject(batch: Batch, errors: pl.DataFrame) -> Batch:
    """``batch`` with the rows of ``errors`` left out of the calls and given their codes and
    messages: ``invalid`` when never sent; a retry's row sent before keeps its outcome, attempts
    and times (an outcome never moves back, attempts only accumulate)."""
    if not errors.height:
        return batch
    joined = errors.group_by("row", maintain_order=True).agg(
        pl.col("error_code").str.join(";"), pl.col("error_message").str.join("; ")
    )
    found: dict[int, tuple[str, str]] = {
        row: (code, message) for row, code, message in joined.iter_rows()
    }
    plan = batch.plan
    rows: list[RowResult | Call] = []
    for row in plan.rows:
        hit = found.get(row.row)
        if hit is None:
            rows.append(row)
        elif isinstance(row, RowResult) and row.attempts:  # a retry's row sent before: its
            note = "not sent again: the account check rejected it"  # history stays
            rows.append(row._replace(error_code=hit[0], error_message=f"{hit[1]} ({note})"))
        else:
            text = row.routing_id if isinstance(row, RowResult) else plan.routing_text(row)
            rows.append(RowResult(row.row, text, Outcome.INVALID, error_code=hit[0],
                                  error_message=hit[1]))  # fmt: skip
    return replace(batch, plan=Plan(plan.without(found), tuple(rows), plan.read_as))
