"""Send: one request, its answer, the retry policy, the limiter and pace, outage mode, the client
and the account lists. The only stage that imports httpx and tenacity.

Its front is ``batch.send.sender.Sender``: a call in, its ``RowResult`` out, and what happened on
the way told to one sink (``batch.send.events``)."""
