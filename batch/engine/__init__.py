"""The engine: one invocation of `run` or `retry` (row loop, guards, stop and signals, window,
ending, merge)."""
