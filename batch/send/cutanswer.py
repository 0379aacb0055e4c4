"""What an answer cut at the cap means (``batch.send.bounded``): only what its beginning says.

A body larger than any envelope is not the API talking as documented (a proxy or WAF page, a
broken upstream). Its beginning is kept as a short excerpt with the answer's size; the outcome
says no more than is known:

- a 2xx whose beginning reads ``{"success": true`` is a success: the API said so before
  anything else (``data`` is passed through from VoiceLink and its size is not ours to judge),
  and sending again would only get the same answer;
- any other 2xx is ``BAD_RESPONSE``, a final failure: the row is never called succeeded on a
  guess; the update may have been applied, and a retry sends it again safely (it replaces
  the record);
- any other status keeps its usual meaning (429 paces, 5xx is retried as a gateway page, 401
  and 403 stop the run), with the size said in the message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import httpx

from batch.send.bounded import Body, cap_text
from batch.send.retry import Answer

EXCERPT_CHARS: Final = 200
# A JSON object whose first member is "success": true, after an optional byte-order mark.
_SUCCESS_FIRST: Final = re.compile(rb'\A(?:\xef\xbb\xbf)?\s*\{\s*"success"\s*:\s*true\b')


def cut_answer(
    response: httpx.Response,
    body: Body,
    scrub: Callable[[str], str],
    retry_after: float | None,
) -> Answer:
    """The answer whose body was cut at the cap; ``scrub`` removes the key (and any part of it
    left at the cut), ``retry_after`` is what its headers ask for, if anything."""
    status = response.status_code
    excerpt = _excerpt(body, scrub)
    size = f"{body.size_text()}, more than the {cap_text(len(body.content))} reroute reads"
    kept = f"{excerpt} [answer cut: {size}]"
    if 200 <= status < 300:
        if _SUCCESS_FIRST.match(body.content):
            return Answer(status, True, "", "", kept, False)
        message = (
            f"HTTP {status} answer of {size}, and its beginning is not the API's success "
            "envelope (a proxy or gateway page?): the update may have been applied, and "
            f"sending it again is safe (it replaces the record). It begins: {excerpt}"
        )
        return Answer(status, False, "BAD_RESPONSE", message, kept, False)
    if status == 429:
        message = f"rate limited (HTTP 429, an answer of {size})"
        return Answer(status, False, "RATE_LIMITED", message, kept, False, retry_after)
    reason = response.reason_phrase or ""
    message = f"HTTP {status} {reason} with an answer of {size} (a proxy or gateway page?)"
    return Answer(status, False, f"HTTP_{status}", message, kept, False, retry_after)


def _excerpt(body: Body, scrub: Callable[[str], str]) -> str:
    text = " ".join(scrub(body.content.decode("utf-8", errors="replace")).split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"
