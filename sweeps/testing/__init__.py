"""Fault injection and reusable test helpers (as optuna/testing/)."""
