"""Prepare: validation, the rules and their messages, snapshots, fill, cutover checks, rollback,
the plan and the account preflight's judgement: an input becomes a batch of plain values."""
