"""Send: one request, its answer, the retry policy, the limiter and pace, outage mode, the client
and the account lists. The only stage that imports httpx and tenacity."""
