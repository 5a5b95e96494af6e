"""Pure shared facts: the error root, redaction, metric names, outcomes, the worker<->driver keys and record keys, write-behind, sqlite pragmas. No heavy import."""
