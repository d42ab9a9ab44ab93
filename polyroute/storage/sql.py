"""The SQL polyroute runs, in one place."""

REQUEST_LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS request_log (
    id                INTEGER PRIMARY KEY,
    request_id        TEXT NOT NULL,
    ts                REAL NOT NULL,
    endpoint          TEXT NOT NULL,
    requested_model   TEXT NOT NULL,
    model_group       TEXT,
    vendor            TEXT,
    deployment        TEXT,
    upstream_model    TEXT,
    stream            INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    error_class       TEXT,
    attempts          INTEGER NOT NULL,
    attempt_chain     TEXT NOT NULL,
    latency_ms        REAL NOT NULL,
    ttft_ms           REAL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    cached_tokens     INTEGER,
    reasoning_tokens  INTEGER
);
CREATE INDEX IF NOT EXISTS request_log_ts ON request_log (ts);
"""

INSERT_REQUEST_LOG = """
INSERT INTO request_log (
    request_id, ts, endpoint, requested_model, model_group, vendor, deployment, upstream_model,
    stream, status, error_class, attempts, attempt_chain, latency_ms, ttft_ms,
    prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
