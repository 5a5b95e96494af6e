"""sqlite stores (MLflow's and Optuna's local default) with commits that do not wait for the disk.

sqlite's default (a rollback journal, synchronous=FULL) syncs the disk at every commit: 16 ms
on this project's VM disk, and a sweep commits about 20 times per trial in Tune's loop (Optuna's
params, attrs and values, MLflow's runs). With write-ahead logging and synchronous=NORMAL a commit
is an append to the log (0.01 ms there): every commit survives a killed process, as the page
cache outlives it; an operating-system crash or a power cut can lose the last commits, never the
database. docs/performance.md has the sweep-level effect.

The WAL mode is stored in the database file, so MLflow's UI and other readers open it the same
way; it needs every process on the machine that holds the file (no network filesystem, where
sqlite's locks do not work either: a team shares a database server, docs/team-server.md).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

_installed = False


def _on_connect(connection: Any, _record: Any) -> None:
    if not isinstance(connection, sqlite3.Connection):
        return
    cursor = connection.cursor()
    try:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] not in ("wal", "memory"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.OperationalError:
        pass  # another process holds the file in the old mode: its commits are slower, not wrong
    finally:
        cursor.close()


def fast_commits() -> None:
    """Every sqlite connection this process opens from now on (any engine: MLflow's, Optuna's)
    writes ahead with synchronous=NORMAL. Idempotent."""
    global _installed
    if not _installed:
        event.listen(Engine, "connect", _on_connect)
        _installed = True
