"""The journal: SQLite, its log, the audit trail, the applied-row memory, archives, run identity
and the run lock. The only stage that writes sqlite3."""
