"""Opens the embedded SQLite database. Everything else about storage is in :mod:`.sql`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from polyroute.storage.sql import REQUEST_LOG_SCHEMA


def connect(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL survives a process crash; only an OS crash can lose the last commits.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.executescript(REQUEST_LOG_SCHEMA)
    return conn
