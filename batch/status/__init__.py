"""Status: a read-only view of a run's journal (`reroute status`)."""
